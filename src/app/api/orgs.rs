//! `/api/v1/orgs/...`, `/api/v1/projects/...`, `/api/v1/users/...`, `/api/v1/invitations/...`
//! and `/api/v1/permissions`. Every check happens in [`crate::orgs::Orgs`]; a resource of an
//! organization the caller does not belong to answers 404.

use crate::code::ErrorCode;
use actix_web::{HttpRequest, HttpResponse, web};
use actix_web::{delete, get, patch, post, put};
use chrono::{DateTime, NaiveDateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;

use super::body::Json;
use super::private_json;
use crate::app::AppState;
use crate::app::error::{ApiError, ErrorBody};
use crate::app::session::{self, Authenticated};
use crate::db::accounts::User;
use crate::db::orgs::{Invitation, Org, Project};
use crate::orgs::authz::Resource;
use crate::orgs::perms::{PermissionDef, Scope};
use crate::orgs::{OrgsError, RoleInfo, RoleSpec};

/// Registers this file's handlers with the router and the API document at once.
pub fn routes(cfg: &mut ServiceConfig) {
    cfg.service(list_orgs)
        .service(recent_boards)
        .service(create_org)
        .service(get_org)
        .service(update_org)
        .service(delete_org)
        .service(my_org_permissions)
        .service(list_members)
        .service(add_member)
        .service(set_member_role)
        .service(remove_member)
        .service(transfer)
        .service(list_invitations)
        .service(invite)
        .service(revoke_invitation)
        .service(preview_invitation)
        .service(accept_invitation)
        .service(list_roles)
        .service(create_role)
        .service(update_role)
        .service(delete_role)
        .service(catalogue)
        .service(list_projects)
        .service(create_project)
        .service(get_project)
        .service(rename_project)
        .service(delete_project)
        .service(my_project_permissions)
        .service(list_project_members)
        .service(set_project_member)
        .service(remove_project_member)
        .service(search_users)
        .service(get_user);
}

impl From<OrgsError> for ApiError {
    fn from(e: OrgsError) -> Self {
        let message = e.to_string();
        match e {
            OrgsError::NotFound(_) => Self::NotFound(message),
            OrgsError::Forbidden(_) => Self::Forbidden {
                code: ErrorCode::Forbidden,
                message,
            },
            OrgsError::Escalation(_) => Self::Forbidden {
                code: ErrorCode::RoleExceedsYours,
                message,
            },
            OrgsError::OwnRole => Self::Forbidden {
                code: ErrorCode::OwnRole,
                message,
            },
            OrgsError::InvitationForAnother => Self::Forbidden {
                code: ErrorCode::InvitationForAnotherAddress,
                message,
            },
            OrgsError::Invalid { .. } => Self::Unprocessable {
                code: ErrorCode::InvalidInput,
                message,
            },
            OrgsError::Conflict(_) => Self::Conflict {
                code: ErrorCode::AlreadyExists,
                message,
            },
            OrgsError::LastOwner => Self::Conflict {
                code: ErrorCode::LastOwner,
                message,
            },
            OrgsError::RoleInUse => Self::Conflict {
                code: ErrorCode::RoleInUse,
                message,
            },
            OrgsError::ConfirmationMismatch => Self::Unprocessable {
                code: ErrorCode::ConfirmationMismatch,
                message,
            },
            OrgsError::InvalidInvitation => Self::Unprocessable {
                code: ErrorCode::InvalidInvitation,
                message,
            },
            OrgsError::Internal(detail) => Self::Internal(detail),
        }
    }
}

fn initials(name: &str) -> String {
    let mut words = name.split_whitespace().filter_map(|w| w.chars().next());
    let first = words.next();
    let last = words.next_back();
    first
        .into_iter()
        .chain(last)
        .flat_map(char::to_uppercase)
        .collect()
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OrgView {
    id: String,
    slug: String,
    name: String,
    /// The account's own organization, made at sign-up.
    personal: bool,
    created_at: DateTime<Utc>,
    /// My role: `org:owner`, `org:admin`, `org:member` or a custom role id.
    role: String,
}

impl OrgView {
    fn of(o: Org, role: String) -> Self {
        Self {
            id: o.id,
            slug: o.slug,
            name: o.name,
            personal: o.personal,
            created_at: o.created_at.and_utc(),
            role,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateOrg {
    /// 1 to 100 characters (trimmed), no control characters.
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]*[^\\s\\u0000-\\u001f\\u007f-\\u009f][^\\u0000-\\u001f\\u007f-\\u009f]*$"
    )]
    name: String,
    /// 2 to 40 lowercase letters, digits, `-`; made from the name when absent.
    #[serde(default)]
    #[schema(
        min_length = 2,
        max_length = 40,
        pattern = "^[a-z0-9][a-z0-9-]*[a-z0-9]$"
    )]
    slug: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateOrg {
    #[serde(default)]
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]*[^\\s\\u0000-\\u001f\\u007f-\\u009f][^\\u0000-\\u001f\\u007f-\\u009f]*$"
    )]
    name: Option<String>,
    #[serde(default)]
    #[schema(
        min_length = 2,
        max_length = 40,
        pattern = "^[a-z0-9][a-z0-9-]*[a-z0-9]$"
    )]
    slug: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Confirm {
    /// The organization's name or slug, or the project's name.
    confirm: String,
}

/// My organizations, with my role in each.
#[utoipa::path(tag = "orgs",
    responses((status = 200, body = [OrgView]), (status = 401, body = ErrorBody)))]
#[get("/api/v1/orgs")]
async fn list_orgs(
    state: web::Data<AppState>,
    who: Authenticated,
) -> Result<HttpResponse, ApiError> {
    let list = state.orgs.my_orgs(&who.user).await?;
    Ok(private_json(
        list.into_iter()
            .map(|(o, r)| OrgView::of(o, r))
            .collect::<Vec<_>>(),
    ))
}

/// Create an organization (I become its owner).
#[utoipa::path(tag = "orgs", request_body = CreateOrg,
    responses((status = 201, body = OrgView), (status = 422, description = "`invalid_input`", body = ErrorBody),
        (status = 409, description = "`already_exists`: slug taken", body = ErrorBody)))]
#[post("/api/v1/orgs")]
async fn create_org(
    state: web::Data<AppState>,
    who: Authenticated,
    body: Json<CreateOrg>,
) -> Result<HttpResponse, ApiError> {
    let org = state
        .orgs
        .create_org(&who.user, &body.name, body.slug.as_deref(), false)
        .await?;
    Ok(HttpResponse::Created().json(OrgView::of(org, "org:owner".into())))
}

/// One organization and my role in it.
#[utoipa::path(tag = "orgs", params(("org" = String, Path)),
    responses((status = 200, body = OrgView), (status = 404, body = ErrorBody)))]
#[get("/api/v1/orgs/{org}")]
async fn get_org(
    state: web::Data<AppState>,
    who: Authenticated,
    org: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let (o, role) = state.orgs.org(&who.user, &org).await?;
    Ok(private_json(OrgView::of(o, role)))
}

/// Rename an organization or change its slug (`org:org:update`).
#[utoipa::path(tag = "orgs", params(("org" = String, Path)), request_body = UpdateOrg,
    responses((status = 200, body = OrgView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
#[patch("/api/v1/orgs/{org}")]
async fn update_org(
    state: web::Data<AppState>,
    who: Authenticated,
    org: web::Path<String>,
    body: Json<UpdateOrg>,
) -> Result<HttpResponse, ApiError> {
    let o = state
        .orgs
        .update_org(&who.user, &org, body.name.as_deref(), body.slug.as_deref())
        .await?;
    let (_, role) = state.orgs.org(&who.user, &o.id).await?;
    Ok(private_json(OrgView::of(o, role)))
}

/// Delete an organization and everything in it (owners; `confirm` = its name or slug).
#[utoipa::path(tag = "orgs", params(("org" = String, Path)), request_body = Confirm,
    responses((status = 204), (status = 422, description = "`confirmation_mismatch`", body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
#[delete("/api/v1/orgs/{org}")]
async fn delete_org(
    state: web::Data<AppState>,
    who: Authenticated,
    org: web::Path<String>,
    body: Json<Confirm>,
) -> Result<HttpResponse, ApiError> {
    state
        .orgs
        .delete_org(&who.user, &org, &body.confirm)
        .await?;
    // Its gateway stops; open connections are closed with 4404.
    state.gateways.org_deleted(&org).await;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MyPermissions {
    /// Every catalogue permission I hold here.
    permissions: Vec<&'static str>,
}

/// What I may do in an organization.
#[utoipa::path(tag = "orgs", params(("org" = String, Path)),
    responses((status = 200, body = MyPermissions), (status = 404, body = ErrorBody)))]
#[get("/api/v1/orgs/{org}/permissions/me")]
async fn my_org_permissions(
    state: web::Data<AppState>,
    who: Authenticated,
    org: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let permissions = state
        .orgs
        .my_permissions(&who.user.id, Resource::Org(&org))
        .await?;
    Ok(private_json(MyPermissions { permissions }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MemberView {
    user_id: String,
    username: String,
    display_name: String,
    initials: String,
    /// Only to those who manage members (and to the member themselves).
    #[serde(skip_serializing_if = "Option::is_none")]
    email: Option<String>,
    role: String,
    created_at: DateTime<Utc>,
}

impl MemberView {
    fn of(role: String, created_at: NaiveDateTime, u: &User, email: Option<String>) -> Self {
        let created_at = created_at.and_utc();
        Self {
            user_id: u.id.clone(),
            username: u.username.clone(),
            initials: initials(&u.display_name),
            display_name: u.display_name.clone(),
            email,
            role,
            created_at,
        }
    }
}

/// The members of an organization.
#[utoipa::path(tag = "orgs", params(("org" = String, Path)),
    responses((status = 200, body = [MemberView]), (status = 404, body = ErrorBody)))]
#[get("/api/v1/orgs/{org}/members")]
async fn list_members(
    state: web::Data<AppState>,
    who: Authenticated,
    org: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let list = state.orgs.members(&who.user, &org).await?;
    Ok(private_json(
        list.into_iter()
            .map(|l| MemberView::of(l.member.role, l.member.created_at, &l.user, l.email))
            .collect::<Vec<_>>(),
    ))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddMember {
    /// Id, username or email of an existing account.
    user: String,
    /// A role key (`org:member`, `org:admin`, `org:owner`) or a custom org role id.
    role: String,
}

/// Add an existing account to the organization.
#[utoipa::path(tag = "orgs", params(("org" = String, Path)), request_body = AddMember,
    responses((status = 201, body = MemberView), (status = 422, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
#[post("/api/v1/orgs/{org}/members")]
async fn add_member(
    req: HttpRequest,
    state: web::Data<AppState>,
    who: Authenticated,
    org: web::Path<String>,
    body: Json<AddMember>,
) -> Result<HttpResponse, ApiError> {
    let (m, u) = state
        .orgs
        .add_member(
            &who.user,
            &org,
            &body.user,
            &body.role,
            &session::client_meta(&req).ip,
        )
        .await?;
    let email = Some(u.email.clone());
    Ok(HttpResponse::Created().json(MemberView::of(m.role, m.created_at, &u, email)))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoleChange {
    role: String,
}

/// Change a member's role (owner changes need ownership; the last owner stays).
#[utoipa::path(tag = "orgs",
    params(("org" = String, Path), ("user" = String, Path)), request_body = RoleChange,
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "`last_owner`", body = ErrorBody)))]
#[patch("/api/v1/orgs/{org}/members/{user}")]
async fn set_member_role(
    req: HttpRequest,
    state: web::Data<AppState>,
    who: Authenticated,
    path: web::Path<(String, String)>,
    body: Json<RoleChange>,
) -> Result<HttpResponse, ApiError> {
    let (org, user) = path.into_inner();
    state
        .orgs
        .set_member_role(
            &who.user,
            &org,
            &user,
            &body.role,
            &session::client_meta(&req).ip,
        )
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Remove a member, or leave (my own id).
#[utoipa::path(tag = "orgs",
    params(("org" = String, Path), ("user" = String, Path)),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "`last_owner`", body = ErrorBody)))]
#[delete("/api/v1/orgs/{org}/members/{user}")]
async fn remove_member(
    req: HttpRequest,
    state: web::Data<AppState>,
    who: Authenticated,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (org, user) = path.into_inner();
    state
        .orgs
        .remove_member(&who.user, &org, &user, &session::client_meta(&req).ip)
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Transfer {
    /// The member who becomes an owner (I become an admin).
    user_id: String,
}

/// Transfer ownership to another member.
#[utoipa::path(tag = "orgs", params(("org" = String, Path)), request_body = Transfer,
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
#[post("/api/v1/orgs/{org}/transfer")]
async fn transfer(
    state: web::Data<AppState>,
    who: Authenticated,
    org: web::Path<String>,
    body: Json<Transfer>,
) -> Result<HttpResponse, ApiError> {
    state
        .orgs
        .transfer_ownership(&who.user, &org, &body.user_id)
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Debug, Serialize, ToSchema)]
pub struct InvitationView {
    id: String,
    /// The address it is bound to; absent for an open link.
    #[serde(skip_serializing_if = "Option::is_none")]
    email: Option<String>,
    /// An open link: anyone signed in who holds it may join, once.
    open: bool,
    role: String,
    created_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
    /// The open link itself, in the answer that creates it only (it is not stored).
    #[serde(skip_serializing_if = "Option::is_none")]
    link: Option<String>,
}

impl From<&Invitation> for InvitationView {
    fn from(i: &Invitation) -> Self {
        Self {
            id: i.id.clone(),
            email: (!i.email.is_empty()).then(|| i.email.clone()),
            open: i.email.is_empty(),
            role: i.role.clone(),
            created_at: i.created_at.and_utc(),
            expires_at: i.expires_at.and_utc(),
            link: None,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Invite {
    /// The address to invite: the mailed link works only for the account with it.
    #[serde(default)]
    #[schema(
        min_length = 3,
        max_length = 254,
        pattern = "^[^@\\s]+@[^@\\s.][^@\\s]*$"
    )]
    email: Option<String>,
    /// Instead of an address: make an open link (returned once, not mailed) that anyone
    /// signed in may use once.
    #[serde(default)]
    open: bool,
    role: String,
}

/// Pending invitations.
#[utoipa::path(tag = "orgs", params(("org" = String, Path)),
    responses((status = 200, body = [InvitationView]), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
#[get("/api/v1/orgs/{org}/invitations")]
async fn list_invitations(
    state: web::Data<AppState>,
    who: Authenticated,
    org: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let list = state.orgs.invitations(&who.user, &org).await?;
    Ok(private_json(
        list.iter().map(InvitationView::from).collect::<Vec<_>>(),
    ))
}

/// Invite someone by email (a link, valid 7 days, used once).
#[utoipa::path(tag = "orgs", params(("org" = String, Path)), request_body = Invite,
    responses((status = 201, body = InvitationView), (status = 422, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 429, description = "`rate_limited`: invitations per person and per organization", body = ErrorBody)))]
#[post("/api/v1/orgs/{org}/invitations")]
async fn invite(
    state: web::Data<AppState>,
    who: Authenticated,
    org: web::Path<String>,
    body: Json<Invite>,
) -> Result<HttpResponse, ApiError> {
    let email = match (body.email.as_deref(), body.open) {
        (Some(e), false) => Some(e),
        (None, true) => None,
        _ => {
            return Err(ApiError::Unprocessable {
                code: ErrorCode::InvalidInput,
                message: "give either `email` or `open: true`".into(),
            });
        }
    };
    state.limits.invite_user.check(&who.user.id)?;
    state.limits.invite_org.check(org.as_str())?;
    let (inv, link) = state
        .orgs
        .invite(&who.user, &org, email, &body.role)
        .await?;
    Ok(HttpResponse::Created()
        .insert_header(("Cache-Control", "no-store"))
        .json(InvitationView {
            link,
            ..InvitationView::from(&inv)
        }))
}

/// Revoke a pending invitation.
#[utoipa::path(tag = "orgs",
    params(("org" = String, Path), ("id" = String, Path)),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
#[delete("/api/v1/orgs/{org}/invitations/{id}")]
async fn revoke_invitation(
    state: web::Data<AppState>,
    who: Authenticated,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (org, id) = path.into_inner();
    state.orgs.revoke_invitation(&who.user, &org, &id).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AcceptInvitation {
    /// The `token` of the emailed link.
    token: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct InvitationPreviewView {
    /// The organization it joins.
    org_name: String,
    /// Who invited (display name and username), if their account still exists.
    #[serde(skip_serializing_if = "Option::is_none")]
    inviter_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    inviter_username: Option<String>,
    /// The role's name.
    role: String,
    /// The address it is bound to; absent for an open link.
    #[serde(skip_serializing_if = "Option::is_none")]
    email: Option<String>,
    expires_at: DateTime<Utc>,
}

/// What an invitation link is for (the organization, who invited, the role), for its
/// signed-in holder; uses nothing.
#[utoipa::path(tag = "orgs", request_body = AcceptInvitation,
    responses((status = 200, body = InvitationPreviewView), (status = 422, description = "`invalid_invitation`", body = ErrorBody),
        (status = 401, body = ErrorBody)))]
#[post("/api/v1/invitations/preview")]
async fn preview_invitation(
    state: web::Data<AppState>,
    _who: Authenticated,
    body: Json<AcceptInvitation>,
) -> Result<HttpResponse, ApiError> {
    let p = state.orgs.invitation_preview(&body.token).await?;
    let (inviter_name, inviter_username) = p.inviter.unzip();
    Ok(private_json(InvitationPreviewView {
        org_name: p.org_name,
        inviter_name,
        inviter_username,
        role: p.role,
        email: p.email,
        expires_at: p.expires_at.and_utc(),
    }))
}

/// Accept an invitation as the signed-in user (once).
#[utoipa::path(tag = "orgs", request_body = AcceptInvitation,
    responses((status = 200, body = OrgView), (status = 422, description = "`invalid_invitation`", body = ErrorBody),
        (status = 403, description = "`invitation_for_another_address`", body = ErrorBody)))]
#[post("/api/v1/invitations/accept")]
async fn accept_invitation(
    state: web::Data<AppState>,
    who: Authenticated,
    body: Json<AcceptInvitation>,
) -> Result<HttpResponse, ApiError> {
    let org = state.orgs.accept_invitation(&who.user, &body.token).await?;
    let (o, role) = state.orgs.org(&who.user, &org.id).await?;
    Ok(private_json(OrgView::of(o, role)))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RoleView {
    id: String,
    name: String,
    description: String,
    scope: Scope,
    builtin: bool,
    permissions: Vec<String>,
}

impl From<RoleInfo> for RoleView {
    fn from(r: RoleInfo) -> Self {
        Self {
            id: r.id,
            name: r.name,
            description: r.description,
            scope: r.scope,
            builtin: r.builtin,
            permissions: r.permissions,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoleBody {
    /// 1 to 100 characters (trimmed), no control characters.
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]*[^\\s\\u0000-\\u001f\\u007f-\\u009f][^\\u0000-\\u001f\\u007f-\\u009f]*$"
    )]
    name: String,
    #[serde(default)]
    description: String,
    /// Where its permissions apply (fixed once created).
    scope: Scope,
    /// Patterns `module:resource:action`, `*` for any one part.
    permissions: Vec<String>,
}

impl RoleBody {
    fn spec(&self) -> Result<RoleSpec, ApiError> {
        Ok(RoleSpec {
            name: self.name.clone(),
            description: self.description.clone(),
            scope: self.scope,
            permissions: self.permissions.clone(),
        })
    }
}

/// Built-in and custom roles.
#[utoipa::path(tag = "orgs", params(("org" = String, Path)),
    responses((status = 200, body = [RoleView]), (status = 404, body = ErrorBody)))]
#[get("/api/v1/orgs/{org}/roles")]
async fn list_roles(
    state: web::Data<AppState>,
    who: Authenticated,
    org: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let list = state.orgs.roles(&who.user, &org).await?;
    Ok(private_json(
        list.into_iter().map(RoleView::from).collect::<Vec<_>>(),
    ))
}

/// Create a custom role.
#[utoipa::path(tag = "orgs", params(("org" = String, Path)), request_body = RoleBody,
    responses((status = 201, body = RoleView), (status = 422, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
#[post("/api/v1/orgs/{org}/roles")]
async fn create_role(
    state: web::Data<AppState>,
    who: Authenticated,
    org: web::Path<String>,
    body: Json<RoleBody>,
) -> Result<HttpResponse, ApiError> {
    let r = state
        .orgs
        .create_role(&who.user, &org, &body.spec()?)
        .await?;
    Ok(HttpResponse::Created().json(RoleView::from(r)))
}

/// Edit a custom role (name, description, permissions).
#[utoipa::path(tag = "orgs",
    params(("org" = String, Path), ("id" = String, Path)), request_body = RoleBody,
    responses((status = 200, body = RoleView), (status = 422, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "`already_exists`: another role has this name", body = ErrorBody)))]
#[put("/api/v1/orgs/{org}/roles/{id}")]
async fn update_role(
    state: web::Data<AppState>,
    who: Authenticated,
    path: web::Path<(String, String)>,
    body: Json<RoleBody>,
) -> Result<HttpResponse, ApiError> {
    let (org, id) = path.into_inner();
    let r = state
        .orgs
        .update_role(&who.user, &org, &id, &body.spec()?)
        .await?;
    Ok(private_json(RoleView::from(r)))
}

/// Delete a custom role no one holds.
#[utoipa::path(tag = "orgs",
    params(("org" = String, Path), ("id" = String, Path)),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "`role_in_use`", body = ErrorBody)))]
#[delete("/api/v1/orgs/{org}/roles/{id}")]
async fn delete_role(
    state: web::Data<AppState>,
    who: Authenticated,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (org, id) = path.into_inner();
    state.orgs.delete_role(&who.user, &org, &id).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// The permission catalogue: every permission modules declare, with descriptions.
#[utoipa::path(tag = "orgs",
    responses((status = 200, body = [PermissionDef]), (status = 401, body = ErrorBody)))]
#[get("/api/v1/permissions")]
async fn catalogue(state: web::Data<AppState>, _who: Authenticated) -> HttpResponse {
    private_json(state.orgs.catalogue())
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ProjectView {
    id: String,
    org_id: String,
    name: String,
    created_by: Option<String>,
    created_at: DateTime<Utc>,
}

impl From<Project> for ProjectView {
    fn from(p: Project) -> Self {
        Self {
            id: p.id,
            org_id: p.org_id,
            name: p.name,
            created_by: p.created_by,
            created_at: p.created_at.and_utc(),
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProjectName {
    /// 1 to 100 characters (trimmed), no control characters; unique in the organization
    /// regardless of case.
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]*[^\\s\\u0000-\\u001f\\u007f-\\u009f][^\\u0000-\\u001f\\u007f-\\u009f]*$"
    )]
    name: String,
}

/// The organization's projects I can see.
#[utoipa::path(tag = "projects", params(("org" = String, Path)),
    responses((status = 200, body = [ProjectView]), (status = 404, body = ErrorBody)))]
#[get("/api/v1/orgs/{org}/projects")]
async fn list_projects(
    state: web::Data<AppState>,
    who: Authenticated,
    org: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let list = state.orgs.projects(&who.user, &org).await?;
    Ok(private_json(
        list.into_iter().map(ProjectView::from).collect::<Vec<_>>(),
    ))
}

/// Create a project (I become its project admin).
#[utoipa::path(tag = "projects", params(("org" = String, Path)), request_body = ProjectName,
    responses((status = 201, body = ProjectView), (status = 422, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
#[post("/api/v1/orgs/{org}/projects")]
async fn create_project(
    state: web::Data<AppState>,
    who: Authenticated,
    org: web::Path<String>,
    body: Json<ProjectName>,
) -> Result<HttpResponse, ApiError> {
    let p = state
        .orgs
        .create_project(&who.user, &org, &body.name)
        .await?;
    Ok(HttpResponse::Created().json(ProjectView::from(p)))
}

/// One project.
#[utoipa::path(tag = "projects", params(("id" = String, Path)),
    responses((status = 200, body = ProjectView), (status = 404, body = ErrorBody)))]
#[get("/api/v1/projects/{id}")]
async fn get_project(
    state: web::Data<AppState>,
    who: Authenticated,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let (p, _) = state.orgs.project_access(&who.user, &id).await?;
    Ok(private_json(ProjectView::from(p)))
}

/// Rename a project.
#[utoipa::path(tag = "projects", params(("id" = String, Path)), request_body = ProjectName,
    responses((status = 200, body = ProjectView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
#[patch("/api/v1/projects/{id}")]
async fn rename_project(
    state: web::Data<AppState>,
    who: Authenticated,
    id: web::Path<String>,
    body: Json<ProjectName>,
) -> Result<HttpResponse, ApiError> {
    let p = state
        .orgs
        .rename_project(&who.user, &id, &body.name)
        .await?;
    Ok(private_json(ProjectView::from(p)))
}

/// Delete a project (`confirm` = its name).
#[utoipa::path(tag = "projects", params(("id" = String, Path)), request_body = Confirm,
    responses((status = 204), (status = 422, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
#[delete("/api/v1/projects/{id}")]
async fn delete_project(
    state: web::Data<AppState>,
    who: Authenticated,
    id: web::Path<String>,
    body: Json<Confirm>,
) -> Result<HttpResponse, ApiError> {
    let p = state
        .orgs
        .delete_project(&who.user, &id, &body.confirm)
        .await?;
    // Open connections are closed with 4404; the document unloads without writing.
    state.gateways.project_deleted(&p.org_id, &p.id).await;
    Ok(HttpResponse::NoContent().finish())
}

/// What I may do in a project.
#[utoipa::path(tag = "projects", params(("id" = String, Path)),
    responses((status = 200, body = MyPermissions), (status = 404, body = ErrorBody)))]
#[get("/api/v1/projects/{id}/permissions/me")]
async fn my_project_permissions(
    state: web::Data<AppState>,
    who: Authenticated,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let (_, access) = state.orgs.project_access(&who.user, &id).await?;
    Ok(private_json(MyPermissions {
        permissions: access.holds().to_vec(),
    }))
}

/// A project's members.
#[utoipa::path(tag = "projects", params(("id" = String, Path)),
    responses((status = 200, body = [MemberView]), (status = 404, body = ErrorBody)))]
#[get("/api/v1/projects/{id}/members")]
async fn list_project_members(
    state: web::Data<AppState>,
    who: Authenticated,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let list = state.orgs.project_members(&who.user, &id).await?;
    Ok(private_json(
        list.into_iter()
            .map(|l| MemberView::of(l.member.role, l.member.created_at, &l.user, l.email))
            .collect::<Vec<_>>(),
    ))
}

/// Add a member of the organization to the project, or change their project role.
#[utoipa::path(tag = "projects", params(("id" = String, Path)), request_body = AddMember,
    responses((status = 204), (status = 422, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
#[post("/api/v1/projects/{id}/members")]
async fn set_project_member(
    req: HttpRequest,
    state: web::Data<AppState>,
    who: Authenticated,
    id: web::Path<String>,
    body: Json<AddMember>,
) -> Result<HttpResponse, ApiError> {
    state
        .orgs
        .set_project_member(
            &who.user,
            &id,
            &body.user,
            &body.role,
            &session::client_meta(&req).ip,
        )
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Remove a project member, or leave (my own id).
#[utoipa::path(tag = "projects",
    params(("id" = String, Path), ("user" = String, Path)),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
#[delete("/api/v1/projects/{id}/members/{user}")]
async fn remove_project_member(
    state: web::Data<AppState>,
    who: Authenticated,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (id, user) = path.into_inner();
    state
        .orgs
        .remove_project_member(&who.user, &id, &user)
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UserProfile {
    id: String,
    username: String,
    display_name: String,
    initials: String,
}

impl From<&User> for UserProfile {
    fn from(u: &User) -> Self {
        Self {
            id: u.id.clone(),
            username: u.username.clone(),
            display_name: u.display_name.clone(),
            initials: initials(&u.display_name),
        }
    }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct SearchQuery {
    /// A prefix of a username, name or email.
    #[param(min_length = 1, max_length = 100)]
    q: String,
}

/// Find people I share an organization with, by the start of their username, name or email.
#[utoipa::path(tag = "users", params(SearchQuery),
    responses((status = 200, body = [UserProfile]), (status = 422, body = ErrorBody)))]
#[get("/api/v1/users")]
async fn search_users(
    state: web::Data<AppState>,
    who: Authenticated,
    query: web::Query<SearchQuery>,
) -> Result<HttpResponse, ApiError> {
    let list = state.orgs.search_users(&who.user, &query.q).await?;
    Ok(private_json(
        list.iter().map(UserProfile::from).collect::<Vec<_>>(),
    ))
}

/// A public profile (of someone I share an organization with).
#[utoipa::path(tag = "users", params(("id" = String, Path)),
    responses((status = 200, body = UserProfile), (status = 404, body = ErrorBody)))]
#[get("/api/v1/users/{id}")]
async fn get_user(
    state: web::Data<AppState>,
    who: Authenticated,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let u = state.orgs.profile(&who.user, &id).await?;
    Ok(private_json(UserProfile::from(&u)))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RecentBoardView {
    /// The project (its board is at `/projects/<id>`).
    id: String,
    name: String,
    org_id: String,
    org_name: String,
    /// When I last opened it.
    opened_at: DateTime<Utc>,
    /// Others who opened it in the last two weeks (names, latest first, at most 3).
    others: Vec<String>,
}

/// The boards I opened, last first (those I may still open; at most 20).
#[utoipa::path(tag = "me",
    responses(
        (status = 200, description = "Boards, last opened first", body = [RecentBoardView]),
        (status = 401, description = "`not_authenticated`", body = ErrorBody)
    ))]
#[get("/api/v1/me/recent-boards")]
async fn recent_boards(
    state: web::Data<AppState>,
    who: Authenticated,
) -> Result<HttpResponse, ApiError> {
    let list: Vec<RecentBoardView> = state
        .orgs
        .recent_boards(&who.user, 20)
        .await?
        .into_iter()
        .map(|b| RecentBoardView {
            id: b.project.id,
            name: b.project.name,
            org_id: b.project.org_id,
            org_name: b.org_name,
            opened_at: b.opened_at.and_utc(),
            others: b.others,
        })
        .collect();
    Ok(private_json(list))
}

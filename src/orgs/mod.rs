//! Tenancy and permissions: organizations, members, invitations, custom roles, projects and
//! project members, and the one permission decision every endpoint (and, later, every gateway
//! event) asks.
//!
//! [`Orgs`] is the face. Every method takes the acting user and checks the permission itself,
//! so no caller can forget to. A resource in an organization the user does not belong to is
//! [`OrgsError::NotFound`], never "forbidden" (no enumeration).

mod access;
pub mod authz;
pub mod perms;

pub use self::access::{CONTENT_READ, CONTENT_WRITE, OrgAccess, ProjectAccess};

use std::sync::Arc;
use std::time::Duration;

use chrono::{NaiveDateTime, Utc};

use self::authz::{Compiler, Decision, GrantCache, Grants, Resource};
use self::perms::{Builtin, Catalogue, PermSet, PermissionDef, Scope, validate_pattern};
use crate::auth::tokens;
use crate::db::accounts::User;
use crate::db::orgs::{Invitation, MemberChange, Org, OrgMember, Project, ProjectMember, RoleRow};
use crate::db::{Db, DbError};
use crate::mail::{Mail, Mailer};

#[derive(Debug, thiserror::Error)]
pub enum OrgsError {
    #[error("no such {0}")]
    NotFound(&'static str),
    #[error("you may not {0}")]
    Forbidden(&'static str),
    #[error("{field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    #[error("{0}")]
    Conflict(String),
    #[error("an organization keeps at least one owner: make someone else an owner first")]
    LastOwner,
    #[error("this role is given to members or invitations; change those first")]
    RoleInUse,
    #[error(
        "to confirm, send the organization's name or slug (or the project's name) as `confirm`"
    )]
    ConfirmationMismatch,
    #[error("this invitation is not valid: it was already used, revoked, or has expired")]
    InvalidInvitation,
    /// Giving (or editing, or taking away) a role that holds more than the actor does.
    #[error("you may not give or change a role with permissions you do not hold yourself: {0}")]
    Escalation(String),
    #[error("you may not change your own role; leave, or ask another admin")]
    OwnRole,
    #[error(
        "this invitation is for another email address; sign in with the account that has it, or ask for a new invitation"
    )]
    InvitationForAnother,
    #[error("{0}")]
    Internal(String),
}

impl From<DbError> for OrgsError {
    fn from(e: DbError) -> Self {
        match e {
            DbError::Conflict(what) => Self::Conflict(format!("{what} already exists")),
            DbError::NotFound => Self::NotFound("record"),
            other => Self::Internal(other.to_string()),
        }
    }
}

fn now() -> NaiveDateTime {
    Utc::now().naive_utc()
}

/// A board someone opened lately, as their home page lists it.
#[derive(Debug, Clone)]
pub struct RecentBoard {
    pub project: Project,
    pub org_name: String,
    pub opened_at: NaiveDateTime,
    /// Others who opened it in the last two weeks (display names, latest first, at most 3).
    pub others: Vec<String>,
}

/// What an invitation link is for.
#[derive(Debug, Clone)]
pub struct InvitationPreview {
    pub org_name: String,
    /// Display name and username of who invited, if their account still exists.
    pub inviter: Option<(String, String)>,
    pub role: String,
    /// The address it is bound to; `None` for an open link.
    pub email: Option<String>,
    pub expires_at: NaiveDateTime,
}

/// A member as the viewer may see them: their address only for those who manage members,
/// and for themselves.
#[derive(Debug, Clone)]
pub struct Listed<M> {
    pub member: M,
    pub user: User,
    pub email: Option<String>,
}

fn listed<M>(viewer: &User, rows: Vec<(M, User)>, manages: bool) -> Vec<Listed<M>> {
    rows.into_iter()
        .map(|(member, user)| Listed {
            email: (manages || user.id == viewer.id).then(|| user.email.clone()),
            member,
            user,
        })
        .collect()
}

/// A role as shown to people: built-in or custom.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleInfo {
    /// The key stored in memberships (`org:admin`) or the custom role's id.
    pub id: String,
    pub name: String,
    pub description: String,
    pub scope: Scope,
    pub builtin: bool,
    pub permissions: Vec<String>,
}

/// What a custom role is made of.
#[derive(Debug, Clone)]
pub struct RoleSpec {
    pub name: String,
    pub description: String,
    pub scope: Scope,
    pub permissions: Vec<String>,
}

#[derive(Clone)]
pub struct Orgs {
    db: Db,
    compiler: Arc<Compiler>,
    cache: Arc<GrantCache>,
    /// Bumped on every change to memberships, roles or projects (open connections re-check).
    changes: Arc<tokio::sync::watch::Sender<u64>>,
    mailer: Mailer,
    public_url: Arc<str>,
    /// The instance's name, for invitation mails.
    instance: crate::instance::Instance,
    audit: crate::audit::Audit,
}

/// The board every new account starts with.
pub const FIRST_BOARD: &str = "My first board";

const INVITATION_LIFETIME: Duration = Duration::from_secs(7 * 24 * 3600);

fn validate_name(field: &'static str, name: &str) -> Result<String, OrgsError> {
    let n = name.trim();
    if n.is_empty() || n.chars().count() > 100 || n.chars().any(char::is_control) {
        return Err(OrgsError::Invalid {
            field,
            message: "1 to 100 characters, no control characters".into(),
        });
    }
    Ok(n.to_string())
}

/// Slugs: 2 to 40 lowercase letters, digits and `-`, not starting or ending with `-`.
pub fn validate_slug(s: &str) -> Result<(), OrgsError> {
    let ok = (2..=40).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(OrgsError::Invalid {
            field: "slug",
            message: "2 to 40 lowercase letters, digits or `-`, not at the ends".into(),
        })
    }
}

/// A slug made from a name ("Acme Research!" → "acme-research").
pub fn slugify(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_alphanumeric() {
            out.push(c);
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
        if out.len() >= 36 {
            break;
        }
    }
    let out = out.trim_end_matches('-').to_string();
    if out.len() < 2 {
        format!("org-{out}")
    } else {
        out
    }
}

impl Orgs {
    /// `modules`: the permissions the gateway's modules declare (the role editor lists them
    /// beside the core ones, and roles grant them).
    pub fn new(
        db: Db,
        mailer: Mailer,
        public_url: &str,
        instance: crate::instance::Instance,
        modules: &[PermissionDef],
    ) -> Self {
        let mut catalogue = Catalogue::default();
        catalogue.register(modules);
        Self {
            audit: crate::audit::Audit::new(db.clone()),
            db,
            compiler: Arc::new(Compiler::new(catalogue)),
            cache: Arc::default(),
            changes: Arc::new(tokio::sync::watch::channel(0).0),
            mailer,
            public_url: Arc::from(public_url),
            instance,
        }
    }

    /// Every permission modules declared.
    pub fn catalogue(&self) -> &[PermissionDef] {
        self.compiler.catalogue().all()
    }

    async fn grants(&self, user_id: &str) -> Result<Arc<Grants>, OrgsError> {
        if let Some(g) = self.cache.get(user_id) {
            return Ok(g);
        }
        let generation = self.cache.generation();
        let m = self.db.memberships(user_id).await?;
        let g = Arc::new(self.compiler.compile(&m));
        self.cache.put(user_id, generation, g.clone());
        Ok(g)
    }

    /// May `user` do `action` on `on`?
    async fn decide(
        &self,
        user_id: &str,
        action: &str,
        on: Resource<'_>,
    ) -> Result<Decision, OrgsError> {
        let g = self.grants(user_id).await?;
        Ok(self.compiler.decide(&g, action, on))
    }

    /// Allow, or the error to answer with (hidden resources are "not found").
    async fn require(
        &self,
        user_id: &str,
        action: &str,
        on: Resource<'_>,
        what: &'static str,
        verb: &'static str,
    ) -> Result<(), OrgsError> {
        match self.decide(user_id, action, on).await? {
            Decision::Allow => Ok(()),
            Decision::Deny => Err(OrgsError::Forbidden(verb)),
            Decision::Hidden => Err(OrgsError::NotFound(what)),
        }
    }

    /// Every permission the user holds on a resource (hidden: not found).
    pub async fn my_permissions(
        &self,
        user_id: &str,
        on: Resource<'_>,
    ) -> Result<Vec<&'static str>, OrgsError> {
        let g = self.grants(user_id).await?;
        let visible = match on {
            Resource::Org(_) => "org:org:read",
            Resource::Project { .. } => "project:project:read",
        };
        if self.compiler.decide(&g, visible, on) == Decision::Hidden {
            return Err(OrgsError::NotFound(match on {
                Resource::Org(_) => "organization",
                Resource::Project { .. } => "project",
            }));
        }
        Ok(self.compiler.permissions(&g, on))
    }

    fn changed(&self) {
        self.cache.invalidate();
        self.changes.send_modify(|g| *g = g.wrapping_add(1));
    }

    /// Changes whenever a membership, role or project changes: long-lived connections
    /// decide again what their user may do.
    pub fn watch_changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changes.subscribe()
    }

    // ---- organizations ----------------------------------------------------------------

    /// Creates an organization; `user` becomes its owner. Without a slug, one is made from
    /// the name (with a suffix if taken).
    pub async fn create_org(
        &self,
        user: &User,
        name: &str,
        slug: Option<&str>,
        personal: bool,
    ) -> Result<Org, OrgsError> {
        let name = validate_name("name", name)?;
        let (base, fixed) = match slug {
            Some(s) => {
                validate_slug(s)?;
                (s.to_string(), true)
            }
            None => (slugify(&name), false),
        };
        for attempt in 0..6 {
            let slug = if attempt == 0 {
                base.clone()
            } else {
                format!("{base}-{}", &tokens::public_id()[..4]).to_lowercase()
            };
            let org = Org {
                id: uuid::Uuid::new_v4().to_string(),
                slug,
                name: name.clone(),
                personal,
                created_at: now(),
            };
            match self.db.insert_org(&org, &user.id).await {
                Ok(()) => {
                    self.changed();
                    tracing::info!(org = %org.id, user = %user.id, "organization created");
                    return Ok(org);
                }
                Err(DbError::Conflict(_)) if !fixed => continue,
                Err(DbError::Conflict(_)) => {
                    return Err(OrgsError::Conflict(
                        "an organization with this slug already exists".into(),
                    ));
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(OrgsError::Conflict(
            "could not find a free slug; give one".into(),
        ))
    }

    /// The personal organization of a new account.
    pub async fn create_personal(&self, user: &User) -> Result<Org, OrgsError> {
        let name = format!("{}'s workspace", user.display_name);
        let slug = slugify(&user.username);
        let org = match self.create_org(user, &name, Some(&slug), true).await {
            Err(OrgsError::Conflict(_) | OrgsError::Invalid { .. }) => {
                self.create_org(user, &name, None, true).await
            }
            other => other,
        }?;
        // A new account lands with a board ready to open, not an empty list.
        self.create_project(user, &org.id, FIRST_BOARD).await?;
        Ok(org)
    }

    /// Records that `user` opened board `project_id` (for their recent boards).
    pub async fn record_visit(&self, user: &User, project_id: &str) -> Result<(), OrgsError> {
        Ok(self.db.touch_visit(&user.id, project_id, now()).await?)
    }

    /// The boards `user` opened, last first, that they may still open (at most `limit`).
    pub async fn recent_boards(
        &self,
        user: &User,
        limit: usize,
    ) -> Result<Vec<RecentBoard>, OrgsError> {
        let orgs: std::collections::HashMap<String, String> = self
            .my_orgs(user)
            .await?
            .into_iter()
            .map(|(o, _)| (o.id, o.name))
            .collect();
        let mut out = Vec::new();
        // Read a few more than asked: some may no longer be open to the user.
        for (p, opened_at) in self.db.visits_of(&user.id, limit as i64 * 2 + 5).await? {
            if out.len() == limit {
                break;
            }
            match self.project_access(user, &p.id).await {
                Ok(_) => {}
                Err(OrgsError::NotFound(_) | OrgsError::Forbidden(_)) => continue,
                Err(e) => return Err(e),
            }
            out.push(RecentBoard {
                org_name: orgs.get(&p.org_id).cloned().unwrap_or_default(),
                project: p,
                opened_at,
                others: Vec::new(),
            });
        }
        let ids: Vec<String> = out.iter().map(|b| b.project.id.clone()).collect();
        let since = now() - chrono::Duration::days(14);
        for (pid, name) in self.db.visitors_since(&ids, &user.id, since).await? {
            if let Some(b) = out.iter_mut().find(|b| b.project.id == pid)
                && b.others.len() < 3
                && !b.others.contains(&name)
            {
                b.others.push(name);
            }
        }
        Ok(out)
    }

    /// My organizations with my role.
    pub async fn my_orgs(&self, user: &User) -> Result<Vec<(Org, String)>, OrgsError> {
        Ok(self.db.orgs_of(&user.id).await?)
    }

    async fn load_org(&self, id: &str) -> Result<Org, OrgsError> {
        if id.len() > 64 {
            return Err(OrgsError::NotFound("organization"));
        }
        self.db
            .org(id)
            .await?
            .ok_or(OrgsError::NotFound("organization"))
    }

    /// An organization, checked for `action` (hidden ones are "not found").
    async fn org_for(
        &self,
        user: &User,
        id: &str,
        action: &str,
        verb: &'static str,
    ) -> Result<Org, OrgsError> {
        if id.len() > 64 {
            return Err(OrgsError::NotFound("organization"));
        }
        // The grants already know whether the user belongs to it: no query for outsiders.
        self.require(&user.id, action, Resource::Org(id), "organization", verb)
            .await?;
        self.load_org(id).await
    }

    /// One organization and my role in it.
    pub async fn org(&self, user: &User, id: &str) -> Result<(Org, String), OrgsError> {
        let org = self
            .org_for(user, id, "org:org:read", "see this organization")
            .await?;
        let role = self
            .db
            .org_member(&org.id, &user.id)
            .await?
            .map(|m| m.role)
            .unwrap_or_default();
        Ok((org, role))
    }

    pub async fn update_org(
        &self,
        user: &User,
        id: &str,
        name: Option<&str>,
        slug: Option<&str>,
    ) -> Result<Org, OrgsError> {
        let org = self
            .org_for(user, id, "org:org:update", "change this organization")
            .await?;
        let name = match name {
            Some(n) => validate_name("name", n)?,
            None => org.name.clone(),
        };
        let slug = match slug {
            Some(s) => {
                validate_slug(s)?;
                s.to_string()
            }
            None => org.slug.clone(),
        };
        self.db.update_org(&org.id, &name, &slug).await?;
        Ok(Org { name, slug, ..org })
    }

    /// Deletes an organization (owners only); `confirm` must be its name or its slug.
    pub async fn delete_org(&self, user: &User, id: &str, confirm: &str) -> Result<(), OrgsError> {
        let org = self
            .org_for(user, id, "org:org:delete", "delete this organization")
            .await?;
        let confirm = confirm.trim();
        if confirm != org.slug && confirm != org.name {
            return Err(OrgsError::ConfirmationMismatch);
        }
        self.db.delete_org(&org.id).await?;
        self.changed();
        tracing::info!(org = %org.id, user = %user.id, "organization deleted");
        Ok(())
    }

    // ---- members -------------------------------------------------------------------------

    pub async fn members(
        &self,
        user: &User,
        org_id: &str,
    ) -> Result<Vec<Listed<OrgMember>>, OrgsError> {
        let org = self
            .org_for(user, org_id, "org:members:read", "list the members")
            .await?;
        let manages = self
            .decide(&user.id, "org:members:manage", Resource::Org(&org.id))
            .await?
            == Decision::Allow;
        let rows = self.db.org_members(&org.id).await?;
        Ok(listed(user, rows, manages))
    }

    /// Checks a role key can be given at `scope` in this organization.
    async fn check_role(&self, org_id: &str, role: &str, scope: Scope) -> Result<(), OrgsError> {
        if let Some(b) = Builtin::from_key(role) {
            if b.scope() == scope {
                return Ok(());
            }
        } else if role.len() <= 64
            && let Some(r) = self.db.role(org_id, role).await?
            && r.scope == scope_str(scope)
        {
            return Ok(());
        }
        Err(OrgsError::Invalid {
            field: "role",
            message: format!(
                "no {} role `{}` in this organization",
                scope_str(scope),
                role.chars().take(64).collect::<String>()
            ),
        })
    }

    /// The permission patterns of a role key (built-in or this organization's custom role);
    /// an unknown key holds nothing.
    async fn role_set(&self, org_id: &str, role: &str) -> Result<Arc<PermSet>, OrgsError> {
        if let Some(set) = self.compiler.builtin_set(role) {
            return Ok(set);
        }
        let patterns: Vec<String> = match self.db.role(org_id, role).await? {
            Some(r) => serde_json::from_str(&r.permissions).unwrap_or_default(),
            None => Vec::new(),
        };
        Ok(Arc::new(PermSet::new(patterns.iter().map(String::as_str))))
    }

    /// Nobody gives, edits or takes away a role holding more than they hold themselves at
    /// `on`: `set` must be within the actor's own permissions there.
    async fn require_within(
        &self,
        user: &User,
        set: &PermSet,
        on: Resource<'_>,
    ) -> Result<(), OrgsError> {
        let g = self.grants(&user.id).await?;
        let over = self.compiler.beyond(&g, set, on);
        if over.is_empty() {
            return Ok(());
        }
        let mut list = over.iter().take(5).copied().collect::<Vec<_>>().join(", ");
        if over.len() > 5 {
            list.push_str(&format!(" and {} more", over.len() - 5));
        }
        Err(OrgsError::Escalation(list))
    }

    /// [`Self::require_within`] for a role key.
    async fn require_role_within(
        &self,
        user: &User,
        org_id: &str,
        role: &str,
        on: Resource<'_>,
    ) -> Result<(), OrgsError> {
        let set = self.role_set(org_id, role).await?;
        self.require_within(user, &set, on).await
    }

    /// Giving or taking the owner role needs ownership.
    async fn require_owner_for(
        &self,
        user: &User,
        org_id: &str,
        old: Option<&str>,
        new: Option<&str>,
    ) -> Result<(), OrgsError> {
        let owner = Builtin::OrgOwner.key();
        if old == Some(owner) || new == Some(owner) {
            self.require(
                &user.id,
                "org:ownership:transfer",
                Resource::Org(org_id),
                "organization",
                "change who owns this organization",
            )
            .await?;
        }
        Ok(())
    }

    /// Adds an existing user (by username or email) with a role.
    pub async fn add_member(
        &self,
        user: &User,
        org_id: &str,
        who: &str,
        role: &str,
        ip: &str,
    ) -> Result<(OrgMember, User), OrgsError> {
        let org = self
            .org_for(user, org_id, "org:members:manage", "add members")
            .await?;
        self.check_role(&org.id, role, Scope::Org).await?;
        self.require_owner_for(user, &org.id, None, Some(role))
            .await?;
        self.require_role_within(user, &org.id, role, Resource::Org(&org.id))
            .await?;
        let target = self.find_acquaintance(user, who).await?;
        let m = OrgMember {
            org_id: org.id.clone(),
            user_id: target.id.clone(),
            role: role.to_string(),
            created_at: now(),
        };
        self.db.insert_org_member(&m).await?;
        self.changed();
        self.audit
            .record(
                crate::audit::Kind::MemberAdded,
                Some(&user.id),
                Some(&target.id),
                ip,
                format!(
                    "{} added {} to {} as {role}",
                    user.username, target.username, org.name
                ),
            )
            .await;
        Ok((m, target))
    }

    pub async fn set_member_role(
        &self,
        user: &User,
        org_id: &str,
        member: &str,
        role: &str,
        ip: &str,
    ) -> Result<(), OrgsError> {
        let org = self
            .org_for(user, org_id, "org:members:manage", "change roles")
            .await?;
        if member == user.id {
            return Err(OrgsError::OwnRole);
        }
        self.check_role(&org.id, role, Scope::Org).await?;
        let current = self
            .db
            .org_member(&org.id, member)
            .await?
            .ok_or(OrgsError::NotFound("member"))?;
        self.require_owner_for(user, &org.id, Some(&current.role), Some(role))
            .await?;
        for r in [current.role.as_str(), role] {
            self.require_role_within(user, &org.id, r, Resource::Org(&org.id))
                .await?;
        }
        let r = self
            .db
            .change_org_member(&org.id, member, Some(role))
            .await?;
        self.changed();
        self.audit
            .record(
                crate::audit::Kind::RoleChanged,
                Some(&user.id),
                Some(member),
                ip,
                format!(
                    "{} changed a member's role in {} from {} to {role}",
                    user.username, org.name, current.role
                ),
            )
            .await;
        member_change(r)
    }

    /// Removes a member; anyone may remove themselves (leave).
    pub async fn remove_member(
        &self,
        user: &User,
        org_id: &str,
        member: &str,
        ip: &str,
    ) -> Result<(), OrgsError> {
        let org = if member != user.id {
            let org = self
                .org_for(user, org_id, "org:members:manage", "remove members")
                .await?;
            let current = self
                .db
                .org_member(&org.id, member)
                .await?
                .ok_or(OrgsError::NotFound("member"))?;
            self.require_owner_for(user, &org.id, Some(&current.role), None)
                .await?;
            self.require_role_within(user, &org.id, &current.role, Resource::Org(&org.id))
                .await?;
            org
        } else {
            self.org_for(user, org_id, "org:org:read", "leave").await?
        };
        let r = self.db.change_org_member(&org.id, member, None).await?;
        self.changed();
        self.audit
            .record(
                crate::audit::Kind::MemberRemoved,
                Some(&user.id),
                Some(member),
                ip,
                if member == user.id {
                    format!("{} left {}", user.username, org.name)
                } else {
                    format!("{} removed a member from {}", user.username, org.name)
                },
            )
            .await;
        member_change(r)
    }

    /// Makes another member an owner; the acting owner becomes an admin.
    pub async fn transfer_ownership(
        &self,
        user: &User,
        org_id: &str,
        to: &str,
    ) -> Result<(), OrgsError> {
        let org = self
            .org_for(user, org_id, "org:ownership:transfer", "transfer ownership")
            .await?;
        let r = self
            .db
            .transfer_ownership(&org.id, &user.id, to, Builtin::OrgAdmin.key())
            .await?;
        self.changed();
        tracing::info!(org = %org.id, from = %user.id, to, "ownership transferred");
        member_change(r)
    }

    // ---- invitations -----------------------------------------------------------------------

    /// Invites an address by email (`Some`): the emailed link adds the account with that
    /// address, once. With `None`, an open link on purpose: anyone signed in who holds it may
    /// join once; it is returned here (shown once), never mailed.
    pub async fn invite(
        &self,
        user: &User,
        org_id: &str,
        email: Option<&str>,
        role: &str,
    ) -> Result<(Invitation, Option<String>), OrgsError> {
        let org = self
            .org_for(user, org_id, "org:members:manage", "invite members")
            .await?;
        self.check_role(&org.id, role, Scope::Org).await?;
        self.require_owner_for(user, &org.id, None, Some(role))
            .await?;
        self.require_role_within(user, &org.id, role, Resource::Org(&org.id))
            .await?;
        let email = email.map(str::trim);
        if let Some(email) = email
            && !crate::auth::is_email_address(email)
        {
            return Err(OrgsError::Invalid {
                field: "email",
                message: "not an email address".into(),
            });
        }
        let (secret, token_hash) = tokens::new_token();
        let t = now();
        let inv = Invitation {
            id: tokens::public_id(),
            org_id: org.id.clone(),
            email: email.unwrap_or_default().to_string(),
            email_lower: email.map(crate::auth::login_key).unwrap_or_default(),
            role: role.to_string(),
            token_hash,
            invited_by: Some(user.id.clone()),
            created_at: t,
            expires_at: t + chrono::Duration::seconds(INVITATION_LIFETIME.as_secs() as i64),
            accepted_at: None,
            accepted_by: None,
        };
        self.db.insert_invitation(&inv).await?;
        let link = format!("{}invite?token={secret}", self.public_url);
        let Some(email) = email else {
            return Ok((inv, Some(link)));
        };
        // Nothing the inviter chose (their name, the organization's name) goes into the
        // mail: it would let anyone who may invite send any words from this server. The
        // link's page names both, once its holder has signed in.
        let body = format!(
            "Someone on {instance} invited this address to join an organization there.\n\n\
             Open this link to see which organization and who invited you (sign in or create \
             an account with this address first):\n\n{link}\n\n\
             It works once, for 7 days. If you did not expect it, ignore this message.\n",
            instance = self.instance.name(),
        );
        let mailer = self.mailer.clone();
        let mail = Mail {
            to: email.to_string(),
            subject: format!("An invitation to {}", self.instance.name()),
            body,
        };
        tokio::spawn(async move {
            if let Err(e) = mailer.send(&mail).await {
                tracing::warn!(error = %e, "invitation not sent");
            }
        });
        Ok((inv, None))
    }

    pub async fn invitations(
        &self,
        user: &User,
        org_id: &str,
    ) -> Result<Vec<Invitation>, OrgsError> {
        let org = self
            .org_for(user, org_id, "org:members:manage", "see invitations")
            .await?;
        Ok(self.db.pending_invitations(&org.id, now()).await?)
    }

    pub async fn revoke_invitation(
        &self,
        user: &User,
        org_id: &str,
        id: &str,
    ) -> Result<(), OrgsError> {
        let org = self
            .org_for(user, org_id, "org:members:manage", "revoke invitations")
            .await?;
        self.db
            .delete_invitation(&org.id, id)
            .await
            .map_err(|e| match e {
                DbError::NotFound => OrgsError::NotFound("invitation"),
                other => other.into(),
            })
    }

    /// The live invitation behind a link's secret.
    async fn live_invitation(&self, secret: &str) -> Result<Invitation, OrgsError> {
        if secret.is_empty() || secret.len() > 128 {
            return Err(OrgsError::InvalidInvitation);
        }
        self.db
            .invitation_by_hash(&tokens::hash(secret), now())
            .await?
            .ok_or(OrgsError::InvalidInvitation)
    }

    /// What an invitation link is for, to its holder (signed in): the organization, who
    /// invited, the role, and the address it is bound to (none for an open link).
    pub async fn invitation_preview(&self, secret: &str) -> Result<InvitationPreview, OrgsError> {
        let inv = self.live_invitation(secret).await?;
        let org = self.load_org(&inv.org_id).await?;
        let inviter = match &inv.invited_by {
            Some(id) => self.db.user_by_id(id).await?,
            None => None,
        };
        let role = match Builtin::from_key(&inv.role) {
            Some(b) => b.name().to_string(),
            None => self
                .db
                .role(&inv.org_id, &inv.role)
                .await?
                .map_or_else(|| inv.role.clone(), |r| r.name),
        };
        Ok(InvitationPreview {
            org_name: org.name,
            inviter: inviter.map(|u| (u.display_name, u.username)),
            role,
            email: (!inv.email.is_empty()).then_some(inv.email),
            expires_at: inv.expires_at,
        })
    }

    /// Whether a live invitation admits someone signing up with `email` (sign-up closed):
    /// an open link admits anyone holding it, an address-bound one only that address.
    pub async fn invitation_admits(&self, secret: &str, email: &str) -> Result<bool, OrgsError> {
        match self.live_invitation(secret).await {
            Ok(inv) => {
                Ok(inv.email_lower.is_empty() || inv.email_lower == crate::auth::login_key(email))
            }
            Err(OrgsError::InvalidInvitation) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// The signed-in user accepts an invitation (once); returns the organization. A link
    /// bound to an address works only for the account with that address.
    pub async fn accept_invitation(&self, user: &User, secret: &str) -> Result<Org, OrgsError> {
        let t = now();
        let inv = self.live_invitation(secret).await?;
        if !inv.email_lower.is_empty() && inv.email_lower != crate::auth::login_key(&user.email) {
            return Err(OrgsError::InvitationForAnother);
        }
        if !self.db.accept_invitation(&inv.id, &user.id, t).await? {
            return Err(OrgsError::InvalidInvitation);
        }
        self.changed();
        tracing::info!(org = %inv.org_id, user = %user.id, "invitation accepted");
        self.load_org(&inv.org_id).await
    }

    // ---- roles -----------------------------------------------------------------------------

    /// Built-in and custom roles of an organization.
    pub async fn roles(&self, user: &User, org_id: &str) -> Result<Vec<RoleInfo>, OrgsError> {
        let org = self
            .org_for(user, org_id, "org:roles:read", "see roles")
            .await?;
        let mut out: Vec<RoleInfo> = Builtin::ALL
            .into_iter()
            .map(|b| RoleInfo {
                id: b.key().into(),
                name: b.name().into(),
                description: b.description().into(),
                scope: b.scope(),
                builtin: true,
                permissions: self
                    .compiler
                    .catalogue()
                    .builtin(b)
                    .into_iter()
                    .map(String::from)
                    .collect(),
            })
            .collect();
        for r in self.db.roles_of(&org.id).await? {
            out.push(role_info(&r));
        }
        Ok(out)
    }

    fn check_spec(&self, spec: &RoleSpec) -> Result<(String, String, String), OrgsError> {
        let name = validate_name("name", &spec.name)?;
        if Builtin::ALL
            .iter()
            .any(|b| b.name().eq_ignore_ascii_case(&name))
        {
            return Err(OrgsError::Conflict("a built-in role has this name".into()));
        }
        let description = spec.description.trim();
        if description.chars().count() > 300 {
            return Err(OrgsError::Invalid {
                field: "description",
                message: "at most 300 characters".into(),
            });
        }
        if spec.permissions.len() > 200 {
            return Err(OrgsError::Invalid {
                field: "permissions",
                message: "at most 200 patterns".into(),
            });
        }
        for p in &spec.permissions {
            validate_pattern(p).map_err(|e| OrgsError::Invalid {
                field: "permissions",
                message: e.to_string(),
            })?;
        }
        let perms = serde_json::to_string(&spec.permissions)
            .map_err(|e| OrgsError::Internal(e.to_string()))?;
        Ok((name, description.to_string(), perms))
    }

    pub async fn create_role(
        &self,
        user: &User,
        org_id: &str,
        spec: &RoleSpec,
    ) -> Result<RoleInfo, OrgsError> {
        let org = self
            .org_for(user, org_id, "org:roles:manage", "manage roles")
            .await?;
        let (name, description, permissions) = self.check_spec(spec)?;
        let set = PermSet::new(spec.permissions.iter().map(String::as_str));
        self.require_within(user, &set, Resource::Org(&org.id))
            .await?;
        let row = RoleRow {
            id: uuid::Uuid::new_v4().to_string(),
            org_id: org.id.clone(),
            name_lower: name.to_lowercase(),
            name,
            scope: scope_str(spec.scope).into(),
            description,
            permissions,
            created_at: now(),
        };
        self.db.insert_role(&row).await?;
        self.changed();
        Ok(role_info(&row))
    }

    /// Edits a custom role (its scope stays); built-in roles cannot be edited.
    pub async fn update_role(
        &self,
        user: &User,
        org_id: &str,
        id: &str,
        spec: &RoleSpec,
    ) -> Result<RoleInfo, OrgsError> {
        let org = self
            .org_for(user, org_id, "org:roles:manage", "manage roles")
            .await?;
        if Builtin::from_key(id).is_some() {
            return Err(OrgsError::Forbidden("edit a built-in role"));
        }
        let current = self
            .db
            .role(&org.id, id)
            .await?
            .ok_or(OrgsError::NotFound("role"))?;
        let (name, description, permissions) = self.check_spec(spec)?;
        let set = PermSet::new(spec.permissions.iter().map(String::as_str));
        self.require_within(user, &set, Resource::Org(&org.id))
            .await?;
        self.require_role_within(user, &org.id, id, Resource::Org(&org.id))
            .await?;
        let row = RoleRow {
            name_lower: name.to_lowercase(),
            name,
            description,
            permissions,
            ..current
        };
        self.db.update_role(&row).await?;
        self.changed();
        Ok(role_info(&row))
    }

    pub async fn delete_role(&self, user: &User, org_id: &str, id: &str) -> Result<(), OrgsError> {
        let org = self
            .org_for(user, org_id, "org:roles:manage", "manage roles")
            .await?;
        if Builtin::from_key(id).is_some() {
            return Err(OrgsError::Forbidden("delete a built-in role"));
        }
        self.db
            .role(&org.id, id)
            .await?
            .ok_or(OrgsError::NotFound("role"))?;
        if self.db.role_uses(id).await? > 0 {
            return Err(OrgsError::RoleInUse);
        }
        self.db.delete_role(&org.id, id).await?;
        self.changed();
        Ok(())
    }

    // ---- projects --------------------------------------------------------------------------

    /// The projects of an organization that `user` can see.
    pub async fn projects(&self, user: &User, org_id: &str) -> Result<Vec<Project>, OrgsError> {
        if org_id.len() > 64 {
            return Err(OrgsError::NotFound("organization"));
        }
        self.require(
            &user.id,
            "org:org:read",
            Resource::Org(org_id),
            "organization",
            "see this organization",
        )
        .await?;
        let g = self.grants(&user.id).await?;
        Ok(self
            .db
            .projects_of_org(org_id)
            .await?
            .into_iter()
            .filter(|p| {
                self.compiler.decide(
                    &g,
                    "project:project:read",
                    Resource::Project {
                        org: &p.org_id,
                        project: &p.id,
                    },
                ) == Decision::Allow
            })
            .collect())
    }

    pub async fn create_project(
        &self,
        user: &User,
        org_id: &str,
        name: &str,
    ) -> Result<Project, OrgsError> {
        let org = self
            .org_for(user, org_id, "org:projects:create", "create projects")
            .await?;
        let name = validate_name("name", name)?;
        let p = Project {
            id: uuid::Uuid::new_v4().to_string(),
            org_id: org.id.clone(),
            name_lower: name.to_lowercase(),
            name,
            created_by: Some(user.id.clone()),
            created_at: now(),
        };
        self.db
            .insert_project(&p, Builtin::ProjectAdmin.key())
            .await?;
        self.changed();
        Ok(p)
    }

    async fn load_project(&self, id: &str) -> Result<Project, OrgsError> {
        if id.len() > 64 {
            return Err(OrgsError::NotFound("project"));
        }
        self.db
            .project(id)
            .await?
            .ok_or(OrgsError::NotFound("project"))
    }

    /// A project, checked for `action` (`project:project:read` to see it).
    async fn project_for(
        &self,
        user: &User,
        id: &str,
        action: &str,
        verb: &'static str,
    ) -> Result<Project, OrgsError> {
        let p = self.load_project(id).await?;
        self.require(
            &user.id,
            action,
            Resource::Project {
                org: &p.org_id,
                project: &p.id,
            },
            "project",
            verb,
        )
        .await?;
        Ok(p)
    }

    /// The caller's access to a project they can see (hidden: not found), with every
    /// permission they hold there: what the gateway takes for anything it does for them.
    pub async fn project_access(
        &self,
        user: &User,
        id: &str,
    ) -> Result<(Project, ProjectAccess), OrgsError> {
        let p = self.load_project(id).await?;
        let access = self.decide_project_access(user, &p.org_id, &p.id).await?;
        Ok((p, access))
    }

    /// The same access decided again (after a membership or role changed): `None` when the
    /// user may no longer see the project.
    pub async fn project_access_again(
        &self,
        user: &User,
        access: &ProjectAccess,
    ) -> Option<ProjectAccess> {
        self.decide_project_access(user, access.org_id(), access.project_id())
            .await
            .ok()
    }

    /// Every permission `user` holds on the project, as its access (hidden: not found).
    async fn decide_project_access(
        &self,
        user: &User,
        org: &str,
        project: &str,
    ) -> Result<ProjectAccess, OrgsError> {
        let holds = self
            .my_permissions(&user.id, Resource::Project { org, project })
            .await?;
        Ok(ProjectAccess::user(user, org, project, holds))
    }

    /// The organization of a project the access may see (someone who is only a member of
    /// the project may not see the organization on its own, but may know its name).
    pub async fn org_of(&self, access: &ProjectAccess) -> Result<Org, OrgsError> {
        self.db
            .org(access.org_id())
            .await?
            .ok_or(OrgsError::NotFound("project"))
    }

    /// The caller's access to an organization they belong to (otherwise not found).
    pub async fn org_access(&self, user: &User, id: &str) -> Result<(Org, OrgAccess), OrgsError> {
        if id.len() > 64 {
            return Err(OrgsError::NotFound("organization"));
        }
        let holds = self.my_permissions(&user.id, Resource::Org(id)).await?;
        let org = self.load_org(id).await?;
        let access = OrgAccess::new(user, &org.id, holds);
        Ok((org, access))
    }

    pub async fn rename_project(
        &self,
        user: &User,
        id: &str,
        name: &str,
    ) -> Result<Project, OrgsError> {
        let p = self
            .project_for(user, id, "project:project:update", "rename this project")
            .await?;
        let name = validate_name("name", name)?;
        self.db.rename_project(&p.id, &name).await?;
        Ok(Project {
            name_lower: name.to_lowercase(),
            name,
            ..p
        })
    }

    /// Deletes a project; `confirm` must be its name.
    pub async fn delete_project(
        &self,
        user: &User,
        id: &str,
        confirm: &str,
    ) -> Result<Project, OrgsError> {
        let p = self
            .project_for(user, id, "project:project:delete", "delete this project")
            .await?;
        if confirm.trim() != p.name {
            return Err(OrgsError::ConfirmationMismatch);
        }
        self.db.delete_project(&p.id).await?;
        self.changed();
        Ok(p)
    }

    pub async fn project_members(
        &self,
        user: &User,
        id: &str,
    ) -> Result<Vec<Listed<ProjectMember>>, OrgsError> {
        let p = self
            .project_for(user, id, "project:members:read", "list the members")
            .await?;
        let on = Resource::Project {
            org: &p.org_id,
            project: &p.id,
        };
        let manages = self.decide(&user.id, "project:members:manage", on).await? == Decision::Allow;
        let rows = self.db.project_members(&p.id).await?;
        Ok(listed(user, rows, manages))
    }

    /// Adds or changes a project member; they must belong to the organization.
    pub async fn set_project_member(
        &self,
        user: &User,
        id: &str,
        member: &str,
        role: &str,
        ip: &str,
    ) -> Result<(), OrgsError> {
        let p = self
            .project_for(user, id, "project:members:manage", "manage members")
            .await?;
        self.check_role(&p.org_id, role, Scope::Project).await?;
        // Someone outside the organization answers like no one at all.
        const MISS: OrgsError =
            OrgsError::NotFound("member of this organization (add them to it first)");
        let target = match self.find_user(member).await {
            Ok(t) => t,
            Err(OrgsError::NotFound(_)) => return Err(MISS),
            Err(e) => return Err(e),
        };
        if self.db.org_member(&p.org_id, &target.id).await?.is_none() {
            return Err(MISS);
        }
        if target.id == user.id {
            return Err(OrgsError::OwnRole);
        }
        let on = Resource::Project {
            org: &p.org_id,
            project: &p.id,
        };
        let current = self.project_role(&p.id, &target.id).await?;
        for r in current.iter().map(String::as_str).chain([role]) {
            self.require_role_within(user, &p.org_id, r, on).await?;
        }
        self.db
            .upsert_project_member(&ProjectMember {
                project_id: p.id.clone(),
                user_id: target.id.clone(),
                role: role.to_string(),
                created_at: now(),
            })
            .await?;
        self.changed();
        self.audit
            .record(
                crate::audit::Kind::RoleChanged,
                Some(&user.id),
                Some(&target.id),
                ip,
                format!(
                    "{} gave {} the role {role} in project {}",
                    user.username, target.username, p.name
                ),
            )
            .await;
        Ok(())
    }

    pub async fn remove_project_member(
        &self,
        user: &User,
        id: &str,
        member: &str,
    ) -> Result<(), OrgsError> {
        let p = if member == user.id {
            self.project_for(user, id, "project:project:read", "leave")
                .await?
        } else {
            let p = self
                .project_for(user, id, "project:members:manage", "manage members")
                .await?;
            if let Some(role) = self.project_role(&p.id, member).await? {
                let on = Resource::Project {
                    org: &p.org_id,
                    project: &p.id,
                };
                self.require_role_within(user, &p.org_id, &role, on).await?;
            }
            p
        };
        self.db
            .delete_project_member(&p.id, member)
            .await
            .map_err(|e| match e {
                DbError::NotFound => OrgsError::NotFound("member"),
                other => other.into(),
            })?;
        self.changed();
        Ok(())
    }

    /// The role a user holds in a project of their own (not through the organization).
    async fn project_role(
        &self,
        project_id: &str,
        user_id: &str,
    ) -> Result<Option<String>, OrgsError> {
        Ok(self
            .db
            .project_members(project_id)
            .await?
            .into_iter()
            .find(|(m, _)| m.user_id == user_id)
            .map(|(m, _)| m.role))
    }

    /// Someone `user` may add directly: a person they already share an organization with
    /// (or anyone, for the instance admin). Anyone else is invited by email, and a miss
    /// answers exactly like a stranger, so adding cannot probe which accounts exist.
    async fn find_acquaintance(&self, user: &User, who: &str) -> Result<User, OrgsError> {
        const MISS: OrgsError =
            OrgsError::NotFound("person you share an organization with (invite others by email)");
        let target = match self.find_user(who).await {
            Ok(t) => t,
            Err(OrgsError::NotFound(_)) => return Err(MISS),
            Err(e) => return Err(e),
        };
        if user.is_admin || target.id == user.id || self.db.share_org(&user.id, &target.id).await? {
            Ok(target)
        } else {
            Err(MISS)
        }
    }

    /// A user by id, username or email.
    async fn find_user(&self, who: &str) -> Result<User, OrgsError> {
        let who = who.trim();
        if who.is_empty() || who.len() > 254 {
            return Err(OrgsError::NotFound("user"));
        }
        if let Some(u) = self.db.user_by_id(who).await? {
            return Ok(u);
        }
        self.db
            .user_by_login(&crate::auth::login_key(who))
            .await?
            .ok_or(OrgsError::NotFound("user"))
    }

    // ---- users -----------------------------------------------------------------------------

    /// People who share an organization with `user`, by name or email prefix; plus the
    /// account with exactly that email (to invite or add it).
    pub async fn search_users(&self, user: &User, q: &str) -> Result<Vec<User>, OrgsError> {
        let q = q.trim().to_lowercase();
        if q.is_empty() || q.len() > 100 {
            return Err(OrgsError::Invalid {
                field: "q",
                message: "1 to 100 characters".into(),
            });
        }
        Ok(self.db.search_users(&user.id, &q, 20).await?)
    }

    /// A user's public profile, for people who share an organization with them.
    pub async fn profile(&self, user: &User, id: &str) -> Result<User, OrgsError> {
        if id.len() > 64 {
            return Err(OrgsError::NotFound("user"));
        }
        if id != user.id && !self.db.share_org(&user.id, id).await? {
            return Err(OrgsError::NotFound("user"));
        }
        self.db
            .user_by_id(id)
            .await?
            .ok_or(OrgsError::NotFound("user"))
    }
}

fn member_change(r: MemberChange) -> Result<(), OrgsError> {
    match r {
        MemberChange::Done => Ok(()),
        MemberChange::NoSuchMember => Err(OrgsError::NotFound("member")),
        MemberChange::LastOwner => Err(OrgsError::LastOwner),
    }
}

pub fn scope_str(s: Scope) -> &'static str {
    match s {
        Scope::Org => "org",
        Scope::Project => "project",
    }
}

fn role_info(r: &RoleRow) -> RoleInfo {
    RoleInfo {
        id: r.id.clone(),
        name: r.name.clone(),
        description: r.description.clone(),
        scope: if r.scope == "project" {
            Scope::Project
        } else {
            Scope::Org
        },
        builtin: false,
        permissions: serde_json::from_str(&r.permissions).unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs() {
        assert_eq!(slugify("Acme Research!"), "acme-research");
        assert_eq!(slugify("  Über  Team "), "ber-team");
        assert_eq!(slugify("x"), "org-x");
        assert!(validate_slug("acme-1").is_ok());
        for bad in ["a", "-a", "a-", "A", "a_b", &"a".repeat(41)] {
            assert!(validate_slug(bad).is_err(), "{bad}");
        }
    }
}

//! Sign-in methods beyond the password: email links, external providers, passkeys; and the
//! `/api/v1/me/...` endpoints that manage them.

use crate::code::ErrorCode;
use actix_web::{HttpRequest, HttpResponse, web};
use actix_web::{delete, get, patch, post};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;

use super::auth::{
    UserView, client_key, pending_token, revoke_presented, signed_in, signed_in_redirect,
};
use super::body::Json;
use super::private_json;
use crate::app::AppState;
use crate::app::error::{ApiError, ErrorBody};
use crate::app::pages;
use crate::app::session::{self, Authenticated};
use crate::auth::providers::{Finished, Intent, ProviderInfo};
use crate::auth::{AuthError, LinkPurpose, Redeemed};
use crate::db::signin::{Identity, PasskeyRow};

/// Holds a provider flow's handle in the browser between start and callback.
pub const FLOW_COOKIE: &str = "demiurge_flow";
/// Its name over HTTPS: `__Secure-` makes the browser keep it only when Secure.
const SECURE_FLOW_COOKIE: &str = "__Secure-demiurge_flow";

fn flow_cookie_name(req: &HttpRequest) -> &'static str {
    if crate::app::ClientInfo::of(req).scheme == "https" {
        SECURE_FLOW_COOKIE
    } else {
        FLOW_COOKIE
    }
}
const FLOW_COOKIE_PATH: &str = "/api/v1/auth/providers/";

/// Registers this file's handlers with the router and the API document at once.
pub fn routes(cfg: &mut ServiceConfig) {
    cfg.service(email_link_request)
        .service(email_link_check)
        .service(email_link_redeem)
        .service(verify_my_email)
        .service(providers)
        .service(provider_start)
        .service(provider_link_start)
        .service(provider_callback)
        .service(my_identities)
        .service(unlink_identity)
        .service(passkey_start)
        .service(passkey_finish)
        .service(second_factor_passkey_start)
        .service(second_factor_passkey_finish)
        .service(my_passkeys)
        .service(sign_in_review)
        .service(end_sign_in_review)
        .service(passkey_register_start)
        .service(passkey_register_finish)
        .service(rename_passkey)
        .service(delete_passkey);
}

// ---------------------------------------------------------------------------------------
// Email links

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EmailLinkRequest {
    #[schema(
        min_length = 3,
        max_length = 254,
        pattern = "^[^@\\s]+@[^@\\s.][^@\\s]*$"
    )]
    email: String,
    /// What the link will do.
    purpose: LinkPurpose,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Accepted {
    /// Always `accepted`: the answer does not tell whether the address has an account.
    status: &'static str,
}

/// Queues `purpose`'s email to whoever has this address, if anyone does. The answer is the
/// same either way, and comes before any mail is sent.
fn send_detached(state: &AppState, email: String, purpose: LinkPurpose) {
    let auth = state.auth.clone();
    tokio::spawn(async move {
        if let Err(e) = auth.send_email_link(&email, purpose).await {
            tracing::warn!(error = %e, "email link not sent");
        }
    });
}

/// Ask for a one-time link by email: sign in, reset the password, or verify the address.
#[utoipa::path(security(()), tag = "auth", request_body = EmailLinkRequest,
    responses(
        (status = 202, description = "If an account has this address, a link is on its way", body = Accepted),
        (status = 422, description = "`invalid_input`", body = ErrorBody),
        (status = 429, description = "`rate_limited`", body = ErrorBody)
    ))]
#[post("/api/v1/auth/email-link")]
async fn email_link_request(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: Json<EmailLinkRequest>,
) -> Result<HttpResponse, ApiError> {
    session::check_origin(&req, false)?;
    let email = crate::auth::login_key(&body.email);
    if !crate::auth::is_email_address(&email) {
        return Err(AuthError::Invalid {
            field: "email",
            message: "not an email address".into(),
        }
        .into());
    }
    state.limits.email_link_ip.check(&client_key(&req))?;
    state.limits.email_link_address.check(&email)?;
    send_detached(&state, email, body.purpose);
    Ok(HttpResponse::Accepted()
        .insert_header(("Cache-Control", "no-store"))
        .json(Accepted { status: "accepted" }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LinkToken {
    /// The `token` parameter of the emailed link.
    token: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LinkCheck {
    /// What the link does: `sign_in`, `reset_password` or `verify_email`.
    #[schema(value_type = String)]
    purpose: LinkPurpose,
}

/// What an emailed link is for, without using it up (a reset page asks for the new password
/// first).
#[utoipa::path(security(()), tag = "auth", request_body = LinkToken,
    responses(
        (status = 200, description = "The link works", body = LinkCheck),
        (status = 422, description = "`invalid_link`", body = ErrorBody)
    ))]
#[post("/api/v1/auth/email-link/check")]
async fn email_link_check(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: Json<LinkToken>,
) -> Result<HttpResponse, ApiError> {
    state.limits.login_ip.check(&client_key(&req))?;
    let purpose = state.auth.email_link_purpose(&body.token).await?;
    Ok(private_json(LinkCheck { purpose }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RedeemRequest {
    token: String,
    /// Required by a `reset_password` link.
    #[serde(default)]
    new_password: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Verified {
    /// Always true.
    email_verified: bool,
    user: UserView,
}

/// Use an emailed link (once). A sign-in or reset link signs in (new session cookie; the
/// second factor may still be due); a reset also ends every other session.
#[utoipa::path(security(()), tag = "auth", request_body = RedeemRequest,
    responses(
        (status = 200, description = "Signed in (`LoginResponse`) or address verified (`Verified`)", body = super::auth::LoginResponse),
        (status = 422, description = "`invalid_link`, `weak_password`, `invalid_input`", body = ErrorBody),
        (status = 429, description = "`rate_limited`", body = ErrorBody)
    ))]
#[post("/api/v1/auth/email-link/redeem")]
async fn email_link_redeem(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: Json<RedeemRequest>,
) -> Result<HttpResponse, ApiError> {
    session::check_origin(&req, false)?;
    state.limits.login_ip.check(&client_key(&req))?;
    let redeemed = state
        .auth
        .redeem_email_link(
            &body.token,
            body.new_password.as_deref(),
            &session::client_meta(&req),
        )
        .await?;
    Ok(match redeemed {
        Redeemed::Opened(opened) => {
            revoke_presented(&req, &state).await;
            signed_in(&req, &state, &opened)
        }
        Redeemed::Verified(user) => private_json(Verified {
            email_verified: true,
            user: UserView::from(&user),
        }),
    })
}

/// Send a verification link to my own address.
#[utoipa::path(tag = "me",
    responses(
        (status = 202, description = "A link is on its way", body = Accepted),
        (status = 409, description = "`already_verified`", body = ErrorBody),
        (status = 429, description = "`rate_limited`", body = ErrorBody)
    ))]
#[post("/api/v1/me/email/verify")]
async fn verify_my_email(
    state: web::Data<AppState>,
    who: Authenticated,
) -> Result<HttpResponse, ApiError> {
    if who.user.email_verified {
        return Err(ApiError::Conflict {
            code: ErrorCode::AlreadyVerified,
            message: "this address is already verified".into(),
        });
    }
    state
        .limits
        .email_link_address
        .check(&who.user.email_lower)?;
    send_detached(&state, who.user.email.clone(), LinkPurpose::VerifyEmail);
    Ok(HttpResponse::Accepted().json(Accepted { status: "accepted" }))
}

// ---------------------------------------------------------------------------------------
// Providers

/// The configured sign-in providers (one button each on the sign-in page).
#[utoipa::path(security(()), tag = "auth",
    responses((status = 200, description = "Providers", body = [ProviderInfo])))]
#[get("/api/v1/auth/providers")]
async fn providers(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(state.auth.providers())
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct StartQuery {
    /// A path on this site to land on afterwards (default `/`).
    #[serde(default)]
    return_to: Option<String>,
    /// `link`: add this provider account to the signed-in user instead of signing in.
    #[serde(default)]
    intent: Option<String>,
}

fn flow_cookie(req: &HttpRequest, value: &str, seconds: i64) -> actix_web::cookie::Cookie<'static> {
    actix_web::cookie::Cookie::build(flow_cookie_name(req), value.to_string())
        .path(FLOW_COOKIE_PATH)
        .http_only(true)
        .same_site(actix_web::cookie::SameSite::Lax)
        .secure(crate::app::ClientInfo::of(req).scheme == "https")
        .max_age(actix_web::cookie::time::Duration::seconds(seconds))
        .finish()
}

/// Start signing in (or linking) with a provider: redirects the browser there.
#[utoipa::path(security(()), tag = "auth",
    params(("id" = String, Path, description = "Provider id"), StartQuery),
    responses(
        (status = 303, description = "To the provider"),
        (status = 401, description = "`not_authenticated` (linking needs a signed-in user)", body = ErrorBody),
        (status = 404, description = "`not_found`: no such provider", body = ErrorBody),
        (status = 503, description = "`not_ready`: the provider cannot be reached", body = ErrorBody)
    ))]
#[get("/api/v1/auth/providers/{id}/start")]
async fn provider_start(
    req: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<String>,
    query: web::Query<StartQuery>,
) -> Result<HttpResponse, ApiError> {
    state.limits.login_ip.check(&client_key(&req))?;
    let intent = match query.intent.as_deref() {
        None | Some("sign_in") => Intent::SignIn,
        Some("link") => {
            // A GET can be made by any page (an image, a link): linking is started by POST.
            return Err(ApiError::Unprocessable {
                code: ErrorCode::LinkNeedsPost,
                message: "start linking a provider with POST (the button on your settings page)"
                    .into(),
            });
        }
        Some(other) => {
            return Err(ApiError::Unprocessable {
                code: ErrorCode::InvalidInput,
                message: format!(
                    "intent: `{}` is not `sign_in` or `link`",
                    other.chars().take(20).collect::<String>()
                ),
            });
        }
    };
    let started = state
        .auth
        .provider_start(&id, intent, query.return_to.as_deref())
        .await?;
    Ok(to_provider(&req, started))
}

/// The browser's way to the provider: a redirect, with the flow's cookie.
fn to_provider(req: &HttpRequest, started: crate::auth::providers::Started) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header(("Location", started.redirect))
        .insert_header(("Cache-Control", "no-store"))
        .cookie(flow_cookie(req, &started.handle, 600))
        .finish()
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct LinkQuery {
    /// Where to go afterwards (a path on this site).
    #[serde(default)]
    return_to: Option<String>,
}

/// Start linking a provider account to the signed-in user: redirects the browser there.
/// POST (a form on the settings page), so no other site can start it.
#[utoipa::path(tag = "auth",
    params(("id" = String, Path), LinkQuery),
    responses((status = 303, description = "To the provider"),
        (status = 422, description = "A page: the link or its form was refused (`X-Demiurge-Error` has the code)", body = String, content_type = "text/html"),
        (status = 401, description = "A page: `not_authenticated` (in `X-Demiurge-Error`)", body = String, content_type = "text/html"),
        (status = 403, description = "A page: `origin_mismatch`, `reauthentication_required`, `session_required`", body = String, content_type = "text/html"),
        (status = 404, description = "A page: no such provider", body = String, content_type = "text/html"),
        (status = 429, description = "A page: `rate_limited`", body = String, content_type = "text/html")))]
#[post("/api/v1/auth/providers/{id}/start")]
async fn provider_link_start(
    req: HttpRequest,
    state: web::Data<AppState>,
    who: Result<Authenticated, ApiError>,
    id: web::Path<String>,
    query: web::Query<LinkQuery>,
) -> HttpResponse {
    let started = async {
        let who = who?;
        who.require_recent(&state.auth)?;
        state.limits.login_ip.check(&client_key(&req))?;
        let intent = Intent::Link {
            user_id: who.user.id.clone(),
        };
        Ok::<_, ApiError>(
            state
                .auth
                .provider_start(&id, intent, query.return_to.as_deref())
                .await?,
        )
    }
    .await;
    match started {
        Ok(started) => to_provider(&req, started),
        // The browser came here by a form: it gets a page (status and code as the API's).
        Err(e) => pages::error_page(&e, "Linking did not start"),
    }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct CallbackQuery {
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    state: Option<String>,
    /// Set by the provider when the person refused or the provider failed.
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    error_description: Option<String>,
}

/// Where the provider sends the browser back. Signs in (session cookie) and redirects to the
/// page the flow started from; failures get a page that says what happened.
#[utoipa::path(security(()), tag = "auth",
    params(("id" = String, Path, description = "Provider id"), CallbackQuery),
    responses(
        (status = 303, description = "Signed in or linked; to the page the flow started from"),
        (status = 422, description = "HTML page: `provider_failed` and others (code in `X-Demiurge-Error`)"),
        (status = 403, description = "HTML page: `provider_not_linked`, `signup_closed`"),
        (status = 409, description = "HTML page: `provider_already_linked`")
    ))]
#[get("/api/v1/auth/providers/{id}/callback")]
async fn provider_callback(
    req: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<String>,
    query: web::Query<CallbackQuery>,
) -> HttpResponse {
    let cleared = {
        let mut c = flow_cookie(&req, "", 0);
        c.make_removal();
        c
    };
    let result = async {
        state.limits.login_ip.check(&client_key(&req))?;
        if let Some(err) = &query.error {
            let why = query.error_description.as_deref().unwrap_or(err);
            return Err(ApiError::from(AuthError::ProviderFailed(format!(
                "the provider answered: {}",
                why.chars().take(200).collect::<String>()
            ))));
        }
        let (Some(code), Some(flow_state)) = (&query.code, &query.state) else {
            return Err(AuthError::ProviderFailed("the provider sent no code".into()).into());
        };
        let cookie = req
            .cookie(flow_cookie_name(&req))
            .map(|c| c.value().to_string());
        Ok(state
            .auth
            .provider_finish(
                &id,
                flow_state,
                cookie.as_deref(),
                code,
                &session::client_meta(&req),
            )
            .await?)
    }
    .await;
    match result {
        Ok(Finished::SignedIn { opened, return_to }) => {
            revoke_presented(&req, &state).await;
            signed_in_redirect(&req, &state, &opened, &return_to)
                .cookie(cleared)
                .finish()
        }
        Ok(Finished::Linked { return_to }) => HttpResponse::SeeOther()
            .insert_header(("Location", return_to))
            .insert_header(("Cache-Control", "no-store"))
            .cookie(cleared)
            .finish(),
        Err(e) => {
            let mut page = pages::error_page(&e, "Sign-in did not complete");
            let _ = page.add_cookie(&cleared);
            page
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct IdentityView {
    id: String,
    /// The provider's id in the configuration.
    provider: String,
    /// What the provider calls the person.
    display: String,
    email: Option<String>,
    created_at: DateTime<Utc>,
    last_login_at: Option<DateTime<Utc>>,
}

impl From<&Identity> for IdentityView {
    fn from(i: &Identity) -> Self {
        Self {
            id: i.id.clone(),
            provider: i.provider.clone(),
            display: i.display.clone(),
            email: i.email.clone(),
            created_at: i.created_at.and_utc(),
            last_login_at: i.last_login_at.map(|at| at.and_utc()),
        }
    }
}

/// My linked provider accounts.
#[utoipa::path(tag = "me",
    responses(
        (status = 200, description = "Linked accounts", body = [IdentityView]),
        (status = 401, description = "`not_authenticated`", body = ErrorBody)
    ))]
#[get("/api/v1/me/identities")]
async fn my_identities(
    state: web::Data<AppState>,
    who: Authenticated,
) -> Result<HttpResponse, ApiError> {
    let list = state.auth.identities(&who.user.id).await?;
    Ok(private_json(
        list.iter().map(IdentityView::from).collect::<Vec<_>>(),
    ))
}

/// Unlink a provider account (refused if it is the last way to sign in).
#[utoipa::path(tag = "me",
    params(("id" = String, Path, description = "Linked account id")),
    responses(
        (status = 204, description = "Unlinked"),
        (status = 404, description = "`not_found`", body = ErrorBody),
        (status = 409, description = "`last_sign_in_method`", body = ErrorBody)
    ))]
#[delete("/api/v1/me/identities/{id}")]
async fn unlink_identity(
    state: web::Data<AppState>,
    who: Authenticated,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    state.auth.unlink_identity(&who.user, &id).await?;
    Ok(HttpResponse::NoContent().finish())
}

// ---------------------------------------------------------------------------------------
// Passkeys

#[derive(Debug, Serialize, ToSchema)]
pub struct PasskeyChallenge {
    /// Send it back with the authenticator's answer.
    ceremony: String,
    /// For `navigator.credentials.create()` / `.get()` (binary fields base64url).
    #[schema(value_type = Object)]
    options: serde_json::Value,
}

fn challenge<T: Serialize>(
    c: crate::auth::passkeys::Challenge<T>,
) -> Result<HttpResponse, ApiError> {
    let options =
        serde_json::to_value(&c.options).map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(private_json(PasskeyChallenge {
        ceremony: c.ceremony,
        options,
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasskeyAnswer {
    ceremony: String,
    /// The `PublicKeyCredential` from the browser (binary fields base64url).
    #[schema(value_type = Object)]
    credential: serde_json::Value,
}

fn parse_credential<T: for<'de> Deserialize<'de>>(v: &serde_json::Value) -> Result<T, ApiError> {
    T::deserialize(v).map_err(|e| ApiError::Unprocessable {
        code: ErrorCode::InvalidInput,
        message: format!("credential: {e}"),
    })
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PasskeyView {
    id: String,
    name: String,
    created_at: DateTime<Utc>,
    last_used_at: Option<DateTime<Utc>>,
}

impl From<&PasskeyRow> for PasskeyView {
    fn from(p: &PasskeyRow) -> Self {
        Self {
            id: p.id.clone(),
            name: p.name.clone(),
            created_at: p.created_at.and_utc(),
            last_used_at: p.last_used_at.map(|at| at.and_utc()),
        }
    }
}

/// Start signing in with a passkey alone (any passkey of this site the device holds).
#[utoipa::path(security(()), tag = "auth",
    responses(
        (status = 200, description = "Options for navigator.credentials.get()", body = PasskeyChallenge),
        (status = 503, description = "`not_ready`: passkeys need a host name in the public URL", body = ErrorBody)
    ))]
#[post("/api/v1/auth/passkey/start")]
async fn passkey_start(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    session::check_origin(&req, false)?;
    state.limits.login_ip.check(&client_key(&req))?;
    challenge(state.auth.passkey_sign_in_start().await?)
}

/// Finish a passkey sign-in: a full session (the passkey verified the person).
#[utoipa::path(security(()), tag = "auth", request_body = PasskeyAnswer,
    responses(
        (status = 200, description = "Signed in", body = super::auth::LoginResponse),
        (status = 422, description = "`passkey_failed`, `invalid_input`", body = ErrorBody)
    ))]
#[post("/api/v1/auth/passkey/finish")]
async fn passkey_finish(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: Json<PasskeyAnswer>,
) -> Result<HttpResponse, ApiError> {
    session::check_origin(&req, false)?;
    state.limits.login_ip.check(&client_key(&req))?;
    let credential = parse_credential(&body.credential)?;
    let opened = state
        .auth
        .passkey_sign_in_finish(&body.ceremony, &credential, &session::client_meta(&req))
        .await?;
    revoke_presented(&req, &state).await;
    Ok(signed_in(&req, &state, &opened))
}

/// Second step of a password sign-in with a passkey: the options.
#[utoipa::path(tag = "auth",
    responses(
        (status = 200, description = "Options for navigator.credentials.get()", body = PasskeyChallenge),
        (status = 401, description = "`not_authenticated`", body = ErrorBody),
        (status = 404, description = "`not_found`: the account has no passkey", body = ErrorBody)
    ))]
#[post("/api/v1/auth/second-factor/passkey/start")]
async fn second_factor_passkey_start(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    session::check_origin(&req, false)?;
    let token = pending_token(&req, &state)?;
    challenge(state.auth.passkey_second_factor_start(&token).await?)
}

/// Second step of a password sign-in with a passkey: replaces the pending session.
#[utoipa::path(tag = "auth", request_body = PasskeyAnswer,
    responses(
        (status = 200, description = "Signed in", body = super::auth::LoginResponse),
        (status = 422, description = "`passkey_failed`", body = ErrorBody),
        (status = 401, description = "`not_authenticated`", body = ErrorBody)
    ))]
#[post("/api/v1/auth/second-factor/passkey/finish")]
async fn second_factor_passkey_finish(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: Json<PasskeyAnswer>,
) -> Result<HttpResponse, ApiError> {
    session::check_origin(&req, false)?;
    let token = pending_token(&req, &state)?;
    let credential = parse_credential(&body.credential)?;
    let opened = state
        .auth
        .passkey_second_factor_finish(
            &token,
            &body.ceremony,
            &credential,
            &session::client_meta(&req),
        )
        .await?;
    Ok(signed_in(&req, &state, &opened))
}

/// My passkeys.
#[utoipa::path(tag = "me",
    responses(
        (status = 200, description = "Passkeys", body = [PasskeyView]),
        (status = 401, description = "`not_authenticated`", body = ErrorBody)
    ))]
#[get("/api/v1/me/passkeys")]
async fn my_passkeys(
    state: web::Data<AppState>,
    who: Authenticated,
) -> Result<HttpResponse, ApiError> {
    let list = state.auth.passkeys(&who.user.id).await?;
    Ok(private_json(
        list.iter().map(PasskeyView::from).collect::<Vec<_>>(),
    ))
}

/// What can still sign in to the account after its password was reset.
#[derive(Debug, Serialize, ToSchema)]
pub struct SignInReviewView {
    /// When the reset asked for this review.
    asked_at: DateTime<Utc>,
    passkeys: Vec<ReviewedPasskey>,
    identities: Vec<ReviewedIdentity>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ReviewedPasskey {
    /// For DELETE /api/v1/me/passkeys/{id}.
    id: String,
    name: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ReviewedIdentity {
    /// For DELETE /api/v1/me/identities/{id}.
    id: String,
    provider: String,
    /// How the provider names the person.
    display: String,
}

/// After a password reset (by email, or by an admin), the passkeys and provider accounts
/// that can still sign in, for the owner to review: someone who had the account may have
/// added one. 404 when no review is pending.
#[utoipa::path(tag = "me",
    responses(
        (status = 200, body = SignInReviewView),
        (status = 404, description = "`not_found`: no review is pending", body = ErrorBody)
    ))]
#[get("/api/v1/me/sign-in-review")]
async fn sign_in_review(
    state: web::Data<AppState>,
    who: Authenticated,
) -> Result<HttpResponse, ApiError> {
    let review = state
        .auth
        .sign_in_review(&who.user)
        .await?
        .ok_or_else(|| ApiError::NotFound("no review of sign-in methods is pending".into()))?;
    Ok(private_json(SignInReviewView {
        asked_at: review.asked_at.and_utc(),
        passkeys: review
            .passkeys
            .into_iter()
            .map(|(id, name)| ReviewedPasskey { id, name })
            .collect(),
        identities: review
            .identities
            .into_iter()
            .map(|(id, provider, display)| ReviewedIdentity {
                id,
                provider,
                display,
            })
            .collect(),
    }))
}

/// The owner has reviewed what can sign in (removing what they did not recognise with the
/// passkey and identity endpoints): the review ends.
#[utoipa::path(tag = "me",
    responses(
        (status = 204, description = "Reviewed"),
        (status = 404, description = "`not_found`: no review was pending", body = ErrorBody)
    ))]
#[delete("/api/v1/me/sign-in-review")]
async fn end_sign_in_review(
    state: web::Data<AppState>,
    who: Authenticated,
) -> Result<HttpResponse, ApiError> {
    if state.auth.end_sign_in_review(&who.user).await? {
        Ok(HttpResponse::NoContent().finish())
    } else {
        Err(ApiError::NotFound(
            "no review of sign-in methods was pending".into(),
        ))
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasskeyName {
    /// 1 to 64 characters (trimmed), no control characters; unique among my passkeys.
    #[schema(
        min_length = 1,
        max_length = 64,
        pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]*[^\\s\\u0000-\\u001f\\u007f-\\u009f][^\\u0000-\\u001f\\u007f-\\u009f]*$"
    )]
    name: String,
}

/// Start registering a passkey.
#[utoipa::path(tag = "me", request_body = PasskeyName,
    responses(
        (status = 200, description = "Options for navigator.credentials.create()", body = PasskeyChallenge),
        (status = 403, description = "`reauthentication_required`, `session_required`", body = ErrorBody),
        (status = 409, description = "`passkey_name_taken`", body = ErrorBody)
    ))]
#[post("/api/v1/me/passkeys/register/start")]
async fn passkey_register_start(
    state: web::Data<AppState>,
    who: Authenticated,
    body: Json<PasskeyName>,
) -> Result<HttpResponse, ApiError> {
    who.require_recent(&state.auth)?;
    challenge(
        state
            .auth
            .passkey_register_start(&who.user, &body.name)
            .await?,
    )
}

/// Finish registering a passkey.
#[utoipa::path(tag = "me", request_body = PasskeyAnswer,
    responses(
        (status = 201, description = "Registered", body = PasskeyView),
        (status = 422, description = "`passkey_failed`, `invalid_input`", body = ErrorBody)
    ))]
#[post("/api/v1/me/passkeys/register/finish")]
async fn passkey_register_finish(
    state: web::Data<AppState>,
    who: Authenticated,
    body: Json<PasskeyAnswer>,
) -> Result<HttpResponse, ApiError> {
    let credential = parse_credential(&body.credential)?;
    let row = state
        .auth
        .passkey_register_finish(&who.user, &body.ceremony, &credential)
        .await?;
    Ok(HttpResponse::Created()
        .insert_header(("Cache-Control", "no-store"))
        .json(PasskeyView::from(&row)))
}

/// Rename a passkey.
#[utoipa::path(tag = "me", request_body = PasskeyName,
    params(("id" = String, Path, description = "Passkey id")),
    responses(
        (status = 204, description = "Renamed"),
        (status = 404, description = "`not_found`", body = ErrorBody),
        (status = 409, description = "`passkey_name_taken`", body = ErrorBody)
    ))]
#[patch("/api/v1/me/passkeys/{id}")]
async fn rename_passkey(
    state: web::Data<AppState>,
    who: Authenticated,
    id: web::Path<String>,
    body: Json<PasskeyName>,
) -> Result<HttpResponse, ApiError> {
    state
        .auth
        .passkey_rename(&who.user.id, &id, &body.name)
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Delete a passkey (refused if it is the last way to sign in).
#[utoipa::path(tag = "me",
    params(("id" = String, Path, description = "Passkey id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "`not_found`", body = ErrorBody),
        (status = 409, description = "`last_sign_in_method`", body = ErrorBody)
    ))]
#[delete("/api/v1/me/passkeys/{id}")]
async fn delete_passkey(
    state: web::Data<AppState>,
    who: Authenticated,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    state.auth.passkey_delete(&who.user, &id).await?;
    Ok(HttpResponse::NoContent().finish())
}

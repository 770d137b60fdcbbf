//! `/api/v1/auth/*` (sign-up, sign-in, sign-out) and `/api/v1/me/*` (the signed-in user).

use crate::code::ErrorCode;
use actix_web::{HttpRequest, HttpResponse, web};
use actix_web::{delete, get, patch, post, put};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;

use super::body::Json;
use super::private_json;
use crate::app::AppState;
use crate::app::error::{ApiError, ErrorBody};
use crate::app::session::{self, Authenticated};
use crate::auth::SignUp;
use crate::db::accounts::{ApiToken, Session, User};

/// Registers this file's handlers with the router and the API document at once.
pub fn routes(cfg: &mut ServiceConfig) {
    cfg.service(signup)
        .service(setup_state)
        .service(login)
        .service(second_factor)
        .service(logout)
        .service(me)
        .service(update_me)
        .service(change_password)
        .service(my_sessions)
        .service(revoke_session)
        .service(create_token)
        .service(my_tokens)
        .service(revoke_token)
        .service(totp_status)
        .service(reauthenticate)
        .service(totp_begin)
        .service(totp_confirm)
        .service(totp_disable);
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignUpRequest {
    /// 3 to 32 letters, digits, `_`, `.` or `-`; unique regardless of case.
    #[schema(
        min_length = 3,
        max_length = 32,
        pattern = "^[A-Za-z0-9][A-Za-z0-9_.-]*$"
    )]
    username: String,
    #[schema(
        min_length = 3,
        max_length = 254,
        pattern = "^[^@\\s]+@[^@\\s.][^@\\s]*$"
    )]
    email: String,
    /// Defaults to the username.
    #[serde(default)]
    display_name: Option<String>,
    /// At least 10 characters, not a common password.
    password: String,
    /// On a server with no account yet: the setup code `demiurge serve` printed in its log
    /// (`demiurge admin setup-code` prints it again). The first account is the instance admin.
    #[serde(default)]
    #[schema(max_length = 64)]
    setup_code: Option<String>,
    /// An invitation link's token (`/invite?token=...`): while sign-up is closed it still
    /// admits the person invited (an address-bound invitation only with that address).
    #[serde(default)]
    #[schema(max_length = 128)]
    invitation: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SetupState {
    /// The server has no account yet: sign-up needs its setup code.
    needed: bool,
    /// Anyone may create an account; when not, only with an invitation.
    signup_open: bool,
}

/// Whether the server still waits for its first account (and so for the setup code).
#[utoipa::path(security(()), tag = "auth",
    responses((status = 200, body = SetupState)))]
#[get("/api/v1/auth/setup")]
async fn setup_state(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    Ok(private_json(SetupState {
        needed: state.auth.setup_needed().await?,
        signup_open: state.instance.open_signup(),
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    /// Username or email.
    login: String,
    password: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UserView {
    id: String,
    username: String,
    email: String,
    display_name: String,
    /// The owner of `email` has proven it (a verification link, or a provider vouched).
    email_verified: bool,
    /// The account has a password (it may sign in only by provider, passkey or email link).
    has_password: bool,
    /// The instance administrator (the first account).
    is_admin: bool,
    created_at: DateTime<Utc>,
}

impl From<&User> for UserView {
    fn from(u: &User) -> Self {
        Self {
            id: u.id.clone(),
            username: u.username.clone(),
            email: u.email.clone(),
            display_name: u.display_name.clone(),
            email_verified: u.email_verified,
            has_password: u.password_hash.is_some(),
            is_admin: u.is_admin,
            created_at: u.created_at.and_utc(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SessionView {
    id: String,
    created_at: DateTime<Utc>,
    last_seen_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
    user_agent: String,
    ip: String,
    /// The session of this request.
    current: bool,
}

impl SessionView {
    fn of(s: &Session, current: &str) -> Self {
        Self {
            id: s.id.clone(),
            created_at: s.created_at.and_utc(),
            last_seen_at: s.last_seen_at.and_utc(),
            expires_at: s.expires_at.and_utc(),
            user_agent: s.user_agent.clone(),
            ip: s.ip.clone(),
            current: s.id == current,
        }
    }
}

/// The client address a per-address limit counts against.
pub(crate) fn client_key(req: &HttpRequest) -> String {
    crate::app::ClientInfo::of(req)
        .ip
        .map(rate_key)
        .unwrap_or_default()
}

/// What a client address is counted under: an IPv4 address itself, an IPv6 address by its
/// /64 (one subscriber gets a whole /64, so per-address limits would let them rotate
/// through 2^64 keys).
pub(crate) fn rate_key(ip: std::net::IpAddr) -> String {
    match ip.to_canonical() {
        std::net::IpAddr::V4(v4) => v4.to_string(),
        std::net::IpAddr::V6(v6) => {
            let s = v6.segments();
            let net = std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0);
            format!("{net}/64")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::rate_key;

    #[test]
    fn ipv6_clients_are_counted_by_their_64() {
        let a = rate_key("2001:db8:1:2::1".parse().unwrap());
        let b = rate_key("2001:db8:1:2:ffff:0:0:9".parse().unwrap());
        let c = rate_key("2001:db8:1:3::1".parse().unwrap());
        assert_eq!(a, "2001:db8:1:2::/64");
        assert_eq!(a, b, "one /64, one key");
        assert_ne!(a, c);
        assert_eq!(rate_key("203.0.113.7".parse().unwrap()), "203.0.113.7");
        assert_eq!(
            rate_key("::ffff:203.0.113.7".parse().unwrap()),
            "203.0.113.7",
            "a mapped IPv4 address is the IPv4 address"
        );
    }
}

/// Revokes the session a request's cookie names, if any (a new sign-in replaces it).
pub(crate) async fn revoke_presented(req: &HttpRequest, state: &AppState) {
    if let Some(c) = session::presented_session(req)
        && let Ok((s, _)) = state.auth.authenticate(&c).await
    {
        let _ = state.auth.revoke(&s.user_id, &s.id).await;
    }
}

/// Create an account and sign in (sets the session cookie).
#[utoipa::path(security(()), tag = "auth", request_body = SignUpRequest,
    responses(
        (status = 201, description = "Account created and signed in", body = UserView),
        (status = 422, description = "`invalid_input`, `weak_password`", body = ErrorBody),
        (status = 403, description = "`signup_closed`, `origin_mismatch`; on a server with no account yet `setup_code_required` or `invalid_setup_code`", body = ErrorBody),
        (status = 409, description = "`account_exists`", body = ErrorBody)
    ))]
#[post("/api/v1/auth/signup")]
async fn signup(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: Json<SignUpRequest>,
) -> Result<HttpResponse, ApiError> {
    session::check_origin(&req, false)?;
    state.limits.signup_ip.check(&client_key(&req))?;
    let body = body.into_inner();
    let opened = state
        .auth
        .sign_up(
            &SignUp {
                username: body.username,
                email: body.email,
                display_name: body.display_name,
                password: body.password,
                invitation: body.invitation,
            },
            body.setup_code.as_deref(),
            &session::client_meta(&req),
        )
        .await?;
    revoke_presented(&req, &state).await;
    Ok(HttpResponse::Created()
        .cookie(session::session_cookie(
            &req,
            &opened.token,
            state.auth.session_lifetime(),
        ))
        .insert_header(("Cache-Control", "no-store"))
        .json(UserView::from(&opened.user)))
}

/// Sign in with a username or email and a password (sets a new session cookie).
#[utoipa::path(security(()), tag = "auth", request_body = LoginRequest,
    responses(
        (status = 200, description = "Signed in, or the second step is due", body = LoginResponse),
        (status = 401, description = "`invalid_credentials`", body = ErrorBody),
        (status = 403, description = "`origin_mismatch`", body = ErrorBody)
    ))]
#[post("/api/v1/auth/login")]
async fn login(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: Json<LoginRequest>,
) -> Result<HttpResponse, ApiError> {
    session::check_origin(&req, false)?;
    state.limits.login_ip.check(&client_key(&req))?;
    let account = state.auth.attempt_key(&body.login).await?;
    state.limits.login_account.check(&account)?;
    let opened = state
        .auth
        .log_in(&body.login, &body.password, &session::client_meta(&req))
        .await?;
    revoke_presented(&req, &state).await;
    Ok(signed_in(&req, &state, &opened))
}

/// The cookie of a sign-in waiting for its second step, after counting the attempt against
/// the per-sign-in and per-address limits.
pub(super) fn pending_token(req: &HttpRequest, state: &AppState) -> Result<String, ApiError> {
    let token = session::presented_session(req)
        .ok_or_else(|| ApiError::from(crate::auth::AuthError::NotAuthenticated))?;
    state
        .limits
        .second_factor_account
        .check(&crate::auth::tokens::hash(&token))?;
    state.limits.login_ip.check(&client_key(req))?;
    Ok(token)
}

/// A sign-in the browser reached by navigating (a provider's callback, an emailed link's
/// page): the new session cookie and a redirect to `return_to`, or to the second-factor step
/// when one is due.
pub(crate) fn signed_in_redirect(
    req: &HttpRequest,
    state: &AppState,
    opened: &crate::auth::Opened,
    return_to: &str,
) -> actix_web::HttpResponseBuilder {
    let to = if opened.session.pending_second_factor {
        let encoded: String = url::form_urlencoded::byte_serialize(return_to.as_bytes()).collect();
        format!("/signin?second_factor=1&return_to={encoded}")
    } else {
        return_to.to_string()
    };
    let mut resp = HttpResponse::SeeOther();
    resp.insert_header(("Location", to))
        .insert_header(("Cache-Control", "no-store"))
        .cookie(session::session_cookie(
            req,
            &opened.token,
            state.auth.session_lifetime(),
        ));
    resp
}

/// The answer to any sign-in: a new session cookie (pending while a second factor is due)
/// and the user once fully signed in.
pub(super) fn signed_in(
    req: &HttpRequest,
    state: &AppState,
    opened: &crate::auth::Opened,
) -> HttpResponse {
    let pending = opened.session.pending_second_factor;
    HttpResponse::Ok()
        .cookie(session::session_cookie(
            req,
            &opened.token,
            state.auth.session_lifetime(),
        ))
        .insert_header(("Cache-Control", "no-store"))
        .json(LoginResponse {
            second_factor_required: pending,
            user: (!pending).then(|| UserView::from(&opened.user)),
        })
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LoginResponse {
    /// True when the account has two-factor authentication on: finish with
    /// `POST /api/v1/auth/second-factor`; until then the session cookie is not usable.
    pub(super) second_factor_required: bool,
    /// The user, once fully signed in.
    pub(super) user: Option<UserView>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CodeRequest {
    /// A 6-digit TOTP code, or a recovery code.
    code: String,
}

/// Second step of a sign-in: a TOTP code or a recovery code. Replaces the pending session
/// with a full one (new cookie).
#[utoipa::path(tag = "auth", request_body = CodeRequest,
    responses(
        (status = 200, description = "Signed in", body = UserView),
        (status = 401, description = "`invalid_code`, `not_authenticated`", body = ErrorBody),
        (status = 429, description = "`rate_limited`", body = ErrorBody)
    ))]
#[post("/api/v1/auth/second-factor")]
async fn second_factor(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: Json<CodeRequest>,
) -> Result<HttpResponse, ApiError> {
    session::check_origin(&req, false)?;
    let token = pending_token(&req, &state)?;
    let opened = state
        .auth
        .complete_second_factor(&token, &body.code, &session::client_meta(&req))
        .await?;
    Ok(HttpResponse::Ok()
        .cookie(session::session_cookie(
            &req,
            &opened.token,
            state.auth.session_lifetime(),
        ))
        .insert_header(("Cache-Control", "no-store"))
        .json(UserView::from(&opened.user)))
}

/// Sign out: revokes this session and clears the cookie.
#[utoipa::path(tag = "auth",
    responses(
        (status = 204, description = "Signed out"),
        (status = 422, description = "`not_a_session`: a token signs nothing out (revoke it instead)", body = ErrorBody),
        (status = 401, description = "`not_authenticated`", body = ErrorBody)
    ))]
#[post("/api/v1/auth/logout")]
async fn logout(
    req: HttpRequest,
    state: web::Data<AppState>,
    who: Authenticated,
) -> Result<HttpResponse, ApiError> {
    let Some(session_id) = who.session_id() else {
        return Err(ApiError::Unprocessable {
            code: ErrorCode::NotASession,
            message:
                "sign-out ends a browser session; revoke a token with DELETE /api/v1/me/tokens/{id}"
                    .into(),
        });
    };
    state.auth.revoke(&who.user.id, session_id).await?;
    Ok(HttpResponse::NoContent()
        .cookie(session::cleared_cookie(&req))
        .finish())
}

/// The signed-in user.
#[utoipa::path(tag = "me",
    responses(
        (status = 200, description = "The current user", body = UserView),
        (status = 401, description = "`not_authenticated`", body = ErrorBody)
    ))]
#[get("/api/v1/me")]
async fn me(who: Authenticated) -> HttpResponse {
    private_json(UserView::from(&who.user))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProfileUpdate {
    /// The name others see: 1 to 100 characters (trimmed), no control characters.
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]*[^\\s\\u0000-\\u001f\\u007f-\\u009f][^\\u0000-\\u001f\\u007f-\\u009f]*$"
    )]
    display_name: String,
}

/// Change my profile (the name others see).
#[utoipa::path(tag = "me", request_body = ProfileUpdate,
    responses(
        (status = 200, description = "The user now", body = UserView),
        (status = 401, description = "`not_authenticated`", body = ErrorBody),
        (status = 422, description = "`invalid_input`", body = ErrorBody)
    ))]
#[patch("/api/v1/me")]
async fn update_me(
    state: web::Data<AppState>,
    who: Authenticated,
    body: Json<ProfileUpdate>,
) -> Result<HttpResponse, ApiError> {
    let user = state
        .auth
        .set_display_name(&who.user, &body.display_name)
        .await?;
    Ok(private_json(UserView::from(&user)))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangePasswordRequest {
    current_password: String,
    new_password: String,
    /// A TOTP code or a recovery code; required when two-factor authentication is on.
    #[serde(default)]
    second_factor: Option<String>,
}

/// Change my password (the current one is required). My other sessions end.
#[utoipa::path(tag = "me", request_body = ChangePasswordRequest,
    responses(
        (status = 204, description = "Changed"),
        (status = 422, description = "`weak_password`", body = ErrorBody),
        (status = 401, description = "`invalid_credentials` (wrong current password), `not_authenticated`", body = ErrorBody),
        (status = 429, description = "`rate_limited`, `second_factor_locked`", body = ErrorBody),
        (status = 503, description = "`busy`: too many password hashes at once", body = ErrorBody)
    ))]
#[put("/api/v1/me/password")]
async fn change_password(
    state: web::Data<AppState>,
    who: Authenticated,
    body: Json<ChangePasswordRequest>,
) -> Result<HttpResponse, ApiError> {
    state.limits.password_account.check(&who.user.id)?;
    state
        .auth
        .change_password(
            &who.user,
            who.session_id(),
            &body.current_password,
            &body.new_password,
            body.second_factor.as_deref(),
        )
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// My sessions, newest first.
#[utoipa::path(tag = "me",
    responses(
        (status = 200, description = "Sessions", body = [SessionView]),
        (status = 401, description = "`not_authenticated`", body = ErrorBody)
    ))]
#[get("/api/v1/me/sessions")]
async fn my_sessions(
    state: web::Data<AppState>,
    who: Authenticated,
) -> Result<HttpResponse, ApiError> {
    let list: Vec<SessionView> = state
        .auth
        .sessions(&who.user.id)
        .await?
        .iter()
        .map(|s| SessionView::of(s, who.session_id().unwrap_or_default()))
        .collect();
    Ok(private_json(list))
}

/// Revoke one of my sessions.
#[utoipa::path(tag = "me",
    params(("id" = String, Path, description = "Session id")),
    responses(
        (status = 204, description = "Revoked"),
        (status = 401, description = "`not_authenticated`", body = ErrorBody),
        (status = 404, description = "`not_found`", body = ErrorBody)
    ))]
#[delete("/api/v1/me/sessions/{id}")]
async fn revoke_session(
    state: web::Data<AppState>,
    who: Authenticated,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    state.auth.revoke(&who.user.id, &id).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTokenRequest {
    /// What the token is for: 1 to 64 characters (trimmed), no control characters; unique
    /// among my tokens.
    #[schema(
        min_length = 1,
        max_length = 64,
        pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]*[^\\s\\u0000-\\u001f\\u007f-\\u009f][^\\u0000-\\u001f\\u007f-\\u009f]*$"
    )]
    name: String,
    /// Days until it expires; no value: it never expires.
    #[serde(default, deserialize_with = "super::body::optional_whole")]
    #[schema(minimum = 1, maximum = 3650)]
    expires_in_days: Option<u32>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TokenView {
    id: String,
    name: String,
    created_at: DateTime<Utc>,
    expires_at: Option<DateTime<Utc>>,
    last_used_at: Option<DateTime<Utc>>,
}

impl From<&ApiToken> for TokenView {
    fn from(t: &ApiToken) -> Self {
        Self {
            id: t.id.clone(),
            name: t.name.clone(),
            created_at: t.created_at.and_utc(),
            expires_at: t.expires_at.map(|at| at.and_utc()),
            last_used_at: t.last_used_at.map(|at| at.and_utc()),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedTokenView {
    #[serde(flatten)]
    info: TokenView,
    /// The secret, shown only this once. Send it as `Authorization: Bearer <token>`.
    token: String,
}

/// Create a personal access token.
#[utoipa::path(tag = "me", request_body = CreateTokenRequest,
    responses(
        (status = 201, description = "Created; the secret is in `token`", body = CreatedTokenView),
        (status = 422, description = "`invalid_input`", body = ErrorBody),
        (status = 401, description = "`not_authenticated`", body = ErrorBody),
        (status = 403, description = "`reauthentication_required`, `session_required`", body = ErrorBody),
        (status = 409, description = "`token_name_taken`", body = ErrorBody)
    ))]
#[post("/api/v1/me/tokens")]
async fn create_token(
    req: HttpRequest,
    state: web::Data<AppState>,
    who: Authenticated,
    body: Json<CreateTokenRequest>,
) -> Result<HttpResponse, ApiError> {
    who.require_recent(&state.auth)?;
    let days = body.expires_in_days;
    if days == Some(0) || days.is_some_and(|d| d > 3650) {
        return Err(ApiError::Unprocessable {
            code: ErrorCode::InvalidInput,
            message: "expires_in_days: 1 to 3650".into(),
        });
    }
    let expires = days.map(|d| std::time::Duration::from_secs(u64::from(d) * 86_400));
    let created = state
        .auth
        .create_token(
            &who.user.id,
            &body.name,
            expires,
            &session::client_meta(&req),
        )
        .await?;
    Ok(HttpResponse::Created()
        .insert_header(("Cache-Control", "no-store"))
        .json(CreatedTokenView {
            info: TokenView::from(&created.record),
            token: created.token,
        }))
}

/// My personal access tokens (without their secrets).
#[utoipa::path(tag = "me",
    responses(
        (status = 200, description = "Tokens, newest first", body = [TokenView]),
        (status = 401, description = "`not_authenticated`", body = ErrorBody)
    ))]
#[get("/api/v1/me/tokens")]
async fn my_tokens(
    state: web::Data<AppState>,
    who: Authenticated,
) -> Result<HttpResponse, ApiError> {
    let list: Vec<TokenView> = state
        .auth
        .tokens(&who.user.id)
        .await?
        .iter()
        .map(TokenView::from)
        .collect();
    Ok(private_json(list))
}

/// Revoke one of my tokens.
#[utoipa::path(tag = "me",
    params(("id" = String, Path, description = "Token id")),
    responses(
        (status = 204, description = "Revoked"),
        (status = 401, description = "`not_authenticated`", body = ErrorBody),
        (status = 404, description = "`not_found`", body = ErrorBody)
    ))]
#[delete("/api/v1/me/tokens/{id}")]
async fn revoke_token(
    state: web::Data<AppState>,
    who: Authenticated,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    state.auth.revoke_token(&who.user.id, &id).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TotpStatus {
    enabled: bool,
    recovery_codes_left: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TotpEnrolmentView {
    /// Base32 secret, for typing into an authenticator by hand.
    secret: String,
    otpauth_url: String,
    /// The otpauth URL as an SVG QR code.
    qr_svg: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RecoveryCodesView {
    /// Ten single-use codes, shown only this once.
    recovery_codes: Vec<String>,
}

/// Whether two-factor authentication is on.
#[utoipa::path(tag = "me",
    responses((status = 200, description = "TOTP status", body = TotpStatus),
              (status = 401, description = "`not_authenticated`", body = ErrorBody)))]
#[get("/api/v1/me/totp")]
async fn totp_status(
    state: web::Data<AppState>,
    who: Authenticated,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(TotpStatus {
        enabled: state.auth.totp_enabled(&who.user.id).await?,
        recovery_codes_left: state.auth.recovery_codes_left(&who.user.id).await?,
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReauthRequest {
    /// The account's password...
    #[serde(default)]
    #[schema(max_length = 1024)]
    password: Option<String>,
    /// ...or a TOTP or recovery code.
    #[serde(default)]
    #[schema(max_length = 64)]
    code: Option<String>,
}

/// Confirm it is you (password, or a TOTP or recovery code): for the reauthentication
/// window, this session may make sensitive changes (a token, a passkey, a provider link,
/// turning TOTP on). A passkey-only account signs in again instead.
#[utoipa::path(tag = "auth", request_body = ReauthRequest,
    responses(
        (status = 204, description = "Confirmed"),
        (status = 422, description = "`invalid_input`", body = ErrorBody),
        (status = 401, description = "`invalid_credentials`, `invalid_code`, `not_authenticated`", body = ErrorBody),
        (status = 403, description = "`session_required`", body = ErrorBody),
        (status = 429, description = "`rate_limited`, `second_factor_locked`", body = ErrorBody)
    ))]
#[post("/api/v1/auth/reauthenticate")]
async fn reauthenticate(
    req: HttpRequest,
    state: web::Data<AppState>,
    who: Authenticated,
    body: Json<ReauthRequest>,
) -> Result<HttpResponse, ApiError> {
    let Some(session) = who.session() else {
        return Err(crate::auth::AuthError::SessionRequired.into());
    };
    state.limits.login_ip.check(&client_key(&req))?;
    state
        .limits
        .login_account
        .check(&format!("user:{}", who.user.id))?;
    state
        .auth
        .reauthenticate(
            session,
            &who.user,
            body.password.as_deref(),
            body.code.as_deref(),
        )
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Start a TOTP enrolment: a new secret with its otpauth URL and QR code.
#[utoipa::path(tag = "me",
    responses((status = 200, description = "Scan this, then confirm with a code", body = TotpEnrolmentView),
              (status = 403, description = "`reauthentication_required`, `session_required`", body = ErrorBody),
              (status = 409, description = "`totp_already_enabled`", body = ErrorBody)))]
#[post("/api/v1/me/totp")]
async fn totp_begin(
    state: web::Data<AppState>,
    who: Authenticated,
) -> Result<HttpResponse, ApiError> {
    who.require_recent(&state.auth)?;
    let e = state.auth.totp_begin(&who.user).await?;
    Ok(private_json(TotpEnrolmentView {
        secret: e.secret,
        otpauth_url: e.otpauth_url,
        qr_svg: e.qr_svg,
    }))
}

/// Confirm the enrolment with a first code; turns TOTP on and returns recovery codes.
#[utoipa::path(tag = "me", request_body = CodeRequest,
    responses((status = 200, description = "On", body = RecoveryCodesView),
              (status = 401, description = "`invalid_code`", body = ErrorBody),
              (status = 409, description = "`totp_not_started`, `totp_already_enabled`", body = ErrorBody)))]
#[post("/api/v1/me/totp/confirm")]
async fn totp_confirm(
    state: web::Data<AppState>,
    who: Authenticated,
    body: Json<CodeRequest>,
) -> Result<HttpResponse, ApiError> {
    state.limits.second_factor_account.check(&who.user.id)?;
    let recovery_codes = state.auth.totp_confirm(&who.user, &body.code).await?;
    Ok(private_json(RecoveryCodesView { recovery_codes }))
}

/// Turn TOTP off (needs a current code or a recovery code).
#[utoipa::path(tag = "me", request_body = CodeRequest,
    responses((status = 204, description = "Off"),
              (status = 401, description = "`invalid_code`", body = ErrorBody),
              (status = 409, description = "`totp_not_enabled`", body = ErrorBody)))]
#[delete("/api/v1/me/totp")]
async fn totp_disable(
    state: web::Data<AppState>,
    who: Authenticated,
    body: Json<CodeRequest>,
) -> Result<HttpResponse, ApiError> {
    state.limits.second_factor_account.check(&who.user.id)?;
    state.auth.totp_disable(&who.user, &body.code).await?;
    Ok(HttpResponse::NoContent().finish())
}

//! `/api/v1/admin/*`: the instance admin's view of the server. Anyone else gets 404 (the
//! routes do not exist for them).

use actix_web::{HttpRequest, HttpResponse, delete, get, patch, post, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_actix_web::service_config::ServiceConfig;

use super::body::Json;
use super::private_json;
use crate::app::AppState;
use crate::app::error::{ApiError, ErrorBody};
use crate::app::session::{self, Authenticated};
use crate::auth::InstanceAdmin;
use crate::db::accounts::User;

/// Registers this file's handlers with the router and the API document at once.
pub fn routes(cfg: &mut ServiceConfig) {
    cfg.service(certificates)
        .service(diagnostics)
        .service(users)
        .service(update_user)
        .service(end_sessions)
        .service(reset_sign_in)
        .service(audit)
        .service(settings)
        .service(update_settings)
        .service(mail_test);
}

/// The signed-in user as instance admin (the decision is `Auth`'s); 404 for anyone else.
fn admin_only(state: &AppState, who: &Authenticated) -> Result<InstanceAdmin, ApiError> {
    Ok(state.auth.instance_admin(&who.user)?)
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CertificateView {
    /// `main` (the domain, by HTTP-01) or `containers` (`*.containers.<domain>`, by DNS-01).
    name: &'static str,
    domains: Vec<String>,
    /// `pending` (none issued yet), `issuing`, `valid`, `failing` (the last order failed; a
    /// valid certificate may still be served) or `expired`.
    #[schema(pattern = "^(pending|issuing|valid|failing|expired)$")]
    state: &'static str,
    /// The issuing CA's distinguished name.
    issuer: Option<String>,
    not_before: Option<DateTime<Utc>>,
    not_after: Option<DateTime<Utc>>,
    issued_at: Option<DateTime<Utc>>,
    /// When the next order (a renewal, or a retry after a failure) is due.
    next_attempt: Option<DateTime<Utc>>,
    /// Why the last order failed (cleared by the next success).
    last_error: Option<String>,
    /// Failed orders in a row.
    failures: u32,
    /// Whether the CA suggested the renewal time (ACME Renewal Information, RFC 9773).
    ari: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Certificates {
    /// Whether ACME is configured (`[acme] email`); when not, HTTPS serves the self-signed
    /// certificate.
    acme: bool,
    /// The CA's directory URL.
    directory: Option<String>,
    certificates: Vec<CertificateView>,
}

/// The server's certificates from its ACME CA: names, issuer, expiry, next renewal, last
/// error. Instance admins only.
#[utoipa::path(tag = "admin",
    responses(
        (status = 200, description = "Certificates", body = Certificates),
        (status = 401, description = "`not_authenticated`", body = ErrorBody),
        (status = 404, description = "`not_found`: not the instance admin", body = ErrorBody)
    ))]
#[get("/api/v1/admin/certificates")]
async fn certificates(
    state: web::Data<AppState>,
    who: Authenticated,
) -> Result<HttpResponse, ApiError> {
    admin_only(&state, &who)?;
    Ok(private_json(certificates_of(&state)))
}

fn certificates_of(state: &AppState) -> Certificates {
    let list: Vec<CertificateView> = state
        .tls
        .acme
        .snapshot()
        .into_iter()
        .map(|c| CertificateView {
            name: c.name,
            domains: c.domains,
            state: c.state,
            issuer: c.issuer,
            not_before: c.not_before,
            not_after: c.not_after,
            issued_at: c.issued_at,
            next_attempt: c.next_attempt,
            last_error: c.last_error,
            failures: c.failures,
            ari: c.ari,
        })
        .collect();
    Certificates {
        acme: state.tls.directory.is_some(),
        directory: state.tls.directory.clone(),
        certificates: list,
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DatabaseDiagnostics {
    /// `sqlite` or `postgres`.
    backend: &'static str,
    size_bytes: Option<i64>,
    /// One round trip, in milliseconds.
    latency_ms: f64,
    /// The database's clock.
    time: Option<DateTime<Utc>>,
    /// The database's clock minus the server's, in milliseconds (large values break
    /// expiry times).
    clock_skew_ms: Option<i64>,
    /// Why a figure is missing.
    error: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DiskDiagnostics {
    /// The data directory.
    path: String,
    free_bytes: Option<u64>,
    total_bytes: Option<u64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SubsystemDiagnostics {
    name: &'static str,
    state: &'static str,
    detail: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CollabDiagnostics {
    gateways_running: i64,
    documents_loaded: i64,
    document_bytes: i64,
    /// Collaboration sockets open now.
    clients_connected: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BackupDiagnostics {
    /// How often the server takes one (`[backup] every`), in seconds; none when off.
    every_seconds: Option<u64>,
    dir: Option<String>,
    last_at: Option<DateTime<Utc>>,
    last_file: Option<String>,
    last_bytes: Option<u64>,
    last_error: Option<String>,
    next_at: Option<DateTime<Utc>>,
}

/// What the admin page shows about the server.
#[derive(Debug, Serialize, ToSchema)]
pub struct Diagnostics {
    version: &'static str,
    server_time: DateTime<Utc>,
    started_at: DateTime<Utc>,
    uptime_seconds: u64,
    database: DatabaseDiagnostics,
    disk: DiskDiagnostics,
    subsystems: Vec<SubsystemDiagnostics>,
    certificates: Certificates,
    collaboration: CollabDiagnostics,
    backups: BackupDiagnostics,
    accounts: i64,
}

/// Free and total bytes of the file system holding `path`.
fn disk_space(path: &std::path::Path) -> Option<(u64, u64)> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a NUL-terminated path and `st` a valid out pointer for the call.
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return None;
    }
    let block = st.f_frsize as u64;
    Some((st.f_bavail as u64 * block, st.f_blocks as u64 * block))
}

/// Diagnostics: version, uptime, the database (backend, size, latency, clock), disk space,
/// every subsystem, certificates, collaboration load and backups. Instance admins only.
#[utoipa::path(tag = "admin",
    responses(
        (status = 200, description = "Diagnostics", body = Diagnostics),
        (status = 401, description = "`not_authenticated`", body = ErrorBody),
        (status = 404, description = "`not_found`: not the instance admin", body = ErrorBody)
    ))]
#[get("/api/v1/admin/diagnostics")]
async fn diagnostics(
    state: web::Data<AppState>,
    who: Authenticated,
) -> Result<HttpResponse, ApiError> {
    admin_only(&state, &who)?;
    let t0 = std::time::Instant::now();
    let ping = state.db.ping().await;
    let latency_ms = t0.elapsed().as_secs_f64() * 1000.0;
    let now = Utc::now();
    let db_time = state.db.database_time().await.map(|t| t.and_utc());
    let size = state.db.size_bytes().await;
    let error = [
        ping.as_ref().err().map(|e| e.to_string()),
        db_time.as_ref().err().map(|e| e.to_string()),
        size.as_ref().err().map(|e| e.to_string()),
    ]
    .into_iter()
    .flatten()
    .next();
    let db_time = db_time.ok();
    let disk = disk_space(&state.data_dir);
    let m = state.gateways.metrics();
    let schedule = state.backups.snapshot();
    let uptime = state.started_at.elapsed();
    Ok(private_json(Diagnostics {
        version: env!("CARGO_PKG_VERSION"),
        server_time: now,
        started_at: now - chrono::Duration::from_std(uptime).unwrap_or_default(),
        uptime_seconds: uptime.as_secs(),
        database: DatabaseDiagnostics {
            backend: state.db.backend(),
            size_bytes: size.ok(),
            latency_ms,
            time: db_time,
            clock_skew_ms: db_time.map(|t| (t - now).num_milliseconds()),
            error,
        },
        disk: DiskDiagnostics {
            path: state.data_dir.display().to_string(),
            free_bytes: disk.map(|d| d.0),
            total_bytes: disk.map(|d| d.1),
        },
        subsystems: state
            .status
            .snapshot()
            .into_iter()
            .map(|s| SubsystemDiagnostics {
                name: s.name,
                state: s.state.as_str(),
                detail: s.detail,
            })
            .collect(),
        certificates: certificates_of(&state),
        collaboration: CollabDiagnostics {
            gateways_running: m.gateways_running.get(),
            documents_loaded: m.documents_loaded.get(),
            document_bytes: m.document_bytes.get(),
            clients_connected: m.clients_connected.get(),
        },
        backups: BackupDiagnostics {
            every_seconds: schedule.every.map(|d| d.as_secs()),
            dir: schedule.dir.map(|d| d.display().to_string()),
            last_at: schedule.last_at,
            last_file: schedule.last_file,
            last_bytes: schedule.last_bytes,
            last_error: schedule.last_error,
            next_at: schedule.next_at,
        },
        accounts: state.db.count_users().await.unwrap_or(0),
    }))
}

/// An account as the admin sees it.
#[derive(Debug, Serialize, ToSchema)]
pub struct AdminUserView {
    id: String,
    username: String,
    display_name: String,
    email: String,
    email_verified: bool,
    is_admin: bool,
    /// When an admin disabled it (it cannot sign in); none while enabled.
    disabled_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
}

impl From<&User> for AdminUserView {
    fn from(u: &User) -> Self {
        Self {
            id: u.id.clone(),
            username: u.username.clone(),
            display_name: u.display_name.clone(),
            email: u.email.clone(),
            email_verified: u.email_verified,
            is_admin: u.is_admin,
            disabled_at: u.disabled_at.map(|t| t.and_utc()),
            created_at: u.created_at.and_utc(),
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UsersQuery {
    /// The start of a username, name or email; all accounts when empty.
    #[param(max_length = 100)]
    q: Option<String>,
    /// At most this many (1 to 200; 50 by default).
    #[param(minimum = 1, maximum = 200)]
    limit: Option<i64>,
    /// Skip this many (for the next page).
    #[param(minimum = 0)]
    offset: Option<i64>,
}

/// A query parameter longer than its schema allows does not fit the operation: 400.
fn at_most(name: &str, value: Option<&str>, max: usize) -> Result<(), ApiError> {
    match value {
        Some(v) if v.chars().count() > max => Err(ApiError::BadRequest {
            code: crate::code::ErrorCode::InvalidQuery,
            message: format!("{name}: at most {max} characters"),
        }),
        _ => Ok(()),
    }
}

fn page(limit: Option<i64>, default: i64, max: i64) -> Result<i64, ApiError> {
    match limit {
        None => Ok(default),
        Some(n) if (1..=max).contains(&n) => Ok(n),
        Some(_) => Err(ApiError::BadRequest {
            code: crate::code::ErrorCode::InvalidQuery,
            message: format!("limit: 1 to {max}"),
        }),
    }
}

/// Every account, or those whose username, name or email starts with `q`. Instance admins
/// only.
#[utoipa::path(tag = "admin", params(UsersQuery),
    responses(
        (status = 200, description = "Accounts, by username", body = [AdminUserView]),
        (status = 401, description = "`not_authenticated`", body = ErrorBody),
        (status = 404, description = "`not_found`: not the instance admin", body = ErrorBody)
    ))]
#[get("/api/v1/admin/users")]
async fn users(
    state: web::Data<AppState>,
    who: Authenticated,
    q: web::Query<UsersQuery>,
) -> Result<HttpResponse, ApiError> {
    let admin = admin_only(&state, &who)?;
    at_most("q", q.q.as_deref(), 100)?;
    let limit = page(q.limit, 50, 200)?;
    let offset = q.offset.unwrap_or(0);
    if offset < 0 {
        return Err(ApiError::BadRequest {
            code: crate::code::ErrorCode::InvalidQuery,
            message: "offset: 0 or more".into(),
        });
    }
    let prefix = q.q.clone().unwrap_or_default();
    let list: Vec<AdminUserView> = state
        .auth
        .admin_users(&admin, &prefix, limit, offset)
        .await?
        .iter()
        .map(AdminUserView::from)
        .collect();
    Ok(private_json(list))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserUpdate {
    /// Disable (no sign-in; sessions end, tokens stop working) or enable the account.
    disabled: Option<bool>,
    /// Make it an instance administrator, or take that away (never from the last one).
    is_admin: Option<bool>,
}

/// Disable or enable an account, or make it an instance admin. Instance admins only.
#[utoipa::path(tag = "admin", params(("id" = String, Path, description = "User id")),
    request_body = UserUpdate,
    responses(
        (status = 200, description = "The account now", body = AdminUserView),
        (status = 401, description = "`not_authenticated`", body = ErrorBody),
        (status = 404, description = "`not_found`: no such account, or not the instance admin", body = ErrorBody),
        (status = 409, description = "`last_admin`", body = ErrorBody)
    ))]
#[patch("/api/v1/admin/users/{id}")]
async fn update_user(
    req: HttpRequest,
    state: web::Data<AppState>,
    who: Authenticated,
    id: web::Path<String>,
    body: Json<UserUpdate>,
) -> Result<HttpResponse, ApiError> {
    let admin = admin_only(&state, &who)?;
    let meta = session::client_meta(&req);
    let mut user = None;
    if let Some(d) = body.disabled {
        user = Some(state.auth.admin_set_disabled(&admin, &id, d, &meta).await?);
    }
    if let Some(a) = body.is_admin {
        user = Some(state.auth.admin_set_admin(&admin, &id, a, &meta).await?);
    }
    let user = user.ok_or_else(|| ApiError::Unprocessable {
        code: crate::code::ErrorCode::InvalidInput,
        message: "nothing to change: give disabled or is_admin".into(),
    })?;
    Ok(private_json(AdminUserView::from(&user)))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EndedSessions {
    ended: usize,
}

/// End every session of an account (it must sign in again). Instance admins only.
#[utoipa::path(tag = "admin", params(("id" = String, Path, description = "User id")),
    responses(
        (status = 200, description = "How many ended", body = EndedSessions),
        (status = 401, description = "`not_authenticated`", body = ErrorBody),
        (status = 404, description = "`not_found`: no such account, or not the instance admin", body = ErrorBody)
    ))]
#[delete("/api/v1/admin/users/{id}/sessions")]
async fn end_sessions(
    req: HttpRequest,
    state: web::Data<AppState>,
    who: Authenticated,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let admin = admin_only(&state, &who)?;
    let ended = state
        .auth
        .admin_end_sessions(&admin, &id, &session::client_meta(&req))
        .await?;
    Ok(private_json(EndedSessions { ended }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SignInResetView {
    /// It had an authenticator app (removed, with its recovery codes).
    second_factor_removed: bool,
    passkeys_removed: usize,
    sessions_ended: usize,
    /// Where the link to choose a new password went.
    link_sent_to: Option<String>,
    /// Why the link could not be sent (the rest was done).
    link_error: Option<String>,
}

/// Reset how an account signs in, for someone locked out: removes its authenticator app,
/// recovery codes and passkeys, ends its sessions, and emails a link to choose a new
/// password (its password, linked accounts and tokens stay). Instance admins only.
#[utoipa::path(tag = "admin", params(("id" = String, Path, description = "User id")),
    responses(
        (status = 200, description = "What was reset", body = SignInResetView),
        (status = 401, description = "`not_authenticated`", body = ErrorBody),
        (status = 404, description = "`not_found`: no such account, or not the instance admin", body = ErrorBody)
    ))]
#[post("/api/v1/admin/users/{id}/reset-sign-in")]
async fn reset_sign_in(
    req: HttpRequest,
    state: web::Data<AppState>,
    who: Authenticated,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let admin = admin_only(&state, &who)?;
    let r = state
        .auth
        .admin_reset_sign_in(&admin, &id, &session::client_meta(&req))
        .await?;
    Ok(private_json(SignInResetView {
        second_factor_removed: r.second_factor_removed,
        passkeys_removed: r.passkeys_removed,
        sessions_ended: r.sessions_ended,
        link_sent_to: r.link_sent_to,
        link_error: r.link_error,
    }))
}

/// Who set a setting on the admin page, and when.
#[derive(Debug, Serialize, ToSchema)]
pub struct SetHere {
    at: DateTime<Utc>,
    /// The admin's user id (none once that account is gone).
    by: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct NameSetting {
    /// In force: the page title and header, mails, authenticator apps, passkey prompts.
    value: String,
    /// `[server] name` in the config file.
    config_file: String,
    /// Set on the admin page (overriding the config file); none: the config file's value.
    set_here: Option<SetHere>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SignupSetting {
    /// In force: anyone may create an account. When off, only people holding an invitation
    /// (and accounts made with `demiurge admin create-user`).
    value: bool,
    /// `[auth] open_signup` in the config file.
    config_file: bool,
    set_here: Option<SetHere>,
}

/// The instance's settings, each with the config file's value and whether the admin page
/// overrides it.
#[derive(Debug, Serialize, ToSchema)]
pub struct InstanceSettingsView {
    name: NameSetting,
    open_signup: SignupSetting,
}

fn set_here(s: Option<(chrono::NaiveDateTime, Option<String>)>) -> Option<SetHere> {
    s.map(|(at, by)| SetHere {
        at: at.and_utc(),
        by,
    })
}

impl From<crate::instance::InstanceSettings> for InstanceSettingsView {
    fn from(s: crate::instance::InstanceSettings) -> Self {
        Self {
            name: NameSetting {
                value: s.name,
                config_file: s.configured_name,
                set_here: set_here(s.name_set),
            },
            open_signup: SignupSetting {
                value: s.open_signup,
                config_file: s.configured_open_signup,
                set_here: set_here(s.open_signup_set),
            },
        }
    }
}

/// The instance's name and sign-up setting. Instance admins only.
#[utoipa::path(tag = "admin",
    responses(
        (status = 200, description = "Settings", body = InstanceSettingsView),
        (status = 401, description = "`not_authenticated`", body = ErrorBody),
        (status = 404, description = "`not_found`: not the instance admin", body = ErrorBody)
    ))]
#[get("/api/v1/admin/settings")]
async fn settings(
    state: web::Data<AppState>,
    who: Authenticated,
) -> Result<HttpResponse, ApiError> {
    let admin = admin_only(&state, &who)?;
    Ok(private_json(InstanceSettingsView::from(
        state.auth.admin_settings(&admin),
    )))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SettingsUpdate {
    /// The instance's name: 1 to 64 characters (trimmed), no control characters. The
    /// config file's value makes it follow the config file again.
    #[schema(
        min_length = 1,
        max_length = 64,
        pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]*[^\\s\\u0000-\\u001f\\u007f-\\u009f][^\\u0000-\\u001f\\u007f-\\u009f]*$"
    )]
    name: Option<String>,
    /// Whether anyone may create an account. The config file's value makes it follow the
    /// config file again.
    open_signup: Option<bool>,
}

/// Change the instance's name or sign-up setting: in force at once, kept across restarts.
/// Instance admins only.
#[utoipa::path(tag = "admin", request_body = SettingsUpdate,
    responses(
        (status = 200, description = "Settings now", body = InstanceSettingsView),
        (status = 401, description = "`not_authenticated`", body = ErrorBody),
        (status = 404, description = "`not_found`: not the instance admin", body = ErrorBody),
        (status = 422, description = "`invalid_input`", body = ErrorBody)
    ))]
#[patch("/api/v1/admin/settings")]
async fn update_settings(
    req: HttpRequest,
    state: web::Data<AppState>,
    who: Authenticated,
    body: Json<SettingsUpdate>,
) -> Result<HttpResponse, ApiError> {
    let admin = admin_only(&state, &who)?;
    let body = body.into_inner();
    let change = crate::instance::SettingsChange {
        name: body.name,
        open_signup: body.open_signup,
    };
    let now = state
        .auth
        .admin_change_settings(&admin, &change, &session::client_meta(&req))
        .await?;
    Ok(private_json(InstanceSettingsView::from(now)))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditParams {
    /// Events of this kind, or of a family (`admin` for every `admin.*`).
    #[param(max_length = 64)]
    kind: Option<String>,
    /// Events this user did or that were about them (a user id).
    #[param(max_length = 64)]
    user: Option<String>,
    /// Events older than this (the next page: the last `at` of this one).
    before: Option<DateTime<Utc>>,
    /// At most this many (1 to 500; 100 by default).
    #[param(minimum = 1, maximum = 500)]
    limit: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AuditEvent {
    id: String,
    at: DateTime<Utc>,
    /// `sign_in`, `sign_in_failed`, `second_factor_failed`, `token_created`, `member_added`,
    /// `role_changed`, `member_removed`, or `admin.*` (`admin.user_disabled`,
    /// `admin.user_enabled`, `admin.made_admin`, `admin.revoked_admin`,
    /// `admin.ended_sessions`, `admin.reset_sign_in`, `admin.settings_changed`).
    kind: String,
    /// Who did it (a user id); none for someone not signed in.
    actor: Option<String>,
    /// Whom or what it was about.
    target: Option<String>,
    /// The client's address, when the event came from a request that had one.
    ip: String,
    detail: String,
}

/// The audit log of security events, newest first. Instance admins only.
#[utoipa::path(tag = "admin", params(AuditParams),
    responses(
        (status = 200, description = "Events, newest first", body = [AuditEvent]),
        (status = 401, description = "`not_authenticated`", body = ErrorBody),
        (status = 404, description = "`not_found`: not the instance admin", body = ErrorBody)
    ))]
#[get("/api/v1/admin/audit")]
async fn audit(
    state: web::Data<AppState>,
    who: Authenticated,
    q: web::Query<AuditParams>,
) -> Result<HttpResponse, ApiError> {
    let admin = admin_only(&state, &who)?;
    at_most("kind", q.kind.as_deref(), 64)?;
    at_most("user", q.user.as_deref(), 64)?;
    let query = crate::db::admin::AuditQuery {
        kind: q.kind.clone().filter(|k| !k.is_empty()),
        user: q.user.clone().filter(|u| !u.is_empty()),
        before: q.before.map(|b| b.naive_utc()),
        limit: page(q.limit, 100, 500)?,
    };
    let events: Vec<AuditEvent> = state
        .auth
        .admin_audit(&admin, &query)
        .await?
        .into_iter()
        .map(|r| AuditEvent {
            id: r.id,
            at: r.at.and_utc(),
            kind: r.kind,
            actor: r.actor_id,
            target: r.target,
            ip: r.ip,
            detail: r.detail,
        })
        .collect();
    Ok(private_json(events))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MailTestRequest {
    /// Where to send it.
    #[schema(max_length = 254)]
    to: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MailTestAnswer {
    /// Whether the SMTP server took the message.
    sent: bool,
    /// The SMTP server's answer (`250 ...`), its refusal, or why nothing was sent.
    answer: String,
}

/// Send a test mail and show what the SMTP server answered. Instance admins only.
#[utoipa::path(tag = "admin", request_body = MailTestRequest,
    responses(
        (status = 200, description = "What happened", body = MailTestAnswer),
        (status = 401, description = "`not_authenticated`", body = ErrorBody),
        (status = 404, description = "`not_found`: not the instance admin", body = ErrorBody),
        (status = 422, description = "`invalid_input`: not an email address", body = ErrorBody)
    ))]
#[post("/api/v1/admin/mail-test")]
async fn mail_test(
    state: web::Data<AppState>,
    who: Authenticated,
    body: Json<MailTestRequest>,
) -> Result<HttpResponse, ApiError> {
    let admin = admin_only(&state, &who)?;
    let r = state.auth.admin_mail_test(&admin, body.to.trim()).await?;
    Ok(private_json(MailTestAnswer {
        sent: r.sent,
        answer: r.answer,
    }))
}

//! Sessions over HTTP: the session cookie, the [`Authenticated`] extractor, and the Origin
//! check that state-changing requests authenticated by cookie must pass.

use crate::code::ErrorCode;
use std::future::Future;
use std::pin::Pin;

use actix_web::cookie::{Cookie, SameSite};
use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest, web};

use super::client::ClientInfo;
use super::{ApiError, AppState};
use crate::auth::ClientMeta;
use crate::db::accounts::{ApiToken, Session, User};

/// The session cookie's name over plain HTTP (development on loopback).
pub const SESSION_COOKIE: &str = "demiurge_session";
/// Its name over HTTPS: with the `__Host-` prefix a browser keeps it only when it is Secure,
/// for path `/` and for this host alone, so no neighbouring host (a container's, say) can
/// set or shadow it. Over HTTPS only this name is read.
pub const SECURE_SESSION_COOKIE: &str = "__Host-demiurge_session";

/// The session cookie's name for a request over HTTPS (`https`) or plain HTTP.
pub fn session_cookie_name(https: bool) -> &'static str {
    if https {
        SECURE_SESSION_COOKIE
    } else {
        SESSION_COOKIE
    }
}

fn over_https(req: &HttpRequest) -> bool {
    ClientInfo::of(req).scheme == "https"
}

/// The session token of the request's cookie (by the name for its scheme).
pub fn presented_session(req: &HttpRequest) -> Option<String> {
    req.cookie(session_cookie_name(over_https(req)))
        .map(|c| c.value().to_string())
}

/// How a request proved who it is.
pub enum Credential {
    /// A browser session (cookie).
    Session(Session),
    /// A personal access token (`Authorization: Bearer`).
    Token(ApiToken),
}

/// The signed-in user of a request: a session cookie or a bearer token.
pub struct Authenticated {
    pub user: User,
    pub credential: Credential,
}

impl Authenticated {
    /// The browser session, if the request came with one.
    /// The session, when the request came with one (not a token).
    pub fn session(&self) -> Option<&Session> {
        match &self.credential {
            Credential::Session(s) => Some(s),
            Credential::Token(_) => None,
        }
    }

    pub fn session_id(&self) -> Option<&str> {
        match &self.credential {
            Credential::Session(s) => Some(&s.id),
            Credential::Token(_) => None,
        }
    }
}

fn is_safe_method(req: &HttpRequest) -> bool {
    matches!(req.method().as_str(), "GET" | "HEAD" | "OPTIONS")
}

/// `scheme://host[:port]` with the port made explicit.
fn normalized_origin(scheme: &str, host_port: &str) -> Option<(String, String, u16)> {
    let url = url::Url::parse(&format!("{scheme}://{host_port}")).ok()?;
    Some((
        url.scheme().to_string(),
        url.host_str()?.to_ascii_lowercase(),
        url.port_or_known_default()?,
    ))
}

/// Whether the request's Origin (or Referer) names the host the client reached us at.
/// `required`: a missing Origin and Referer fails too.
pub fn check_origin(req: &HttpRequest, required: bool) -> Result<(), ApiError> {
    let header = |n: &str| {
        req.headers()
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let origin = header("origin");
    // An opaque origin (a sandboxed frame, a page that withholds its referrer, a file) is
    // nobody we know: refused, not passed over for the Referer.
    if origin.as_deref() == Some("null") {
        return Err(ApiError::Forbidden {
            code: ErrorCode::OriginMismatch,
            message: "the request comes from an opaque origin (Origin: null)".into(),
        });
    }
    let claimed = origin.or_else(|| header("referer"));
    let Some(claimed) = claimed else {
        return if required {
            Err(ApiError::Forbidden {
                code: ErrorCode::OriginRequired,
                message: "a state-changing request signed in by cookie must carry an Origin header"
                    .into(),
            })
        } else {
            Ok(())
        };
    };
    let client = ClientInfo::of(req);
    let ours = client
        .host
        .as_deref()
        .and_then(|h| normalized_origin(client.scheme, h));
    let theirs = url::Url::parse(&claimed).ok().and_then(|u| {
        Some((
            u.scheme().to_string(),
            u.host_str()?.to_ascii_lowercase(),
            u.port_or_known_default()?,
        ))
    });
    match (ours, theirs) {
        (Some(a), Some(b)) if a == b => Ok(()),
        _ => Err(ApiError::Forbidden {
            code: ErrorCode::OriginMismatch,
            message: "the request comes from another site".into(),
        }),
    }
}

pub fn client_meta(req: &HttpRequest) -> ClientMeta {
    ClientMeta {
        user_agent: req
            .headers()
            .get("user-agent")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string(),
        ip: ClientInfo::of(req)
            .ip
            .map(|ip| ip.to_string())
            .unwrap_or_default(),
    }
}

/// The cookie that carries a new session's token.
pub fn session_cookie(
    req: &HttpRequest,
    token: &str,
    max_age: std::time::Duration,
) -> Cookie<'static> {
    let https = over_https(req);
    Cookie::build(session_cookie_name(https), token.to_string())
        .path("/")
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(https)
        .max_age(actix_web::cookie::time::Duration::seconds(
            i64::try_from(max_age.as_secs()).unwrap_or(i64::MAX),
        ))
        .finish()
}

/// A cookie that makes the browser forget the session.
pub fn cleared_cookie(req: &HttpRequest) -> Cookie<'static> {
    let mut c = session_cookie(req, "", std::time::Duration::ZERO);
    c.make_removal();
    c
}

/// The raw credential a request presented (bearer token first, then the session cookie), for
/// long-lived connections that authenticate it again later.
pub fn presented_credential(req: &HttpRequest) -> Option<String> {
    if let Some(v) = req.headers().get("authorization") {
        let v = v.to_str().ok()?;
        return v
            .strip_prefix("Bearer ")
            .or_else(|| v.strip_prefix("bearer "))
            .map(|t| t.trim().to_string());
    }
    presented_session(req)
}

impl Authenticated {
    /// For a sensitive change: a browser session that signed in, or confirmed its user again,
    /// within the reauthentication window (tokens never qualify).
    pub fn require_recent(&self, auth: &crate::auth::Auth) -> Result<(), ApiError> {
        match &self.credential {
            Credential::Token(_) => Err(crate::auth::AuthError::SessionRequired.into()),
            Credential::Session(s) if auth.recently_authenticated(s) => Ok(()),
            Credential::Session(_) => Err(crate::auth::AuthError::ReauthenticationRequired.into()),
        }
    }
}

impl FromRequest for Authenticated {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let state = req.app_data::<web::Data<AppState>>().cloned();
        let authorization = req
            .headers()
            .get("authorization")
            .map(|v| v.to_str().map(str::to_string));
        let cookie = presented_session(req);
        // Only cookies ride along on cross-site requests by themselves; bearer tokens need no
        // Origin check.
        let origin = if authorization.is_none() && cookie.is_some() && !is_safe_method(req) {
            check_origin(req, true)
        } else {
            Ok(())
        };
        Box::pin(async move {
            let state = state.ok_or_else(|| ApiError::Internal("app state missing".into()))?;
            let not_authenticated = || ApiError::from(crate::auth::AuthError::NotAuthenticated);
            if let Some(value) = authorization {
                let value = value.map_err(|_| not_authenticated())?;
                let token = value
                    .strip_prefix("Bearer ")
                    .or_else(|| value.strip_prefix("bearer "))
                    .ok_or_else(not_authenticated)?
                    .trim();
                let (record, user) = state.auth.authenticate_token(token).await?;
                return Ok(Authenticated {
                    user,
                    credential: Credential::Token(record),
                });
            }
            let token = cookie.ok_or_else(not_authenticated)?;
            origin?;
            let (session, user) = state.auth.authenticate(&token).await?;
            Ok(Authenticated {
                user,
                credential: Credential::Session(session),
            })
        })
    }
}

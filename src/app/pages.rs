//! Small server-rendered pages for the steps a browser reaches from outside the app: an
//! emailed link (`/auth/link`), and a provider sign-in that failed. They work without
//! JavaScript; opening a link never uses it up (mail scanners open links), pressing the
//! button does. Also the ACME HTTP-01 answers a certificate authority fetches.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use serde::Deserialize;

use super::AppState;
use super::api::auth::revoke_presented;
use super::error::ApiError;
use super::session;
use crate::auth::{LinkPurpose, Redeemed};

/// The emailed links' page.
const LINK_PAGE: &str = "/auth/link";

/// The paths served here and their methods (for 405 and OPTIONS answers).
pub const PATHS: [(&str, &[&str]); 3] = [
    (LINK_PAGE, &["GET", "POST"]),
    (ACME_CHALLENGE, &["GET"]),
    (crate::containers::guard::AUTHORIZE_PATH, &["GET"]),
];

/// ACME's HTTP-01 challenge answers ([`crate::edge::ACME_CHALLENGE_PREFIX`]).
const ACME_CHALLENGE: &str = "/.well-known/acme-challenge/{token}";

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route(LINK_PAGE, web::get().to(link_page))
        .route(LINK_PAGE, web::post().to(link_submit))
        .route(ACME_CHALLENGE, web::get().to(acme_challenge))
        .route(
            crate::containers::guard::AUTHORIZE_PATH,
            web::get().to(container_authorize),
        );
}

#[derive(Deserialize)]
struct AuthorizeQuery {
    label: Option<String>,
    state: Option<String>,
    code_challenge: Option<String>,
    code_challenge_method: Option<String>,
}

/// A container host sends a person here (the guard's authorization step): signed in and
/// allowed to open the service, they go back to the host with a one-time code; not signed
/// in, to sign-in first and then here again.
async fn container_authorize(
    req: HttpRequest,
    state: web::Data<AppState>,
    q: web::Query<AuthorizeQuery>,
) -> HttpResponse {
    use crate::containers::guard::AuthorizeError;
    let signed_in = match session::presented_session(&req) {
        Some(token) => state.auth.authenticate(&token).await.ok(),
        None => None,
    };
    let Some((sess, user)) = signed_in else {
        let here = format!(
            "{}?{}",
            crate::containers::guard::AUTHORIZE_PATH,
            req.query_string()
        );
        let back: String = url::form_urlencoded::byte_serialize(here.as_bytes()).collect();
        return HttpResponse::Found()
            .insert_header(("Location", format!("/signin?return_to={back}")))
            .insert_header(("Cache-Control", "no-store"))
            .finish();
    };
    let bad = || {
        page(
            StatusCode::BAD_REQUEST,
            "Not a container sign-in",
            "<p>This address is opened by a container's page, with its own parameters.</p>",
        )
    };
    let (Some(label), Some(st), Some(challenge)) = (&q.label, &q.state, &q.code_challenge) else {
        return bad();
    };
    if q.code_challenge_method.as_deref() != Some("S256") {
        return bad();
    }
    match state
        .guard
        .authorize(&user.id, &sess.id, label, st, challenge)
        .await
    {
        Ok(to) => HttpResponse::Found()
            .insert_header(("Location", to))
            .insert_header(("Cache-Control", "no-store"))
            .insert_header(("Referrer-Policy", "no-referrer"))
            .finish(),
        Err(AuthorizeError::BadRequest) => bad(),
        Err(AuthorizeError::NotFound) => page(
            StatusCode::NOT_FOUND,
            "No such container service",
            "<p>Nothing by that address is in any of your projects.</p>",
        ),
        Err(AuthorizeError::Forbidden(why)) => page(
            StatusCode::FORBIDDEN,
            "Not allowed",
            &format!(
                "<p>You may not open this container service ({}). A project admin can give your role this permission.</p>",
                escape(why)
            ),
        ),
    }
}

/// The key authorization for a token of an ACME order in progress (what the CA fetches to
/// see that we hold the name); 404 for any other token.
async fn acme_challenge(token: web::Path<String>, state: web::Data<AppState>) -> HttpResponse {
    match state.tls.challenges.answer(&token) {
        Some(answer) => HttpResponse::Ok()
            .content_type("application/octet-stream")
            .insert_header(("Cache-Control", "no-store"))
            .body(answer),
        None => HttpResponse::NotFound()
            .content_type("text/plain; charset=utf-8")
            .insert_header(("Cache-Control", "no-store"))
            .body("no such challenge\n"),
    }
}

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A whole page; `body` is already HTML.
fn page(status: StatusCode, title: &str, body: &str) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .insert_header(("Cache-Control", "no-store"))
        // Not `no-referrer`: with it a browser sends `Origin: null` with the page's form,
        // which the Origin check refuses. `same-origin` keeps the link's token from other
        // sites and lets the form name its origin.
        .insert_header(("Referrer-Policy", "same-origin"))
        .insert_header(("X-Frame-Options", "DENY"))
        .body(format!(
            "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
             <title>{t} · Demiurge</title><style>\
             body{{font-family:system-ui,sans-serif;max-width:28rem;margin:4rem auto;padding:0 1rem;color:#1f2328}}\
             h1{{font-size:1.4rem}}input,button{{font:inherit;padding:.5rem;width:100%;box-sizing:border-box;margin:.25rem 0}}\
             button{{background:#1f6feb;color:#fff;border:0;border-radius:6px;cursor:pointer}}\
             .error{{color:#cf222e}}</style></head><body><h1>{t}</h1>{body}</body></html>",
            t = escape(title),
        ))
}

/// An error as a page: the same status and stable code (`X-Demiurge-Error`) as the API.
pub fn error_page(e: &ApiError, title: &str) -> HttpResponse {
    if let ApiError::Internal(detail) = e {
        tracing::error!(error = %detail, "internal error");
    }
    let mut resp = page(
        e.status_code(),
        title,
        &format!(
            "<p class=\"error\">{}</p><p><a href=\"/\">Back to sign-in</a></p>",
            escape(&public_message(e))
        ),
    );
    if let ApiError::TooManyRequests {
        retry_after_secs, ..
    } = e
    {
        resp.headers_mut().insert(
            actix_web::http::header::RETRY_AFTER,
            actix_web::http::header::HeaderValue::from(*retry_after_secs),
        );
    }
    if let Ok(v) = actix_web::http::header::HeaderValue::from_str(e.code().as_str()) {
        resp.headers_mut().insert(
            actix_web::http::header::HeaderName::from_static("x-demiurge-error"),
            v,
        );
    }
    resp
}

fn public_message(e: &ApiError) -> String {
    match e {
        ApiError::Internal(_) => "Something went wrong on our side; try again.".into(),
        other => other.to_string(),
    }
}

#[derive(Debug, Deserialize)]
struct LinkQuery {
    #[serde(default)]
    token: String,
}

async fn link_page(state: web::Data<AppState>, q: web::Query<LinkQuery>) -> HttpResponse {
    let purpose = match state.auth.email_link_purpose(&q.token).await {
        Ok(p) => p,
        Err(e) => return error_page(&ApiError::from(e), "This link does not work"),
    };
    let token = escape(&q.token);
    let (title, fields, button) = match purpose {
        LinkPurpose::SignIn => ("Sign in", String::new(), "Sign in"),
        LinkPurpose::VerifyEmail => ("Confirm your email address", String::new(), "Confirm"),
        LinkPurpose::ResetPassword => (
            "Choose a new password",
            "<label>New password (at least 10 characters)\
             <input type=\"password\" name=\"new_password\" autocomplete=\"new-password\" minlength=\"10\" required></label>"
                .to_string(),
            "Set password and sign in",
        ),
    };
    page(
        StatusCode::OK,
        title,
        &format!(
            "<form method=\"post\" action=\"/auth/link\"><input type=\"hidden\" name=\"token\" value=\"{token}\">\
             {fields}<button type=\"submit\">{button}</button></form>"
        ),
    )
}

#[derive(Debug, Deserialize)]
struct LinkForm {
    token: String,
    #[serde(default)]
    new_password: Option<String>,
}

async fn link_submit(
    req: HttpRequest,
    state: web::Data<AppState>,
    form: web::Form<LinkForm>,
) -> HttpResponse {
    let result = async {
        session::check_origin(&req, true)?;
        state
            .limits
            .login_ip
            .check(&super::api::auth::client_key(&req))?;
        Ok::<_, ApiError>(
            state
                .auth
                .redeem_email_link(
                    &form.token,
                    form.new_password.as_deref().filter(|p| !p.is_empty()),
                    &session::client_meta(&req),
                )
                .await?,
        )
    }
    .await;
    match result {
        Ok(Redeemed::Opened(opened)) => {
            revoke_presented(&req, &state).await;
            super::api::auth::signed_in_redirect(&req, &state, &opened, "/").finish()
        }
        Ok(Redeemed::Verified(user)) => page(
            StatusCode::OK,
            "Email address confirmed",
            &format!(
                "<p>{} is confirmed.</p><p><a href=\"/\">Continue</a></p>",
                escape(&user.email)
            ),
        ),
        Err(e) => error_page(&e, "This link does not work"),
    }
}

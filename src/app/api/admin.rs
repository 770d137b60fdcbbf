//! `/api/v1/admin/*`: the instance admin's view of the server. Anyone else gets 404 (the
//! routes do not exist for them).

use actix_web::{HttpResponse, get, web};
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;

use super::private_json;
use crate::app::AppState;
use crate::app::error::{ApiError, ErrorBody};
use crate::app::session::Authenticated;

/// Registers this file's handlers with the router and the API document at once.
pub fn routes(cfg: &mut ServiceConfig) {
    cfg.service(certificates);
}

/// The signed-in user, if they are the instance admin; 404 for anyone else.
fn admin_only(who: &Authenticated) -> Result<(), ApiError> {
    if who.user.is_admin {
        Ok(())
    } else {
        Err(ApiError::NotFound("no such route".into()))
    }
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
    admin_only(&who)?;
    let certificates = state
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
    Ok(private_json(Certificates {
        acme: state.tls.directory.is_some(),
        directory: state.tls.directory.clone(),
        certificates,
    }))
}

//! The gateway over HTTP: an organization's gateway status, start and stop; a project's
//! events, document, and history points.
//!
//! Checks: visibility first (a project or organization the caller cannot see answers 404),
//! then the permission the action or event declares (403 `forbidden`).

use crate::code::ErrorCode;
use actix_web::{HttpResponse, web};
use actix_web::{get, post};
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;

use super::body::Json;
use super::private_json;
use crate::app::AppState;
use crate::app::error::{ApiError, ErrorBody};
use crate::app::session::Authenticated;
use crate::db::orgs::Project;
use crate::gateway::{EventOutcome, GatewayStatus, HistoryPoint};
use crate::orgs::ProjectAccess;

/// Registers this file's handlers with the router and the API document at once.
pub fn routes(cfg: &mut ServiceConfig) {
    cfg.service(status)
        .service(start)
        .service(stop)
        .service(event)
        .service(undo)
        .service(redo)
        .service(document)
        .service(history)
        .service(create_point)
        .service(restore);
}

/// The organization's gateway: stopped, running or stopping; its loaded projects and clients.
#[utoipa::path(operation_id = "gateway_status", tag = "gateway", params(("org" = String, Path)),
    responses((status = 200, body = GatewayStatus), (status = 404, body = ErrorBody)))]
#[get("/api/v1/orgs/{org}/gateway")]
pub async fn status(
    state: web::Data<AppState>,
    who: Authenticated,
    org: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let (_, access) = state.orgs.org_access(&who.user, &org).await?;
    Ok(private_json(state.gateways.status_for(&access)))
}

/// Start the organization's gateway (it also starts on first use).
#[utoipa::path(operation_id = "gateway_start", tag = "gateway", params(("org" = String, Path)),
    responses((status = 200, body = GatewayStatus), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
#[post("/api/v1/orgs/{org}/gateway/start")]
pub async fn start(
    state: web::Data<AppState>,
    who: Authenticated,
    org: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let (_, access) = state.orgs.org_access(&who.user, &org).await?;
    Ok(private_json(state.gateways.start_for(&access).await?))
}

/// Stop the organization's gateway: clients are closed (1001) and every project is made
/// durable and unloaded before this answers.
#[utoipa::path(operation_id = "gateway_stop", tag = "gateway", params(("org" = String, Path)),
    responses((status = 200, body = GatewayStatus), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
#[post("/api/v1/orgs/{org}/gateway/stop")]
pub async fn stop(
    state: web::Data<AppState>,
    who: Authenticated,
    org: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let (_, access) = state.orgs.org_access(&who.user, &org).await?;
    Ok(private_json(state.gateways.stop_for(&access).await?))
}

/// A project the caller can see, and their access to it (what every gateway call takes).
pub(crate) async fn project_access(
    state: &AppState,
    who: &Authenticated,
    id: &str,
) -> Result<(Project, ProjectAccess), ApiError> {
    Ok(state.orgs.project_access(&who.user, id).await?)
}

/// Run an event (`{"type": "<module>:<verb>", ...}`) through its module's reducer. Answers
/// once the change is durable; connected clients receive it at the same moment.
#[utoipa::path(tag = "gateway", params(("id" = String, Path)),
    request_body(content = Object, description = "`{\"type\": \"core-graph:add-node\", \"kind\": \"note\", \"x\": 0, \"y\": 0}`"),
    responses((status = 200, body = EventOutcome),
        (status = 400, description = "`invalid_event` (the body does not fit the event's type), `unknown_event`", body = ErrorBody),
        (status = 422, description = "The reducer refused the event: its code (`invalid_size`, `invalid_name`, ...)", body = ErrorBody),
        (status = 403, description = "`forbidden`: the event's permission is missing", body = ErrorBody),
        (status = 404, description = "`not_found`, or the reducer's code (`node_not_found`, ...)", body = ErrorBody),
        (status = 409, description = "the reducer's code (`node_exists`, ...)", body = ErrorBody)))]
#[post("/api/v1/projects/{id}/events")]
pub async fn event(
    state: web::Data<AppState>,
    who: Authenticated,
    id: web::Path<String>,
    body: Json<serde_json::Value>,
) -> Result<HttpResponse, ApiError> {
    let (_, access) = project_access(&state, &who, &id).await?;
    Ok(private_json(
        state.gateways.event(&access, body.into_inner()).await?,
    ))
}

async fn undo_or_redo(
    state: web::Data<AppState>,
    who: Authenticated,
    id: web::Path<String>,
    again: bool,
) -> Result<HttpResponse, ApiError> {
    let (_, access) = project_access(&state, &who, &id).await?;
    Ok(private_json(state.gateways.undo(&access, again).await?))
}

/// Undo the caller's last change to the board (theirs only, never someone else's). A drag or
/// a paste is one step. Refused when it would change a card someone else has locked.
#[utoipa::path(tag = "gateway", params(("id" = String, Path)),
    responses((status = 200, body = EventOutcome),
        (status = 403, description = "`forbidden`, or `locked`: the step touches a card someone else locked", body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "`nothing_to_undo`", body = ErrorBody)))]
#[post("/api/v1/projects/{id}/undo")]
pub async fn undo(
    state: web::Data<AppState>,
    who: Authenticated,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    undo_or_redo(state, who, id, false).await
}

/// Redo the caller's last undone change.
#[utoipa::path(tag = "gateway", params(("id" = String, Path)),
    responses((status = 200, body = EventOutcome),
        (status = 403, description = "`forbidden`, or `locked`", body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "`nothing_to_redo`", body = ErrorBody)))]
#[post("/api/v1/projects/{id}/redo")]
pub async fn redo(
    state: web::Data<AppState>,
    who: Authenticated,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    undo_or_redo(state, who, id, true).await
}

/// The project's document as JSON: every module root (`nodes`, `edges`, ...) and the log
/// position it reflects.
#[utoipa::path(tag = "gateway", params(("id" = String, Path)),
    responses((status = 200, body = Object), (status = 404, body = ErrorBody)))]
#[get("/api/v1/projects/{id}/document")]
pub async fn document(
    state: web::Data<AppState>,
    who: Authenticated,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let (_, access) = project_access(&state, &who, &id).await?;
    Ok(private_json(state.gateways.document(&access).await?))
}

/// The project's history points, newest first.
#[utoipa::path(tag = "gateway", params(("id" = String, Path)),
    responses((status = 200, body = Vec<HistoryPoint>), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
#[get("/api/v1/projects/{id}/history")]
pub async fn history(
    state: web::Data<AppState>,
    who: Authenticated,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let (_, access) = project_access(&state, &who, &id).await?;
    Ok(private_json(state.gateways.history(&access).await?))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewPoint {
    /// 1 to 100 characters (trimmed).
    #[schema(min_length = 1, max_length = 100, pattern = "\\S")]
    name: String,
}

/// Save a named history point of the project as it is now.
#[utoipa::path(tag = "gateway", params(("id" = String, Path)),
    request_body = NewPoint,
    responses((status = 201, body = HistoryPoint), (status = 422, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
#[post("/api/v1/projects/{id}/history")]
pub async fn create_point(
    state: web::Data<AppState>,
    who: Authenticated,
    id: web::Path<String>,
    body: Json<NewPoint>,
) -> Result<HttpResponse, ApiError> {
    let name = body.name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(ApiError::Unprocessable {
            code: ErrorCode::InvalidName,
            message: "a history point's name is 1 to 100 characters".into(),
        });
    }
    let (_, access) = project_access(&state, &who, &id).await?;
    let point = state.gateways.create_point(&access, name).await?;
    Ok(HttpResponse::Created()
        .insert_header(("Cache-Control", "no-store"))
        .json(point))
}

#[derive(Debug, serde::Serialize, ToSchema)]
pub struct Restored {
    /// The log position of the restoring change; absent when nothing differed.
    seq: Option<i64>,
}

/// Restore the project to a history point, as a new change every connected client receives.
#[utoipa::path(tag = "gateway",
    params(("id" = String, Path), ("point" = String, Path)),
    responses((status = 200, body = Restored), (status = 403, body = ErrorBody),
        (status = 404, description = "`not_found` or `history_point_not_found`", body = ErrorBody)))]
#[post("/api/v1/projects/{id}/history/{point}/restore")]
pub async fn restore(
    state: web::Data<AppState>,
    who: Authenticated,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (id, point) = path.into_inner();
    let (p, access) = project_access(&state, &who, &id).await?;
    let seq = state.gateways.restore(&access, &point).await?;
    tracing::info!(project = %p.id, point = %point, user = %who.user.id, "project restored to a history point");
    Ok(private_json(Restored { seq }))
}

//! The HTTP API under `/api/v1`, plus the operational endpoints (`/healthz`, `/readyz`,
//! `/metrics`). Every route here is listed in the OpenAPI document, which is generated from
//! these handlers.

use crate::code::ErrorCode;
use actix_web::get;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Serialize;
use utoipa::{OpenApi, ToSchema};
use utoipa_actix_web::service_config::ServiceConfig;

pub mod admin;
pub mod auth;
pub mod board;
pub mod body;
pub mod collab;
pub mod containers;
pub mod gateway;
pub mod orgs;
pub mod signin;
mod wsio;

use super::AppState;
use super::client::ClientInfo;
use super::error::{ApiError, ErrorBody};
use super::session;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Demiurge API",
        description = "The HTTP API of a Demiurge server. Errors are `{\"error\": \"<code>\", \"message\": \"...\"}`.",
        license(name = "AGPL-3.0-or-later")
    ),
    components(schemas(
        ErrorBody,
        crate::code::ErrorCode,
        board::ExportFormat,
        Health,
        Readiness,
        Status,
        SubsystemStatus,
        ClientInfo,
        auth::SignUpRequest,
        auth::SetupState,
        auth::LoginRequest,
        auth::UserView,
        auth::SessionView,
        auth::ChangePasswordRequest,
        auth::CreateTokenRequest,
        auth::TokenView,
        auth::CreatedTokenView,
        auth::LoginResponse,
        auth::CodeRequest,
        auth::ReauthRequest,
        auth::TotpStatus,
        auth::TotpEnrolmentView,
        auth::RecoveryCodesView,
        signin::EmailLinkRequest,
        crate::auth::LinkPurpose,
        signin::Accepted,
        signin::LinkToken,
        signin::LinkCheck,
        signin::RedeemRequest,
        signin::Verified,
        signin::IdentityView,
        signin::PasskeyChallenge,
        signin::PasskeyAnswer,
        signin::PasskeyView,
        signin::PasskeyName,
        signin::SignInReviewView,
        signin::ReviewedPasskey,
        signin::ReviewedIdentity,
        crate::auth::providers::ProviderInfo,
        orgs::OrgView,
        orgs::CreateOrg,
        orgs::UpdateOrg,
        orgs::Confirm,
        orgs::MyPermissions,
        orgs::MemberView,
        orgs::AddMember,
        orgs::RoleChange,
        orgs::Transfer,
        orgs::InvitationView,
        orgs::Invite,
        orgs::AcceptInvitation,
        orgs::InvitationPreviewView,
        orgs::RoleView,
        orgs::RoleBody,
        orgs::ProjectView,
        orgs::ProjectName,
        orgs::UserProfile,
        crate::orgs::perms::PermissionDef,
        crate::orgs::perms::Scope,
        crate::orgs::perms::Level
    ))
)]
pub struct ApiDoc;

/// The OpenAPI document, rendered once.
/// The API document: the handlers' own, with the modules' event types as the body of
/// `POST /api/v1/projects/{id}/events` (`ModuleEvent`: one of each module's events).
pub fn openapi_document(modules: &crate::gateway::Modules) -> utoipa::openapi::OpenApi {
    use utoipa::openapi::schema::{OneOfBuilder, Ref};
    use utoipa::openapi::{ContentBuilder, RefOr, request_body::RequestBodyBuilder};
    use utoipa_actix_web::AppExt;
    // The routes as the router has them: each handler's path, method and operation, from
    // the one registration (`routes`), so no route exists undocumented.
    let (_, mut doc) = actix_web::App::new()
        .into_utoipa_app()
        .openapi(ApiDoc::openapi())
        .configure(routes)
        .split_for_parts();
    let (schemas, names) = modules.event_schemas();
    let components = doc.components.get_or_insert_with(Default::default);
    for (name, schema) in schemas {
        components.schemas.insert(name, schema);
    }
    let mut one_of = OneOfBuilder::new().description(Some(
        "An event: `{\"type\": \"<module>:<verb>\", ...}`, one of every module's events.",
    ));
    for n in &names {
        one_of = one_of.item(Ref::from_schema_name(n.clone()));
    }
    components
        .schemas
        .insert("ModuleEvent".into(), RefOr::T(one_of.build().into()));
    if let Some(op) = doc
        .paths
        .paths
        .get_mut("/api/v1/projects/{id}/events")
        .and_then(|p| p.post.as_mut())
    {
        op.request_body = Some(
            RequestBodyBuilder::new()
                .required(Some(utoipa::openapi::Required::True))
                .content(
                    "application/json",
                    ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name("ModuleEvent")))
                        .build(),
                )
                .build(),
        );
    }
    document_extractor_errors(&mut doc);
    document_security(&mut doc);
    document_links(&mut doc);
    doc
}

/// The document as JSON. utoipa 5 writes a link's fields in snake case (`operation_id`,
/// `request_body`, `operation_ref`); OpenAPI spells them in camel case, which is what
/// clients read, so they are renamed here.
pub fn render_document(doc: &utoipa::openapi::OpenApi) -> Result<String, serde_json::Error> {
    fn fix_links(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::Object(m) => {
                if let Some(serde_json::Value::Object(links)) = m.get_mut("links") {
                    for link in links.values_mut() {
                        if let serde_json::Value::Object(l) = link {
                            for (from, to) in [
                                ("operation_id", "operationId"),
                                ("operation_ref", "operationRef"),
                                ("request_body", "requestBody"),
                            ] {
                                if let Some(x) = l.remove(from) {
                                    l.insert(to.into(), x);
                                }
                            }
                        }
                    }
                }
                m.values_mut().for_each(fix_links);
            }
            serde_json::Value::Array(a) => a.iter_mut().for_each(fix_links),
            _ => {}
        }
    }
    let mut v = serde_json::to_value(doc)?;
    fix_links(&mut v);
    serde_json::to_string_pretty(&v)
}

/// What each create operation makes, and where the made thing lives: `(the create's path,
/// the made thing's path, its id's parameter there, the answer's field holding the id)`.
const CREATES: &[(&str, &str, &str, &str)] = &[
    ("/api/v1/orgs", "/api/v1/orgs/{org}", "org", "id"),
    (
        "/api/v1/orgs/{org}/projects",
        "/api/v1/projects/{id}",
        "id",
        "id",
    ),
    (
        "/api/v1/orgs/{org}/roles",
        "/api/v1/orgs/{org}/roles/{id}",
        "id",
        "id",
    ),
    (
        "/api/v1/orgs/{org}/invitations",
        "/api/v1/orgs/{org}/invitations/{id}",
        "id",
        "id",
    ),
    ("/api/v1/me/tokens", "/api/v1/me/tokens/{id}", "id", "id"),
    (
        "/api/v1/projects/{id}/history",
        "/api/v1/projects/{id}/history/{point}",
        "point",
        "id",
    ),
    (
        "/api/v1/orgs/{org}/container-images",
        "/api/v1/orgs/{org}/container-images/{key}",
        "key",
        "key",
    ),
];

/// OpenAPI links from each create's 201 to every operation on what it made (and below it)
/// whose parameters the create's answer and path supply, so a client (and Schemathesis's
/// stateful phase) can follow an id from where it is made to where it is used.
fn document_links(doc: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::RefOr;
    use utoipa::openapi::link::LinkBuilder;
    let params_of = |path: &str| -> Vec<String> {
        path.split('{')
            .skip(1)
            .filter_map(|p| p.split_once('}').map(|(name, _)| name.to_string()))
            .collect()
    };
    for (create, made, param, field) in CREATES {
        let known = params_of(create);
        let mut links = Vec::new();
        for (path, item) in &doc.paths.paths {
            if path != made && !path.starts_with(&format!("{made}/")) {
                continue;
            }
            let needs = params_of(path);
            if !needs.iter().all(|n| n == param || known.contains(n)) {
                continue;
            }
            let mut ops = vec![];
            for op in [&item.get, &item.post, &item.put, &item.patch, &item.delete]
                .into_iter()
                .flatten()
            {
                if let Some(id) = &op.operation_id {
                    ops.push(id.clone());
                }
            }
            for id in ops {
                let mut link = LinkBuilder::new()
                    .operation_id(id.clone())
                    .description(format!("`{param}` is the answer's `{field}`."));
                for n in &needs {
                    let value = if n == param {
                        format!("$response.body#/{field}")
                    } else {
                        format!("$request.path.{n}")
                    };
                    link = link.parameter(n.clone(), value);
                }
                links.push((id, link.build()));
            }
        }
        let created = doc
            .paths
            .paths
            .get_mut(*create)
            .and_then(|i| i.post.as_mut())
            .and_then(|op| op.responses.responses.get_mut("201"));
        if let Some(RefOr::T(response)) = created {
            for (name, link) in links {
                response.links.insert(name, RefOr::T(link));
            }
        }
    }
}

/// How callers authenticate: a bearer token (a personal access token, `dmg_pat_...`) or the
/// browser's session cookie. Every operation needs one of them and can answer 401
/// (`not_authenticated`), except those whose handler declares itself open (`security(())`).
fn document_security(doc: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::security::{
        ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
    };
    let components = doc.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        "bearer",
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .description(Some(
                    "A personal access token (`dmg_pat_...`), made in Settings or with POST /api/v1/me/tokens.",
                ))
                .build(),
        ),
    );
    components.add_security_scheme(
        "session",
        SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
            "demiurge_session",
            "The browser's session cookie (`__Host-demiurge_session` over HTTPS); requests that change something also need `Origin`.",
        ))),
    );
    let needed = vec![
        SecurityRequirement::new("bearer", Vec::<String>::new()),
        SecurityRequirement::new("session", Vec::<String>::new()),
    ];
    doc.security = Some(needed);
    let unauthenticated =
        error_response("`not_authenticated`: sign in first (no session or token, or it ended)");
    for item in doc.paths.paths.values_mut() {
        for op in operations(item) {
            // `[{}]` (possibly with others): the operation is open to anonymous callers.
            let open = op
                .security
                .as_ref()
                .is_some_and(|s| s.iter().any(|r| *r == SecurityRequirement::default()));
            if !open && !op.responses.responses.contains_key("401") {
                op.responses
                    .responses
                    .insert("401".into(), unauthenticated.clone().into());
            }
        }
    }
}

/// An error response of `ErrorBody`, described by `text`.
fn error_response(text: &str) -> utoipa::openapi::Response {
    use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
    ResponseBuilder::new()
        .description(text)
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("ErrorBody")))
                .build(),
        )
        .build()
}

/// Every operation of a path.
fn operations(
    item: &mut utoipa::openapi::PathItem,
) -> impl Iterator<Item = &mut utoipa::openapi::path::Operation> {
    [
        item.get.as_mut(),
        item.post.as_mut(),
        item.put.as_mut(),
        item.patch.as_mut(),
        item.delete.as_mut(),
    ]
    .into_iter()
    .flatten()
}

/// Every operation that reads a body or parameters can answer 400 before its handler runs
/// (the request does not fit the schema: the extractors' `invalid_json`, `invalid_body`,
/// `invalid_query`, `invalid_path`, `unsupported_content_type`), 422 (it fits, but a value
/// is refused), and every one that takes a body 413 (`payload_too_large`): listed where the
/// handler's own annotation does not.
fn document_extractor_errors(doc: &mut utoipa::openapi::OpenApi) {
    for item in doc.paths.paths.values_mut() {
        let params = item.parameters.as_ref().is_some_and(|p| !p.is_empty());
        for op in operations(item) {
            let body = op.request_body.is_some();
            let reads = body || params || op.parameters.as_ref().is_some_and(|p| !p.is_empty());
            let responses = &mut op.responses.responses;
            if reads && !responses.contains_key("400") {
                responses.insert(
                    "400".into(),
                    error_response("The request does not fit this operation's schema: `invalid_json`, `invalid_body`, `invalid_query`, `invalid_path`, `unsupported_content_type`").into(),
                );
            }
            if reads && !responses.contains_key("422") {
                responses.insert(
                    "422".into(),
                    error_response("The request fits the schema, but a value is refused (`invalid_input`; the message names the field)").into(),
                );
            }
            if body && !responses.contains_key("413") {
                responses.insert(
                    "413".into(),
                    error_response("The body is too large: `payload_too_large`").into(),
                );
            }
        }
    }
}

/// 200 with a JSON body that no cache may keep (it is about this user or this moment).
pub(crate) fn private_json(body: impl Serialize) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header(("Cache-Control", "no-store"))
        .json(body)
}

/// The API's routes in the app's router (the same registration the document is made from).
pub fn configure(cfg: &mut web::ServiceConfig) {
    routes(&mut ServiceConfig::new(cfg));
}

/// Every API handler, registered with its route and its operation at once.
fn routes(cfg: &mut ServiceConfig) {
    cfg.service(healthz)
        .service(readyz)
        .service(metrics)
        .service(status)
        .service(openapi_json)
        .configure(auth::routes)
        .configure(admin::routes)
        .configure(signin::routes)
        .configure(orgs::routes)
        .configure(collab::routes)
        .configure(containers::routes)
        .configure(gateway::routes)
        .configure(board::routes);
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// Always `ok` when the process answers.
    status: &'static str,
    version: &'static str,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SubsystemStatus {
    /// `database`, `app`, `edge`, `dns` or `vpn`.
    name: &'static str,
    /// `starting`, `running`, `off`, `stopping` or `failed`.
    state: &'static str,
    /// What it listens on, or why it failed; empty unless the caller is an operator (the
    /// instance admin, or a client on the server's machine).
    detail: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Readiness {
    /// `ready` when every subsystem is running or off.
    status: &'static str,
    subsystems: Vec<SubsystemStatus>,
}

fn subsystems(state: &AppState) -> Vec<SubsystemStatus> {
    state
        .status
        .snapshot()
        .into_iter()
        .map(|s| SubsystemStatus {
            name: s.name,
            state: s.state.as_str(),
            detail: s.detail,
        })
        .collect()
}

/// Liveness: the process is up and answering.
#[utoipa::path(security(()), tag = "operations",
    responses((status = 200, description = "The process answers", body = Health)))]
#[get("/healthz")]
async fn healthz() -> HttpResponse {
    private_json(Health {
        status: "ok",
        version: env!("CARGO_PKG_VERSION"),
    })
}

/// Readiness: every subsystem is up (or turned off by configuration).
#[utoipa::path(security((), ("bearer" = [])), tag = "operations",
    responses(
        (status = 200, description = "Ready", body = Readiness),
        (status = 503, description = "Some subsystem is not up yet (`not_ready`)", body = ErrorBody)
    ))]
#[get("/readyz")]
async fn readyz(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    if state.status.ready() {
        let mut subsystems = subsystems(&state);
        if !operator(&req).await {
            hide_details(&mut subsystems);
        }
        return Ok(private_json(Readiness {
            status: "ready",
            subsystems,
        }));
    }
    let waiting: Vec<String> = subsystems(&state)
        .into_iter()
        .filter(|s| s.state != "running" && s.state != "off")
        .map(|s| format!("{} ({})", s.name, s.state))
        .collect();
    Err(ApiError::NotReady(format!(
        "not ready: {}",
        waiting.join(", ")
    )))
}

/// Whether the request may see the server's internals (metrics, subsystem details: the
/// database's path, the ports): a client on this machine, or the instance admin.
async fn operator(req: &HttpRequest) -> bool {
    if ClientInfo::of(req).ip.is_some_and(|ip| ip.is_loopback()) {
        return true;
    }
    use actix_web::FromRequest;
    session::Authenticated::extract(req)
        .await
        .is_ok_and(|who| who.user.is_admin)
}

/// Prometheus metrics in the text exposition format, for a client on this machine (a
/// scraper beside the server) or the instance admin (a bearer token).
#[utoipa::path(security((), ("bearer" = [])), tag = "operations",
    responses((status = 200, description = "Prometheus text format", body = String, content_type = "text/plain"),
        (status = 403, description = "`operators_only`: not from this machine, and not the instance admin", body = ErrorBody)))]
#[get("/metrics")]
async fn metrics(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    if !operator(&req).await {
        return Err(operators_only());
    }
    Ok(HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .insert_header(("Cache-Control", "no-store"))
        .body(state.metrics.render(&state.status)))
}

fn operators_only() -> ApiError {
    ApiError::Forbidden {
        code: ErrorCode::OperatorsOnly,
        message: "only the instance admin, or a client on the server's own machine, may read this"
            .into(),
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Status {
    /// `ready` or `not_ready`.
    status: &'static str,
    version: &'static str,
    /// Seconds since the server started.
    uptime_seconds: u64,
    /// Each subsystem's state; what it listens on or why it failed only for operators (the
    /// instance admin, or a client on the server's machine).
    subsystems: Vec<SubsystemStatus>,
    /// This request as the server saw it through the edge (to check a proxy setup).
    request: ClientInfo,
}

/// The state of each subsystem, and how this request reached the server.
#[utoipa::path(security((), ("bearer" = [])), tag = "operations",
    responses((status = 200, description = "Subsystem states", body = Status)))]
#[get("/api/v1/status")]
async fn status(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let ready = state.status.ready();
    let mut subsystems = subsystems(&state);
    if !operator(&req).await {
        hide_details(&mut subsystems);
    }
    private_json(Status {
        status: if ready { "ready" } else { "not_ready" },
        version: env!("CARGO_PKG_VERSION"),
        uptime_seconds: state.started_at.elapsed().as_secs(),
        subsystems,
        request: ClientInfo::of(&req),
    })
}

/// Keeps the states, drops what each subsystem listens on or failed with.
fn hide_details(list: &mut [SubsystemStatus]) {
    for s in list {
        s.detail.clear();
    }
}

/// This document.
#[utoipa::path(security(()), tag = "operations",
    responses((status = 200, description = "OpenAPI 3.1 document", content_type = "application/json")))]
#[get("/api/v1/openapi.json")]
async fn openapi_json(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(state.openapi.clone())
}

#[cfg(test)]
mod tests {
    /// Every API route is registered through `routes` (one `service` call per handler, which
    /// gives the router its route and the document its operation): none is added beside it
    /// with actix's own `route`/`resource`, which the document would not see.
    #[test]
    fn api_routes_are_registered_only_with_their_operations() {
        for (file, text) in [
            ("mod.rs", include_str!("mod.rs")),
            ("auth.rs", include_str!("auth.rs")),
            ("signin.rs", include_str!("signin.rs")),
            ("orgs.rs", include_str!("orgs.rs")),
            ("collab.rs", include_str!("collab.rs")),
            ("gateway.rs", include_str!("gateway.rs")),
            ("board.rs", include_str!("board.rs")),
        ] {
            for banned in [
                concat!(".ro", "ute("),
                concat!("web::res", "ource("),
                concat!("web::sc", "ope("),
            ] {
                assert!(
                    !text.contains(banned),
                    "api/{file} registers a route with `{banned}`: use a handler with its \
                     #[utoipa::path] and `.service` in `routes`"
                );
            }
        }
    }
}

//! User containers: the `docker run` line of a container (its one-time token, for the person
//! who asks), and the agent's side (`/api/v1/agent/*`: the token exchanged for a credential,
//! then the manifest). The decisions are `Containers`'.

use actix_web::{HttpRequest, HttpResponse, delete, get, post, put, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;

use super::body::Json;
use super::gateway::project_access;
use super::private_json;
use crate::app::AppState;
use crate::app::error::{ApiError, ErrorBody};
use crate::app::session::Authenticated;
use crate::code::ErrorCode;
use crate::containers::protocol;
use crate::gateway::modules::user_containers::ServiceSpec;
use crate::gateway::modules::user_containers::catalogue::{self, OrgEntry};

pub fn routes(cfg: &mut ServiceConfig) {
    cfg.service(enrollment)
        .service(enroll)
        .service(manifest)
        .service(connect)
        .service(org_images)
        .service(project_images)
        .service(add_image)
        .service(update_image)
        .service(delete_image);
}

/// The agent credential of a request (`Authorization: Bearer dmag_...`).
fn bearer(req: &HttpRequest) -> &str {
    req.headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default()
        .trim()
}

/// The agent's control channel (a WebSocket; `Authorization: Bearer dmag_...`). The server
/// sends the manifest (`{"type": "manifest", ...}`) first; the agent answers `hello` and a
/// `heartbeat` every `heartbeat_seconds`, from which the server derives the container's
/// state. When the container is deleted the server sends `bye` and closes.
#[utoipa::path(security(()), tag = "containers",
    responses(
        (status = 101, description = "The control channel (WebSocket)"),
        (status = 400, description = "`not_a_websocket`", body = ErrorBody),
        (status = 401, description = "`invalid_agent_credential`", body = ErrorBody)
    ))]
#[get("/api/v1/agent/connect")]
async fn connect(
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let row = state.containers.agent(bearer(&req)).await?;
    let first = state.containers.agent_manifest(&row).await?;
    let (resp, session, msgs) = actix_ws::handle(&req, body).map_err(|e| ApiError::BadRequest {
        code: ErrorCode::NotAWebsocket,
        message: format!("the agent's control channel is a WebSocket: {e}"),
    })?;
    let containers = state.containers.clone();
    actix_web::rt::spawn(control(containers, row, first, session, msgs));
    Ok(resp)
}

/// One control connection, until the agent goes quiet, closes, or the container is deleted.
/// Binary messages both ways are the tunnel's WireGuard datagrams (the relay for agents
/// whose UDP does not get through).
async fn control(
    containers: crate::containers::Containers,
    row: crate::db::containers::ContainerRow,
    first: protocol::AgentManifest,
    mut session: actix_ws::Session,
    msgs: actix_ws::MessageStream,
) {
    use futures::StreamExt as _;
    let mut msgs = msgs.max_frame_size(64 * 1024);
    let gone = containers.agent_connected(&row);
    let quiet = containers.stale_after();
    let mut relay = containers.agent_relay(&row).await;
    let text = |m: &protocol::ToAgent| serde_json::to_string(m).unwrap_or_default();
    let mut ok = session
        .text(text(&protocol::ToAgent::Manifest(first)))
        .await
        .is_ok();
    let mut heard = tokio::time::Instant::now();
    while ok {
        let datagram = async {
            match relay.as_mut() {
                Some(r) => r.next().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = gone.cancelled() => {
                let bye = protocol::ToAgent::Bye { reason: "the container was deleted".into() };
                let _ = session.text(text(&bye)).await;
                break;
            }
            _ = tokio::time::sleep_until(heard + quiet) => break,
            d = datagram => match d {
                Some(d) => ok = session.binary(d).await.is_ok(),
                None => relay = None,
            },
            m = msgs.next() => {
                heard = tokio::time::Instant::now();
                match m {
                    None | Some(Err(_)) => break,
                    Some(Ok(actix_ws::Message::Text(t))) => {
                        match serde_json::from_str::<protocol::FromAgent>(&t) {
                            Ok(protocol::FromAgent::Heartbeat { resources, health }) => {
                                let tunnel = match &relay {
                                    Some(r) => r.path().await,
                                    None => None,
                                };
                                containers.agent_heartbeat(&row.id, resources, health, tunnel);
                            }
                            Ok(protocol::FromAgent::Hello { version }) => {
                                tracing::debug!(container = %row.id, %version, "container agent said hello");
                            }
                            Err(e) => {
                                tracing::debug!(container = %row.id, error = %e, "container agent sent an unknown message");
                            }
                        }
                    }
                    Some(Ok(actix_ws::Message::Binary(b))) => {
                        if let Some(r) = &relay {
                            r.deliver(b);
                        }
                    }
                    Some(Ok(actix_ws::Message::Ping(p))) => ok = session.pong(&p).await.is_ok(),
                    Some(Ok(actix_ws::Message::Close(_))) => break,
                    Some(Ok(_)) => {}
                }
            }
        }
    }
    let _ = session.close(None).await;
    containers.agent_disconnected(&row.id);
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EnrollmentView {
    /// The one-time token (also inside `command`). Shown once, to the person who asked;
    /// never in the project document.
    token: String,
    /// It stops working then, or at its first use.
    expires_at: DateTime<Utc>,
    /// The `docker run` line to paste on the machine that runs the container.
    command: String,
}

/// A new `docker run` line for a container of the project, with a one-time token (15
/// minutes by default, `[containers] enrollment_lifetime`). For the container's creator, or
/// someone with `user-containers:container:delete`. Older unused tokens stop working.
#[utoipa::path(tag = "containers",
    params(("id" = String, Path, description = "Project id"), ("container" = String, Path, description = "Container id")),
    responses(
        (status = 201, description = "The command", body = EnrollmentView),
        (status = 401, description = "`not_authenticated`", body = ErrorBody),
        (status = 403, description = "`forbidden`", body = ErrorBody),
        (status = 404, description = "`not_found` (no such project), `container_not_found`", body = ErrorBody),
        (status = 409, description = "`vpn_off`: the server's VPN is off; `label_taken`", body = ErrorBody)
    ))]
#[post("/api/v1/projects/{id}/containers/{container}/enrollment")]
async fn enrollment(
    state: web::Data<AppState>,
    who: Authenticated,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (id, container) = path.into_inner();
    let (_, access) = project_access(&state, &who, &id).await?;
    let doc = state.gateways.document(&access).await?;
    let record = doc["roots"]["containers"].get(&container);
    let e = state
        .containers
        .issue_enrollment(&access, &container, record)
        .await?;
    Ok(HttpResponse::Created()
        .insert_header(("Cache-Control", "no-store"))
        .json(EnrollmentView {
            token: e.token,
            expires_at: e.expires_at.and_utc(),
            command: e.command,
        }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EnrollRequest {
    /// The token of the `docker run` line (`DEMIURGE_ENROLL`).
    #[schema(max_length = 128)]
    token: String,
    /// The WireGuard public key the agent made (base64, 32 bytes); its private key never
    /// leaves the container's volume.
    #[schema(max_length = 64)]
    wg_public_key: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TunnelPeer {
    public_key: String,
    /// `host:port` (UDP).
    endpoint: String,
    /// The server's address inside the tunnel.
    tunnel_address: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Enrolled {
    container_id: String,
    /// The agent's credential from now on (`Authorization: Bearer ...`): keep it (0600) in
    /// the volume. Shown once.
    credential: String,
    /// The container's own address in the tunnel.
    tunnel_address: String,
    /// The tunnel network.
    subnet: String,
    server: TunnelPeer,
    /// How often to report.
    heartbeat_seconds: u64,
}

/// The agent's first call: its one-time token and WireGuard public key for a credential of
/// this one container and its place in the organization's network. The token works once.
#[utoipa::path(security(()), tag = "containers", request_body = EnrollRequest,
    responses(
        (status = 200, description = "Enrolled", body = Enrolled),
        (status = 401, description = "`invalid_enrollment`: used, expired or unknown token", body = ErrorBody),
        (status = 409, description = "`vpn_off`", body = ErrorBody),
        (status = 422, description = "`invalid_input`: not a WireGuard public key", body = ErrorBody)
    ))]
#[post("/api/v1/agent/enroll")]
async fn enroll(
    state: web::Data<AppState>,
    body: Json<EnrollRequest>,
) -> Result<HttpResponse, ApiError> {
    let e = state
        .containers
        .enroll(body.token.trim(), body.wg_public_key.trim())
        .await?;
    Ok(private_json(Enrolled {
        container_id: e.container_id,
        credential: e.credential,
        tunnel_address: e.tunnel_address,
        subnet: e.subnet,
        server: TunnelPeer {
            public_key: e.server_public_key,
            endpoint: e.server_endpoint,
            tunnel_address: e.server_tunnel_address,
        },
        heartbeat_seconds: e.heartbeat.as_secs(),
    }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ServiceView {
    name: String,
    /// `https://<label>.containers.<domain>/` answers for it.
    label: String,
    /// Where it listens inside the container (127.0.0.1).
    port: i32,
    terminal: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ManifestView {
    container_id: String,
    project_id: String,
    services: Vec<ServiceView>,
    heartbeat_seconds: u64,
}

/// What an agent is to serve, fetched after each (re)connect with its credential
/// (`Authorization: Bearer dmag_...`).
#[utoipa::path(security(()), tag = "containers",
    responses(
        (status = 200, description = "The manifest", body = ManifestView),
        (status = 401, description = "`invalid_agent_credential`", body = ErrorBody)
    ))]
#[get("/api/v1/agent/manifest")]
async fn manifest(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let row = state.containers.agent(bearer(&req)).await?;
    let m = state.containers.manifest(&row).await?;
    Ok(private_json(ManifestView {
        container_id: m.container_id,
        project_id: m.project_id,
        services: m
            .routes
            .into_iter()
            .map(|r| ServiceView {
                name: r.service,
                label: r.label,
                port: r.port,
                terminal: r.terminal,
            })
            .collect(),
        heartbeat_seconds: m.heartbeat.as_secs(),
    }))
}

impl From<crate::containers::ContainersError> for ApiError {
    fn from(e: crate::containers::ContainersError) -> Self {
        use crate::containers::ContainersError as C;
        let message = e.to_string();
        match e {
            C::Forbidden(message) => Self::Forbidden {
                code: ErrorCode::Forbidden,
                message,
            },
            C::NoSuchContainer(_) => Self::Missing {
                code: ErrorCode::ContainerNotFound,
                message,
            },
            C::VpnOff => Self::Conflict {
                code: ErrorCode::VpnOff,
                message,
            },
            C::LabelTaken => Self::Conflict {
                code: ErrorCode::LabelTaken,
                message,
            },
            // A built-in key is taken, as an entry of the organization's would be.
            C::Invalid(ErrorCode::ImageExists, message) => Self::Conflict {
                code: ErrorCode::ImageExists,
                message,
            },
            C::Invalid(code, message) => Self::Unprocessable { code, message },
            C::NoSuchImage(_) => Self::Missing {
                code: ErrorCode::ImageNotFound,
                message,
            },
            C::ImageExists(_) => Self::Conflict {
                code: ErrorCode::ImageExists,
                message,
            },
            C::TooManyImages => Self::Conflict {
                code: ErrorCode::TooManyImages,
                message,
            },
            C::InvalidEnrollment => Self::Unauthorized {
                code: ErrorCode::InvalidEnrollment,
                message,
            },
            C::InvalidCredential => Self::Unauthorized {
                code: ErrorCode::InvalidAgentCredential,
                message,
            },
            C::BadKey => Self::Unprocessable {
                code: ErrorCode::InvalidInput,
                message,
            },
            C::Internal(m) => Self::Internal(m),
        }
    }
}

/// An entry of a project's container catalogue: built in, or the organization's own.
#[derive(Debug, Serialize, ToSchema)]
pub struct ImageView {
    /// What a create event's `image` names.
    key: String,
    title: String,
    description: String,
    /// The image the `docker run` line runs (none for `custom`: the person names it).
    image_ref: Option<String>,
    services: Vec<ServiceSpec>,
    /// The command the agent starts the app with (none: built in, or the image's own).
    command: Option<String>,
    /// The shell step the `docker run` line runs before it fetches the agent.
    prepare: Option<String>,
    /// Built in (not the organization's own; cannot be changed).
    builtin: bool,
}

fn catalogue_view(own: Vec<OrgEntry>) -> Vec<ImageView> {
    catalogue::BUILTIN
        .iter()
        .map(|e| ImageView {
            key: e.key.to_string(),
            title: e.title.to_string(),
            description: e.description.to_string(),
            image_ref: e.image.map(str::to_string),
            services: e.service_specs(),
            command: None,
            prepare: e.prepare.map(str::to_string),
            builtin: true,
        })
        .chain(own.into_iter().map(|e| ImageView {
            key: e.key,
            title: e.title,
            description: e.description,
            image_ref: Some(e.image_ref),
            services: e.services,
            command: e.command,
            prepare: e.prepare,
            builtin: false,
        }))
        .collect()
}

/// The organization's container catalogue: the built-in entries, then its own (by key).
#[utoipa::path(tag = "containers", params(("org" = String, Path)),
    responses((status = 200, body = Vec<ImageView>), (status = 404, body = ErrorBody)))]
#[get("/api/v1/orgs/{org}/container-images")]
async fn org_images(
    state: web::Data<AppState>,
    who: Authenticated,
    org: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let (_, access) = state.orgs.org_access(&who.user, &org).await?;
    let own = state.containers.org_images(access.org_id()).await?;
    Ok(private_json(catalogue_view(own)))
}

/// What a container of this project may run: the same catalogue as its organization's,
/// for project members who are not members of the organization.
#[utoipa::path(tag = "containers", params(("id" = String, Path)),
    responses((status = 200, body = Vec<ImageView>), (status = 404, body = ErrorBody)))]
#[get("/api/v1/projects/{id}/container-images")]
async fn project_images(
    state: web::Data<AppState>,
    who: Authenticated,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let (_, access) = project_access(&state, &who, &id).await?;
    let own = state.containers.org_images(access.org_id()).await?;
    Ok(private_json(catalogue_view(own)))
}

/// Add an entry to the organization's container catalogue. Needs `org:containers:manage`.
#[utoipa::path(tag = "containers", params(("org" = String, Path)), request_body = OrgEntry,
    responses((status = 201, body = OrgEntry),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "`image_exists`, `too_many_images`", body = ErrorBody),
        (status = 422, description = "`invalid_input`, `invalid_image`, `invalid_service`, `invalid_command`", body = ErrorBody)))]
#[post("/api/v1/orgs/{org}/container-images")]
async fn add_image(
    state: web::Data<AppState>,
    who: Authenticated,
    org: web::Path<String>,
    body: Json<OrgEntry>,
) -> Result<HttpResponse, ApiError> {
    let (_, access) = state.orgs.org_access(&who.user, &org).await?;
    let e = state
        .containers
        .add_image(&access, body.into_inner())
        .await?;
    let mut resp = private_json(e);
    *resp.status_mut() = actix_web::http::StatusCode::CREATED;
    Ok(resp)
}

/// Replace an entry of the organization's container catalogue (its `key` stays the one in
/// the path). Containers made from it keep what they were made with. Needs
/// `org:containers:manage`.
#[utoipa::path(tag = "containers", params(("org" = String, Path), ("key" = String, Path)),
    request_body = OrgEntry,
    responses((status = 200, body = OrgEntry),
        (status = 403, body = ErrorBody),
        (status = 404, description = "`not_found`, `image_not_found`", body = ErrorBody),
        (status = 422, description = "`invalid_input`, `invalid_image`, `invalid_service`, `invalid_command`", body = ErrorBody)))]
#[put("/api/v1/orgs/{org}/container-images/{key}")]
async fn update_image(
    state: web::Data<AppState>,
    who: Authenticated,
    path: web::Path<(String, String)>,
    body: Json<OrgEntry>,
) -> Result<HttpResponse, ApiError> {
    let (org, key) = path.into_inner();
    let (_, access) = state.orgs.org_access(&who.user, &org).await?;
    let e = state
        .containers
        .update_image(&access, &key, body.into_inner())
        .await?;
    Ok(private_json(e))
}

/// Delete an entry of the organization's container catalogue. Containers made from it
/// keep running. Needs `org:containers:manage`.
#[utoipa::path(tag = "containers", params(("org" = String, Path), ("key" = String, Path)),
    responses((status = 204),
        (status = 403, body = ErrorBody),
        (status = 404, description = "`not_found`, `image_not_found`", body = ErrorBody)))]
#[delete("/api/v1/orgs/{org}/container-images/{key}")]
async fn delete_image(
    state: web::Data<AppState>,
    who: Authenticated,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (org, key) = path.into_inner();
    let (_, access) = state.orgs.org_access(&who.user, &org).await?;
    state.containers.delete_image(&access, &key).await?;
    Ok(HttpResponse::NoContent().finish())
}

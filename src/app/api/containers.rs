//! User containers: the `docker run` line of a container (its one-time token, for the person
//! who asks), and the agent's side (`/api/v1/agent/*`: the token exchanged for a credential,
//! then the manifest). The decisions are `Containers`'.

use actix_web::{HttpRequest, HttpResponse, get, post, web};
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

pub fn routes(cfg: &mut ServiceConfig) {
    cfg.service(enrollment)
        .service(enroll)
        .service(manifest)
        .service(connect);
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

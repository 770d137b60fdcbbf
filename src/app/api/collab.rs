//! `GET /api/v1/projects/{id}/collab`: the project's document over a WebSocket, in the
//! y-websocket protocol, so browsers and any stock Yjs client can sync it.
//!
//! Checked before the upgrade: who (session cookie, bearer token, or `?token=` for clients
//! that cannot set headers) and what (read to connect, `project:content:write` to change the
//! document). Frames from one connection never stop the others.

use actix_web::{FromRequest, HttpRequest, HttpResponse, web};
use actix_ws::{CloseCode, CloseReason};
use futures::StreamExt;
use serde::Deserialize;

use crate::app::AppState;
use crate::app::error::ApiError;
use crate::app::session::{self, Authenticated};
use crate::db::accounts::User;
use crate::orgs::authz::{Decision, Resource};

/// How often an idle connection is pinged; one that stays silent for two of these is closed.
const KEEPALIVE: std::time::Duration = std::time::Duration::from_secs(30);

/// Largest frame a client may send.
const MAX_FRAME: usize = 8 * 1024 * 1024;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/v1/projects/{id}/collab", web::get().to(collab));
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct CollabQuery {
    /// A personal access token or session token, for clients that cannot set headers
    /// (otherwise `Authorization: Bearer` with a personal access token, or the session cookie).
    #[serde(default)]
    token: Option<String>,
}

async fn who(req: &HttpRequest, state: &AppState, q: &CollabQuery) -> Result<User, ApiError> {
    // For clients that cannot set headers.
    if let Some(t) = &q.token {
        return Ok(if t.starts_with(crate::auth::TOKEN_PREFIX) {
            state.auth.authenticate_token(t).await?.1
        } else {
            state.auth.authenticate(t).await?.1
        });
    }
    let who = Authenticated::extract(req).await?;
    // A cookie rides along on cross-site WebSocket opens (a GET): the Origin must be ours.
    if who.session_id().is_some() {
        session::check_origin(req, false)?;
    }
    Ok(who.user)
}

/// The project's document as a y-websocket endpoint (WebSocket upgrade).
#[utoipa::path(get, path = "/api/v1/projects/{id}/collab", tag = "collab",
    params(("id" = String, Path, description = "Project id"), CollabQuery),
    responses(
        (status = 101, description = "WebSocket, y-websocket protocol"),
        (status = 401, description = "`not_authenticated`"),
        (status = 404, description = "`not_found`: no such project, or not yours to see")
    ))]
async fn collab(
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<AppState>,
    id: web::Path<String>,
    q: web::Query<CollabQuery>,
) -> Result<HttpResponse, ApiError> {
    let user = who(&req, &state, &q).await?;
    let project = state
        .orgs
        .project_for(&user, &id, "project:content:read", "read this project")
        .await?;
    let writable = state
        .orgs
        .decide(
            &user.id,
            "project:content:write",
            Resource::Project {
                org: &project.org_id,
                project: &project.id,
            },
        )
        .await?
        == Decision::Allow;
    // Loaded before the upgrade: sync step 1 is never answered from an unloaded document.
    let room = state
        .gateways
        .room(&project.id)
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let (resp, mut session, msgs) =
        actix_ws::handle(&req, body).map_err(|e| ApiError::BadRequest {
            code: "not_a_websocket",
            message: format!("this endpoint speaks WebSocket only: {e}"),
        })?;
    let mut msgs = msgs.max_frame_size(MAX_FRAME).aggregate_continuations();
    let conn: u64 = rand::random();
    let db = state.gateways.db().clone();
    let mut others = room.subscribe();
    let connected = state.gateways.metrics().clients_connected.clone();
    connected.inc();
    actix_web::rt::spawn(async move {
        let mut spoke_for = Vec::new();
        let mut keepalive = tokio::time::interval(KEEPALIVE);
        keepalive.tick().await;
        let mut last_heard = std::time::Instant::now();
        let mut close: Option<CloseReason> = None;
        for frame in room.hello() {
            if session.binary(frame).await.is_err() {
                return;
            }
        }
        loop {
            tokio::select! {
                _ = keepalive.tick() => {
                    if last_heard.elapsed() > KEEPALIVE * 2 {
                        close = Some(CloseReason { code: CloseCode::Away, description: Some("no answer to keepalive pings".into()) });
                        break;
                    }
                    if session.ping(b"").await.is_err() { break; }
                }
                msg = msgs.next() => {
                    last_heard = std::time::Instant::now();
                    let data = match msg {
                        Some(Ok(actix_ws::AggregatedMessage::Binary(b))) => b,
                        Some(Ok(actix_ws::AggregatedMessage::Ping(p))) => {
                            if session.pong(&p).await.is_err() { break; }
                            continue;
                        }
                        Some(Ok(actix_ws::AggregatedMessage::Text(_))) => {
                            close = Some(CloseReason { code: CloseCode::Unsupported, description: Some("binary frames only".into()) });
                            break;
                        }
                        Some(Ok(actix_ws::AggregatedMessage::Close(_))) | None => break,
                        Some(Ok(_)) => continue,
                        Some(Err(e)) => {
                            close = Some(CloseReason { code: CloseCode::Size, description: Some(e.to_string()) });
                            break;
                        }
                    };
                    match room.handle(&db, conn, writable, &data).await {
                        Ok(h) => {
                            spoke_for.extend(h.awareness_clients);
                            if h.refused_write {
                                tracing::debug!(conn, "read-only client tried to write; ignored");
                            }
                            for r in h.replies {
                                if session.binary(r).await.is_err() { break; }
                            }
                        }
                        Err(crate::gateway::GatewayError::Malformed(m)) => {
                            close = Some(CloseReason { code: CloseCode::Invalid, description: Some(m.chars().take(100).collect()) });
                            break;
                        }
                        Err(e) => {
                            tracing::error!(error = %e, "collab: could not store an update");
                            close = Some(CloseReason { code: CloseCode::Error, description: Some("the update was not stored".into()) });
                            break;
                        }
                    }
                }
                frame = others.recv() => {
                    match frame {
                        Ok((from, bytes)) if from != conn => {
                            if session.binary(bytes.to_vec()).await.is_err() { break; }
                        }
                        Ok(_) => {}
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                            // Too slow: drop this client (it resyncs on reconnect) rather than
                            // slow the others.
                            close = Some(CloseReason { code: CloseCode::Again, description: Some("too slow; reconnect".into()) });
                            break;
                        }
                        Err(_) => break,
                    }
                }
            }
        }
        room.leave(conn, &spoke_for);
        connected.dec();
        let _ = session.close(close).await;
    });
    Ok(resp)
}

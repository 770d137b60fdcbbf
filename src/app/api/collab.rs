//! `GET /api/v1/projects/{id}/collab`: the project's document over a WebSocket, in the
//! y-websocket protocol, so browsers and any stock Yjs client can sync it.
//!
//! Checked before the upgrade: who (session cookie, bearer token, or `?token=` for clients
//! that cannot set headers) and what (read to connect, `project:content:write` to change the
//! document). Checked again while open: a revoked or expired credential closes the socket
//! (4401), a lost permission closes it (4403) or makes it read-only. Frames from one
//! connection never stop the others.

use crate::code::ErrorCode;
use actix_http::ws::{CloseCode, CloseReason, Message};
use std::collections::HashMap;

use actix_web::get;
use actix_web::{FromRequest, HttpRequest, HttpResponse, web};
use futures::StreamExt;
use serde::Deserialize;
use utoipa_actix_web::service_config::ServiceConfig;

use super::wsio::{self, ClientFrame, Control, Fanout, Messages, Socket, close_reason};
use crate::app::upgrade::Takeover;

use crate::app::AppState;
use crate::app::error::{ApiError, ErrorBody};
use crate::app::session::{self, Authenticated};
use crate::db::accounts::User;
use crate::gateway::{Close, GatewayError};
use crate::orgs::CONTENT_WRITE;

/// Largest frame a client may send.
const MAX_FRAME: usize = 8 * 1024 * 1024;
/// Largest message from a read-only connection: it only sends awareness and state vectors.
const READ_ONLY_MAX_FRAME: usize = 64 * 1024;

/// Registers this file's handlers with the router and the API document at once.
pub fn routes(cfg: &mut ServiceConfig) {
    cfg.service(collab);
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct CollabQuery {
    /// A personal access token (`dmg_pat_...`), for clients that cannot set headers
    /// (otherwise `Authorization: Bearer`, or the session cookie). Session tokens are refused
    /// here (`session_token_in_url`).
    #[serde(default)]
    token: Option<String>,
}

/// The credential a connection was opened with, to check again while it is open.
enum Credential {
    Session(String),
    Token(String),
}

impl Credential {
    async fn authenticate(&self, state: &AppState) -> Result<User, crate::auth::AuthError> {
        Ok(match self {
            Self::Session(t) => state.auth.authenticate(t).await?.1,
            Self::Token(t) => state.auth.authenticate_token(t).await?.1,
        })
    }

    /// Still valid? (checked again while the connection is open)
    async fn user(&self, state: &AppState) -> Option<User> {
        self.authenticate(state).await.ok()
    }
}

fn credential_of(t: &str) -> Credential {
    if t.starts_with(crate::auth::TOKEN_PREFIX) {
        Credential::Token(t.to_string())
    } else {
        Credential::Session(t.to_string())
    }
}

async fn who(
    req: &HttpRequest,
    state: &AppState,
    q: &CollabQuery,
) -> Result<(User, Credential), ApiError> {
    // For clients that cannot set headers: a personal access token only. A session token
    // never goes in a URL (addresses end up in logs, histories and Referer headers).
    if let Some(t) = &q.token {
        if !t.starts_with(crate::auth::TOKEN_PREFIX) {
            return Err(ApiError::Unauthorized {
                code: ErrorCode::SessionTokenInUrl,
                message: "only a personal access token may go in `?token=`; use the session cookie or `Authorization: Bearer`".into(),
            });
        }
        let cred = credential_of(t);
        let user = cred.authenticate(state).await?;
        return Ok((user, cred));
    }
    let who = Authenticated::extract(req).await?;
    // A cookie rides along on cross-site WebSocket opens (a GET): the Origin must be ours.
    if who.session_id().is_some() {
        session::check_origin(req, false)?;
    }
    let raw = session::presented_credential(req).ok_or_else(|| ApiError::Unauthorized {
        code: ErrorCode::NotAuthenticated,
        message: "sign in first".into(),
    })?;
    Ok((who.user, credential_of(&raw)))
}

/// The project's document as a y-websocket endpoint (WebSocket upgrade).
#[utoipa::path(tag = "collab",
    params(("id" = String, Path, description = "Project id"), CollabQuery),
    responses(
        (status = 101, description = "WebSocket, y-websocket protocol"),
        (status = 426, description = "`not_a_websocket`: a request without the WebSocket upgrade (the answer has `Upgrade: websocket`)", body = ErrorBody),
        (status = 401, description = "`not_authenticated`"),
        (status = 404, description = "`not_found`: no such project, or not yours to see")
    ))]
#[get("/api/v1/projects/{id}/collab")]
async fn collab(
    req: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<String>,
    q: web::Query<CollabQuery>,
) -> Result<HttpResponse, ApiError> {
    let (user, credential) = who(&req, &state, &q).await?;
    let (project, access) = state.orgs.project_access(&user, &id).await?;
    let mut handshake = actix_http::ws::handshake(req.head()).map_err(|e| {
        ApiError::UpgradeRequired(format!("this endpoint speaks WebSocket only: {e}"))
    })?;
    // Every WebSocket request comes through the upgrade path, which hands the socket over.
    let takeover = Takeover::of(&req).ok_or_else(|| {
        ApiError::Internal("the collaboration socket came without its connection".into())
    })?;
    // The frame limit follows what the connection may do (the gateway decides that).
    let writable = access.may(CONTENT_WRITE);
    // Counted from here to the socket's end (the guard moves into its task).
    let per_user = state.gateways.settings().max_sockets_per_user;
    let slot = state
        .sockets
        .take(&user.id, per_user)
        .ok_or(ApiError::TooManyRequests {
            code: ErrorCode::TooManySockets,
            message: format!(
                "at most {per_user} collaboration connections at once; close some first"
            ),
            retry_after_secs: 5,
        })?;
    // Known to this worker's fan-out before it joins: its first frames go out at once.
    let fanout = Fanout::here(
        state.gateways.settings().client_buffer,
        &state.gateways.metrics().kicked,
    );
    let id = state.gateways.client_id();
    let reg = fanout.register(&project.id, id);
    // Joined (and so loaded) before the upgrade: sync step 1 is never answered from an
    // unloaded document, and a refusal (no `project:content:read`) is an HTTP 403.
    let joined = state
        .gateways
        .connect_via(&access, fanout.outlet(), id)
        .await;
    let conn = match joined {
        Ok(c) => c,
        Err(GatewayError::RoomFull(_)) => {
            // Told as a close code, which every WebSocket client can see.
            takeover.set(|up| {
                actix_web::rt::spawn(wsio::refuse(up, Close::ROOM_FULL));
            });
            return Ok(HttpResponse::from(handshake.finish().map_into_boxed_body()));
        }
        Err(e) => return Err(e.into()),
    };
    // For the home page's recent boards; off the join's path (it never waits for this).
    {
        let (orgs, user, pid) = (state.orgs.clone(), user.clone(), project.id.clone());
        actix_web::rt::spawn(async move {
            if let Err(e) = orgs.record_visit(&user, &pid).await {
                tracing::warn!(project = %pid, error = %e, "the board visit could not be recorded");
            }
        });
    }
    let state = state.into_inner();
    takeover.set(move |up| {
        let max = if writable {
            MAX_FRAME
        } else {
            READ_ONLY_MAX_FRAME
        };
        let (socket, control, msgs) = Socket::new(up, reg, max);
        actix_web::rt::spawn(socket);
        actix_web::rt::spawn(async move {
            let connected = state.gateways.metrics().clients_connected.clone();
            connected.inc();
            let open = Open {
                state,
                user,
                credential,
                access,
            };
            open.serve(conn, control, msgs).await;
            connected.dec();
            drop(slot);
        });
    });
    Ok(HttpResponse::from(handshake.finish().map_into_boxed_body()))
}

/// An open connection's handler: what the client says, keepalive, and the checks made again
/// while it is open.
struct Open {
    state: std::sync::Arc<AppState>,
    user: User,
    credential: Credential,
    access: crate::orgs::ProjectAccess,
}

impl Open {
    async fn serve(
        mut self,
        conn: crate::gateway::Connection,
        mut control: Control,
        mut msgs: Messages,
    ) {
        let state = self.state.clone();
        // Pinged this often; silent for two of these, it is closed.
        let keepalive_every = state.gateways.settings().keepalive;
        let mut keepalive = tokio::time::interval(keepalive_every);
        keepalive.tick().await;
        let mut orgs_changed = state.orgs.watch_changes();
        let mut revoked = state.auth.watch_revocations();
        let mut last_heard = std::time::Instant::now();
        let close: Option<CloseReason> = loop {
            tokio::select! {
                // The socket is gone (the gateway closed the connection, or the client left).
                _ = control.closed() => break None,
                // The project's task ended. It closes its clients first, and that close (a
                // deleted project's 4404, say) is on its way through the fan-out; only a
                // task that ended without one leaves this to say 1001.
                _ = conn.project_gone() => {
                    let closed = tokio::time::timeout(std::time::Duration::from_secs(1), control.closed()).await;
                    break closed.is_err().then(|| close_reason(Close::GOING_AWAY));
                }
                _ = keepalive.tick() => {
                    if last_heard.elapsed() > keepalive_every * 2 {
                        break Some(CloseReason { code: CloseCode::Away, description: Some("no answer to keepalive pings".into()) });
                    }
                    if self.credential.user(&state).await.is_none() {
                        conn.kick(Close::AUTH_EXPIRED).await;
                    }
                    if control.send(Message::Ping(bytes::Bytes::new())).is_err() { break None; }
                }
                Ok(()) = revoked.changed() => {
                    if self.credential.user(&state).await.is_none() {
                        conn.kick(Close::AUTH_EXPIRED).await;
                    }
                }
                Ok(()) = orgs_changed.changed() => {
                    match state.orgs.project_access_again(&self.user, &self.access).await {
                        Some(now) => {
                            conn.set_access(&now).await;
                            self.access = now;
                        }
                        None => conn.kick(Close::PERMISSION_LOST).await,
                    }
                }
                msg = msgs.next() => {
                    last_heard = std::time::Instant::now();
                    let data = match msg {
                        Some(Ok(ClientFrame::Binary(b))) => b,
                        Some(Ok(ClientFrame::Ping(p))) => {
                            if control.send(Message::Pong(p)).is_err() { break None; }
                            continue;
                        }
                        Some(Ok(ClientFrame::Pong)) => continue,
                        Some(Ok(ClientFrame::Text)) => {
                            break Some(CloseReason { code: CloseCode::Unsupported, description: Some("binary frames only".into()) });
                        }
                        Some(Ok(ClientFrame::Close)) | None => break None,
                        Some(Err(e)) => {
                            break Some(CloseReason { code: CloseCode::Size, description: Some(e.to_string()) });
                        }
                    };
                    if !conn.send(data.to_vec()).await {
                        break Some(close_reason(Close::GOING_AWAY));
                    }
                }
            }
        };
        drop(conn);
        let _ = control.send(Message::Close(close));
    }
}

/// Open collaboration sockets per user.
#[derive(Default)]
pub struct SocketCounts(std::sync::Arc<std::sync::Mutex<HashMap<String, usize>>>);

/// One counted socket; the count drops with it.
pub struct SocketSlot {
    counts: std::sync::Arc<std::sync::Mutex<HashMap<String, usize>>>,
    user: String,
}

impl SocketCounts {
    /// A slot for one more of `user`'s sockets, if they have fewer than `max`.
    pub fn take(&self, user: &str, max: usize) -> Option<SocketSlot> {
        let mut m = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let n = m.entry(user.to_string()).or_default();
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(SocketSlot {
            counts: self.0.clone(),
            user: user.to_string(),
        })
    }
}

impl Drop for SocketSlot {
    fn drop(&mut self) {
        let mut m = self
            .counts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(n) = m.get_mut(&self.user) {
            *n -= 1;
            if *n == 0 {
                m.remove(&self.user);
            }
        }
    }
}

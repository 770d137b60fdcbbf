//! The agent's side of the control channel: one WebSocket to the server
//! ([`protocol::CONNECT_PATH`]), opened as an HTTP/1.1 upgrade with reqwest (so TLS, proxies
//! and the system's CA roots are reqwest's) and then spoken by tokio-tungstenite.

use reqwest::StatusCode;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::client::generate_key;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};

use crate::containers::protocol;

pub type Socket = WebSocketStream<reqwest::Upgraded>;

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The server refuses the credential: the container was deleted.
    #[error("the server refuses this container's credential (the container was deleted)")]
    Refused,
    #[error("{0}")]
    Failed(String),
}

/// Opens the control channel with the agent's credential.
pub async fn connect(
    http: &reqwest::Client,
    base: &str,
    credential: &str,
) -> Result<Socket, ConnectError> {
    let key = generate_key();
    let url = format!("{base}{}", protocol::CONNECT_PATH);
    let resp = http
        .get(&url)
        .header("Connection", "Upgrade")
        .header("Upgrade", "websocket")
        .header("Sec-WebSocket-Version", "13")
        .header("Sec-WebSocket-Key", &key)
        .bearer_auth(credential)
        .send()
        .await
        .map_err(|e| ConnectError::Failed(format!("cannot reach {url}: {e}")))?;
    match resp.status() {
        StatusCode::SWITCHING_PROTOCOLS => {}
        StatusCode::UNAUTHORIZED => return Err(ConnectError::Refused),
        other => {
            let body = resp.text().await.unwrap_or_default();
            let body: String = body.chars().take(300).collect();
            return Err(ConnectError::Failed(format!(
                "{url} answered {other}: {body}"
            )));
        }
    }
    let accept = resp
        .headers()
        .get("sec-websocket-accept")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    if accept != derive_accept_key(key.as_bytes()) {
        return Err(ConnectError::Failed(format!(
            "{url} did not accept the WebSocket handshake (wrong Sec-WebSocket-Accept)"
        )));
    }
    let io = resp
        .upgrade()
        .await
        .map_err(|e| ConnectError::Failed(format!("upgrading {url}: {e}")))?;
    let cfg = WebSocketConfig::default()
        .max_message_size(Some(1 << 20))
        .max_frame_size(Some(1 << 20));
    Ok(WebSocketStream::from_raw_socket(io, Role::Client, Some(cfg)).await)
}

//! What the server and a container's agent say on the agent's control WebSocket
//! (`GET /api/v1/agent/connect`, `Authorization: Bearer dmag_...`): JSON text messages, each
//! with a `type`. The server speaks first, with the manifest; the agent answers with `hello`
//! and then a `heartbeat` every `heartbeat_seconds`. The server derives the container's
//! state from when heartbeats arrive, never from the agent saying goodbye.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use crate::gateway::modules::user_containers::Resources;

/// The control channel's path on the server.
pub const CONNECT_PATH: &str = "/api/v1/agent/connect";
/// The agent's first call, with its one-time token.
pub const ENROLL_PATH: &str = "/api/v1/agent/enroll";

/// Server to agent.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ToAgent {
    /// What the agent runs and offers; sent first, and again whenever it changes.
    Manifest(AgentManifest),
    /// The container was deleted: the agent stops (its credential no longer works).
    Bye { reason: String },
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AgentManifest {
    pub container_id: String,
    pub project_id: String,
    /// The catalogue entry (`jupyterlab`, `terminal`, `vscode`, `custom`): which app the
    /// agent starts.
    pub image: String,
    /// A custom or organization image's app: a shell command the agent starts and keeps
    /// running (none: the image's own processes serve).
    #[serde(default)]
    pub command: Option<String>,
    pub heartbeat_seconds: u64,
    pub services: Vec<AgentService>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AgentService {
    pub name: String,
    /// `https://<label>.containers.<domain>/`.
    pub label: String,
    /// Where it listens inside the container (127.0.0.1 only).
    pub port: u16,
    pub terminal: bool,
}

/// Agent to server.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum FromAgent {
    /// After each (re)connect.
    Hello { version: String },
    /// Every `heartbeat_seconds`: what the container uses and which services answer.
    Heartbeat {
        #[serde(default)]
        resources: Option<Resources>,
        /// Service name -> it accepts connections on its port.
        #[serde(default)]
        health: BTreeMap<String, bool>,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_read_as_they_are_written() {
        let m = ToAgent::Manifest(AgentManifest {
            container_id: "c".into(),
            project_id: "p".into(),
            image: "terminal".into(),
            command: None,
            heartbeat_seconds: 5,
            services: vec![AgentService {
                name: "term".into(),
                label: "term-abcdefgh".into(),
                port: 7681,
                terminal: true,
            }],
        });
        let text = serde_json::to_string(&m).unwrap();
        assert!(text.starts_with(r#"{"type":"manifest","#), "{text}");
        assert_eq!(serde_json::from_str::<ToAgent>(&text).unwrap(), m);
        let h: FromAgent =
            serde_json::from_str(r#"{"type":"heartbeat","health":{"term":true}}"#).unwrap();
        assert_eq!(
            h,
            FromAgent::Heartbeat {
                resources: None,
                health: BTreeMap::from([("term".into(), true)])
            }
        );
    }
}

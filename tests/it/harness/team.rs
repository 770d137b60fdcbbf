//! One organization with a project and one person per role (owner, editor, viewer, outsider),
//! each signed in and with a personal access token; and the server options most tests use.

use reqwest::StatusCode;
use serde_json::{Value, json};

use super::browser::{Browser, signed_up};
use super::{Options, Server, fresh_pg_database};

pub async fn token_of(b: &Browser) -> (String, String) {
    let (st, body) = b.post("/api/v1/me/tokens", json!({"name": "collab"})).await;
    assert_eq!(st, StatusCode::CREATED, "{body}");
    (
        body["token"].as_str().unwrap().to_string(),
        body["id"].as_str().unwrap().to_string(),
    )
}

/// An organization with a project and one person per role, each with a token.
pub struct Team {
    pub owner: Browser,
    pub editor: Browser,
    pub viewer: Browser,
    pub outsider: Browser,
    pub owner_id: String,
    pub editor_id: String,
    pub org: String,
    pub pid: String,
    pub t_owner: String,
    pub t_editor: String,
    pub t_viewer: String,
    pub t_viewer_id: String,
    pub t_out: String,
    pub base: String,
}

impl Team {
    pub async fn event(&self, who: &Browser, ev: Value) -> (StatusCode, Value) {
        who.post(&format!("/api/v1/projects/{}/events", self.pid), ev)
            .await
    }

    pub async fn document(&self, who: &Browser) -> Value {
        let (st, d) = who
            .get(&format!("/api/v1/projects/{}/document", self.pid))
            .await;
        assert_eq!(st, StatusCode::OK, "{d}");
        d
    }

    pub async fn gateway(&self, who: &Browser) -> Value {
        let (st, g) = who.get(&format!("/api/v1/orgs/{}/gateway", self.org)).await;
        assert_eq!(st, StatusCode::OK, "{g}");
        g
    }
}

pub fn options(pg: Option<String>, env: &[(&str, &str)]) -> Options {
    let mut opts = Options {
        dns: false,
        vpn: false,
        ..Options::default()
    };
    if let Some(url) = pg {
        opts = opts.env("DEMIURGE_DATABASE__URL", &url);
    }
    for (k, v) in env {
        opts = opts.env(k, v);
    }
    opts
}

pub async fn pg_url(pg: bool) -> Option<String> {
    if pg {
        Some(fresh_pg_database().await)
    } else {
        None
    }
}

pub async fn team(server: &Server) -> Team {
    let (owner, me) = signed_up(server, "owner").await;
    let (editor, editor_me) = signed_up(server, "editor").await;
    let viewer = signed_up(server, "viewer").await.0;
    let outsider = signed_up(server, "outsider").await.0;
    let (_, org) = owner.post("/api/v1/orgs", json!({"name": "Collab"})).await;
    let org = org["id"].as_str().unwrap().to_string();
    let (_, p) = owner
        .post(
            &format!("/api/v1/orgs/{org}/projects"),
            json!({"name": "Doc"}),
        )
        .await;
    let pid = p["id"].as_str().unwrap().to_string();
    for (who, role) in [("editor", "project:editor"), ("viewer", "project:viewer")] {
        owner
            .post(
                &format!("/api/v1/orgs/{org}/members"),
                json!({"user": who, "role": "org:member"}),
            )
            .await;
        let (st, _) = owner
            .post(
                &format!("/api/v1/projects/{pid}/members"),
                json!({"user": who, "role": role}),
            )
            .await;
        assert_eq!(st, StatusCode::NO_CONTENT);
    }
    let (t_owner, _) = token_of(&owner).await;
    let (t_editor, _) = token_of(&editor).await;
    let (t_viewer, t_viewer_id) = token_of(&viewer).await;
    let (t_out, _) = token_of(&outsider).await;
    let base = format!(
        "ws://localhost:{}/api/v1/projects/{pid}",
        server.http.port()
    );
    let owner_id = me["id"]
        .as_str()
        .or_else(|| me["user"]["id"].as_str())
        .unwrap_or_default()
        .to_string();
    let editor_id = editor_me["id"]
        .as_str()
        .or_else(|| editor_me["user"]["id"].as_str())
        .unwrap_or_default()
        .to_string();
    Team {
        owner,
        editor,
        editor_id,
        viewer,
        outsider,
        owner_id,
        org,
        pid,
        t_owner,
        t_editor,
        t_viewer,
        t_viewer_id,
        t_out,
        base,
    }
}

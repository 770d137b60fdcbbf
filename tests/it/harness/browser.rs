//! A browser-like HTTP client: keeps cookies and sends the server's Origin, as a browser's
//! `fetch` from one of our pages would.

use reqwest::StatusCode;
use serde_json::{Value, json};

use super::Server;

/// A browser-like client: keeps cookies, sends the Origin of the server.
pub struct Browser {
    pub http: reqwest::Client,
    pub base: String,
    pub origin: String,
    /// The server's setup-code file: a sign-up while the server has no account carries the
    /// code, as the operator who read it in the log would type it.
    pub setup_code: std::path::PathBuf,
}

impl Browser {
    pub fn new(server: &Server) -> Browser {
        let http = crate::harness::http_builder()
            .cookie_store(true)
            .no_proxy()
            .build()
            .unwrap();
        let base = server.url("");
        Browser {
            http,
            origin: base.clone(),
            base,
            setup_code: server.data_dir.join("setup-code"),
        }
    }

    /// `body` with the server's setup code, while it has no account (a sign-up body).
    pub fn with_setup_code(&self, mut body: Value) -> Value {
        if let Some(fields) = body.as_object_mut()
            && !fields.contains_key("setup_code")
            && let Ok(code) = std::fs::read_to_string(&self.setup_code)
        {
            fields.insert("setup_code".into(), Value::String(code.trim().to_string()));
        }
        body
    }

    pub async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        let body = if path == "/api/v1/auth/signup" {
            self.with_setup_code(body)
        } else {
            body
        };
        self.send(reqwest::Method::POST, path, body).await
    }

    /// A JSON request with the page's `Origin`, as the browser's script sends it.
    async fn send(&self, method: reqwest::Method, path: &str, body: Value) -> (StatusCode, Value) {
        let r = self
            .http
            .request(method, format!("{}{path}", self.base))
            .header("Origin", &self.origin)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = r.status();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    pub async fn put(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.send(reqwest::Method::PUT, path, body).await
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap();
        let status = r.status();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    pub async fn delete(&self, path: &str) -> StatusCode {
        self.http
            .delete(format!("{}{path}", self.base))
            .header("Origin", &self.origin)
            .send()
            .await
            .unwrap()
            .status()
    }
}

/// Signs a new browser up as `name` (`<name>@example.test`); returns it and the new user.
pub async fn signed_up(server: &Server, name: &str) -> (Browser, Value) {
    let b = Browser::new(server);
    let (st, body) = b
        .post(
            "/api/v1/auth/signup",
            json!({"username": name, "email": format!("{name}@example.test"), "password": "correct horse battery"}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{body}");
    (b, body)
}

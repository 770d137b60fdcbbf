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
        }
    }

    pub async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        let r = self
            .http
            .post(format!("{}{path}", self.base))
            .header("Origin", &self.origin)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = r.status();
        (status, r.json().await.unwrap_or(Value::Null))
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

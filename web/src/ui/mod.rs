//! The pages: sign-in, sign-up, forgotten password, account settings. They talk to the server
//! only through the public JSON API, from the browser (`assets/demiurge.js`), so the browser's
//! session cookie and Origin are what authorize every change, as for any other client.

pub mod admin;
pub mod home;
pub mod images;
pub mod orgs;
pub mod people;
pub mod settings;
pub mod signin;

use dioxus::prelude::*;
use serde::Deserialize;
use serde_json::Value;

/// An API answer as the browser got it.
#[derive(Debug, Clone, Deserialize)]
pub struct Reply {
    pub status: u16,
    #[serde(default)]
    pub body: Value,
    #[serde(default)]
    pub retry_after: Option<String>,
}

impl Reply {
    pub fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The stable error code (`invalid_credentials`, ...), if any.
    pub fn code(&self) -> &str {
        self.body["error"].as_str().unwrap_or("")
    }

    /// What to tell the person.
    pub fn message(&self) -> String {
        if self.status == 429 {
            return match &self.retry_after {
                Some(s) => format!("Too many attempts. Try again in {s} seconds."),
                None => "Too many attempts. Try again in a moment.".into(),
            };
        }
        match self.body["message"].as_str() {
            Some(m) if !m.is_empty() => capitalize(m),
            _ => format!("Something went wrong (HTTP {}).", self.status),
        }
    }
}

fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

fn js(v: &impl serde::Serialize) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "null".into())
}

/// Calls the JSON API from the browser.
pub async fn call(method: &str, path: &str, body: Option<Value>) -> Reply {
    let script = format!(
        "return await dmg.api({}, {}, {});",
        js(&method),
        js(&path),
        body.as_ref().map(js).unwrap_or_else(|| "null".into())
    );
    document::eval(&script)
        .join::<Reply>()
        .await
        .unwrap_or_else(|e| Reply {
            status: 0,
            body: serde_json::json!({"error": "ui", "message": format!("the page lost its connection ({e})")}),
            retry_after: None,
        })
}

pub async fn get(path: &str) -> Reply {
    call("GET", path, None).await
}

pub async fn post(path: &str, body: Value) -> Reply {
    call("POST", path, Some(body)).await
}

/// What the browser's authenticator answered.
#[derive(Debug, Clone, Deserialize)]
pub struct PasskeyAnswer {
    pub ok: bool,
    #[serde(default)]
    pub credential: Value,
    #[serde(default)]
    pub message: String,
}

/// Runs `navigator.credentials.create()` (`create`) or `.get()` with the server's options.
pub async fn passkey(create: bool, options: &Value) -> PasskeyAnswer {
    let f = if create {
        "passkeyCreate"
    } else {
        "passkeyGet"
    };
    document::eval(&format!("return await dmg.{f}({});", js(options)))
        .join::<PasskeyAnswer>()
        .await
        .unwrap_or_else(|e| PasskeyAnswer {
            ok: false,
            credential: Value::Null,
            message: e.to_string(),
        })
}

/// A whole passkey ceremony: options from `start`, the authenticator, the answer to `finish`.
/// `body` goes to `start`. Ok with `finish`'s reply, or the message to show.
/// Runs a passkey ceremony: the server's start, the browser's authenticator, the server's
/// finish. A refusal comes back as the server's answer (or, for the authenticator, one
/// made here with status 0), so callers can read its code.
pub async fn passkey_ceremony(
    create: bool,
    start: &str,
    body: Value,
    finish: &str,
) -> Result<Reply, Reply> {
    let started = post(start, body).await;
    if !started.ok() {
        if started.status == 404 && !create {
            return Err(local_refusal("This account has no passkey here."));
        }
        return Err(started);
    }
    let answer = passkey(create, &started.body["options"]).await;
    if !answer.ok {
        return Err(local_refusal(&answer.message));
    }
    let r = post(
        finish,
        serde_json::json!({"ceremony": started.body["ceremony"], "credential": answer.credential}),
    )
    .await;
    if r.ok() { Ok(r) } else { Err(r) }
}

fn local_refusal(message: &str) -> Reply {
    Reply {
        status: 0,
        body: serde_json::json!({"error": "passkey", "message": message}),
        retry_after: None,
    }
}

/// A button that asks once more before it acts: `label` (class `class`), then `confirm`
/// (class `<class>-confirm`) beside Cancel.
#[component]
pub fn ConfirmButton(
    label: String,
    confirm: String,
    class: String,
    onconfirm: EventHandler<()>,
) -> Element {
    let mut asking = use_signal(|| false);
    if asking() {
        rsx! {
            span { class: "confirm",
                button { class: "danger small {class}-confirm", r#type: "button",
                    onclick: move |_| {
                        asking.set(false);
                        onconfirm.call(());
                    },
                    "{confirm}"
                }
                button { class: "secondary small", r#type: "button", onclick: move |_| asking.set(false), "Cancel" }
            }
        }
    } else {
        rsx! { button { class: "secondary small {class}", r#type: "button", onclick: move |_| asking.set(true), "{label}" } }
    }
}

/// A resource that GETs `path` from the API (restart it to load again).
pub fn use_get(path: String) -> Resource<Reply> {
    use_resource(move || {
        let path = path.clone();
        async move { get(&path).await }
    })
}

/// A full page load of `path` (after a sign-in, the new cookie takes effect).
pub fn go(path: &str) {
    let _ = document::eval(&format!("dmg.go({});", js(&path)));
}

/// Only a path on this site.
pub fn safe_path(p: &str) -> String {
    // Browsers drop tabs and newlines from addresses, so "/\t/evil.example" would become
    // "//evil.example", another site: no control characters at all.
    if p.starts_with('/')
        && !p.starts_with("//")
        && !p.contains('\\')
        && p.len() <= 512
        && !p.chars().any(char::is_control)
    {
        p.to_string()
    } else {
        "/".into()
    }
}

/// A query parameter of `query` ("?a=1&b=2").
pub fn query_param(query: &str, name: &str) -> Option<String> {
    query
        .trim_start_matches('?')
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| percent_decode(v))
}

fn percent_decode(s: &str) -> String {
    fn hex(b: u8) -> Option<u8> {
        (b as char).to_digit(16).map(|d| d as u8)
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h * 16 + l);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A message line: an error (role alert) or a notice.
#[component]
pub fn Notice(text: String, error: bool) -> Element {
    if text.is_empty() {
        return rsx! {};
    }
    rsx! {
        p { class: if error { "notice error" } else { "notice ok" }, role: if error { "alert" } else { "status" }, "{text}" }
    }
}

/// The shell's copy of `/api/v1/me`: `restart()` it after changing the profile, so the
/// header shows the change.
#[derive(Clone, Copy)]
pub struct MeRefresh(pub Resource<Reply>);

/// The items of a list answer (none while loading or on a refusal).
pub fn list(r: &Option<Reply>) -> Vec<Value> {
    r.as_ref()
        .filter(|r| r.ok())
        .and_then(|r| r.body.as_array().cloned())
        .unwrap_or_default()
}

/// A short date from the API's `YYYY-MM-DDTHH:MM:SS...`.
pub fn short_time(v: &Value) -> String {
    v.as_str()
        .map(|s| s.chars().take(16).collect::<String>().replace('T', " "))
        .unwrap_or_else(|| "never".into())
}

#[cfg(test)]
mod tests {
    use super::safe_path;

    #[test]
    fn return_paths_stay_on_this_site() {
        assert_eq!(safe_path("/orgs/x?tab=members"), "/orgs/x?tab=members");
        for other in [
            "//evil.example",
            "/\\evil.example",
            "/\t/evil.example",
            "/\n/evil.example",
            "https://evil.example",
            "evil.example",
        ] {
            assert_eq!(safe_path(other), "/", "{other:?}");
        }
        assert_eq!(safe_path(&format!("/{}", "a".repeat(600))), "/");
    }
}

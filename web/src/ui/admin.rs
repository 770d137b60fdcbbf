//! The instance admin's page (`/admin`): what is wrong with the server (diagnostics like
//! Vaultwarden's), the instance's settings (name, open sign-up), the accounts (search,
//! disable, enable, make admin, end sessions, reset sign-in) and the audit log. Everything comes from `/api/v1/admin/*`, which answers 404 to anyone else, so
//! the page shows "not found" to them too.

use dioxus::prelude::*;
use serde_json::{Value, json};

use super::{Notice, call, get, list, short_time};

fn s(v: &Value, k: &str) -> String {
    v[k].as_str().unwrap_or_default().to_string()
}

/// Bytes as people read them.
fn bytes(v: &Value) -> String {
    let Some(n) = v.as_f64() else {
        return "unknown".into();
    };
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut x = n;
    let mut u = 0;
    while x >= 1024.0 && u < UNITS.len() - 1 {
        x /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n:.0} B")
    } else {
        format!("{x:.1} {}", UNITS[u])
    }
}

fn duration(secs: u64) -> String {
    let (d, h, m) = (secs / 86_400, secs / 3600 % 24, secs / 60 % 60);
    match (d, h) {
        (0, 0) => format!("{m} min"),
        (0, _) => format!("{h} h {m} min"),
        _ => format!("{d} d {h} h"),
    }
}

#[component]
pub fn Admin() -> Element {
    let diag = use_resource(|| async { get("/api/v1/admin/diagnostics").await });
    let Some(reply) = diag.read().clone() else {
        return rsx! { section { class: "card", p { "Loading…" } } };
    };
    if reply.status == 404 {
        return rsx! {
            section { class: "card", id: "admin-missing",
                h2 { "Not found" }
                p { "There is no page here. " a { href: "/", "Home" } }
            }
        };
    }
    if !reply.ok() {
        return rsx! { section { class: "card", Notice { text: reply.message(), error: true } } };
    }
    rsx! {
        div { class: "settings", id: "admin",
            Diagnostics { d: reply.body.clone() }
            InstanceSettings {}
            MailTest {}
            Users {}
            Audit {}
        }
    }
}

#[component]
fn Diagnostics(d: Value) -> Element {
    let db = &d["database"];
    let skew = db["clock_skew_ms"].as_i64().unwrap_or(0);
    let free = d["disk"]["free_bytes"].as_f64().unwrap_or(0.0);
    let total = d["disk"]["total_bytes"].as_f64().unwrap_or(0.0);
    let low_disk = total > 0.0 && free / total < 0.1;
    let c = &d["collaboration"];
    let backups = &d["backups"];
    let rows: Vec<(String, String, bool)> = vec![
        ("Version".into(), s(&d, "version"), false),
        (
            "Running for".into(),
            duration(d["uptime_seconds"].as_u64().unwrap_or(0)),
            false,
        ),
        (
            "Database".into(),
            format!(
                "{}, {}, a round trip in {:.1} ms",
                s(db, "backend"),
                bytes(&db["size_bytes"]),
                db["latency_ms"].as_f64().unwrap_or(0.0)
            ),
            db["error"].is_string(),
        ),
        (
            "Clocks".into(),
            if skew.abs() < 2000 {
                "the server's and the database's agree".into()
            } else {
                format!("the database's clock is {skew} ms off the server's")
            },
            skew.abs() >= 2000,
        ),
        (
            "Disk".into(),
            format!(
                "{} free of {} ({})",
                bytes(&d["disk"]["free_bytes"]),
                bytes(&d["disk"]["total_bytes"]),
                s(&d["disk"], "path")
            ),
            low_disk,
        ),
        (
            "Collaboration".into(),
            format!(
                "{} gateways, {} documents loaded ({}), {} people connected",
                c["gateways_running"],
                c["documents_loaded"],
                bytes(&c["document_bytes"]),
                c["clients_connected"]
            ),
            false,
        ),
        (
            "Backups".into(),
            match backups["every_seconds"].as_u64() {
                None => "none scheduled ([backup] every); take them with `demiurge backup`".into(),
                Some(e) => format!(
                    "every {}, last {}{}",
                    duration(e),
                    short_time(&backups["last_at"]),
                    backups["last_error"]
                        .as_str()
                        .map(|e| format!(" — failed: {e}"))
                        .unwrap_or_default()
                ),
            },
            backups["last_error"].is_string(),
        ),
        ("Accounts".into(), d["accounts"].to_string(), false),
    ];
    let certs = d["certificates"]["certificates"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let subsystems = d["subsystems"].as_array().cloned().unwrap_or_default();
    rsx! {
        section { class: "card", id: "diagnostics",
            h2 { "This server" }
            table { class: "facts",
                tbody {
                    for (name, value, bad) in rows {
                        tr { key: "{name}", class: if bad { "bad" } else { "" },
                            th { "{name}" }
                            td { "{value}" }
                        }
                    }
                }
            }
            h3 { "Subsystems" }
            ul { class: "rows", id: "admin-subsystems",
                for x in subsystems.iter() {
                    li { key: "{s(x, \"name\")}",
                        span { "{s(x, \"name\")}" }
                        span { class: "pill {s(x, \"state\")}", "{s(x, \"state\")}" }
                        span { class: "muted", "{s(x, \"detail\")}" }
                    }
                }
            }
            h3 { "Certificates" }
            if d["certificates"]["acme"] != true {
                p { class: "muted", id: "no-acme",
                    "ACME is off: HTTPS serves a self-signed certificate. Set [acme] email to get certificates from Let's Encrypt."
                }
            }
            ul { class: "rows", id: "admin-certificates",
                for x in certs.iter() {
                    li { key: "{s(x, \"name\")}",
                        span { "{x[\"domains\"].as_array().map(|d| d.iter().filter_map(|v| v.as_str()).collect::<Vec<_>>().join(\", \")).unwrap_or_default()}" }
                        span { class: "pill {s(x, \"state\")}", "{s(x, \"state\")}" }
                        span { class: "muted", "expires {short_time(&x[\"not_after\"])}, next attempt {short_time(&x[\"next_attempt\"])}" }
                        if let Some(e) = x["last_error"].as_str() {
                            span { class: "notice error", "{e}" }
                        }
                    }
                }
            }
        }
    }
}

/// Where a setting's value comes from, for people.
fn origin(setting: &Value) -> String {
    if setting["set_here"].is_object() {
        format!(
            "Set here {} (the config file says {}).",
            short_time(&setting["set_here"]["at"]),
            setting["config_file"]
        )
    } else {
        "From the config file.".into()
    }
}

/// The instance's name and whether anyone may sign up.
#[component]
fn InstanceSettings() -> Element {
    let mut current = use_resource(|| async { get("/api/v1/admin/settings").await });
    let mut name = use_signal(|| None::<String>);
    let mut error = use_signal(String::new);
    let mut saved = use_signal(String::new);
    let body = current
        .read()
        .as_ref()
        .filter(|r| r.ok())
        .map(|r| r.body.clone());
    let Some(body) = body else {
        return rsx! {};
    };
    let shown_name = name().unwrap_or_else(|| s(&body["name"], "value"));
    let open = body["open_signup"]["value"] == true;
    let change = move |patch: Value, done: &'static str| {
        spawn(async move {
            error.set(String::new());
            saved.set(String::new());
            let r = call("PATCH", "/api/v1/admin/settings", Some(patch)).await;
            if r.ok() {
                name.set(None);
                saved.set(done.into());
                current.restart();
            } else {
                error.set(r.message());
            }
        });
    };
    rsx! {
        section { class: "card", id: "admin-settings",
            h2 { "Settings" }
            Notice { text: error(), error: true }
            Notice { text: saved(), error: false }
            form { class: "row", id: "instance-name-form",
                onsubmit: {
                    let typed = shown_name.clone();
                    move |_| change(json!({"name": typed.trim()}), "The name is changed.")
                },
                label { "Name of this server"
                    input { id: "instance-name-input", maxlength: "64", value: "{shown_name}",
                        oninput: move |e| name.set(Some(e.value())) }
                }
                button { id: "instance-name-save", r#type: "submit", "Save" }
            }
            p { class: "muted", id: "instance-name-origin", "{origin(&body[\"name\"])}" }
            label { class: "check",
                input { id: "open-signup", r#type: "checkbox", checked: open,
                    onchange: move |e| {
                        let on = e.checked();
                        change(json!({"open_signup": on}), if on { "Anyone may now create an account." } else { "Sign-up is closed: only people with an invitation can create an account." })
                    } }
                " Anyone may create an account"
            }
            p { class: "muted", id: "open-signup-origin",
                if open { "Open: anyone who reaches this server can sign up. " } else { "Closed: only people holding an invitation can sign up. " }
                "{origin(&body[\"open_signup\"])}"
            }
        }
    }
}

/// Sends a test mail and shows the SMTP server's answer.
#[component]
fn MailTest() -> Element {
    let me = use_resource(|| async { get("/api/v1/me").await });
    let mut to = use_signal(String::new);
    let mut answer = use_signal(|| None::<(bool, String)>);
    let mut busy = use_signal(|| false);
    if to().is_empty()
        && let Some(r) = me.read().as_ref().filter(|r| r.ok())
    {
        let email = s(&r.body, "email");
        if !email.is_empty() {
            to.set(email);
        }
    }
    let on_send = move |_| {
        spawn(async move {
            busy.set(true);
            let r = super::post("/api/v1/admin/mail-test", json!({"to": to().trim()})).await;
            busy.set(false);
            answer.set(Some(if r.ok() {
                (r.body["sent"] == true, s(&r.body, "answer"))
            } else {
                (false, r.message())
            }));
        });
    };
    rsx! {
        section { class: "card", id: "admin-mail",
            h2 { "Mail" }
            p { class: "muted", "Sign-in links, invitations and notices go out by mail. Send one to see what the mail server says." }
            div { class: "row",
                input { id: "mail-test-to", r#type: "email", "aria-label": "Send a test mail to",
                    value: "{to}", oninput: move |e| to.set(e.value()) }
                button { id: "mail-test-send", disabled: busy(), onclick: on_send, "Send a test mail" }
            }
            if let Some((sent, text)) = answer() {
                p { id: "mail-test-answer", class: if sent { "notice ok" } else { "notice error" },
                    role: "status", "data-sent": if sent { "true" } else { "false" },
                    if sent { "Sent. The mail server answered: {text}" } else { "Not sent: {text}" }
                }
            }
        }
    }
}

#[component]
fn Users() -> Element {
    let mut q = use_signal(String::new);
    let mut users = use_resource(move || async move {
        let query = q();
        get(&format!(
            "/api/v1/admin/users?q={}",
            super::signin::url_encode(query.trim())
        ))
        .await
    });
    let mut error = use_signal(String::new);
    let mut done = use_signal(String::new);
    // The account whose "Reset sign-in" was clicked once (a second click confirms).
    let mut confirming = use_signal(|| None::<String>);
    let act = move |method: &'static str, path: String, body: Option<Value>| {
        spawn(async move {
            error.set(String::new());
            done.set(String::new());
            let r = call(method, &path, body).await;
            if !r.ok() {
                error.set(r.message());
            } else if path.ends_with("/reset-sign-in") {
                let b = &r.body;
                done.set(format!(
                    "Sign-in reset: {}{} passkey(s) removed, {} session(s) ended; {}",
                    if b["second_factor_removed"] == true {
                        "authenticator app removed, "
                    } else {
                        ""
                    },
                    b["passkeys_removed"],
                    b["sessions_ended"],
                    match b["link_sent_to"].as_str() {
                        Some(to) => format!("a link to choose a new password went to {to}."),
                        None => format!("the link could not be sent: {}", s(b, "link_error")),
                    }
                ));
            }
            confirming.set(None);
            users.restart();
        });
    };
    let rows = list(&users.read());
    rsx! {
        section { class: "card", id: "admin-users",
            h2 { "Accounts" }
            input { id: "admin-user-search", r#type: "search", placeholder: "Search by username, name or email",
                "aria-label": "Search accounts",
                value: "{q}", oninput: move |e| q.set(e.value()) }
            Notice { text: error(), error: true }
            Notice { text: done(), error: false }
            ul { class: "rows",
                for x in rows.iter() {
                    li { key: "{s(x, \"id\")}", "data-user": "{s(x, \"username\")}",
                        span { strong { "{s(x, \"display_name\")}" } " @{s(x, \"username\")}" }
                        span { class: "muted", "{s(x, \"email\")}, since {short_time(&x[\"created_at\"])}" }
                        if x["is_admin"] == true { span { class: "pill running", "administrator" } }
                        if x["disabled_at"].is_string() { span { class: "pill failed", "disabled" } }
                        if x["disabled_at"].is_string() {
                            button { class: "small", "data-action": "enable", onclick: {
                                let path = format!("/api/v1/admin/users/{}", s(x, "id"));
                                move |_| act("PATCH", path.clone(), Some(json!({"disabled": false})))
                            }, "Enable" }
                        } else {
                            button { class: "danger small", "data-action": "disable", onclick: {
                                let path = format!("/api/v1/admin/users/{}", s(x, "id"));
                                move |_| act("PATCH", path.clone(), Some(json!({"disabled": true})))
                            }, "Disable" }
                        }
                        button { class: "small", "data-action": if x["is_admin"] == true { "unmake-admin" } else { "make-admin" }, onclick: {
                            let path = format!("/api/v1/admin/users/{}", s(x, "id"));
                            let make = x["is_admin"] != true;
                            move |_| act("PATCH", path.clone(), Some(json!({"is_admin": make})))
                        }, if x["is_admin"] == true { "Remove administrator" } else { "Make administrator" } }
                        button { class: "small", "data-action": "end-sessions", onclick: {
                            let path = format!("/api/v1/admin/users/{}/sessions", s(x, "id"));
                            move |_| act("DELETE", path.clone(), None)
                        }, "Sign out everywhere" }
                        if confirming().as_deref() == Some(s(x, "id").as_str()) {
                            button { class: "danger small", "data-action": "reset-sign-in-confirm", onclick: {
                                let path = format!("/api/v1/admin/users/{}/reset-sign-in", s(x, "id"));
                                move |_| act("POST", path.clone(), None)
                            }, "Remove their second factor and passkeys, and email a reset link" }
                        } else {
                            button { class: "small", "data-action": "reset-sign-in", onclick: {
                                let id = s(x, "id");
                                move |_| confirming.set(Some(id.clone()))
                            }, "Reset sign-in" }
                        }
                    }
                }
            }
        }
    }
}

/// Kinds of event a person may filter the log by, with their names.
const KINDS: [(&str, &str); 7] = [
    ("", "All events"),
    ("sign_in", "Sign-ins"),
    ("sign_in_failed", "Failed sign-ins"),
    ("second_factor_failed", "Failed second steps"),
    ("token_created", "Tokens made"),
    ("role_changed", "Role changes"),
    ("admin", "Administrator actions"),
];

#[component]
fn Audit() -> Element {
    let mut kind = use_signal(String::new);
    let events = use_resource(move || async move {
        let k = kind();
        get(&format!("/api/v1/admin/audit?limit=100&kind={k}")).await
    });
    let rows = list(&events.read());
    rsx! {
        section { class: "card", id: "admin-audit",
            h2 { "Audit log" }
            select { id: "audit-kind", "aria-label": "Which events",
                onchange: move |e| kind.set(e.value()),
                for (k, name) in KINDS {
                    option { key: "{k}", value: "{k}", selected: kind() == k, "{name}" }
                }
            }
            if rows.is_empty() { p { class: "muted", "Nothing yet." } }
            table { class: "audit",
                tbody {
                    for x in rows.iter() {
                        tr { key: "{s(x, \"id\")}", "data-kind": "{s(x, \"kind\")}",
                            td { class: "muted", "{short_time(&x[\"at\"])}" }
                            td { "{s(x, \"detail\")}" }
                            td { class: "muted", "{s(x, \"ip\")}" }
                        }
                    }
                }
            }
        }
    }
}

//! Home (`/`) for someone signed in: the boards they opened lately (with their organization
//! and who else was there), their organizations, and a "new board" action. A new account
//! finds its first board here, ready to open.

use dioxus::prelude::*;
use serde_json::{Value, json};

use super::{Notice, get, go, list, post};

fn s(v: &Value, k: &str) -> String {
    v[k].as_str().unwrap_or_default().to_string()
}

#[component]
pub fn Home() -> Element {
    let recent = use_resource(|| async { get("/api/v1/me/recent-boards").await });
    let orgs = use_resource(|| async { get("/api/v1/orgs").await });
    let org_rows = list(&orgs.read());
    let recent_rows = list(&recent.read());
    // Nothing opened yet: the boards of the personal workspace (a new account's first one).
    // Read from `orgs` here, so it runs again once the organizations are in.
    let first = use_resource(move || {
        let personal = list(&orgs.read())
            .iter()
            .find(|o| o["personal"] == true)
            .map(|o| s(o, "id"));
        async move {
            match personal {
                Some(id) => Some(get(&format!("/api/v1/orgs/{id}/projects")).await),
                None => None,
            }
        }
    });
    let first_rows: Vec<Value> = first
        .read()
        .as_ref()
        .and_then(|r| r.as_ref())
        .filter(|r| r.ok())
        .and_then(|r| r.body.as_array().cloned())
        .unwrap_or_default();
    let loaded = recent.read().is_some();

    let mut name = use_signal(String::new);
    let mut target = use_signal(String::new);
    let mut error = use_signal(String::new);
    let mut busy = use_signal(|| false);
    let default_org = org_rows
        .iter()
        .find(|o| o["personal"] == true)
        .or(org_rows.first())
        .map(|o| s(o, "id"))
        .unwrap_or_default();
    let shown_org = default_org.clone();
    let on_create = move |_| {
        let org = if target().is_empty() {
            default_org.clone()
        } else {
            target()
        };
        spawn(async move {
            busy.set(true);
            error.set(String::new());
            let board = if name().trim().is_empty() {
                "Untitled board".to_string()
            } else {
                name().trim().to_string()
            };
            let r = post(
                &format!("/api/v1/orgs/{org}/projects"),
                json!({"name": board}),
            )
            .await;
            busy.set(false);
            if r.ok() {
                go(&format!("/projects/{}", s(&r.body, "id")));
            } else {
                error.set(r.message());
            }
        });
    };

    rsx! {
        div { class: "home", id: "home",
            section { class: "card", id: "recent-boards",
                h2 { "Recent boards" }
                if !recent_rows.is_empty() {
                    ul { class: "rows boards",
                        for b in recent_rows.iter() {
                            li { key: "{s(b, \"id\")}", "data-board": "{s(b, \"id\")}",
                                a { class: "board-link", href: "/projects/{s(b, \"id\")}", "{s(b, \"name\")}" }
                                span { class: "muted", "{s(b, \"org_name\")}" }
                                if let Some(others) = b["others"].as_array().filter(|o| !o.is_empty()) {
                                    span { class: "muted others",
                                        "with {others.iter().filter_map(|o| o.as_str()).collect::<Vec<_>>().join(\", \")}"
                                    }
                                }
                                span { class: "muted", "opened {super::people::ago(&b[\"opened_at\"])}" }
                            }
                        }
                    }
                } else if !first_rows.is_empty() {
                    p { class: "muted", "You have not opened a board yet. Yours is ready:" }
                    ul { class: "rows boards",
                        for b in first_rows.iter() {
                            li { key: "{s(b, \"id\")}", "data-board": "{s(b, \"id\")}",
                                a { class: "board-link", href: "/projects/{s(b, \"id\")}", "{s(b, \"name\")}" }
                            }
                        }
                    }
                } else if loaded {
                    p { class: "muted", id: "no-boards",
                        "No boards yet. Make one below, or ask a teammate to add you to theirs."
                    }
                }
                Notice { text: error(), error: true }
                form { class: "row", id: "new-board", onsubmit: on_create,
                    input { id: "new-board-name", placeholder: "Board name", "aria-label": "New board's name",
                        value: "{name}", oninput: move |e| name.set(e.value()) }
                    if org_rows.len() > 1 {
                        select { id: "new-board-org", "aria-label": "In which organization",
                            onchange: move |e| target.set(e.value()),
                            for o in org_rows.iter() {
                                option { key: "{s(o, \"id\")}", value: "{s(o, \"id\")}",
                                    selected: s(o, "id") == shown_org, "{s(o, \"name\")}" }
                            }
                        }
                    }
                    button { id: "new-board-create", r#type: "submit", disabled: busy(), "New board" }
                }
            }
            section { class: "card", id: "home-orgs",
                h2 { "Your organizations" }
                ul { class: "rows",
                    for o in org_rows.iter() {
                        li { key: "{s(o, \"id\")}",
                            a { href: "/orgs/{s(o, \"id\")}", "{s(o, \"name\")}" }
                            if o["personal"] == true { span { class: "pill off", "personal" } }
                        }
                    }
                }
                p { class: "links", a { href: "/orgs", "All organizations and new ones" } }
            }
        }
    }
}

//! The page around the LiveView app, and the app's root component.

use dioxus::prelude::*;

use serde::Deserialize;
use serde_json::Value;

use crate::board::BoardPage;
use crate::board::page::BoardsRef;
use crate::ui::admin::Admin;
use crate::ui::home::Home;
use crate::ui::orgs::{AcceptInvite, OrgDashboard, OrgList, OrgSettings, ProjectSettings};
use crate::ui::settings::{Settings, SignInReview};
use crate::ui::signin::{Forgot, SignIn, SignUp};
use crate::{Shell, WS_PATH, assets, ui};

/// The HTML document served at `/`. Everything inside `#main` is rendered by the LiveView app.
pub fn page_html(instance_name: &str) -> String {
    format!(
        r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{name}</title>
<link rel="icon" type="image/svg+xml" href="{icon}">
<link rel="stylesheet" href="{css}">
<script src="{js}"></script>
<script src="{app_js}"></script>
<script src="{board_js}"></script>
</head>
<body>
<div id="main"></div>
<script src="{glue}"></script>
</body>
</html>
"#,
        name = escape_html(instance_name),
        css = assets::versioned_url("app.css"),
        icon = assets::versioned_url("favicon.svg"),
        js = assets::versioned_url("reconnect.js"),
        app_js = assets::versioned_url("demiurge.js"),
        board_js = assets::versioned_url("board.js"),
        glue = GLUE_PATH,
    )
}

/// Where the page loads the LiveView interpreter from.
pub const GLUE_PATH: &str = "/ui/liveview.js";

/// The LiveView interpreter with its socket address: dioxus-liveview's glue without its
/// `<script>` tags, served as a script of its own, since the page's Content-Security-Policy
/// allows no inline script.
pub fn glue_js() -> String {
    let html = dioxus_liveview::interpreter_glue(WS_PATH);
    let t = html.trim();
    t.strip_prefix("<script>")
        .and_then(|t| t.strip_suffix("</script>"))
        .unwrap_or(t)
        .to_string()
}

fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
struct Here {
    path: String,
    query: String,
}

/// What a LiveView session starts with: the shell, and who opened the page.
#[derive(Clone)]
pub struct Root {
    pub shell: Shell,
    pub visitor: crate::Visitor,
}

/// Root component: the header (instance, who is signed in) and the page for the
/// browser's path. Each page is a full load, so the path is read once.
pub fn app(root: Root) -> Element {
    let Root { shell, visitor } = root;
    let here = use_resource(|| async {
        document::eval("return dmg.here();")
            .join::<Here>()
            .await
            .ok()
    });
    let me = use_resource(|| async { ui::get("/api/v1/me").await });
    // A page that changes who the user is (their name) asks the header to read it again.
    use_context_provider(|| ui::MeRefresh(me));

    let on_sign_out = move |_| {
        spawn(async move {
            ui::post("/api/v1/auth/logout", serde_json::json!({})).await;
            ui::go("/signin");
        });
    };

    let user: Option<Value> = me
        .read()
        .as_ref()
        .filter(|r| r.ok())
        .map(|r| r.body.clone());
    let loaded = me.read().is_some();
    let Some(Some(here)) = here.read().clone() else {
        return rsx! { Header { shell: shell.clone(), user: None, loaded: false, on_sign_out } };
    };

    // Pages for signed-in people send others to sign in, and back here afterwards.
    let segments: Vec<&str> = here.path.trim_matches('/').split('/').collect();
    let needs_user = matches!(
        segments.first(),
        Some(&("orgs" | "projects" | "settings" | "admin"))
    );
    if needs_user && user.is_none() {
        if loaded {
            ui::go(&format!(
                "/signin?return_to={}",
                ui::signin::url_encode(&here.path)
            ));
        }
        return rsx! { Header { shell: shell.clone(), user: None, loaded, on_sign_out } };
    }
    let signed_in = user.is_some();
    let page = match (segments.as_slice(), &user) {
        ([""], Some(_)) => rsx! { Home {} },
        ([""], None) => rsx! { Status { shell: shell.clone(), signed_in } },
        (["signin"], _) => rsx! { SignIn { query: here.query.clone() } },
        (["signup"], _) => rsx! { SignUp { query: here.query.clone() } },
        (["forgot"], _) => rsx! { Forgot {} },
        (["invite"], _) => rsx! { AcceptInvite { query: here.query.clone(), signed_in } },
        (["settings"], Some(u)) => rsx! { Settings { user: u.clone() } },
        (["admin"], _) => rsx! { Admin {} },
        (["orgs"], _) => rsx! { OrgList {} },
        (["orgs", id], _) => rsx! { OrgDashboard { id: id.to_string() } },
        (["orgs", id, "settings"], _) => rsx! { OrgSettings { id: id.to_string() } },
        (["projects", id], _) => {
            return rsx! {
                Header { shell: shell.clone(), user: user.clone(), loaded, on_sign_out }
                main { class: "full",
                    BoardPage {
                        id: id.to_string(),
                        boards: BoardsRef(shell.boards.clone()),
                        visitor: visitor.clone(),
                    }
                }
            };
        }
        (["projects", id, "settings"], _) => rsx! { ProjectSettings { id: id.to_string() } },
        _ => {
            rsx! { section { class: "card", h2 { "Not found" } p { "There is no page here. " a { href: "/", "Home" } } } }
        }
    };
    rsx! {
        Header { shell: shell.clone(), user: user.clone(), loaded, on_sign_out }
        main {
            if signed_in { SignInReview {} }
            {page}
        }
    }
}

#[component]
fn Header(
    shell: Shell,
    user: Option<Value>,
    loaded: bool,
    on_sign_out: EventHandler<MouseEvent>,
) -> Element {
    // The name as an admin last set it: a change shows on every open page.
    let mut name = use_signal(|| shell.instance_name.borrow().clone());
    let feed = shell.instance_name.clone();
    use_future(move || {
        let mut feed = feed.clone();
        async move {
            while feed.changed().await.is_ok() {
                let now = feed.borrow_and_update().clone();
                name.set(now);
            }
        }
    });
    rsx! {
        header { class: "top",
            h1 { a { href: "/", id: "instance-name", "{name}" } }
            // This start of the server, for the page's reconnect logic and tests; not shown.
            span { id: "boot-id", hidden: true, "data-boot": "{shell.boot_id}" }
            nav { class: "account",
                if let Some(u) = &user {
                    a { href: "/orgs", id: "orgs-link", "Organizations" }
                    span { id: "whoami", "{u[\"display_name\"].as_str().unwrap_or_default()}" }
                    if u["is_admin"] == true {
                        a { href: "/admin", id: "admin-link", "Admin" }
                    }
                    a { href: "/settings", id: "settings-link", "Settings" }
                    button { class: "link", id: "sign-out", onclick: move |e| on_sign_out.call(e), "Sign out" }
                } else if loaded {
                    a { href: "/signin", id: "sign-in-link", "Sign in" }
                }
            }
        }
    }
}

/// The instance's live subsystem status.
#[component]
fn Status(shell: Shell, signed_in: bool) -> Element {
    let mut rows = use_signal(|| shell.status.borrow().clone());
    let feed = shell.status.clone();
    use_future(move || {
        let mut feed = feed.clone();
        async move {
            while feed.changed().await.is_ok() {
                let now = feed.borrow_and_update().clone();
                rows.set(now);
            }
        }
    });

    let waiting: Vec<&'static str> = rows
        .read()
        .iter()
        .filter(|s| !s.state.is_ready())
        .map(|s| s.name)
        .collect();
    let (overall_class, overall_text) = if waiting.is_empty() {
        ("overall ready", "All subsystems are up".to_string())
    } else {
        (
            "overall waiting",
            format!("Waiting for {}", waiting.join(", ")),
        )
    };

    rsx! {
        section { class: "card",
            h2 { "Subsystems" }
            p { id: "overall", class: overall_class, "{overall_text}" }
            // States only: what each listens on (ports, the database's path) is for operators,
            // in /api/v1/status from the server's machine or as the instance admin.
            table { id: "subsystems",
                thead {
                    tr {
                        th { "Subsystem" }
                        th { "State" }
                    }
                }
                tbody {
                    for s in rows.read().iter() {
                        tr { key: "{s.name}", "data-subsystem": s.name, "data-state": s.state.as_str(),
                            td { class: "name", "{s.name}" }
                            td { span { class: "pill {s.state.as_str()}", "{s.state.as_str()}" } }
                        }
                    }
                }
            }
        }
        if !signed_in {
            p { class: "links", a { href: "/signin", "Sign in" } " or " a { href: "/signup", "create an account" } }
        }
    }
}

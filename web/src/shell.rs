//! The page around the LiveView app, and the app's root component.

use dioxus::prelude::*;

use crate::{Shell, WS_PATH, assets};

/// The HTML document served at `/`. Everything inside `#main` is rendered by the LiveView app.
pub fn page_html(instance_name: &str) -> String {
    format!(
        r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{name}</title>
<link rel="stylesheet" href="{css}">
<script src="{js}"></script>
</head>
<body>
<div id="main"></div>
{glue}
</body>
</html>
"#,
        name = escape_html(instance_name),
        css = assets::versioned_url("app.css"),
        js = assets::versioned_url("reconnect.js"),
        glue = dioxus_liveview::interpreter_glue(WS_PATH),
    )
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

/// Root component: the instance name, this boot, and the live status of every subsystem.
pub fn app(shell: Shell) -> Element {
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
        header { class: "top",
            h1 { id: "instance-name", "{shell.instance_name}" }
            span { class: "boot", id: "boot-id", "data-boot": "{shell.boot_id}", "boot {shell.boot_id}" }
        }
        main {
            section { class: "card",
                h2 { "Subsystems" }
                p { id: "overall", class: overall_class, "{overall_text}" }
                table { id: "subsystems",
                    thead {
                        tr {
                            th { "Subsystem" }
                            th { "State" }
                            th { "Detail" }
                        }
                    }
                    tbody {
                        for s in rows.read().iter() {
                            tr { key: "{s.name}", "data-subsystem": s.name, "data-state": s.state.as_str(),
                                td { class: "name", "{s.name}" }
                                td { span { class: "pill {s.state.as_str()}", "{s.state.as_str()}" } }
                                td { class: "detail", "{s.detail}" }
                            }
                        }
                    }
                }
            }
        }
    }
}

//! The organization's container catalogue (module `user-containers`), on its settings
//! page: the entries its members pick beside the built-in ones when they make a container,
//! kept by those with `org:containers:manage`. The server checks every change anyway.

use dioxus::prelude::*;
use serde_json::{Value, json};

use super::{Notice, call, post, use_get};
use crate::board::model::parse_services;

/// Who keeps the catalogue.
const MANAGE: &str = "org:containers:manage";

fn text(v: &Value, k: &str) -> String {
    v[k].as_str().unwrap_or_default().to_string()
}

/// `web:8080, shell:7681:terminal`, as the form writes services.
fn services_text(e: &Value) -> String {
    e["services"]
        .as_array()
        .map(|list| {
            list.iter()
                .map(|s| {
                    let t = if s["terminal"] == true {
                        ":terminal"
                    } else {
                        ""
                    };
                    format!("{}:{}{t}", text(s, "name"), s["port"])
                })
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default()
}

#[component]
pub fn ContainerImages(org: String) -> Element {
    let my = use_get(format!("/api/v1/orgs/{org}/permissions/me"));
    let mut images = use_get(format!("/api/v1/orgs/{org}/container-images"));
    let mut error = use_signal(String::new);
    let mut notice = use_signal(String::new);
    // The entry being edited (its key), if any: the form then saves it.
    let mut editing = use_signal(|| Option::<String>::None);
    let mut key = use_signal(String::new);
    let mut title = use_signal(String::new);
    let mut description = use_signal(String::new);
    let mut image_ref = use_signal(String::new);
    let mut services = use_signal(String::new);
    let mut command = use_signal(String::new);
    let mut prepare = use_signal(String::new);
    let mut clear = move || {
        editing.set(None);
        for mut s in [
            key,
            title,
            description,
            image_ref,
            services,
            command,
            prepare,
        ] {
            s.set(String::new());
        }
    };
    let manage = my
        .read()
        .as_ref()
        .and_then(|r| r.body["permissions"].as_array().cloned())
        .unwrap_or_default()
        .iter()
        .any(|p| p == MANAGE);
    let own: Vec<Value> = images
        .read()
        .as_ref()
        .filter(|r| r.ok())
        .and_then(|r| r.body.as_array().cloned())
        .unwrap_or_default()
        .into_iter()
        .filter(|e| e["builtin"] == false)
        .collect();

    let save = {
        let org = org.clone();
        move |_| {
            let org = org.clone();
            let list = match parse_services(&services()) {
                Ok(l) => l,
                Err(e) => {
                    error.set(e);
                    return;
                }
            };
            let opt = |s: String| {
                let t = s.trim().to_string();
                if t.is_empty() { Value::Null } else { json!(t) }
            };
            let body = json!({
                "key": editing().unwrap_or_else(|| key().trim().to_string()),
                "title": title().trim(), "description": description().trim(),
                "image_ref": image_ref().trim(), "services": list,
                "command": opt(command()), "prepare": opt(prepare()),
            });
            spawn(async move {
                let r = match editing() {
                    Some(k) => {
                        call(
                            "PUT",
                            &format!("/api/v1/orgs/{org}/container-images/{k}"),
                            Some(body),
                        )
                        .await
                    }
                    None => post(&format!("/api/v1/orgs/{org}/container-images"), body).await,
                };
                if r.ok() {
                    error.set(String::new());
                    notice.set("Image saved.".into());
                    clear();
                    images.restart();
                } else {
                    notice.set(String::new());
                    error.set(r.message());
                }
            });
        }
    };

    rsx! {
        section { class: "card", id: "container-images",
            h2 { "Container images" }
            p { class: "muted",
                "What members pick when they make a container, beside JupyterLab, VS Code, the terminal and a custom image. "
                "An image needs "
                code { "sh" }
                " and "
                code { "curl" }
                " or "
                code { "wget" }
                " (a preparing step can install them); a start command runs its app, otherwise the image's own processes must serve its ports."
            }
            Notice { text: error(), error: true }
            Notice { text: notice(), error: false }
            if own.is_empty() {
                p { class: "muted", id: "container-images-empty", "No images of the organization's own yet." }
            } else {
                table { class: "rows", id: "container-image-list",
                    tbody {
                        for e in own.iter() {
                            tr { key: "{text(e, \"key\")}", "data-image": "{text(e, \"key\")}",
                                td { strong { "{text(e, \"title\")}" } br {} code { "{text(e, \"key\")}" } }
                                td { code { "{text(e, \"image_ref\")}" } br {} span { class: "muted", "{services_text(e)}" } }
                                td { class: "muted", "{text(e, \"description\")}" }
                                if manage {
                                    td {
                                        button { class: "secondary small image-edit", r#type: "button", onclick: {
                                            let e = e.clone();
                                            move |_| {
                                                editing.set(Some(text(&e, "key")));
                                                key.set(text(&e, "key"));
                                                title.set(text(&e, "title"));
                                                description.set(text(&e, "description"));
                                                image_ref.set(text(&e, "image_ref"));
                                                services.set(services_text(&e));
                                                command.set(text(&e, "command"));
                                                prepare.set(text(&e, "prepare"));
                                            }
                                        }, "Edit" }
                                        super::ConfirmButton { label: "Delete…", confirm: "Delete for good", class: "image-delete",
                                            onconfirm: {
                                                let (org, k) = (org.clone(), text(e, "key"));
                                                move |()| {
                                                    let (org, k) = (org.clone(), k.clone());
                                                    spawn(async move {
                                                        let r = call("DELETE", &format!("/api/v1/orgs/{org}/container-images/{k}"), None).await;
                                                        if r.ok() {
                                                            notice.set("Image deleted; containers made from it keep running.".into());
                                                        } else {
                                                            error.set(r.message());
                                                        }
                                                        images.restart();
                                                    });
                                                }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            if manage {
                form { onsubmit: save, id: "container-image-form",
                    h3 { if editing().is_some() { "Edit the image" } else { "New image" } }
                    label { "Key (what it is named by: lowercase letters, digits, -)"
                        input { id: "image-key", value: "{key}", maxlength: "32", disabled: editing().is_some(),
                            placeholder: "gpu-lab", oninput: move |e| key.set(e.value()) }
                    }
                    label { "Title"
                        input { id: "image-title", value: "{title}", maxlength: "64", placeholder: "GPU notebooks",
                            oninput: move |e| title.set(e.value()) }
                    }
                    label { "Description"
                        input { id: "image-description", value: "{description}", maxlength: "200",
                            oninput: move |e| description.set(e.value()) }
                    }
                    label { "Image reference"
                        input { id: "image-ref", value: "{image_ref}", maxlength: "255", placeholder: "ghcr.io/team/gpu-lab:1",
                            oninput: move |e| image_ref.set(e.value()) }
                    }
                    label { "Web services (name:port, comma-separated; add :terminal for a terminal)"
                        input { id: "image-services", value: "{services}", maxlength: "200", placeholder: "lab:8888",
                            oninput: move |e| services.set(e.value()) }
                    }
                    label { "Start command (optional)"
                        input { id: "image-command", value: "{command}", maxlength: "2000",
                            placeholder: "jupyter lab --ip=127.0.0.1 --port=8888", oninput: move |e| command.set(e.value()) }
                    }
                    label { "Preparing step before the agent is fetched (optional; runs at every start)"
                        input { id: "image-prepare", value: "{prepare}", maxlength: "2000",
                            placeholder: "command -v curl || (apt-get update && apt-get install -y curl)",
                            oninput: move |e| prepare.set(e.value()) }
                    }
                    button { id: "image-save", r#type: "submit",
                        disabled: title().trim().is_empty() || image_ref().trim().is_empty() || services().trim().is_empty()
                            || (editing().is_none() && key().trim().is_empty()),
                        if editing().is_some() { "Save image" } else { "Add image" } }
                    if editing().is_some() {
                        button { class: "secondary", r#type: "button", onclick: move |_| clear(), "Cancel" }
                    }
                }
            }
        }
    }
}

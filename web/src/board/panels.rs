//! The board's panels and dialogs: style (of the selection), layers, history, and the
//! shortcuts. Their buttons carry `data-action`s the island acts on; only the history panel
//! calls the API itself.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use dioxus::prelude::*;
use serde_json::{Value, json};

use super::geometry::{SHAPES, shape_outline};
use super::model::{BoardDoc, Card, CardKind, ContainerInfo, Placed, ServiceInfo, Shared};
use crate::ui::{self, Notice, short_time};

const SWATCHES: &[&str] = &[
    "#ffe27a", "#ffc9c9", "#b2f2bb", "#a5d8ff", "#d0bfff", "#ffd8a8", "#ffffff", "#343a40",
];
const INKS: &[&str] = &[
    "#1d2330", "#c92a2a", "#2b8a3e", "#1864ab", "#5f3dc4", "#e67700", "#868e96",
];

#[component]
pub(super) fn StylePanel(doc: Shared<BoardDoc>, cards: Vec<String>, edges: Vec<String>) -> Element {
    let chosen: Vec<&Shared<Card>> = cards.iter().filter_map(|id| doc.cards.get(id)).collect();
    let shapes = chosen.iter().any(|c| c.kind == CardKind::Shape);
    let frames = chosen.iter().any(|c| c.kind == CardKind::Frame);
    let all_locked = !chosen.is_empty() && chosen.iter().all(|c| c.locked.is_some());
    let n = chosen.len();
    let one_edge = edges
        .iter()
        .find_map(|id| doc.edges.get(id))
        .map(|e| e.style.clone());
    let arg = |v: Value| v.to_string();
    rsx! {
        aside { class: "board-panel style-panel", id: "style-panel", "aria-label": "Style",
            if n > 0 {
                h3 { "{n} card" if n > 1 { "s" } }
                div { class: "swatches", role: "group", "aria-label": "Fill",
                    for c in SWATCHES {
                        button { class: "swatch", key: "{c}", style: "background: {c}", title: "Fill {c}", "aria-label": "Fill {c}",
                            "data-action": "style", "data-arg": arg(json!({"fill": c})) }
                    }
                    button { class: "swatch none", title: "No fill", "aria-label": "No fill", "data-action": "style", "data-arg": arg(json!({"fill": "transparent"})), "∅" }
                }
                div { class: "swatches", role: "group", "aria-label": "Border and text colour",
                    for c in INKS {
                        button { class: "swatch ink", key: "{c}", style: "border-color: {c}; color: {c}", title: "Border {c}", "aria-label": "Border {c}",
                            "data-action": "style", "data-arg": arg(json!({"border": c})), "▢" }
                    }
                }
                div { class: "row", role: "group", "aria-label": "Text size",
                    for (label, size) in [("S", 13.0), ("M", 16.0), ("L", 22.0), ("XL", 32.0)] {
                        button { class: "small secondary", key: "{label}", "data-action": "style", "data-arg": arg(json!({"font_size": size})), "aria-label": "Text size {label}", "{label}" }
                    }
                }
                if shapes {
                    div { class: "shapes", role: "group", "aria-label": "Shape",
                        for (id, name) in SHAPES {
                            button { class: "shape-pick", key: "{id}", title: "{name}", "aria-label": "{name}",
                                "data-action": "style", "data-arg": arg(json!({"shape": id})),
                                svg { "viewBox": "0 0 100 100", path { d: shape_outline(id) } }
                            }
                        }
                    }
                }
                if frames {
                    div { class: "row", role: "group", "aria-label": "Frame opacity",
                        for o in [0.0, 0.35, 0.7, 1.0] {
                            button { class: "small secondary", key: "{o}", "data-action": "style", "data-arg": arg(json!({"opacity": o})), "{(o * 100.0) as i64} %" }
                        }
                    }
                }
                div { class: "row",
                    button { class: "small secondary", "data-action": "order", "data-arg": "front", title: "Bring to front (Ctrl+Shift+])", "To front" }
                    button { class: "small secondary", "data-action": "order", "data-arg": "back", title: "Send to back (Ctrl+Shift+[)", "To back" }
                }
                div { class: "row",
                    button { class: "small secondary", "data-action": "lock", "data-arg": if all_locked { "false" } else { "true" }, id: "lock-button",
                        title: "Lock (Ctrl+L)", if all_locked { "Unlock" } else { "Lock" } }
                    button { class: "small secondary", "data-action": "duplicate", title: "Duplicate (Ctrl+D)", "Duplicate" }
                    button { class: "small secondary", "data-action": "group", title: "Group into a frame (Ctrl+G)", id: "group-button", "Frame" }
                    button { class: "small secondary", "data-action": "collapse", title: "Collapse", "Collapse" }
                }
                if n >= 2 {
                    div { class: "row", role: "group", "aria-label": "Align",
                        for (to, label) in [("left", "⇤"), ("center", "↔"), ("right", "⇥"), ("top", "⤒"), ("middle", "↕"), ("bottom", "⤓")] {
                            button { class: "small secondary", key: "{to}", "data-action": "align", "data-arg": "{to}", title: "Align {to}", "aria-label": "Align {to}", "{label}" }
                        }
                    }
                }
                if n >= 3 {
                    div { class: "row", role: "group", "aria-label": "Distribute",
                        button { class: "small secondary", "data-action": "distribute", "data-arg": "horizontal", "Space across" }
                        button { class: "small secondary", "data-action": "distribute", "data-arg": "vertical", "Space down" }
                    }
                }
                button { class: "danger small", "data-action": "delete", title: "Delete (Delete)", "Delete" }
            }
            if let Some(es) = one_edge {
                h3 { "Connector" }
                div { class: "swatches", role: "group", "aria-label": "Connector colour",
                    for c in INKS {
                        button { class: "swatch", key: "{c}", style: "background: {c}", "aria-label": "Colour {c}",
                            "data-action": "edge-style", "data-arg": arg(json!({"color": c})) }
                    }
                }
                div { class: "row", role: "group", "aria-label": "Route",
                    for r in ["straight", "bezier", "step"] {
                        button { class: if es.route == r { "small" } else { "small secondary" }, key: "{r}",
                            "data-action": "edge-style", "data-arg": arg(json!({"route": r})), "{r}" }
                    }
                }
                div { class: "row", role: "group", "aria-label": "Line",
                    for d in ["solid", "dashed", "dotted"] {
                        button { class: if es.dash == d { "small" } else { "small secondary" }, key: "{d}",
                            "data-action": "edge-style", "data-arg": arg(json!({"dash": d})), "{d}" }
                    }
                    for w in [1.0, 2.0, 4.0] {
                        button { class: "small secondary", key: "w{w}", "data-action": "edge-style", "data-arg": arg(json!({"width": w})), "{w}px" }
                    }
                }
                div { class: "row", role: "group", "aria-label": "Arrowheads",
                    button { class: "small secondary", "data-action": "edge-style",
                        "data-arg": arg(json!({"start": if es.start == "arrow" { "none" } else { "arrow" }})), "Start ◀" }
                    button { class: "small secondary", "data-action": "edge-style",
                        "data-arg": arg(json!({"end": if es.end == "arrow" { "none" } else { "arrow" }})), "End ▶" }
                }
                label { "Label"
                    input { class: "edge-label-input", "data-action": "edge-label", value: "{es.label}", maxlength: "200" }
                }
                button { class: "danger small", "data-action": "delete", "Delete connector" }
            }
        }
    }
}

/// The most rows the layers view lists at once (a filter finds the others).
const LAYER_ROWS: usize = 300;

/// The layers view: every card of the board, top first, each frame followed by what is in it,
/// with its lock; a row selects its card and brings it on screen (the island does that). On a
/// big board the first rows are listed and a filter finds the others.
#[component]
pub(super) fn LayersPanel(
    doc: Shared<BoardDoc>,
    view: String,
    selected: Vec<String>,
    can_edit: bool,
) -> Element {
    let mut filter = use_signal(String::new);
    let drawing = doc.drawing(&view);
    let wanted = filter().trim().to_lowercase();
    let present: HashSet<&str> = drawing.order.iter().map(|p| &*p.card.id).collect();
    let mut children: HashMap<&str, Vec<&Placed>> = HashMap::new();
    let mut roots: Vec<&Placed> = Vec::new();
    // Drawing order is bottom first, frames under cards: reversed, it is the stacking from
    // the top, and each frame's children keep that order under it.
    for p in drawing.order.iter().rev() {
        match p.parent.as_deref() {
            Some(f) if present.contains(f) => children.entry(f).or_default().push(p),
            _ => roots.push(p),
        }
    }
    let mut rows: Vec<(&Placed, usize)> = Vec::new();
    let mut total = 0usize;
    let mut stack: Vec<(&Placed, usize)> = roots.iter().rev().map(|p| (*p, 0)).collect();
    while let Some((p, depth)) = stack.pop() {
        let matches = wanted.is_empty()
            || layer_name(&p.card).to_lowercase().contains(&wanted)
            || layer_kind(&p.card).to_lowercase().contains(&wanted);
        if matches {
            total += 1;
            if rows.len() < LAYER_ROWS {
                // Filtered, the rows stand alone (their frames may not match).
                rows.push((p, if wanted.is_empty() { depth } else { 0 }));
            }
        }
        if let Some(kids) = children.get(&*p.card.id) {
            stack.extend(kids.iter().rev().map(|k| (*k, depth + 1)));
        }
    }
    let more = total.saturating_sub(rows.len());
    rsx! {
        aside { class: "board-panel layers-panel", id: "layers-panel", "aria-label": "Layers",
            div { class: "panel-head",
                h3 { "Layers" }
                button { class: "icon", "data-action": "panel", "data-arg": "layers", title: "Close", "aria-label": "Close layers", "×" }
            }
            input { r#type: "search", id: "layers-filter", placeholder: "Find a card", "aria-label": "Find a card",
                value: "{filter}", oninput: move |e| filter.set(e.value()) }
            if rows.is_empty() {
                p { class: "muted", if wanted.is_empty() { "No cards yet." } else { "No card matches." } }
            }
            ul { class: "layers", role: "list",
                for (p, depth) in rows {
                    li { key: "{p.card.id}", class: if selected.iter().any(|s| **s == *p.card.id) { "layer-row selected" } else { "layer-row" },
                        style: "--depth: {depth}",
                        button { class: "layer", "data-action": "layer", "data-arg": "{p.card.id}", "data-layer": "{p.card.id}",
                            "data-rect": "{p.rect.x},{p.rect.y},{p.rect.w},{p.rect.h}",
                            title: "Select and show",
                            span { class: "layer-kind", "{layer_kind(&p.card)}" }
                            span { class: "layer-name", "{layer_name(&p.card)}" }
                        }
                        if let Some(l) = &p.card.locked {
                            button { class: "icon layer-lock locked", "data-action": "layer-lock", "data-arg": "{p.card.id}", "data-locked": "true",
                                disabled: !can_edit, title: "Locked by {l.name}", "aria-label": "Unlock (locked by {l.name})",
                                svg { "viewBox": "0 0 24 24", path { d: "M7 11V8a5 5 0 0 1 10 0v3M5 11h14v10H5z" } }
                            }
                        } else if can_edit {
                            button { class: "icon layer-lock", "data-action": "layer-lock", "data-arg": "{p.card.id}", "data-locked": "false",
                                title: "Lock", "aria-label": "Lock",
                                svg { "viewBox": "0 0 24 24", path { d: "M7 11V8a5 5 0 0 1 9.9-1M5 11h14v10H5z" } }
                            }
                        }
                    }
                }
            }
            if more > 0 {
                p { class: "muted", id: "layers-more", "{more} more: type to find them." }
            }
        }
    }
}

/// What a card is called in the layers view: its first line (a frame: its title).
pub(super) fn layer_name(card: &Card) -> &str {
    let name = card.headline().trim();
    if name.is_empty() { "(empty)" } else { name }
}

/// What kind of card a row is.
pub(super) fn layer_kind(card: &Card) -> &str {
    match &card.kind {
        CardKind::Note => "Note",
        CardKind::Text => "Text",
        CardKind::Shape => "Shape",
        CardKind::Frame => "Frame",
        CardKind::Other(k) => k,
    }
}

#[component]
pub(super) fn HistoryPanel(project: String, can_save: bool, can_restore: bool) -> Element {
    let mut points = ui::use_get(format!("/api/v1/projects/{project}/history"));
    let members = ui::use_get(format!("/api/v1/projects/{project}/members"));
    let mut name = use_signal(String::new);
    let mut error = use_signal(String::new);
    let mut notice = use_signal(String::new);
    let mut busy = use_signal(|| false);
    let save = {
        let project = project.clone();
        move |_| {
            let project = project.clone();
            spawn(async move {
                busy.set(true);
                let r = ui::post(
                    &format!("/api/v1/projects/{project}/history"),
                    json!({"name": name().trim()}),
                )
                .await;
                busy.set(false);
                if r.ok() {
                    name.set(String::new());
                    error.set(String::new());
                    notice.set("Version saved.".into());
                    points.restart();
                } else {
                    error.set(r.message());
                }
            });
        }
    };
    let who = |id: &Value| -> String {
        let Some(id) = id.as_str() else {
            return "automatic".into();
        };
        members
            .read()
            .as_ref()
            .and_then(|r| r.body.as_array().cloned())
            .unwrap_or_default()
            .iter()
            .find(|m| m["user_id"] == id)
            .and_then(|m| m["display_name"].as_str().map(String::from))
            .unwrap_or_else(|| "someone".into())
    };
    let list: Vec<Value> = points
        .read()
        .as_ref()
        .filter(|r| r.ok())
        .and_then(|r| r.body.as_array().cloned())
        .unwrap_or_default();
    rsx! {
        aside { class: "board-panel history-panel", id: "history-panel", "aria-label": "History",
            div { class: "panel-head",
                h3 { "History" }
                button { class: "icon", "data-action": "panel", "data-arg": "history", "aria-label": "Close history", "×" }
            }
            if can_save {
                form { onsubmit: save,
                    label { "Save this version as"
                        input { id: "history-name", value: "{name}", maxlength: "100", placeholder: "Before the workshop",
                            oninput: move |e| name.set(e.value()) }
                    }
                    button { id: "history-save", r#type: "submit", disabled: busy() || name().trim().is_empty(), "Save version" }
                }
            }
            Notice { text: error(), error: true }
            Notice { text: notice(), error: false }
            if list.is_empty() {
                p { class: "muted", "No saved versions yet. Versions are also saved automatically while people work." }
            }
            ul { class: "rows history", id: "history-list",
                for p in list.iter() {
                    li { key: "{p[\"id\"].as_str().unwrap_or_default()}", class: "history-point", "data-point": "{p[\"id\"].as_str().unwrap_or_default()}",
                        div {
                            div { class: "point-name", "{p[\"name\"].as_str().unwrap_or_default()}" }
                            div { class: "muted", "{who(&p[\"created_by\"])} · {short_time(&p[\"created_at\"])}" }
                        }
                        if can_restore {
                            RestoreButton { project: project.clone(), point: p["id"].as_str().unwrap_or_default().to_string(), error, notice }
                        }
                    }
                }
            }
        }
    }
}

#[component]
pub(super) fn RestoreButton(
    project: String,
    point: String,
    error: Signal<String>,
    notice: Signal<String>,
) -> Element {
    let mut confirming = use_signal(|| false);
    let restore = move |_| {
        let (project, point) = (project.clone(), point.clone());
        spawn(async move {
            let r = ui::post(
                &format!("/api/v1/projects/{project}/history/{point}/restore"),
                json!({}),
            )
            .await;
            confirming.set(false);
            if r.ok() {
                error.set(String::new());
                notice.set("Restored. Everyone on the board sees it now.".into());
            } else {
                notice.set(String::new());
                error.set(r.message());
            }
        });
    };
    if confirming() {
        rsx! {
            span { class: "confirm",
                button { class: "danger small restore-confirm", onclick: restore, "Restore" }
                button { class: "secondary small", onclick: move |_| confirming.set(false), "Cancel" }
            }
        }
    } else {
        rsx! { button { class: "secondary small restore", onclick: move |_| confirming.set(true), "Restore…" } }
    }
}

#[component]
pub(super) fn HelpDialog() -> Element {
    const KEYS: &[(&str, &str)] = &[
        ("V / H", "Select / hand tool"),
        ("N, T, S, F", "Sticky note, text, shape, frame tool"),
        ("C", "Connector tool (or drag from a card's handle)"),
        ("Double-click", "New sticky note, or edit a card's text"),
        ("Space + drag, wheel", "Pan"),
        ("Ctrl + wheel, pinch", "Zoom"),
        ("+ / −", "Zoom in / out"),
        ("Shift+1 / Shift+0", "Zoom to fit / to 100 %"),
        ("Shift + click, drag a box", "Select several"),
        ("Ctrl+A", "Select all"),
        ("Arrows (Shift: ×10)", "Nudge"),
        ("Delete", "Delete"),
        ("Ctrl+D", "Duplicate"),
        ("Ctrl+C / X / V", "Copy / cut / paste (works across boards)"),
        ("Ctrl+Z / Ctrl+Shift+Z", "Undo / redo your own changes"),
        ("Ctrl+Shift+] / [", "Bring to front / send to back"),
        ("Ctrl+G", "Group into a frame"),
        ("Ctrl+L", "Lock / unlock"),
        (
            "L",
            "Layers: every card, top first, frames with what is in them",
        ),
        ("G", "Snap to grid"),
        ("Esc", "Clear the selection, stop editing"),
        ("?", "This help"),
    ];
    rsx! {
        div { class: "dialog-backdrop", "data-action": "panel", "data-arg": "help",
            div { class: "dialog", role: "dialog", "aria-modal": "true", "aria-labelledby": "help-title", id: "help-dialog",
                div { class: "panel-head",
                    h2 { id: "help-title", "Keyboard shortcuts" }
                    button { class: "icon", "data-action": "panel", "data-arg": "help", "aria-label": "Close", "×" }
                }
                table { class: "keys",
                    tbody {
                        for (k, what) in KEYS {
                            tr { key: "{k}", td { kbd { "{k}" } } td { "{what}" } }
                        }
                    }
                }
            }
        }
    }
}

/// The project's containers (module `user-containers`): each with its state, its services
/// (links that open in a new tab), what it uses and who made it; a new one from the
/// catalogue, the `docker run` line for it (to its creator, or anyone who may delete), and
/// delete.
#[component]
pub(super) fn ContainersPanel(
    project: String,
    containers: Arc<Vec<ContainerInfo>>,
    me: String,
    can_create: bool,
    can_manage: bool,
    service_url: String,
    /// The view shown and where the screen is: a new container's card goes in its middle.
    view: String,
    viewport: super::model::Rect,
    /// Whether I may edit the board (put a container's card on it).
    can_edit: bool,
    /// The containers that have a card (sorted).
    placed: Vec<String>,
) -> Element {
    let mut name = use_signal(String::new);
    let mut image = use_signal(|| "jupyterlab".to_string());
    // A custom image's reference and its services (`web:8080, api:3000`).
    let mut image_ref = use_signal(String::new);
    let mut services = use_signal(String::new);
    // A custom image's start command (optional).
    let mut start = use_signal(String::new);
    let mut error = use_signal(String::new);
    let mut busy = use_signal(|| false);
    // The catalogue: the built-in entries and the organization's own.
    let images = ui::use_get(format!("/api/v1/projects/{project}/container-images"));
    let own: Vec<(String, String)> = images
        .read()
        .as_ref()
        .and_then(|r| r.body.as_array().cloned())
        .unwrap_or_default()
        .iter()
        .filter(|e| e["builtin"] == false)
        .filter_map(|e| {
            Some((
                e["key"].as_str()?.to_string(),
                e["title"].as_str()?.to_string(),
            ))
        })
        .collect();
    // The `docker run` line last asked for: (container id, command).
    let command = use_signal(|| None::<(String, String)>);
    let create = {
        let project = project.clone();
        // Each new one a little down and right of the last, so they do not hide each other.
        let (view, at) = (view.clone(), card_spot(viewport, containers.len()));
        move |_| {
            let (project, view) = (project.clone(), view.clone());
            let mut event =
                json!({"type": "user-containers:create", "name": name().trim(), "image": image()});
            if image() == "custom" {
                match super::model::parse_services(&services()) {
                    Ok(list) => {
                        event["image_ref"] = json!(image_ref().trim());
                        event["services"] = list;
                        if !start().trim().is_empty() {
                            event["command"] = json!(start().trim());
                        }
                    }
                    Err(e) => {
                        error.set(e);
                        return;
                    }
                }
            }
            spawn(async move {
                busy.set(true);
                let r = ui::post(&format!("/api/v1/projects/{project}/events"), event).await;
                if r.ok() {
                    name.set(String::new());
                    image_ref.set(String::new());
                    services.set(String::new());
                    start.set(String::new());
                    error.set(String::new());
                    if let Some(id) = r.body["result"]["id"].as_str() {
                        // Its card on the board, in the middle of the screen (someone who
                        // may not edit the board still has the container in this list).
                        let _ = ui::post(
                            &format!("/api/v1/projects/{project}/events"),
                            card_event(&view, at, id),
                        )
                        .await;
                        issue_command(project.clone(), id.to_string(), command, error).await;
                    }
                } else {
                    error.set(r.message());
                }
                busy.set(false);
            });
        }
    };
    rsx! {
        aside { class: "board-panel containers-panel", id: "containers-panel", "aria-label": "Containers",
            div { class: "panel-head",
                h3 { "Containers" }
                button { class: "icon", "data-action": "panel", "data-arg": "containers", "aria-label": "Close containers", "×" }
            }
            if can_create {
                form { onsubmit: create, id: "container-form",
                    label { "Name"
                        input { id: "container-name", value: "{name}", maxlength: "64", placeholder: "Analysis",
                            oninput: move |e| name.set(e.value()) }
                    }
                    label { "Image"
                        select { id: "container-image", value: "{image}", onchange: move |e| image.set(e.value()),
                            option { value: "jupyterlab", "JupyterLab" }
                            option { value: "vscode", "VS Code" }
                            option { value: "terminal", "Terminal" }
                            for (key, title) in own.iter() {
                                option { key: "{key}", value: "{key}", "{title}" }
                            }
                            option { value: "custom", "Custom image…" }
                        }
                    }
                    if image() == "custom" {
                        label { "Image reference"
                            input { id: "container-image-ref", value: "{image_ref}", maxlength: "255",
                                placeholder: "ghcr.io/team/app:latest", oninput: move |e| image_ref.set(e.value()) }
                        }
                        label { "Web services (name:port, comma-separated)"
                            input { id: "container-services", value: "{services}", maxlength: "200",
                                placeholder: "web:8080", oninput: move |e| services.set(e.value()) }
                        }
                        label { "Start command (optional: else the image's own processes serve)"
                            input { id: "container-start", value: "{start}", maxlength: "2000",
                                placeholder: "python -m http.server 8080", oninput: move |e| start.set(e.value()) }
                        }
                    }
                    button { id: "container-create", r#type: "submit",
                        disabled: busy() || name().trim().is_empty()
                            || (image() == "custom" && (image_ref().trim().is_empty() || services().trim().is_empty())),
                        "New container" }
                }
            }
            Notice { text: error(), error: true }
            if let Some((id, cmd)) = command() {
                div { class: "container-command", id: "container-command", "data-container": "{id}",
                    p { class: "muted", "Run this on the machine that should host it (the token works once, for 15 minutes):" }
                    textarea { id: "container-command-text", readonly: true, rows: "5", "{cmd}" }
                }
            }
            if containers.is_empty() {
                p { class: "muted", "No containers yet. A container runs JupyterLab, VS Code or a terminal on any machine with Docker, joined to this project." }
            }
            ul { class: "rows containers", id: "container-list",
                for c in containers.iter() {
                    li { key: "{c.id}", class: "container", "data-container": "{c.id}", "data-state": "{c.state}",
                        div { class: "container-head",
                            span { class: "state-light state-{c.state}", title: "{state_text(&c.state)}", "aria-hidden": "true" }
                            if can_manage || (can_create && c.created_by == me) {
                                RenameContainer { key: "{c.id}-{c.name}", project: project.clone(), container: c.id.clone(), name: c.name.clone(), error }
                            } else {
                                span { class: "container-name", "{c.name}" }
                            }
                            span { class: "muted container-image", " · {image_title(c)}" }
                        }
                        div { class: "muted container-state", "{state_text(&c.state)}{usage(c)} · by {c.created_by_name}" }
                        ServiceLinks { services: c.services.clone(), service_url: service_url.clone() }
                        if can_edit && placed.binary_search(&c.id).is_err() {
                            PutOnBoard { project: project.clone(), container: c.id.clone(), view: view.clone(),
                                at: card_spot(viewport, 0), error }
                        }
                        if can_manage || (can_create && c.created_by == me) {
                            div { class: "row",
                                CommandButton { project: project.clone(), container: c.id.clone(), command, error }
                                if can_manage {
                                    DeleteContainer { project: project.clone(), container: c.id.clone(), error }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// A container's services as links that open in a new tab (`service_url` is
/// `http://{label}.containers.<domain>/`).
#[component]
pub(super) fn ServiceLinks(services: Vec<ServiceInfo>, service_url: String) -> Element {
    rsx! {
        div { class: "row container-services",
            for s in services.iter() {
                a { class: "button secondary small service-link", href: service_url.replace("{label}", &s.label),
                    target: "_blank", rel: "noopener", "data-service": "{s.name}",
                    if s.terminal { "Open terminal" } else { "Open {s.name}" }
                }
            }
        }
    }
}

/// Where a new container card goes: mid-screen, each of the `n` before it a step down and
/// right, so they do not hide each other.
fn card_spot(viewport: super::model::Rect, n: usize) -> (f64, f64) {
    let step = 28.0 * (n % 8) as f64;
    (viewport.cx() + step, viewport.cy() + step)
}

/// The event that puts `container`'s card on `view`, centred on `at`.
fn card_event(view: &str, at: (f64, f64), container: &str) -> Value {
    json!({"type": "whiteboard:insert", "view": view, "at": {"x": at.0, "y": at.1},
        "cards": [{"ref": "c", "kind": "container", "x": 0, "y": 0, "w": 300, "h": 150,
                   "data": {"container": container}}]})
}

/// For a container without a card (made through the API, or its card deleted).
#[component]
fn PutOnBoard(
    project: String,
    container: String,
    view: String,
    at: (f64, f64),
    error: Signal<String>,
) -> Element {
    let put = move |_| {
        let (project, event) = (project.clone(), card_event(&view, at, &container));
        spawn(async move {
            let r = ui::post(&format!("/api/v1/projects/{project}/events"), event).await;
            if !r.ok() {
                error.set(r.message());
            }
        });
    };
    rsx! { button { class: "secondary small container-place", onclick: put, "Put on board" } }
}

/// The container's name, and for who may rename it, a button that turns it into a field.
#[component]
fn RenameContainer(
    project: String,
    container: String,
    name: String,
    error: Signal<String>,
) -> Element {
    let mut editing = use_signal(|| false);
    let mut value = use_signal(|| name.clone());
    let save = move |_| {
        let (project, container) = (project.clone(), container.clone());
        let new = value().trim().to_string();
        spawn(async move {
            let r = ui::post(
                &format!("/api/v1/projects/{project}/events"),
                json!({"type": "user-containers:rename", "id": container, "name": new}),
            )
            .await;
            if r.ok() {
                error.set(String::new());
                editing.set(false);
            } else {
                error.set(r.message());
            }
        });
    };
    if editing() {
        rsx! {
            form { class: "container-rename", onsubmit: save,
                input { class: "container-rename-input", value: "{value}", maxlength: "64", "aria-label": "Container name",
                    oninput: move |e| value.set(e.value()) }
                button { class: "small", r#type: "submit", disabled: value().trim().is_empty(), "Save" }
                button { class: "secondary small", r#type: "button", onclick: move |_| editing.set(false), "Cancel" }
            }
        }
    } else {
        rsx! {
            span { class: "container-name", "{name}" }
            button { class: "icon small container-rename-button", "aria-label": "Rename {name}", title: "Rename",
                onclick: move |_| editing.set(true), "✎" }
        }
    }
}

/// Asks for a new `docker run` line for `container` and shows it.
async fn issue_command(
    project: String,
    container: String,
    mut command: Signal<Option<(String, String)>>,
    mut error: Signal<String>,
) {
    let r = ui::post(
        &format!("/api/v1/projects/{project}/containers/{container}/enrollment"),
        json!({}),
    )
    .await;
    match r.body["command"].as_str() {
        Some(cmd) if r.ok() => {
            error.set(String::new());
            command.set(Some((container, cmd.to_string())));
        }
        _ => error.set(r.message()),
    }
}

#[component]
fn CommandButton(
    project: String,
    container: String,
    command: Signal<Option<(String, String)>>,
    error: Signal<String>,
) -> Element {
    let get = move |_| {
        let (project, container) = (project.clone(), container.clone());
        spawn(issue_command(project, container, command, error));
    };
    rsx! { button { class: "secondary small container-command-button", onclick: get, "Command…" } }
}

#[component]
fn DeleteContainer(project: String, container: String, error: Signal<String>) -> Element {
    let delete = move |()| {
        let (project, container) = (project.clone(), container.clone());
        spawn(async move {
            let r = ui::post(
                &format!("/api/v1/projects/{project}/events"),
                json!({"type": "user-containers:delete", "id": container}),
            )
            .await;
            if !r.ok() {
                error.set(r.message());
            }
        });
    };
    rsx! {
        ui::ConfirmButton { label: "Delete…", confirm: "Delete for good", class: "container-delete", onconfirm: delete }
    }
}

pub(super) fn state_text(state: &str) -> &'static str {
    match state {
        "created" => "Waiting for its machine",
        "connecting" => "Connecting",
        "running" => "Running",
        "stale" => "Offline",
        _ => "Unknown",
    }
}

pub(super) fn image_title(c: &ContainerInfo) -> &str {
    if !c.image_title.is_empty() {
        return &c.image_title;
    }
    match c.image.as_str() {
        "jupyterlab" => "JupyterLab",
        "vscode" => "VS Code",
        "terminal" => "Terminal",
        "custom" => "Custom image",
        other => other,
    }
}

/// ` · 12% CPU · 340 MB`, what it reported last (and a warning where UDP is blocked).
pub(super) fn usage(c: &ContainerInfo) -> String {
    let mut s = String::new();
    if c.state == "running" {
        if let Some(p) = c.cpu_percent {
            s.push_str(&format!(" · {p:.0}% CPU"));
        }
        if let Some(m) = c.memory_bytes {
            s.push_str(&format!(" · {} MB", m / 1_000_000));
        }
        if c.tunnel == "relay" {
            s.push_str(" · UDP blocked, slower link over the WebSocket");
        }
    }
    s
}

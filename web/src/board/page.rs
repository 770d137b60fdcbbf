//! The board page: the canvas with its cards and connectors (only those near what the person
//! looks at), the toolbars and panels, and the one channel to the island (`assets/board.js`),
//! which owns the camera and every gesture.
//!
//! Stable hooks for tests and scripts: `#board` (`data-ready` once the board is drawn),
//! cards `[data-node-id]`, connectors `[data-edge-id]`; the island adds remote cursors
//! `[data-cursor-user]` and selection outlines `[data-selected-by]`.

use std::cell::RefCell;
use std::collections::HashSet;
use std::rc::Rc;
use std::sync::Arc;

use dioxus::prelude::*;
use serde::Deserialize;
use serde_json::json;

use super::cards::{CardView, EdgeView, Minimap, kind_class};
use super::model::{BoardDoc, Card, ContainerInfo, Edge, MAIN, Rect, Shared, ViewInfo};
use super::panels::{ContainersPanel, HelpDialog, HistoryPanel, LayersPanel, StylePanel};
use super::{BoardSession, Boards, Ended, OpenError, Peer, Presence, Visitor};
use crate::ui;

/// The server's handle on boards, as a prop.
#[derive(Clone)]
pub struct BoardsRef(pub Arc<dyn Boards>);

impl PartialEq for BoardsRef {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

#[derive(Clone)]
struct Session(Rc<BoardSession>);

impl PartialEq for Session {
    fn eq(&self, other: &Self) -> bool {
        Rc::ptr_eq(&self.0, &other.0)
    }
}

/// What the island tells the page.
#[derive(Debug, Deserialize)]
#[serde(tag = "t", rename_all = "lowercase")]
enum FromIsland {
    /// The part of the board on screen (world coordinates), and the zoom.
    Viewport {
        x: f64,
        y: f64,
        w: f64,
        h: f64,
        #[serde(default = "one")]
        z: f64,
    },
    /// This person's pointer and selection, for the others.
    Presence {
        #[serde(default)]
        cursor: Option<(f64, f64)>,
        #[serde(default)]
        selection: Vec<String>,
    },
    /// The selection changed (the style panel follows it).
    Select {
        #[serde(default)]
        cards: Vec<String>,
        #[serde(default)]
        edges: Vec<String>,
    },
    /// The card whose text is being edited (its text is sent as it changes).
    Editing {
        #[serde(default)]
        id: Option<String>,
    },
    /// A panel to open or close.
    Panel { name: String },
    /// Show another view of the board.
    View { id: String },
}

fn one() -> f64 {
    1.0
}

/// The island's bootstrap: one long-lived channel for the board (each `eval` lives as long as
/// the session, so there is exactly one).
const BOOT: &str = r#"
if (!window.dmgBoard) { throw new Error("board.js is not loaded"); }
window.dmgBoard.attach(dioxus, _message_queue);
await new Promise(() => {});
"#;

#[component]
pub fn BoardPage(id: String, boards: BoardsRef, visitor: Visitor) -> Element {
    let session = use_resource(move || {
        let boards = boards.clone();
        let visitor = visitor.clone();
        let id = id.clone();
        async move {
            boards
                .0
                .open(visitor, id)
                .await
                .map(|s| Session(Rc::new(s)))
        }
    });
    match &*session.read() {
        None => rsx! { section { class: "card board-loading", p { "Opening the board…" } } },
        Some(Err(OpenError::SignedOut)) => {
            ui::go("/signin");
            rsx! {}
        }
        Some(Err(OpenError::NotFound)) => rsx! {
            section { class: "card", id: "board-missing",
                h2 { "No such board" }
                p { "It was deleted, or you are not a member of its project. " a { href: "/", "Back to your boards" } }
            }
        },
        Some(Err(OpenError::Unavailable(why))) => rsx! {
            section { class: "card", h2 { "The board cannot open" } p { "{why}" } p { "Try again in a moment." } }
        },
        Some(Ok(s)) => rsx! { BoardView { session: s.clone() } },
    }
}

/// Where the page is: the view and the part of it on screen.
#[derive(Clone, Copy, PartialEq)]
struct Camera {
    viewport: Rect,
    zoom: f64,
    /// The island has said where it is looking (until then nothing is drawn).
    known: bool,
}

/// Below this zoom cards are drawn without their text (it could not be read).
const FAR_ZOOM: f64 = 0.3;

#[component]
fn BoardView(session: Session) -> Element {
    let s = session.0.clone();
    let mut doc = use_signal(|| s.doc.borrow().clone());
    // Who is on the board (for the avatars). Cursors and selections go to the island
    // alone: a pointer moving elsewhere never re-renders this board.
    let mut people = use_signal(|| people_of(&s.peers.borrow(), &s.me.user_id));
    let mut ended = use_signal(|| s.ended.borrow().clone());
    let mut camera = use_signal(|| Camera {
        viewport: Rect {
            x: -2000.0,
            y: -1500.0,
            w: 4000.0,
            h: 3000.0,
        },
        zoom: 1.0,
        known: false,
    });
    let mut selection = use_signal(|| (Vec::<String>::new(), Vec::<String>::new()));
    let mut editing = use_signal(|| Option::<String>::None);
    let mut panel = use_signal(String::new);
    let mut margin = use_signal(|| 0.0_f64);
    // The view shown (the island switches it; a view that is gone falls back to the main).
    let mut current = use_signal(|| MAIN.to_string());
    // The minimap follows the board at most once a second (on a big board it is a long
    // path, sent to the page whole).
    let mut minimap = use_signal(|| {
        let d = s.doc.borrow().drawing(MAIN);
        (d.minimap.clone(), d.bounds)
    });
    use_future(move || async move {
        let mut shown = (0u64, MAIN.to_string());
        loop {
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            let d = doc.peek().clone();
            let view = shown_view(&d, &current.peek());
            if (d.version, &view) != (shown.0, &shown.1) {
                let drawing = d.drawing(&view);
                shown = (d.version, view);
                if drawing.minimap != minimap.peek().0 || drawing.bounds != minimap.peek().1 {
                    minimap.set((drawing.minimap.clone(), drawing.bounds));
                }
            }
        }
    });
    // Cards drawn once stay drawn (hidden when far away): mounting a card again costs more.
    let seen = use_hook(|| Rc::new(RefCell::new(HashSet::<String>::new())));
    let island = use_hook(|| document::eval(BOOT));

    {
        let s = s.clone();
        use_future(move || {
            let mut rx = s.doc.clone();
            async move {
                while rx.changed().await.is_ok() {
                    let now = rx.borrow_and_update().clone();
                    if let Some(id) = editing.peek().clone()
                        && let Some(c) = now.cards.get(&id)
                        && doc
                            .peek()
                            .cards
                            .get(&id)
                            .map(|o| o.text != c.text)
                            .unwrap_or(true)
                    {
                        let _ = island.send(json!({"t": "text", "id": id, "text": c.text}));
                    }
                    doc.set(now);
                }
            }
        });
    }
    {
        let s = s.clone();
        use_future(move || {
            let mut rx = s.peers.clone();
            let me = s.me.user_id.clone();
            async move {
                while rx.changed().await.is_ok() {
                    let now = rx.borrow_and_update().clone();
                    let _ = island.send(json!({"t": "peers", "peers": &*now}));
                    let who = people_of(&now, &me);
                    if *people.peek() != who {
                        people.set(who);
                    }
                }
            }
        });
    }
    {
        let s = s.clone();
        use_future(move || {
            let mut rx = s.ended.clone();
            async move {
                while rx.changed().await.is_ok() {
                    let now = rx.borrow_and_update().clone();
                    ended.set(now);
                }
            }
        });
    }
    {
        let s = s.clone();
        use_future(move || {
            let s = s.clone();
            let mut island = island;
            async move {
                let _ = island.send(json!({"t": "peers", "peers": &**s.peers.borrow()}));
                let mut presence = Presence {
                    view: MAIN.into(),
                    ..Presence::default()
                };
                loop {
                    let msg: Result<FromIsland, _> = island.recv().await;
                    let msg = match msg {
                        Ok(m) => m,
                        Err(document::EvalError::Serialization(_)) => continue,
                        Err(_) => break,
                    };
                    match msg {
                        FromIsland::Viewport { x, y, w, h, z } => {
                            let r = Rect { x, y, w, h };
                            if [x, y, w, h, z].iter().all(|v| v.is_finite())
                                && w > 0.0
                                && h > 0.0
                                && z > 0.0
                            {
                                let first = !camera.peek().known;
                                camera.set(Camera {
                                    viewport: r,
                                    zoom: z,
                                    known: true,
                                });
                                if first {
                                    spawn(async move {
                                        tokio::time::sleep(std::time::Duration::from_millis(400))
                                            .await;
                                        margin.set(0.5);
                                    });
                                }
                                presence.viewport = Some(r);
                                let _ = s.presence.try_send(presence.clone());
                            }
                        }
                        FromIsland::Presence { cursor, selection } => {
                            presence.cursor = cursor;
                            presence.selection = selection;
                            let _ = s.presence.try_send(presence.clone());
                        }
                        FromIsland::Select { cards, edges } => selection.set((cards, edges)),
                        FromIsland::Editing { id } => {
                            if let Some(id) = &id
                                && let Some(c) = doc.peek().cards.get(id)
                            {
                                let _ = island.send(json!({"t": "text", "id": id, "text": c.text}));
                            }
                            editing.set(id);
                        }
                        FromIsland::View { id } => {
                            if *current.peek() != id {
                                presence.view = id.clone();
                                presence.selection.clear();
                                let _ = s.presence.try_send(presence.clone());
                                selection.set((Vec::new(), Vec::new()));
                                current.set(id);
                            }
                        }
                        FromIsland::Panel { name } => {
                            let open = panel.peek().clone();
                            panel.set(if open == name { String::new() } else { name });
                        }
                    }
                }
            }
        });
    }

    let d = doc.read().clone();
    let view = shown_view(&d, &current());
    let cam = camera();
    let can = s.can;
    // Cards a little way off are drawn too (hidden), so a pan finds them there; the first
    // drawing is of the screen alone, so it comes sooner.
    let near = cam.viewport.grown(margin());
    // Far out, text cannot be read: cards are drawn as their shapes alone.
    let far = cam.zoom < FAR_ZOOM;
    let drawing = d.drawing(&view);
    let mut frames = Vec::new();
    let mut cards = Vec::new();
    {
        let mut seen = seen.borrow_mut();
        for (i, p) in drawing.order.iter().enumerate() {
            let visible = cam.known && p.rect.intersects(&near);
            if visible {
                if !seen.contains(&p.card.id) {
                    seen.insert(p.card.id.clone());
                }
            } else if !seen.contains(&p.card.id) {
                continue;
            }
            let item = (p.clone(), !visible);
            if i < drawing.frames {
                frames.push(item);
            } else {
                cards.push(item);
            }
        }
    }
    let edges: Vec<(Shared<Edge>, Rect, Rect, bool)> = if far {
        Vec::new()
    } else {
        let seen = seen.borrow();
        drawing
            .edges
            .iter()
            .filter_map(|(e, a, b)| {
                let span = Rect::around([*a, *b])?;
                let visible = cam.known && span.intersects(&near);
                let drawn = seen.contains(&e.from) || seen.contains(&e.to);
                (visible || drawn).then(|| (e.clone(), *a, *b, !visible))
            })
            .collect()
    };
    let bounds = drawing.bounds;
    let bounds_attr = bounds
        .map(|b| format!("{:.0},{:.0},{:.0},{:.0}", b.x, b.y, b.w, b.h))
        .unwrap_or_default();
    let ready = d.ready && cam.known;
    let (sel_cards, sel_edges) = selection();
    let ended_now = ended();

    rsx! {
        div { id: "board", class: "board",
            "data-project": "{s.project_id}",
            "data-view": "{view}",
            "data-me": "{s.me.user_id}",
            "data-me-name": "{s.me.name}",
            "data-me-color": "{s.me.color}",
            "data-can-edit": if can.edit { "true" } else { "false" },
            "data-bounds": "{bounds_attr}",
            "data-ready": if ready { "true" } else { "false" },
            "data-live": if d.live { "true" } else { "false" },
            TopBar { session: session.clone(), people: people(), live: d.live, views: d.views.clone(), view: view.clone() }
            if let Some(why) = ended_now {
                div { class: "board-ended", role: "alert",
                    match why {
                        Ended::SignedOut => "You were signed out. Sign in again to keep working.",
                        Ended::NoAccess => "You no longer have access to this project.",
                    }
                    " " a { href: "/signin", "Sign in" }
                }
            }
            if d.deleted {
                div { class: "board-ended", role: "alert", "This project was deleted." }
            }
            Tools { can_edit: can.edit }
            div { class: "board-viewport", id: "board-viewport", tabindex: "0",
                "aria-label": "Board canvas",
                div { class: "board-grid", id: "board-grid" }
                div { class: "board-world", id: "board-world",
                    div { class: "frames-layer",
                        for (p, hidden) in frames {
                            CardView { key: "{p.card.id}", card: p.card, rect: p.rect, parent: p.parent, collapsed: p.collapsed, hidden }
                        }
                    }
                    div { class: "cards-layer",
                        if far {
                            for (p, hidden) in cards {
                                // A shape alone, one element with nothing to read: far out a
                                // card costs the session a few hundred bytes, not kilobytes.
                                div { key: "{p.card.id}", class: "board-card far kind-{kind_class(&p.card.kind)}", hidden,
                                    "data-node-id": "{p.card.id}",
                                    "data-kind": p.card.kind.as_str(),
                                    "data-parent": p.parent.as_deref(),
                                    "data-locked-by": p.card.locked.as_ref().map(|l| l.by.as_str()),
                                    style: "--x:{p.rect.x}px;--y:{p.rect.y}px;--w:{p.rect.w}px;--h:{p.rect.h}px;--fill:{p.card.style.fill};--border:{p.card.style.border}",
                                }
                            }
                        } else {
                            for (p, hidden) in cards {
                                CardView { key: "{p.card.id}", container: container_of(&d, &p.card), service_url: s.service_url.clone(),
                                    card: p.card, rect: p.rect, parent: p.parent, collapsed: p.collapsed, hidden }
                            }
                        }
                    }
                    // Connectors over the cards (a label is never hidden under one).
                    svg { class: "edges-layer", id: "edges-layer",
                        if far {
                            // Far out, every connector as one path per colour: a few
                            // kilobytes a page instead of an element tree per connector.
                            for (color, d) in drawing.far_edges() {
                                path { key: "{color}", class: "far-edges", d: "{d}", stroke: "{color}" }
                            }
                        } else {
                            for (e, a, b, hidden) in edges {
                                EdgeView { key: "{e.id}", edge: e, a, b, hidden }
                            }
                        }
                    }
                    div { class: "board-overlay", id: "board-overlay" }
                }
                if !d.ready {
                    div { class: "board-status", "Loading the board…" }
                } else if d.cards.is_empty() && can.edit {
                    div { class: "board-empty", id: "board-empty",
                        p { "This board is empty." }
                        p { class: "muted", "Double-click anywhere to add a sticky note, or pick a tool on the left. Press ? for shortcuts." }
                    }
                }
            }
            Minimap { path: minimap.read().0.clone(), bounds: minimap.read().1 }
            if can.edit && (!sel_cards.is_empty() || !sel_edges.is_empty()) {
                StylePanel { doc: Shared(d.clone()), cards: sel_cards.clone(), edges: sel_edges.clone() }
            }
            if panel() == "history" {
                HistoryPanel { project: s.project_id.clone(), can_save: can.save_points, can_restore: can.restore }
            }
            if panel() == "containers" {
                ContainersPanel { project: s.project_id.clone(), containers: d.containers.clone(), me: s.me.user_id.clone(),
                    can_create: can.containers, can_manage: can.containers_manage, service_url: s.service_url.clone(),
                    view: view.clone(), viewport: cam.viewport, can_edit: can.edit, placed: placed_containers(&d) }
            }
            if panel() == "layers" {
                LayersPanel { doc: Shared(d.clone()), view: view.clone(), selected: sel_cards.clone(), can_edit: can.edit }
            }
            if panel() == "help" {
                HelpDialog {}
            }
            div { class: "board-toast", id: "board-toast", role: "status", "aria-live": "polite" }
        }
    }
}

/// The containers that have a card on the board.
fn placed_containers(doc: &BoardDoc) -> Vec<String> {
    let mut ids: Vec<String> = doc
        .cards
        .values()
        .filter(|c| c.kind.as_str() == "container")
        .filter_map(|c| c.data.get("container").and_then(serde_json::Value::as_str))
        .map(str::to_string)
        .collect();
    ids.sort_unstable();
    ids
}

/// The container a container card stands for (`None` for other cards, and for a container
/// that was deleted, which the card then says).
fn container_of(doc: &BoardDoc, card: &Card) -> Option<ContainerInfo> {
    if card.kind.as_str() != "container" {
        return None;
    }
    let id = card
        .data
        .get("container")
        .and_then(serde_json::Value::as_str)?;
    doc.containers.iter().find(|c| c.id == id).cloned()
}

/// The view a page shows: the one it asked for, or the main one once that is gone.
fn shown_view(doc: &BoardDoc, wanted: &str) -> String {
    if doc.views.iter().any(|v| v.id == wanted) {
        wanted.to_string()
    } else {
        MAIN.to_string()
    }
}

/// Someone else on the board, as their avatar shows them.
#[derive(Debug, Clone, PartialEq)]
struct Person {
    /// The page to follow when the avatar is clicked (their first one).
    client: u64,
    user_id: String,
    name: String,
    color: String,
}

/// One avatar per other person (several pages of one person count once).
fn people_of(peers: &[Peer], me: &str) -> Vec<Person> {
    let mut out: Vec<Person> = Vec::new();
    for p in peers {
        if p.user_id != me && !out.iter().any(|q| q.user_id == p.user_id) {
            out.push(Person {
                client: p.client,
                user_id: p.user_id.clone(),
                name: p.name.clone(),
                color: p.color.clone(),
            });
        }
    }
    out
}

#[component]
fn TopBar(
    session: Session,
    people: Vec<Person>,
    live: bool,
    views: Vec<ViewInfo>,
    view: String,
) -> Element {
    let view_name = views
        .iter()
        .find(|v| v.id == view)
        .map(|v| v.name.clone())
        .unwrap_or_else(|| "Main".into());
    let s = &session.0;
    let initials = |n: &str| -> String {
        let mut out: String = n
            .split_whitespace()
            .filter_map(|w| w.chars().next())
            .take(2)
            .collect();
        if out.is_empty() {
            out.push('?');
        }
        out.to_uppercase()
    };
    rsx! {
        div { class: "board-top",
            a { class: "board-back", href: "/orgs/{s.org_id}", title: "Back to {s.org_name}", "aria-label": "Back to {s.org_name}", "←" }
            h1 { class: "board-title", id: "board-title", "{s.project_name}" }
            span { class: "muted board-org", "{s.org_name}" }
            if !live {
                span { class: "pill starting", id: "board-reconnecting", "Reconnecting…" }
            }
            details { class: "menu views-menu", id: "views-menu",
                summary { class: "button secondary small", title: "Views of this board", "aria-label": "View: {view_name}", "{view_name} ▾" }
                div { class: "menu-items",
                    for v in views.iter() {
                        button { key: "{v.id}", "data-action": "view", "data-arg": "{v.id}", "data-view-id": "{v.id}",
                            "aria-current": if v.id == view { "true" } else { "false" }, "{v.name}" }
                    }
                    if s.can.views {
                        div { class: "new-view",
                            input { id: "new-view-name", placeholder: "New view", "aria-label": "Name of a new view", maxlength: "100" }
                            button { id: "add-view", "data-action": "add-view", "Add" }
                        }
                        div { class: "new-view",
                            input { id: "rename-view-name", value: "{view_name}", "aria-label": "Name of this view", maxlength: "100" }
                            button { id: "rename-view", "data-action": "rename-view", "data-arg": "{view}", "Rename" }
                        }
                        if view != MAIN {
                            button { class: "danger", id: "delete-view", "data-action": "delete-view", "data-arg": "{view}", "Delete this view" }
                        }
                    }
                }
            }
            div { class: "board-people", id: "board-people",
                for p in people {
                    button { class: "avatar peer", key: "{p.user_id}", "data-follow": "{p.client}", "data-user": "{p.user_id}",
                        title: "{p.name} — click to follow", "aria-label": "Follow {p.name}",
                        style: "background: {p.color}",
                        "{initials(&p.name)}"
                    }
                }
                span { class: "avatar me", title: "{s.me.name} (you)", style: "background: {s.me.color}", "{initials(&s.me.name)}" }
            }
            div { class: "board-actions",
                if s.can.edit {
                    button { class: "icon", "data-action": "undo", title: "Undo (Ctrl+Z)", "aria-label": "Undo", Icon { name: "undo" } }
                    button { class: "icon", "data-action": "redo", title: "Redo (Ctrl+Shift+Z)", "aria-label": "Redo", Icon { name: "redo" } }
                }
                button { class: "secondary small", "data-action": "panel", "data-arg": "layers", id: "layers-button", title: "Layers (L)", "Layers" }
                button { class: "secondary small", "data-action": "panel", "data-arg": "history", id: "history-button", "History" }
                button { class: "secondary small", "data-action": "panel", "data-arg": "containers", id: "containers-button", "Containers" }
                details { class: "menu", id: "export-menu",
                    summary { class: "button secondary small", "Export" }
                    div { class: "menu-items",
                        button { "data-export": "png", "PNG image" }
                        button { "data-export": "svg", "SVG image" }
                        button { "data-export": "json", "Board file (JSON)" }
                        button { "data-export": "canvas", "JSON Canvas" }
                        if s.can.edit {
                            button { "data-action": "import", id: "import-button", "Import a file…" }
                        }
                    }
                }
                if s.can.settings {
                    a { class: "button secondary small", href: "/projects/{s.project_id}/settings", id: "board-settings", "Settings" }
                }
                button { class: "icon", "data-action": "panel", "data-arg": "help", title: "Keyboard shortcuts (?)", "aria-label": "Keyboard shortcuts", "?" }
            }
        }
    }
}

/// A tool's picture (24 × 24, drawn with the text colour).
fn icon(name: &str) -> &'static str {
    match name {
        "select" => "M5 3l13 7-6 1.5L9 18z",
        "hand" => {
            "M8 12V5.5a1.5 1.5 0 0 1 3 0V11m0-6.5a1.5 1.5 0 0 1 3 0V11m0-5a1.5 1.5 0 0 1 3 0v6.5a6.5 6.5 0 0 1-13 0V9.5a1.5 1.5 0 0 1 3 0"
        }
        "note" => "M5 4h14v11l-5 5H5zM14 20v-5h5",
        "text" => "M5 6V4h14v2M12 4v16M9 20h6",
        "shape" => "M12 3l9 9-9 9-9-9z",
        "frame" => "M3 4h18v16H3zM3 8h18",
        "connector" => "M5 19L19 5M19 5h-7M19 5v7",
        "zoom-in" => "M12 5v14M5 12h14",
        "zoom-out" => "M5 12h14",
        "zoom-fit" => "M4 9V4h5M20 9V4h-5M4 15v5h5M20 15v5h-5",
        "snap" => "M8 4v16M16 4v16M4 8h16M4 16h16",
        "undo" => "M9 14L4 9l5-5M4 9h11a5 5 0 0 1 0 10h-3",
        "redo" => "M15 14l5-5-5-5M20 9H9a5 5 0 0 0 0 10h3",
        _ => "",
    }
}

#[component]
fn Icon(name: String) -> Element {
    rsx! {
        svg { class: "icon", "viewBox": "0 0 24 24", "aria-hidden": "true",
            path { d: icon(&name) }
        }
    }
}

#[component]
fn Tools(can_edit: bool) -> Element {
    let tool = |name: &'static str, label: &'static str, key: &'static str| {
        rsx! {
            button { class: "tool", key: "{name}", "data-tool": name, title: "{label} ({key})", "aria-label": label,
                "aria-pressed": if name == "select" { "true" } else { "false" },
                Icon { name: name }
            }
        }
    };
    let act = |name: &'static str, label: &'static str, key: &'static str| {
        rsx! {
            button { class: "tool", key: "{name}", "data-action": name, title: "{label} ({key})", "aria-label": label,
                Icon { name: name }
            }
        }
    };
    rsx! {
        div { class: "board-tools", role: "toolbar", "aria-label": "Tools", id: "board-tools",
            {tool("select", "Select", "V")}
            {tool("hand", "Hand", "H")}
            if can_edit {
                {tool("note", "Sticky note", "N")}
                {tool("text", "Text", "T")}
                {tool("shape", "Shape", "S")}
                {tool("frame", "Frame", "F")}
                {tool("connector", "Connector", "C")}
            }
            span { class: "tools-gap" }
            {act("zoom-in", "Zoom in", "+")}
            {act("zoom-out", "Zoom out", "−")}
            {act("zoom-fit", "Zoom to fit", "Shift+1")}
            button { class: "tool small-text", "data-action": "zoom-100", title: "Zoom to 100 % (Shift+0)", "aria-label": "Zoom to 100 %", "1:1" }
            button { class: "tool", "data-action": "snap", title: "Snap to grid (G)", "aria-label": "Snap to grid", "aria-pressed": "false",
                Icon { name: "snap" }
            }
        }
    }
}

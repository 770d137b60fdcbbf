//! The board page: the canvas with its cards and connectors (only those near what the person
//! looks at), the toolbars and panels, and the one channel to the island (`assets/board.js`),
//! which owns the camera and every gesture.
//!
//! Stable hooks for tests and scripts: `#board` (`data-ready` once the board is drawn),
//! cards `[data-node-id]`, connectors `[data-edge-id]`; the island adds remote cursors
//! `[data-cursor-user]` and selection outlines `[data-selected-by]`.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::rc::Rc;
use std::sync::Arc;

use dioxus::prelude::*;
use serde::Deserialize;
use serde_json::{Value, json};

use super::geometry::{SHAPES, dash_array, shape_outline};
use super::model::{BoardDoc, Card, CardKind, Edge, MAIN, Placed, Rect, Shared, ViewInfo};
use super::{BoardSession, Boards, Ended, OpenError, Peer, Presence, Visitor};
use crate::ui::{self, Notice, short_time};

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
    // The minimap follows the board at most once a second (on a big board it is a long
    // path, sent to the page whole).
    let mut minimap = use_signal(|| {
        let d = s.doc.borrow().drawing(MAIN);
        (d.minimap.clone(), d.bounds)
    });
    use_future(move || async move {
        let mut shown = 0u64;
        loop {
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            let d = doc.peek().clone();
            if d.version != shown {
                shown = d.version;
                let drawing = d.drawing(MAIN);
                if drawing.minimap != minimap.peek().0 || drawing.bounds != minimap.peek().1 {
                    minimap.set((drawing.minimap.clone(), drawing.bounds));
                }
            }
        }
    });
    // Cards drawn once stay drawn (hidden when far away): mounting a card again costs more.
    let seen = use_hook(|| Rc::new(RefCell::new(HashSet::<String>::new())));
    // The view shown (the island switches it; a view that is gone falls back to the main).
    let mut current = use_signal(|| MAIN.to_string());
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
    let view = {
        let v = current();
        if d.views.iter().any(|x| x.id == v) {
            v
        } else {
            MAIN.to_string()
        }
    };
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
                                CardView { key: "{p.card.id}", card: p.card, rect: p.rect, parent: p.parent, collapsed: p.collapsed, hidden }
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

/// The CSS class suffix of a card's kind (kinds of other modules share one look).
fn kind_class(kind: &CardKind) -> &str {
    match kind {
        CardKind::Other(_) => "other",
        k => k.as_str(),
    }
}

#[component]
fn CardView(
    card: Shared<Card>,
    rect: Rect,
    parent: Option<Arc<str>>,
    collapsed: bool,
    hidden: bool,
) -> Element {
    let c = &*card;
    let st = &c.style;
    let h = if collapsed {
        44.0_f64.min(rect.h)
    } else {
        rect.h
    };
    let kind = c.kind.as_str();
    let class = format!(
        "board-card kind-{}{}{}",
        kind_class(&c.kind),
        if c.locked.is_some() { " locked" } else { "" },
        if collapsed { " collapsed" } else { "" },
    );
    let pos = format!(
        "--x:{}px;--y:{}px;--w:{}px;--h:{h}px;--fill:{};--border:{};--color:{};--opacity:{};--font:{}px",
        rect.x, rect.y, rect.w, st.fill, st.border, st.color, st.opacity, st.font_size
    );
    let locked_by = c.locked.as_ref().map(|l| l.by.as_str());
    let locked_name = c.locked.as_ref().map(|l| l.name.as_str());
    let text = if collapsed { c.headline() } else { &c.text };
    rsx! {
        div { class: "{class}", hidden,
            "data-node-id": "{c.id}",
            "data-kind": kind,
            "data-x": "{rect.x}", "data-y": "{rect.y}", "data-w": "{rect.w}", "data-h": "{rect.h}",
            "data-parent": parent.as_deref(),
            "data-locked": locked_name,
            "data-locked-by": locked_by,
            style: "{pos}",
            match c.kind {
                CardKind::Frame => rsx! {
                    div { class: "frame-title", "{st.title}" }
                },
                CardKind::Shape => rsx! {
                    svg { class: "shape", "viewBox": "0 0 100 100", "preserveAspectRatio": "none",
                        path { d: shape_outline(&st.shape), "vector-effect": "non-scaling-stroke" }
                    }
                    div { class: "text centred", "{text}" }
                },
                CardKind::Other(ref k) => rsx! {
                    div { class: "card-kind", "{k}" }
                    div { class: "text", "{text}" }
                },
                _ => rsx! {
                    div { class: "text", "{text}" }
                },
            }
            if let Some(name) = locked_name {
                span { class: "lock-badge", title: "Locked by {name}", "aria-label": "Locked by {name}",
                    svg { "viewBox": "0 0 24 24", path { d: "M7 11V8a5 5 0 0 1 10 0v3M5 11h14v10H5z" } }
                }
            }
        }
    }
}

#[component]
fn EdgeView(edge: Shared<Edge>, a: Rect, b: Rect, hidden: bool) -> Element {
    let e = &*edge;
    let s = &e.style;
    let g = super::geometry::edge(
        &a,
        &b,
        &s.route,
        s.width,
        s.start == "arrow",
        s.end == "arrow",
    );
    let dash = dash_array(&s.dash, s.width).unwrap_or_default();
    rsx! {
        g { class: "edge", visibility: if hidden { "hidden" } else { "visible" },
            "data-edge-id": "{e.id}", "data-from": "{e.from}", "data-to": "{e.to}",
            "data-route": "{s.route}", "data-width": "{s.width}",
            "data-start": "{s.start}", "data-end": "{s.end}",
            path { class: "edge-hit", d: "{g.d}" }
            path { class: "edge-line", d: "{g.d}", stroke: "{s.color}", "stroke-width": "{s.width}", "stroke-dasharray": "{dash}" }
            if !g.start_head.is_empty() {
                path { class: "edge-head", d: "{g.start_head}", fill: "{s.color}" }
            }
            if !g.end_head.is_empty() {
                path { class: "edge-head", d: "{g.end_head}", fill: "{s.color}" }
            }
            if !s.label.is_empty() {
                text { class: "edge-label", x: "{g.label.0:.1}", y: "{g.label.1 + 4.0:.1}", fill: "{s.color}", "{s.label}" }
            }
        }
    }
}

/// The whole board, small: one path of every card (made once per version of the board),
/// and (drawn by the island) where the screen is.
#[component]
fn Minimap(path: Arc<str>, bounds: Option<Rect>) -> Element {
    let Some(b) = bounds else {
        return rsx! { div { class: "minimap", id: "minimap", div { class: "minimap-view", id: "minimap-view" } } };
    };
    let b = b.grown(0.1);
    let vb = format!(
        "{:.0} {:.0} {:.0} {:.0}",
        b.x,
        b.y,
        b.w.max(1.0),
        b.h.max(1.0)
    );
    rsx! {
        div { class: "minimap", id: "minimap", "data-viewbox": "{vb}",
            svg { "viewBox": "{vb}", "preserveAspectRatio": "xMidYMid meet",
                path { d: "{path}" }
            }
            div { class: "minimap-view", id: "minimap-view" }
        }
    }
}

const SWATCHES: &[&str] = &[
    "#ffe27a", "#ffc9c9", "#b2f2bb", "#a5d8ff", "#d0bfff", "#ffd8a8", "#ffffff", "#343a40",
];
const INKS: &[&str] = &[
    "#1d2330", "#c92a2a", "#2b8a3e", "#1864ab", "#5f3dc4", "#e67700", "#868e96",
];

#[component]
fn StylePanel(doc: Shared<BoardDoc>, cards: Vec<String>, edges: Vec<String>) -> Element {
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
fn LayersPanel(
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
fn layer_name(card: &Card) -> &str {
    let name = card.headline().trim();
    if name.is_empty() { "(empty)" } else { name }
}

/// What kind of card a row is.
fn layer_kind(card: &Card) -> &str {
    match &card.kind {
        CardKind::Note => "Note",
        CardKind::Text => "Text",
        CardKind::Shape => "Shape",
        CardKind::Frame => "Frame",
        CardKind::Other(k) => k,
    }
}

#[component]
fn HistoryPanel(project: String, can_save: bool, can_restore: bool) -> Element {
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
fn RestoreButton(
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
fn HelpDialog() -> Element {
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

//! The board's drawn things: a card, a connector, and the minimap (components the page lists
//! for every card and connector near the screen).

use std::sync::Arc;

use dioxus::prelude::*;

use super::geometry::{dash_array, shape_outline};
use super::model::{Card, CardKind, ContainerInfo, Edge, Rect, Shared};
use super::panels::{ServiceLinks, image_title, state_text, usage};

/// The CSS class suffix of a card's kind (kinds of other modules share one look).
pub(super) fn kind_class(kind: &CardKind) -> &str {
    match kind {
        CardKind::Other(_) => "other",
        k => k.as_str(),
    }
}

#[component]
pub(super) fn CardView(
    card: Shared<Card>,
    rect: Rect,
    parent: Option<Arc<str>>,
    collapsed: bool,
    hidden: bool,
    /// For a container card: the container, as its record says.
    #[props(default)]
    container: Option<ContainerInfo>,
    /// `http://{label}.containers.<domain>/`, for a container card's links.
    #[props(default)]
    service_url: String,
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
                CardKind::Other(ref k) if k == "container" => rsx! {
                    ContainerBody { container, service_url }
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

/// A container card's face: state light, name, image, what it uses, who made it, and its
/// services as links that open in a new tab.
#[component]
fn ContainerBody(container: Option<ContainerInfo>, service_url: String) -> Element {
    let Some(c) = container else {
        return rsx! {
            div { class: "container-card gone", "data-state": "deleted",
                div { class: "container-head", span { class: "state-light", "aria-hidden": "true" } span { "Container" } }
                p { class: "muted", "This container was deleted." }
            }
        };
    };
    rsx! {
        div { class: "container-card", "data-container": "{c.id}", "data-state": "{c.state}",
            div { class: "container-head",
                span { class: "state-light state-{c.state}", title: "{state_text(&c.state)}", "aria-hidden": "true" }
                span { class: "container-name", "{c.name}" }
                span { class: "muted container-image", " · {image_title(&c)}" }
            }
            div { class: "muted container-state", "{state_text(&c.state)}{usage(&c)}" }
            ServiceLinks { services: c.services.clone(), service_url }
            div { class: "muted container-by", "by {c.created_by_name}" }
        }
    }
}

#[component]
pub(super) fn EdgeView(edge: Shared<Edge>, a: Rect, b: Rect, hidden: bool) -> Element {
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
pub(super) fn Minimap(path: Arc<str>, bounds: Option<Rect>) -> Element {
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

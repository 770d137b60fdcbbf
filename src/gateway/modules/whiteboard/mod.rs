//! The `whiteboard` module: boards made of cards (sticky notes, text, shapes, frames),
//! connectors between them, and views, on top of `core-graph`'s nodes and edges.
//!
//! Every change is an event (one transaction, checked here: permissions by the gateway,
//! locks, ranges). Moves carry world coordinates; the reducer, not the client, decides which
//! frame a dropped card belongs to, so a move and a re-parenting can never disagree. Moving a
//! frame moves what is inside it. See [`doc`] for where everything lives in the document.

pub mod doc;
pub mod formats;
pub mod text;

use crate::code::ErrorCode;
use serde::Deserialize;
use serde_json::{Map as JsonMap, Value, json};
use yrs::{GetString, Map, MapRef, Out, ReadTxn, Text, TextPrelim, WriteTxn};

use self::doc::{MAIN, Placed, Rect, VIEWS, View, descendants, frame_for, view_prelim};
use super::core_graph::{
    self, EDGES, NODES, NewNode, TEXTS, check_coord, check_id, check_size, check_unlocked, entry,
    new_id, node_missing, str_of,
};
use crate::gateway::module::{Cx, EventError, Module, RootDef, RootKind};
use crate::orgs::perms::{Level, PermissionDef, Scope};

pub struct Whiteboard;

/// Most cards one `whiteboard:insert` (a paste, an import) may add.
pub const MAX_INSERT: usize = 2000;
/// Longest text a card holds, in characters.
pub const MAX_TEXT: usize = 100_000;
/// Most cards one event may name.
pub const MAX_IDS: usize = 5000;

pub const EDIT: &str = "whiteboard:board:edit";
pub const VIEWS_MANAGE: &str = "whiteboard:views:manage";

const PERMISSIONS: &[PermissionDef] = &[
    PermissionDef {
        name: EDIT,
        description: "Add, move, change and delete cards and connectors on the board",
        scope: Scope::Project,
        level: Level::Write,
    },
    PermissionDef {
        name: VIEWS_MANAGE,
        description: "Add, rename and delete board views",
        scope: Scope::Project,
        level: Level::Write,
    },
];

const ROOTS: &[RootDef] = &[RootDef {
    name: VIEWS,
    kind: RootKind::Map,
    client_writable: false,
    undoable: true,
    restorable: true,
}];

/// What a card is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum CardKind {
    Note,
    Text,
    Shape,
    Frame,
}

impl CardKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Note => "note",
            Self::Text => "text",
            Self::Shape => "shape",
            Self::Frame => "frame",
        }
    }
    fn default_size(self) -> (f64, f64) {
        match self {
            Self::Note => (200.0, 200.0),
            Self::Text => (240.0, 60.0),
            Self::Shape => (160.0, 120.0),
            Self::Frame => (480.0, 320.0),
        }
    }
}

/// The outline of a shape card.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ShapeKind {
    Rectangle,
    RoundedRectangle,
    Ellipse,
    Diamond,
    Triangle,
    Hexagon,
    Parallelogram,
    Cylinder,
    Plus,
    ArrowRectangle,
}

/// How a card looks; absent fields stay as they are.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CardStyle {
    /// `#rgb`, `#rrggbb` or `transparent`.
    pub fill: Option<String>,
    /// `#rgb`, `#rrggbb` or `transparent`.
    pub border: Option<String>,
    /// Text colour: `#rgb` or `#rrggbb`.
    pub color: Option<String>,
    /// Fill opacity, 0 to 1.
    pub opacity: Option<f64>,
    /// Shape cards only.
    pub shape: Option<ShapeKind>,
    /// A frame's title, at most 200 characters.
    pub title: Option<String>,
    /// 8 to 200.
    pub font_size: Option<f64>,
}

/// How a connector runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Route {
    Straight,
    Bezier,
    Step,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Dash {
    Solid,
    Dashed,
    Dotted,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Arrowhead {
    None,
    Arrow,
}

/// How a connector looks; absent fields stay as they are.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EdgeStyle {
    /// `#rgb` or `#rrggbb`.
    pub color: Option<String>,
    pub route: Option<Route>,
    /// 1 to 16.
    pub width: Option<f64>,
    pub dash: Option<Dash>,
    pub start: Option<Arrowhead>,
    pub end: Option<Arrowhead>,
    /// At most 200 characters; empty removes it.
    pub label: Option<String>,
}

/// A card's new position (its top-left corner, in world coordinates).
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MoveTo {
    pub id: String,
    pub x: f64,
    pub y: f64,
}

#[derive(Debug, Clone, Copy, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Point {
    pub x: f64,
    pub y: f64,
}

/// A card for `whiteboard:add-card`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewCard {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub view: Option<String>,
    pub kind: CardKind,
    pub x: f64,
    pub y: f64,
    /// The kind's default when absent.
    #[serde(default)]
    pub w: Option<f64>,
    #[serde(default)]
    pub h: Option<f64>,
    #[serde(default)]
    pub text: Option<String>,
    #[serde(default)]
    pub style: Option<CardStyle>,
}

/// One card of a `whiteboard:insert`.
#[derive(Debug, Clone, Deserialize, serde::Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InsertCard {
    /// The card's name inside this event (edges and `parent` refer to it); the card gets a
    /// new id, returned in the answer.
    #[serde(rename = "ref")]
    pub reference: String,
    /// `note`, `text`, `shape`, `frame`, or any other kind (1 to 64 characters).
    pub kind: String,
    pub x: f64,
    pub y: f64,
    pub w: f64,
    pub h: f64,
    #[serde(default)]
    pub text: Option<String>,
    /// Style and other data (as in `core-graph` nodes).
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub data: Option<JsonMap<String, Value>>,
    /// The `ref` of a frame in the same event.
    #[serde(default)]
    pub parent: Option<String>,
    #[serde(default)]
    pub z: Option<f64>,
}

/// One connector of a `whiteboard:insert`.
#[derive(Debug, Clone, Deserialize, serde::Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InsertEdge {
    #[serde(rename = "ref", default)]
    pub reference: Option<String>,
    /// The `ref` of a card in the same event.
    pub from: String,
    pub to: String,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub data: Option<JsonMap<String, Value>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum OrderTo {
    Front,
    Back,
    Forward,
    Backward,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum AlignTo {
    Left,
    Center,
    Right,
    Top,
    Middle,
    Bottom,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Axis {
    Horizontal,
    Vertical,
}

/// The events of the `whiteboard` module. Every event that names a `view` means `main` when
/// it is absent. Board events need `whiteboard:board:edit`; view events
/// `whiteboard:views:manage`. A card locked by someone else is refused with `locked`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(tag = "type", deny_unknown_fields)]
pub enum Event {
    /// Adds one card. It joins the frame it lands in.
    #[serde(rename = "whiteboard:add-card")]
    AddCard(NewCard),
    /// Connects two cards.
    #[serde(rename = "whiteboard:connect")]
    Connect {
        #[serde(default)]
        id: Option<String>,
        from: String,
        to: String,
        #[serde(default)]
        style: Option<EdgeStyle>,
    },
    /// Adds many cards and connectors at once with new ids (a paste, a duplicate, an
    /// import); with `at`, the cards are moved together so their middle is there.
    #[serde(rename = "whiteboard:insert")]
    Insert {
        #[serde(default)]
        view: Option<String>,
        #[serde(default)]
        at: Option<Point>,
        cards: Vec<InsertCard>,
        #[serde(default)]
        edges: Vec<InsertEdge>,
    },
    /// Moves cards to new positions; what is inside a moved frame moves with it. With
    /// `drop`, each moved card joins the frame it now lies in (or leaves its frame).
    #[serde(rename = "whiteboard:move")]
    Move {
        #[serde(default)]
        view: Option<String>,
        moves: Vec<MoveTo>,
        #[serde(default)]
        drop: bool,
    },
    /// Sets a card's rectangle (resizing from any side moves its corner). With `drop`, a
    /// resized frame takes in the cards now inside it and lets go of those outside.
    #[serde(rename = "whiteboard:resize")]
    Resize {
        #[serde(default)]
        view: Option<String>,
        id: String,
        x: f64,
        y: f64,
        w: f64,
        h: f64,
        #[serde(default)]
        drop: bool,
    },
    /// Deletes cards (with their connectors and text; a frame's cards stay, outside it)
    /// and connectors.
    #[serde(rename = "whiteboard:delete")]
    Delete {
        #[serde(default)]
        cards: Vec<String>,
        #[serde(default)]
        edges: Vec<String>,
    },
    /// Changes how cards look.
    #[serde(rename = "whiteboard:style")]
    Style {
        cards: Vec<String>,
        style: CardStyle,
    },
    /// Changes how connectors look.
    #[serde(rename = "whiteboard:style-edges")]
    StyleEdges {
        edges: Vec<String>,
        style: EdgeStyle,
    },
    /// Changes a card's text: replaces `delete` characters at `at` with `insert`, counted
    /// in UTF-16 code units of `base`, the text the sender saw. Edits others made since are
    /// kept. Answers the text as it now is.
    #[serde(rename = "whiteboard:edit-text")]
    EditText {
        id: String,
        base: String,
        #[schema(maximum = 100_000)]
        at: usize,
        #[serde(default)]
        #[schema(maximum = 100_000)]
        delete: usize,
        #[serde(default)]
        insert: String,
    },
    /// Changes the stacking order.
    #[serde(rename = "whiteboard:order")]
    Order {
        #[serde(default)]
        view: Option<String>,
        cards: Vec<String>,
        to: OrderTo,
    },
    /// Locks cards (only the one who locked them, or a project admin, changes them then)
    /// or unlocks them.
    #[serde(rename = "whiteboard:lock")]
    Lock { cards: Vec<String>, locked: bool },
    /// Shows cards collapsed to their first line, or whole again.
    #[serde(rename = "whiteboard:collapse")]
    Collapse {
        #[serde(default)]
        view: Option<String>,
        cards: Vec<String>,
        collapsed: bool,
    },
    /// Puts cards in a new frame around them; answers its id.
    #[serde(rename = "whiteboard:group")]
    Group {
        #[serde(default)]
        view: Option<String>,
        cards: Vec<String>,
        #[serde(default)]
        id: Option<String>,
        #[serde(default)]
        title: Option<String>,
    },
    /// Lines up two or more cards on one of their sides or middles.
    #[serde(rename = "whiteboard:align")]
    Align {
        #[serde(default)]
        view: Option<String>,
        cards: Vec<String>,
        to: AlignTo,
    },
    /// Spaces three or more cards evenly between the outermost two.
    #[serde(rename = "whiteboard:distribute")]
    Distribute {
        #[serde(default)]
        view: Option<String>,
        cards: Vec<String>,
        axis: Axis,
    },
    /// Adds a board view (its cards sit where they sit in `main` until moved there).
    #[serde(rename = "whiteboard:add-view")]
    AddView {
        #[serde(default)]
        id: Option<String>,
        /// 1 to 100 characters.
        name: String,
    },
    #[serde(rename = "whiteboard:rename-view")]
    RenameView { id: String, name: String },
    /// Deletes a view (never `main`); the cards stay in the others.
    #[serde(rename = "whiteboard:delete-view")]
    DeleteView { id: String },
}

fn invalid(code: ErrorCode, message: impl Into<String>) -> EventError {
    EventError::invalid(code, message)
}

fn check_colour(field: &str, v: &str, transparent_ok: bool) -> Result<(), EventError> {
    let hex = |s: &str| s.bytes().all(|b| b.is_ascii_hexdigit());
    let ok = (transparent_ok && v == "transparent")
        || (v.len() == 4 || v.len() == 7) && v.starts_with('#') && hex(&v[1..]);
    if ok {
        Ok(())
    } else {
        Err(invalid(
            ErrorCode::InvalidStyle,
            format!(
                "`{field}` is a colour like #1f5fbf{}",
                if transparent_ok {
                    " or transparent"
                } else {
                    ""
                }
            ),
        ))
    }
}

fn check_name(name: &str) -> Result<(), EventError> {
    if name.trim().is_empty() || name.chars().count() > 100 {
        return Err(invalid(
            ErrorCode::InvalidName,
            "a name is 1 to 100 characters",
        ));
    }
    Ok(())
}

fn check_ids(ids: &[String], what: &str) -> Result<(), EventError> {
    if ids.len() > MAX_IDS {
        return Err(invalid(
            ErrorCode::TooMany,
            format!("at most {MAX_IDS} {what} per event"),
        ));
    }
    Ok(())
}

fn check_text(t: &str) -> Result<(), EventError> {
    if t.chars().count() > MAX_TEXT {
        return Err(invalid(
            ErrorCode::TextTooLong,
            format!("a card's text is at most {MAX_TEXT} characters"),
        ));
    }
    Ok(())
}

impl CardStyle {
    fn check(&self) -> Result<(), EventError> {
        if let Some(c) = &self.fill {
            check_colour("fill", c, true)?;
        }
        if let Some(c) = &self.border {
            check_colour("border", c, true)?;
        }
        if let Some(c) = &self.color {
            check_colour("color", c, false)?;
        }
        if let Some(o) = self.opacity
            && !(0.0..=1.0).contains(&o)
        {
            return Err(invalid(
                ErrorCode::InvalidStyle,
                "`opacity` is between 0 and 1",
            ));
        }
        if let Some(t) = &self.title
            && t.chars().count() > 200
        {
            return Err(invalid(
                ErrorCode::InvalidStyle,
                "a title is at most 200 characters",
            ));
        }
        if let Some(f) = self.font_size
            && !(8.0..=200.0).contains(&f)
        {
            return Err(invalid(ErrorCode::InvalidStyle, "`font_size` is 8 to 200"));
        }
        Ok(())
    }

    /// The data keys this style sets (`shape` only for shape cards).
    fn patch(&self, kind: &str) -> JsonMap<String, Value> {
        let mut p = JsonMap::new();
        let mut put = |k: &str, v: Option<Value>| {
            if let Some(v) = v {
                p.insert(k.into(), v);
            }
        };
        put("fill", self.fill.clone().map(Value::from));
        put("border", self.border.clone().map(Value::from));
        put("color", self.color.clone().map(Value::from));
        put("opacity", self.opacity.map(Value::from));
        put("font_size", self.font_size.map(Value::from));
        if kind == "shape" {
            put("shape", self.shape.map(|s| json!(s)));
        }
        if kind == "frame" {
            put("title", self.title.clone().map(Value::from));
        }
        p
    }
}

impl EdgeStyle {
    fn check(&self) -> Result<(), EventError> {
        if let Some(c) = &self.color {
            check_colour("color", c, false)?;
        }
        if let Some(w) = self.width
            && !(1.0..=16.0).contains(&w)
        {
            return Err(invalid(ErrorCode::InvalidStyle, "`width` is 1 to 16"));
        }
        if let Some(l) = &self.label
            && l.chars().count() > 200
        {
            return Err(invalid(
                ErrorCode::InvalidStyle,
                "a label is at most 200 characters",
            ));
        }
        Ok(())
    }

    fn patch(&self) -> JsonMap<String, Value> {
        let mut p = JsonMap::new();
        let mut put = |k: &str, v: Option<Value>| {
            if let Some(v) = v {
                p.insert(k.into(), v);
            }
        };
        put("color", self.color.clone().map(Value::from));
        put("route", self.route.map(|v| json!(v)));
        put("width", self.width.map(Value::from));
        put("dash", self.dash.map(|v| json!(v)));
        put("start", self.start.map(|v| json!(v)));
        put("end", self.end.map(|v| json!(v)));
        // An empty label removes it.
        put(
            "label",
            self.label.clone().map(|l| {
                if l.is_empty() {
                    Value::Null
                } else {
                    Value::from(l)
                }
            }),
        );
        p
    }
}

/// The node maps of `ids`, every one checked to exist and to be changeable by the actor.
fn changeable(cx: &Cx<'_, '_>, nodes: &MapRef, ids: &[String]) -> Result<Vec<MapRef>, EventError> {
    ids.iter()
        .map(|id| {
            let n = entry(nodes, cx.txn, id).ok_or_else(|| node_missing(id))?;
            check_unlocked(&n, cx.txn, cx.actor, id)?;
            Ok(n)
        })
        .collect()
}

/// Moves cards to new rectangles in `view`; what is inside a moved frame moves by the same
/// amount. Every card whose place changes must be changeable. With `drop`, the cards named
/// join the frame they land in.
fn place(
    cx: &mut Cx<'_, '_>,
    view: &View,
    targets: Vec<(String, Rect)>,
    drop: bool,
) -> Result<Vec<String>, EventError> {
    let nodes = cx.txn.get_or_insert_map(NODES);
    let all = view.placed(cx.txn);
    let mut plan: Vec<(String, Rect)> = Vec::new();
    for (id, to) in &targets {
        let card = all
            .iter()
            .find(|c| &c.id == id)
            .ok_or_else(|| node_missing(id))?;
        let (dx, dy) = (to.x - card.rect.x, to.y - card.rect.y);
        plan.push((id.clone(), *to));
        if dx == 0.0 && dy == 0.0 {
            continue;
        }
        for d in descendants(&all, id) {
            if targets.iter().any(|(t, _)| *t == d) || plan.iter().any(|(p, _)| *p == d) {
                continue;
            }
            if let Some(c) = all.iter().find(|c| c.id == d) {
                let r = c.rect;
                plan.push((
                    d,
                    Rect {
                        x: r.x + dx,
                        y: r.y + dy,
                        ..r
                    },
                ));
            }
        }
    }
    for (id, r) in &plan {
        check_coord("x", r.x)?;
        check_coord("y", r.y)?;
        check_size(r.w, r.h)?;
        let changes = all
            .iter()
            .find(|c| &c.id == id)
            .is_some_and(|c| c.rect != *r);
        if changes {
            let n = entry(&nodes, cx.txn, id).ok_or_else(|| node_missing(id))?;
            check_unlocked(&n, cx.txn, cx.actor, id)?;
        }
    }
    let mut moved = Vec::new();
    for (id, r) in &plan {
        let Some(n) = entry(&nodes, cx.txn, id) else {
            continue;
        };
        if view.rect(cx.txn, &n, id) != *r {
            view.set_rect(cx.txn, &n, id, *r);
            cx.touch(id);
            moved.push(id.clone());
        }
    }
    if drop {
        // Decided on the board as it now is.
        let now = view.placed(cx.txn);
        for (id, r) in &targets {
            let parent = frame_for(&now, id, *r);
            if view.parent(cx.txn, id) != parent {
                if let Some(n) = entry(&nodes, cx.txn, id) {
                    check_unlocked(&n, cx.txn, cx.actor, id)?;
                }
                view.set_parent(cx.txn, id, parent.as_deref());
                cx.touch(id);
            }
        }
    }
    Ok(moved)
}

/// Deletes cards and connectors; a deleted frame's cards stay, in the frame's own frame.
fn delete(cx: &mut Cx<'_, '_>, cards: &[String], edges: &[String]) -> Result<Value, EventError> {
    let nodes = cx.txn.get_or_insert_map(NODES);
    let edge_map = cx.txn.get_or_insert_map(EDGES);
    // Someone else may have deleted some already: those are skipped.
    let cards: Vec<String> = cards
        .iter()
        .filter(|id| nodes.contains_key(cx.txn, id))
        .cloned()
        .collect();
    changeable(cx, &nodes, &cards)?;
    let view_ids: Vec<String> = cx
        .txn
        .get_map(VIEWS)
        .map(|v| v.keys(cx.txn).map(str::to_string).collect())
        .unwrap_or_default();
    let mut gone_edges = Vec::new();
    for id in &cards {
        for vid in &view_ids {
            let view = View::open(cx.txn, Some(vid))?;
            let up = view.parent(cx.txn, id);
            let children: Vec<String> = view
                .placed(cx.txn)
                .into_iter()
                .filter(|c| c.parent.as_deref() == Some(id.as_str()))
                .map(|c| c.id)
                .collect();
            for c in children {
                view.set_parent(cx.txn, &c, up.as_deref());
                cx.touch(&c);
            }
            view.forget(cx.txn, id);
        }
        gone_edges.extend(core_graph::delete_node(cx, id));
    }
    for e in edges {
        if edge_map.remove(cx.txn, e).is_some() {
            gone_edges.push(e.clone());
        }
    }
    Ok(json!({ "cards": cards, "edges": gone_edges }))
}

/// The rectangles of `ids` in `view`, each checked to exist and be changeable.
fn rects_of(
    cx: &Cx<'_, '_>,
    view: &View,
    ids: &[String],
) -> Result<Vec<(String, Rect)>, EventError> {
    let nodes = cx
        .txn
        .get_map(NODES)
        .ok_or_else(|| node_missing(ids.first().map(String::as_str).unwrap_or("")))?;
    ids.iter()
        .map(|id| {
            let n = entry(&nodes, cx.txn, id).ok_or_else(|| node_missing(id))?;
            check_unlocked(&n, cx.txn, cx.actor, id)?;
            Ok((id.clone(), view.rect(cx.txn, &n, id)))
        })
        .collect()
}

fn dedup(ids: Vec<String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(ids.len());
    for id in ids {
        if !out.contains(&id) {
            out.push(id);
        }
    }
    out
}

/// Writes a card's whole text (a new card's, or an inserted one's).
fn write_text(cx: &mut Cx<'_, '_>, id: &str, text: &str) {
    let texts = cx.txn.get_or_insert_map(TEXTS);
    texts.insert(cx.txn, id, TextPrelim::new(text));
}

impl Whiteboard {
    fn add_card(&self, cx: &mut Cx<'_, '_>, card: NewCard) -> Result<Value, EventError> {
        let NewCard {
            id,
            view,
            kind,
            x,
            y,
            w,
            h,
            text,
            style,
        } = card;
        let id = id.unwrap_or_else(new_id);
        check_id(&id)?;
        let (dw, dh) = kind.default_size();
        let r = Rect {
            x,
            y,
            w: w.unwrap_or(dw),
            h: h.unwrap_or(dh),
        };
        check_coord("x", r.x)?;
        check_coord("y", r.y)?;
        check_size(r.w, r.h)?;
        let style = style.unwrap_or_default();
        style.check()?;
        if let Some(t) = &text {
            check_text(t)?;
        }
        let nodes = cx.txn.get_or_insert_map(NODES);
        if nodes.contains_key(cx.txn, &id) {
            return Err(EventError::conflict(
                ErrorCode::NodeExists,
                format!("a card `{id}` exists already"),
            ));
        }
        let view = View::open(cx.txn, view.as_deref())?;
        let data = style.patch(kind.as_str());
        let node = core_graph::insert_node(
            cx,
            NewNode {
                id: &id,
                kind: kind.as_str(),
                x: r.x,
                y: r.y,
                w: r.w,
                h: r.h,
                data: &data,
            },
        );
        if !view.is_main() {
            view.set_rect(cx.txn, &node, &id, r);
        }
        let z = view.top_z(cx.txn) + 1.0;
        view.set_z(cx.txn, &id, z);
        let all = view.placed(cx.txn);
        if let Some(parent) = frame_for(&all, &id, r) {
            view.set_parent(cx.txn, &id, Some(&parent));
        }
        if let Some(t) = text.filter(|t| !t.is_empty()) {
            write_text(cx, &id, &t);
        }
        Ok(json!({ "id": id }))
    }

    fn insert(
        &self,
        cx: &mut Cx<'_, '_>,
        view: Option<String>,
        at: Option<Point>,
        cards: Vec<InsertCard>,
        edges: Vec<InsertEdge>,
    ) -> Result<Value, EventError> {
        if cards.is_empty() {
            return Err(invalid(ErrorCode::TooFew, "`cards` is empty"));
        }
        if cards.len() > MAX_INSERT || edges.len() > 2 * MAX_INSERT {
            return Err(invalid(
                ErrorCode::TooMany,
                format!(
                    "at most {MAX_INSERT} cards and {} connectors at once",
                    2 * MAX_INSERT
                ),
            ));
        }
        let mut refs: Vec<(String, String)> = Vec::with_capacity(cards.len());
        for c in &cards {
            if c.reference.is_empty() || c.reference.chars().count() > 64 {
                return Err(invalid(
                    ErrorCode::InvalidRef,
                    "a `ref` is 1 to 64 characters",
                ));
            }
            if refs.iter().any(|(r, _)| *r == c.reference) {
                return Err(invalid(
                    ErrorCode::InvalidRef,
                    format!("`ref` {} is used twice", c.reference),
                ));
            }
            if c.kind.trim().is_empty() || c.kind.chars().count() > 64 {
                return Err(invalid(
                    ErrorCode::InvalidKind,
                    "a kind is 1 to 64 characters",
                ));
            }
            check_coord("x", c.x)?;
            check_coord("y", c.y)?;
            check_size(c.w, c.h)?;
            core_graph::check_data(&c.data)?;
            if let Some(t) = &c.text {
                check_text(t)?;
            }
            refs.push((c.reference.clone(), new_id()));
        }
        let id_of = |r: &str| refs.iter().find(|(x, _)| x == r).map(|(_, id)| id.clone());
        for e in &edges {
            if id_of(&e.from).is_none() || id_of(&e.to).is_none() {
                return Err(invalid(
                    ErrorCode::InvalidRef,
                    "a connector joins two cards of the same event (by `ref`)",
                ));
            }
            core_graph::check_data(&e.data)?;
        }
        let bounds = Rect::around(cards.iter().map(|c| Rect {
            x: c.x,
            y: c.y,
            w: c.w,
            h: c.h,
        }));
        let (dx, dy) = match (at, bounds) {
            (Some(p), Some(b)) => (p.x - b.cx(), p.y - b.cy()),
            _ => (0.0, 0.0),
        };
        for c in &cards {
            check_coord("x", c.x + dx)?;
            check_coord("y", c.y + dy)?;
        }
        let view = View::open(cx.txn, view.as_deref())?;
        let base_z = view.top_z(cx.txn);
        // Above everything, in the order the cards had among themselves.
        let mut by_z: Vec<usize> = (0..cards.len()).collect();
        let z_of = |i: usize| cards[i].z.unwrap_or(i as f64);
        by_z.sort_by(|&a, &b| z_of(a).total_cmp(&z_of(b)).then(a.cmp(&b)));
        let mut rank = vec![0usize; cards.len()];
        for (r, &i) in by_z.iter().enumerate() {
            rank[i] = r;
        }
        for (i, c) in cards.iter().enumerate() {
            let id = id_of(&c.reference).unwrap_or_default();
            let r = Rect {
                x: c.x + dx,
                y: c.y + dy,
                w: c.w,
                h: c.h,
            };
            let data = c.data.clone().unwrap_or_default();
            let node = core_graph::insert_node(
                cx,
                NewNode {
                    id: &id,
                    kind: &c.kind,
                    x: r.x,
                    y: r.y,
                    w: r.w,
                    h: r.h,
                    data: &data,
                },
            );
            if !view.is_main() {
                view.set_rect(cx.txn, &node, &id, r);
            }
            view.set_z(cx.txn, &id, base_z + 1.0 + rank[i] as f64);
            if let Some(t) = c.text.as_deref().filter(|t| !t.is_empty()) {
                write_text(cx, &id, t);
            }
        }
        let all = view.placed(cx.txn);
        for c in &cards {
            let id = id_of(&c.reference).unwrap_or_default();
            let parent = c
                .parent
                .as_deref()
                .and_then(|p| {
                    cards
                        .iter()
                        .any(|f| f.reference == p && f.kind == "frame")
                        .then(|| id_of(p))
                        .flatten()
                })
                .or_else(|| {
                    let r = Rect {
                        x: c.x + dx,
                        y: c.y + dy,
                        w: c.w,
                        h: c.h,
                    };
                    frame_for(&all, &id, r)
                });
            if parent.as_deref() != Some(id.as_str()) {
                view.set_parent(cx.txn, &id, parent.as_deref());
            }
        }
        let mut edge_ids = JsonMap::new();
        for e in &edges {
            let id = new_id();
            let (Some(from), Some(to)) = (id_of(&e.from), id_of(&e.to)) else {
                continue;
            };
            core_graph::insert_edge(
                cx.txn,
                &id,
                &from,
                &to,
                "edge",
                &e.data.clone().unwrap_or_default(),
            );
            if let Some(r) = &e.reference {
                edge_ids.insert(r.clone(), Value::from(id));
            }
        }
        let card_ids: JsonMap<String, Value> = refs
            .into_iter()
            .map(|(r, id)| (r, Value::from(id)))
            .collect();
        Ok(json!({ "cards": card_ids, "edges": edge_ids }))
    }

    fn edit_text(
        &self,
        cx: &mut Cx<'_, '_>,
        id: String,
        base: String,
        at: usize,
        delete: usize,
        insert: String,
    ) -> Result<Value, EventError> {
        let nodes = cx.txn.get_or_insert_map(NODES);
        let node = entry(&nodes, cx.txn, &id).ok_or_else(|| node_missing(&id))?;
        check_unlocked(&node, cx.txn, cx.actor, &id)?;
        check_text(&base)?;
        check_text(&insert)?;
        let texts = cx.txn.get_or_insert_map(TEXTS);
        let text = match texts.get(cx.txn, &id) {
            Some(Out::YText(t)) => t,
            _ => texts.insert(cx.txn, id.as_str(), TextPrelim::new("")),
        };
        let current = text.get_string(cx.txn);
        let (chars, from, to) = text::rebase(&base, &current, at, delete).ok_or_else(|| {
            invalid(
                ErrorCode::InvalidPosition,
                "`at` and `delete` must lie within `base` (counted in UTF-16 code units)",
            )
        })?;
        if chars.len() - (to - from) + insert.chars().count() > MAX_TEXT {
            return Err(invalid(
                ErrorCode::TextTooLong,
                format!("a card's text is at most {MAX_TEXT} characters"),
            ));
        }
        let kind = cx.txn.doc().offset_kind();
        let start = text::offset(&chars, from, kind);
        let end = text::offset(&chars, to, kind);
        if end > start {
            text.remove_range(cx.txn, start, end - start);
        }
        if !insert.is_empty() {
            text.insert(cx.txn, start, &insert);
        }
        cx.touch(&id);
        Ok(json!({ "id": id, "text": text.get_string(cx.txn) }))
    }

    fn order(
        &self,
        cx: &mut Cx<'_, '_>,
        view: &View,
        ids: &[String],
        to: OrderTo,
    ) -> Result<(), EventError> {
        let nodes = cx.txn.get_or_insert_map(NODES);
        changeable(cx, &nodes, ids)?;
        let mut all = view.placed(cx.txn);
        all.sort_by(|a, b| a.z.total_cmp(&b.z).then(a.id.cmp(&b.id)));
        let chosen = |c: &Placed| ids.contains(&c.id);
        let zs: Vec<f64> = all.iter().map(|c| c.z).collect();
        let (lo, hi) = (
            zs.first().copied().unwrap_or(0.0),
            zs.last().copied().unwrap_or(0.0),
        );
        let picked: Vec<Placed> = all.iter().filter(|c| chosen(c)).cloned().collect();
        let n = picked.len() as f64;
        for (i, c) in picked.iter().enumerate() {
            let i = i as f64;
            let z = match to {
                OrderTo::Front => hi + 1.0 + i,
                OrderTo::Back => lo - n + i,
                OrderTo::Forward | OrderTo::Backward => {
                    let pos = all.iter().position(|x| x.id == c.id).unwrap_or(0);
                    let others: Vec<&Placed> = if to == OrderTo::Forward {
                        all[pos + 1..].iter().filter(|x| !chosen(x)).collect()
                    } else {
                        all[..pos].iter().rev().filter(|x| !chosen(x)).collect()
                    };
                    match (others.first(), others.get(1)) {
                        (Some(a), Some(b)) => (a.z + b.z) / 2.0 + i * 1e-6,
                        (Some(a), None) if to == OrderTo::Forward => a.z + 1.0 + i,
                        (Some(a), None) => a.z - n + i,
                        (None, _) => c.z,
                    }
                }
            };
            if z != c.z {
                view.set_z(cx.txn, &c.id, z);
                cx.touch(&c.id);
            }
        }
        Ok(())
    }

    fn lock(&self, cx: &mut Cx<'_, '_>, ids: &[String], locked: bool) -> Result<(), EventError> {
        let nodes = cx.txn.get_or_insert_map(NODES);
        let maps = changeable(cx, &nodes, ids)?;
        let (uid, name) = match cx.actor {
            crate::gateway::module::Actor::User(u) => (u.id.clone(), u.name.clone()),
            crate::gateway::module::Actor::System => ("system".into(), "the server".into()),
        };
        for (n, id) in maps.iter().zip(ids) {
            let was = str_of(n, cx.txn, "locked_by");
            if locked {
                if was.as_deref() != Some(uid.as_str()) {
                    n.insert(cx.txn, "locked_by", uid.clone());
                    n.insert(cx.txn, "locked_by_name", name.clone());
                    cx.touch(id);
                }
            } else if was.is_some() {
                n.remove(cx.txn, "locked_by");
                n.remove(cx.txn, "locked_by_name");
                cx.touch(id);
            }
        }
        Ok(())
    }

    fn group(
        &self,
        cx: &mut Cx<'_, '_>,
        view: &View,
        ids: &[String],
        id: Option<String>,
        title: Option<String>,
    ) -> Result<Value, EventError> {
        if ids.is_empty() {
            return Err(invalid(ErrorCode::TooFew, "`cards` is empty"));
        }
        let id = id.unwrap_or_else(new_id);
        check_id(&id)?;
        if let Some(t) = &title
            && t.chars().count() > 200
        {
            return Err(invalid(
                ErrorCode::InvalidStyle,
                "a title is at most 200 characters",
            ));
        }
        let rects = rects_of(cx, view, ids)?;
        let nodes = cx.txn.get_or_insert_map(NODES);
        if nodes.contains_key(cx.txn, &id) {
            return Err(EventError::conflict(
                ErrorCode::NodeExists,
                format!("a card `{id}` exists already"),
            ));
        }
        let Some(b) = Rect::around(rects.iter().map(|(_, r)| *r)) else {
            return Err(invalid(ErrorCode::TooFew, "`cards` is empty"));
        };
        let (pad, head) = (24.0, 40.0);
        let frame = Rect {
            x: b.x - pad,
            y: b.y - pad - head,
            w: b.w + 2.0 * pad,
            h: b.h + 2.0 * pad + head,
        };
        let all = view.placed(cx.txn);
        // The new frame sits where its cards were: in their common frame, if they share one.
        let parents: Vec<Option<String>> = ids.iter().map(|i| view.parent(cx.txn, i)).collect();
        let common = parents
            .first()
            .cloned()
            .flatten()
            .filter(|p| parents.iter().all(|q| q.as_deref() == Some(p.as_str())));
        let lowest = all
            .iter()
            .filter(|c| ids.contains(&c.id))
            .map(|c| c.z)
            .fold(f64::INFINITY, f64::min);
        let mut data = JsonMap::new();
        data.insert(
            "title".into(),
            Value::from(title.unwrap_or_else(|| "Frame".into())),
        );
        let node = core_graph::insert_node(
            cx,
            NewNode {
                id: &id,
                kind: "frame",
                x: frame.x,
                y: frame.y,
                w: frame.w,
                h: frame.h,
                data: &data,
            },
        );
        if !view.is_main() {
            view.set_rect(cx.txn, &node, &id, frame);
        }
        view.set_z(
            cx.txn,
            &id,
            if lowest.is_finite() {
                lowest - 1.0
            } else {
                0.0
            },
        );
        if let Some(p) = common {
            view.set_parent(cx.txn, &id, Some(&p));
        }
        for c in ids {
            view.set_parent(cx.txn, c, Some(&id));
            cx.touch(c);
        }
        Ok(json!({ "id": id }))
    }

    fn align(
        &self,
        cx: &mut Cx<'_, '_>,
        view: &View,
        ids: &[String],
        to: AlignTo,
    ) -> Result<(), EventError> {
        if ids.len() < 2 {
            return Err(invalid(
                ErrorCode::TooFew,
                "aligning takes two or more cards",
            ));
        }
        let rects = rects_of(cx, view, ids)?;
        let Some(b) = Rect::around(rects.iter().map(|(_, r)| *r)) else {
            return Ok(());
        };
        let targets = rects
            .into_iter()
            .map(|(id, r)| {
                let (x, y) = match to {
                    AlignTo::Left => (b.x, r.y),
                    AlignTo::Center => (b.cx() - r.w / 2.0, r.y),
                    AlignTo::Right => (b.right() - r.w, r.y),
                    AlignTo::Top => (r.x, b.y),
                    AlignTo::Middle => (r.x, b.cy() - r.h / 2.0),
                    AlignTo::Bottom => (r.x, b.bottom() - r.h),
                };
                (id, Rect { x, y, ..r })
            })
            .collect();
        place(cx, view, targets, false)?;
        Ok(())
    }

    fn distribute(
        &self,
        cx: &mut Cx<'_, '_>,
        view: &View,
        ids: &[String],
        axis: Axis,
    ) -> Result<(), EventError> {
        if ids.len() < 3 {
            return Err(invalid(
                ErrorCode::TooFew,
                "distributing takes three or more cards",
            ));
        }
        let mut rects = rects_of(cx, view, ids)?;
        let h = axis == Axis::Horizontal;
        let start = |r: &Rect| if h { r.x } else { r.y };
        let size = |r: &Rect| if h { r.w } else { r.h };
        rects.sort_by(|a, b| {
            (start(&a.1) + size(&a.1) / 2.0).total_cmp(&(start(&b.1) + size(&b.1) / 2.0))
        });
        let first = start(&rects[0].1);
        let last = rects
            .last()
            .map(|(_, r)| start(r) + size(r))
            .unwrap_or(first);
        let total: f64 = rects.iter().map(|(_, r)| size(r)).sum();
        let gap = (last - first - total) / (rects.len() - 1) as f64;
        let mut at = first;
        let targets = rects
            .into_iter()
            .map(|(id, r)| {
                let t = if h {
                    Rect { x: at, ..r }
                } else {
                    Rect { y: at, ..r }
                };
                at += size(&r) + gap;
                (id, t)
            })
            .collect();
        place(cx, view, targets, false)?;
        Ok(())
    }
}

impl Module for Whiteboard {
    type Event = Event;

    fn name(&self) -> &'static str {
        "whiteboard"
    }
    fn dependencies(&self) -> &'static [&'static str] {
        &["core-graph"]
    }
    fn roots(&self) -> &'static [RootDef] {
        ROOTS
    }
    fn permissions(&self) -> &'static [PermissionDef] {
        PERMISSIONS
    }
    fn permission(&self, event_type: &str) -> &'static str {
        match event_type {
            "whiteboard:add-view" | "whiteboard:rename-view" | "whiteboard:delete-view" => {
                VIEWS_MANAGE
            }
            _ => EDIT,
        }
    }

    fn init(&self, cx: &mut Cx<'_, '_>) -> Result<(), EventError> {
        View::open(cx.txn, None).map(|_| ())
    }

    fn reduce(&self, cx: &mut Cx<'_, '_>, event: Event) -> Result<Value, EventError> {
        match event {
            Event::AddCard(card) => self.add_card(cx, card),
            Event::Connect {
                id,
                from,
                to,
                style,
            } => {
                let id = id.unwrap_or_else(new_id);
                check_id(&id)?;
                let style = style.unwrap_or_default();
                style.check()?;
                if from == to {
                    return Err(invalid(
                        ErrorCode::InvalidEdge,
                        "a connector joins two different cards",
                    ));
                }
                let nodes = cx.txn.get_or_insert_map(NODES);
                for end in [&from, &to] {
                    if !nodes.contains_key(cx.txn, end) {
                        return Err(node_missing(end));
                    }
                }
                let edges = cx.txn.get_or_insert_map(EDGES);
                if edges.contains_key(cx.txn, &id) {
                    return Err(EventError::conflict(
                        ErrorCode::EdgeExists,
                        format!("a connector `{id}` exists already"),
                    ));
                }
                let mut data = style.patch();
                data.retain(|_, v| !v.is_null());
                core_graph::insert_edge(cx.txn, &id, &from, &to, "edge", &data);
                Ok(json!({ "id": id }))
            }
            Event::Insert {
                view,
                at,
                cards,
                edges,
            } => self.insert(cx, view, at, cards, edges),
            Event::Move { view, moves, drop } => {
                if moves.len() > MAX_IDS {
                    return Err(invalid(
                        ErrorCode::TooMany,
                        format!("at most {MAX_IDS} cards per event"),
                    ));
                }
                let view = View::open(cx.txn, view.as_deref())?;
                let all = view.placed(cx.txn);
                let mut targets = Vec::with_capacity(moves.len());
                for m in moves {
                    let r = all
                        .iter()
                        .find(|c| c.id == m.id)
                        .map(|c| c.rect)
                        .ok_or_else(|| node_missing(&m.id))?;
                    targets.push((
                        m.id,
                        Rect {
                            x: m.x,
                            y: m.y,
                            ..r
                        },
                    ));
                }
                let moved = place(cx, &view, targets, drop)?;
                Ok(json!({ "moved": moved }))
            }
            Event::Resize {
                view,
                id,
                x,
                y,
                w,
                h,
                drop,
            } => {
                let view = View::open(cx.txn, view.as_deref())?;
                let r = Rect { x, y, w, h };
                check_coord("x", x)?;
                check_coord("y", y)?;
                check_size(w, h)?;
                let nodes = cx.txn.get_or_insert_map(NODES);
                let node = entry(&nodes, cx.txn, &id).ok_or_else(|| node_missing(&id))?;
                check_unlocked(&node, cx.txn, cx.actor, &id)?;
                if view.rect(cx.txn, &node, &id) != r {
                    view.set_rect(cx.txn, &node, &id, r);
                    cx.touch(&id);
                }
                let is_frame = str_of(&node, cx.txn, "kind").as_deref() == Some("frame");
                if drop && is_frame {
                    // The frame takes in what now lies in it, and lets go of the rest.
                    let all = view.placed(cx.txn);
                    for c in &all {
                        if c.id == id {
                            continue;
                        }
                        let now = frame_for(&all, &c.id, c.rect);
                        let was = c.parent.clone();
                        let concerns = now.as_deref() == Some(id.as_str())
                            || was.as_deref() == Some(id.as_str());
                        if concerns && now != was {
                            if let Some(n) = entry(&nodes, cx.txn, &c.id) {
                                check_unlocked(&n, cx.txn, cx.actor, &c.id)?;
                            }
                            view.set_parent(cx.txn, &c.id, now.as_deref());
                            cx.touch(&c.id);
                        }
                    }
                }
                Ok(json!({ "id": id }))
            }
            Event::Delete { cards, edges } => {
                check_ids(&cards, "cards")?;
                check_ids(&edges, "connectors")?;
                delete(cx, &dedup(cards), &dedup(edges))
            }
            Event::Style { cards, style } => {
                check_ids(&cards, "cards")?;
                style.check()?;
                let cards = dedup(cards);
                let nodes = cx.txn.get_or_insert_map(NODES);
                let maps = changeable(cx, &nodes, &cards)?;
                for (n, id) in maps.iter().zip(&cards) {
                    let kind = str_of(n, cx.txn, "kind").unwrap_or_default();
                    core_graph::merge_data(n, cx.txn, style.patch(&kind));
                    cx.touch(id);
                }
                Ok(json!({ "cards": cards }))
            }
            Event::StyleEdges { edges, style } => {
                check_ids(&edges, "connectors")?;
                style.check()?;
                let map = cx.txn.get_or_insert_map(EDGES);
                let found: Vec<MapRef> = edges
                    .iter()
                    .map(|id| {
                        entry(&map, cx.txn, id).ok_or_else(|| {
                            EventError::not_found(
                                ErrorCode::EdgeNotFound,
                                format!("no connector `{id}`"),
                            )
                        })
                    })
                    .collect::<Result<_, _>>()?;
                for e in found {
                    core_graph::merge_data(&e, cx.txn, style.patch());
                }
                Ok(json!({ "edges": edges }))
            }
            Event::EditText {
                id,
                base,
                at,
                delete,
                insert,
            } => self.edit_text(cx, id, base, at, delete, insert),
            Event::Order { view, cards, to } => {
                check_ids(&cards, "cards")?;
                let view = View::open(cx.txn, view.as_deref())?;
                self.order(cx, &view, &dedup(cards), to)?;
                Ok(json!({}))
            }
            Event::Lock { cards, locked } => {
                check_ids(&cards, "cards")?;
                self.lock(cx, &dedup(cards), locked)?;
                Ok(json!({}))
            }
            Event::Collapse {
                view,
                cards,
                collapsed,
            } => {
                check_ids(&cards, "cards")?;
                let cards = dedup(cards);
                let view = View::open(cx.txn, view.as_deref())?;
                let nodes = cx.txn.get_or_insert_map(NODES);
                changeable(cx, &nodes, &cards)?;
                for id in &cards {
                    view.set_collapsed(cx.txn, id, collapsed);
                    cx.touch(id);
                }
                Ok(json!({}))
            }
            Event::Group {
                view,
                cards,
                id,
                title,
            } => {
                check_ids(&cards, "cards")?;
                let view = View::open(cx.txn, view.as_deref())?;
                self.group(cx, &view, &dedup(cards), id, title)
            }
            Event::Align { view, cards, to } => {
                check_ids(&cards, "cards")?;
                let view = View::open(cx.txn, view.as_deref())?;
                self.align(cx, &view, &dedup(cards), to)?;
                Ok(json!({}))
            }
            Event::Distribute { view, cards, axis } => {
                check_ids(&cards, "cards")?;
                let view = View::open(cx.txn, view.as_deref())?;
                self.distribute(cx, &view, &dedup(cards), axis)?;
                Ok(json!({}))
            }
            Event::AddView { id, name } => {
                let id = id.unwrap_or_else(new_id);
                check_id(&id)?;
                check_name(&name)?;
                let views = cx.txn.get_or_insert_map(VIEWS);
                if views.contains_key(cx.txn, &id) {
                    return Err(EventError::conflict(
                        ErrorCode::ViewExists,
                        format!("a view `{id}` exists already"),
                    ));
                }
                views.insert(cx.txn, id.as_str(), view_prelim(&id, name.trim()));
                Ok(json!({ "id": id }))
            }
            Event::RenameView { id, name } => {
                check_name(&name)?;
                let view = View::open(cx.txn, Some(&id))?;
                core_graph::set(view.map(), cx.txn, "name", name.trim().to_string());
                Ok(json!({ "id": id }))
            }
            Event::DeleteView { id } => {
                if id == MAIN {
                    return Err(EventError::conflict(
                        ErrorCode::MainView,
                        "the main board cannot be deleted",
                    ));
                }
                View::open(cx.txn, Some(&id))?;
                let views = cx.txn.get_or_insert_map(VIEWS);
                views.remove(cx.txn, &id);
                Ok(json!({ "id": id }))
            }
        }
    }
}

#[cfg(test)]
mod tests;

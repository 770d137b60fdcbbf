//! What a board page shows: the project's cards, connectors and views, read from the
//! project document's JSON (the `core-graph` and `whiteboard` roots). The server keeps one
//! [`BoardDoc`] per open project and changes only the cards that changed; unchanged cards
//! keep the same [`Shared`] value, so the page re-renders only what changed.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::{Value, json};

/// A shared, immutable value whose equality is cheap when it was not replaced.
#[derive(Debug)]
pub struct Shared<T>(pub Arc<T>);

impl<T> Clone for Shared<T> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<T: PartialEq> PartialEq for Shared<T> {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0) || *self.0 == *other.0
    }
}

impl<T> std::ops::Deref for Shared<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T> Shared<T> {
    pub fn new(v: T) -> Self {
        Self(Arc::new(v))
    }
}

/// The view every project has.
pub const MAIN: &str = "main";

/// A rectangle in board (world) coordinates.
#[derive(Debug, Clone, Copy, PartialEq, Default, serde::Serialize, serde::Deserialize)]
pub struct Rect {
    pub x: f64,
    pub y: f64,
    pub w: f64,
    pub h: f64,
}

impl Rect {
    pub fn right(&self) -> f64 {
        self.x + self.w
    }
    pub fn bottom(&self) -> f64 {
        self.y + self.h
    }
    pub fn cx(&self) -> f64 {
        self.x + self.w / 2.0
    }
    pub fn cy(&self) -> f64 {
        self.y + self.h / 2.0
    }
    pub fn intersects(&self, o: &Rect) -> bool {
        self.x <= o.right() && o.x <= self.right() && self.y <= o.bottom() && o.y <= self.bottom()
    }
    /// Grown by `f` of its size on every side.
    pub fn grown(&self, f: f64) -> Rect {
        Rect {
            x: self.x - self.w * f,
            y: self.y - self.h * f,
            w: self.w * (1.0 + 2.0 * f),
            h: self.h * (1.0 + 2.0 * f),
        }
    }
    /// The smallest rectangle around all of `rects`.
    pub fn around(rects: impl IntoIterator<Item = Rect>) -> Option<Rect> {
        let mut it = rects.into_iter();
        let f = it.next()?;
        let (mut x0, mut y0, mut x1, mut y1) = (f.x, f.y, f.right(), f.bottom());
        for r in it {
            x0 = x0.min(r.x);
            y0 = y0.min(r.y);
            x1 = x1.max(r.right());
            y1 = y1.max(r.bottom());
        }
        Some(Rect {
            x: x0,
            y: y0,
            w: x1 - x0,
            h: y1 - y0,
        })
    }
}

/// What a card is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CardKind {
    Note,
    Text,
    Shape,
    Frame,
    /// Any other kind (a node a script or another module made).
    Other(String),
}

impl CardKind {
    pub fn parse(s: &str) -> Self {
        match s {
            "note" => Self::Note,
            "text" => Self::Text,
            "shape" => Self::Shape,
            "frame" => Self::Frame,
            other => Self::Other(other.to_string()),
        }
    }
    pub fn as_str(&self) -> &str {
        match self {
            Self::Note => "note",
            Self::Text => "text",
            Self::Shape => "shape",
            Self::Frame => "frame",
            Self::Other(s) => s,
        }
    }
}

/// How a card looks (defaults filled in).
#[derive(Debug, Clone, PartialEq)]
pub struct CardStyle {
    pub fill: String,
    pub border: String,
    pub color: String,
    pub opacity: f64,
    pub shape: String,
    pub title: String,
    pub font_size: f64,
}

impl CardStyle {
    fn of(kind: &CardKind, data: &Value) -> Self {
        let s = |k: &str| data.get(k).and_then(Value::as_str).map(str::to_string);
        let n = |k: &str| data.get(k).and_then(Value::as_f64);
        let (fill, border) = match kind {
            CardKind::Note => ("#ffe27a", "transparent"),
            CardKind::Text => ("transparent", "transparent"),
            CardKind::Shape => ("#ffffff", "#6741d9"),
            CardKind::Frame => ("#e9ecef", "#868e96"),
            CardKind::Other(_) => ("#ffffff", "#adb5bd"),
        };
        Self {
            fill: s("fill").unwrap_or_else(|| fill.into()),
            border: s("border").unwrap_or_else(|| border.into()),
            color: s("color").unwrap_or_else(|| "#1d2330".into()),
            opacity: n("opacity").unwrap_or(if *kind == CardKind::Frame { 0.35 } else { 1.0 }),
            shape: s("shape").unwrap_or_else(|| "rectangle".into()),
            title: s("title").unwrap_or_else(|| {
                if *kind == CardKind::Frame {
                    "Frame".into()
                } else {
                    String::new()
                }
            }),
            font_size: n("font_size").unwrap_or(16.0),
        }
    }
}

/// Who locked a card.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lock {
    pub by: String,
    pub name: String,
}

/// A card's layout in one view.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Layout {
    /// Its own rectangle in that view (`None`: where it is in `main`).
    pub rect: Option<Rect>,
    pub z: f64,
    pub parent: Option<String>,
    pub collapsed: bool,
}

impl Layout {
    pub fn from_json(v: &Value) -> Self {
        let n = |k: &str| v.get(k).and_then(Value::as_f64);
        let rect = match (n("x"), n("y"), n("w"), n("h")) {
            (None, None, None, None) => None,
            (x, y, w, h) => Some((x, y, w, h)),
        };
        Self {
            rect: rect.map(|(x, y, w, h)| Rect {
                x: x.unwrap_or(f64::NAN),
                y: y.unwrap_or(f64::NAN),
                w: w.unwrap_or(f64::NAN),
                h: h.unwrap_or(f64::NAN),
            }),
            z: n("z").unwrap_or(0.0),
            parent: v.get("parent").and_then(Value::as_str).map(str::to_string),
            collapsed: v.get("collapsed").and_then(Value::as_bool).unwrap_or(false),
        }
    }
}

/// One card, as every view shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct Card {
    pub id: String,
    pub kind: CardKind,
    /// Its rectangle in `main` (and in views where it has none of its own).
    pub home: Rect,
    pub text: String,
    pub style: CardStyle,
    pub locked: Option<Lock>,
    /// Its layout in each view that has one for it.
    pub layouts: Vec<(String, Layout)>,
    /// Its `data`, for exports that keep everything.
    pub data: Value,
}

/// Where a card is in one view.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Placement<'a> {
    pub rect: Rect,
    pub z: f64,
    pub parent: Option<&'a str>,
    pub collapsed: bool,
}

impl Card {
    /// A card from its node's JSON, its text, and its layout entry in each view.
    pub fn from_parts(id: &str, node: &Value, text: &str, layouts: Vec<(String, Layout)>) -> Self {
        let n = |k: &str, d: f64| node.get(k).and_then(Value::as_f64).unwrap_or(d);
        let kind = CardKind::parse(node.get("kind").and_then(Value::as_str).unwrap_or(""));
        let data = node
            .get("data")
            .cloned()
            .unwrap_or(Value::Object(Default::default()));
        let locked = node
            .get("locked_by")
            .and_then(Value::as_str)
            .map(|by| Lock {
                by: by.to_string(),
                name: node
                    .get("locked_by_name")
                    .and_then(Value::as_str)
                    .unwrap_or("someone")
                    .to_string(),
            });
        Card {
            id: id.to_string(),
            style: CardStyle::of(&kind, &data),
            kind,
            home: Rect {
                x: n("x", 0.0),
                y: n("y", 0.0),
                w: n("w", 160.0).max(1.0),
                h: n("h", 90.0).max(1.0),
            },
            text: text.to_string(),
            locked,
            layouts,
            data,
        }
    }

    /// Where the card is in view `view`.
    pub fn place(&self, view: &str) -> Placement<'_> {
        let layout = self.layouts.iter().find(|(v, _)| v == view).map(|(_, l)| l);
        let rect = match layout.and_then(|l| l.rect) {
            Some(r) if view != MAIN => Rect {
                x: if r.x.is_finite() { r.x } else { self.home.x },
                y: if r.y.is_finite() { r.y } else { self.home.y },
                w: if r.w.is_finite() {
                    r.w.max(1.0)
                } else {
                    self.home.w
                },
                h: if r.h.is_finite() {
                    r.h.max(1.0)
                } else {
                    self.home.h
                },
            },
            _ => self.home,
        };
        Placement {
            rect,
            z: layout.map(|l| l.z).unwrap_or(0.0),
            parent: layout.and_then(|l| l.parent.as_deref()),
            collapsed: layout.is_some_and(|l| l.collapsed),
        }
    }

    /// Its title line: a frame's title, else the first line of its text.
    pub fn headline(&self) -> &str {
        if self.kind == CardKind::Frame {
            return &self.style.title;
        }
        self.text.lines().next().unwrap_or("")
    }
}

/// How a connector looks (defaults filled in).
#[derive(Debug, Clone, PartialEq)]
pub struct EdgeStyle {
    pub color: String,
    pub route: String,
    pub width: f64,
    pub dash: String,
    pub start: String,
    pub end: String,
    pub label: String,
}

/// One connector.
#[derive(Debug, Clone, PartialEq)]
pub struct Edge {
    pub id: String,
    pub from: String,
    pub to: String,
    pub style: EdgeStyle,
    pub data: Value,
}

impl Edge {
    pub fn from_json(id: &str, v: &Value) -> Option<Self> {
        let from = v.get("from")?.as_str()?.to_string();
        let to = v.get("to")?.as_str()?.to_string();
        let data = v
            .get("data")
            .cloned()
            .unwrap_or(Value::Object(Default::default()));
        let s = |k: &str, d: &str| data.get(k).and_then(Value::as_str).unwrap_or(d).to_string();
        Some(Edge {
            id: id.to_string(),
            from,
            to,
            style: EdgeStyle {
                color: s("color", "#495057"),
                route: s("route", "bezier"),
                width: data.get("width").and_then(Value::as_f64).unwrap_or(2.0),
                dash: s("dash", "solid"),
                start: s("start", "none"),
                end: s("end", "arrow"),
                label: s("label", ""),
            },
            data,
        })
    }
}

/// A board view.
#[derive(Debug, Clone, PartialEq)]
pub struct ViewInfo {
    pub id: String,
    pub name: String,
}

/// Everything a board page shows of a project.
#[derive(Debug, Clone, Default)]
pub struct BoardDoc {
    /// The project's document has been read (until then the page says it is loading).
    pub ready: bool,
    /// Changes arrive as they happen (false while the server reconnects to the project).
    pub live: bool,
    /// The project was deleted.
    pub deleted: bool,
    pub views: Vec<ViewInfo>,
    pub cards: HashMap<String, Shared<Card>>,
    pub edges: HashMap<String, Shared<Edge>>,
    /// Grows with every change (a page compares it to know what it has drawn).
    pub version: u64,
    /// Each view, ready to draw ([`BoardDoc::prepare`]).
    pub drawings: HashMap<String, Arc<Drawing>>,
    /// The project's containers (module `user-containers`), oldest first.
    pub containers: Arc<Vec<ContainerInfo>>,
}

/// A container of the project, as its record in the document says.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ContainerInfo {
    pub id: String,
    pub name: String,
    /// The catalogue entry (`jupyterlab`, `terminal`, `vscode`, `custom`, or the
    /// organization's own).
    pub image: String,
    /// An organization entry's title (empty for the built-in ones).
    pub image_title: String,
    /// `created`, `connecting`, `running`, `stale`.
    pub state: String,
    pub created_by: String,
    pub created_by_name: String,
    pub created_at: String,
    pub services: Vec<ServiceInfo>,
    pub cpu_percent: Option<f64>,
    pub memory_bytes: Option<u64>,
    /// How the server reaches it: `udp`, or `relay` where UDP is blocked.
    pub tunnel: String,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct ServiceInfo {
    pub name: String,
    pub label: String,
    pub terminal: bool,
    /// It answered the agent's last check.
    pub healthy: Option<bool>,
}

/// `web:8080, api:3000, shell:7681:terminal` as an image's services (a `:terminal` one
/// needs the terminal permission to open); a message saying what is wrong otherwise.
pub fn parse_services(text: &str) -> Result<Value, String> {
    let mut list = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (part, terminal) = match part.strip_suffix(":terminal") {
            Some(p) => (p, true),
            None => (part, false),
        };
        let (name, port) = part
            .split_once(':')
            .ok_or_else(|| format!("“{part}”: write each service as name:port, e.g. web:8080"))?;
        let port: u16 = port
            .trim()
            .parse()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| format!("“{part}”: the port is a number from 1 to 65535"))?;
        list.push(json!({"name": name.trim(), "port": port, "terminal": terminal}));
    }
    if list.is_empty() {
        return Err("Name at least one web service, e.g. web:8080".into());
    }
    Ok(Value::Array(list))
}

/// The records of a `containers` root, oldest first.
pub fn containers_of(root: &Value) -> Arc<Vec<ContainerInfo>> {
    let s = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    let mut list: Vec<ContainerInfo> = root
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(id, c)| ContainerInfo {
                    id: id.clone(),
                    name: s(c, "name"),
                    image: s(c, "image"),
                    image_title: s(c, "image_title"),
                    state: s(c, "state"),
                    created_by: s(c, "created_by"),
                    created_by_name: s(c, "created_by_name"),
                    created_at: s(c, "created_at"),
                    services: c
                        .get("services")
                        .and_then(Value::as_array)
                        .map(|a| {
                            a.iter()
                                .map(|v| {
                                    let name = s(v, "name");
                                    ServiceInfo {
                                        healthy: c["health"].get(&name).and_then(Value::as_bool),
                                        label: s(v, "label"),
                                        terminal: v["terminal"].as_bool().unwrap_or(false),
                                        name,
                                    }
                                })
                                .collect()
                        })
                        .unwrap_or_default(),
                    cpu_percent: c["resources"]["cpu_percent"].as_f64(),
                    memory_bytes: c["resources"]["memory_bytes"].as_u64(),
                    tunnel: s(c, "tunnel"),
                })
                .collect()
        })
        .unwrap_or_default();
    list.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)));
    Arc::new(list)
}

/// A card as one view draws it.
#[derive(Debug, Clone, PartialEq)]
pub struct Placed {
    pub card: Shared<Card>,
    pub rect: Rect,
    pub parent: Option<Arc<str>>,
    pub collapsed: bool,
}

/// One view of the board, ready to draw: computed once per version of the board for every
/// page that shows it.
#[derive(Debug, Default)]
pub struct Drawing {
    /// Cards in drawing order: the frames first (outer before inner, then by z), then the
    /// other cards by z.
    pub order: Vec<Placed>,
    /// How many of `order` are frames.
    pub frames: usize,
    /// Connectors whose two cards exist, with the cards' rectangles, by id.
    pub edges: Vec<(Shared<Edge>, Rect, Rect)>,
    pub bounds: Option<Rect>,
    /// Every card as one SVG path (`M x y h w v h h -w Z` each), for the minimap.
    pub minimap: Arc<str>,
    /// The connectors as one path per colour, for a board seen from far out (made the first
    /// time a page asks, once for every page).
    pub far_edges: std::sync::OnceLock<Vec<(String, String)>>,
}

impl Drawing {
    /// Every connector's line (no heads, no labels: too small to see far out), one SVG path
    /// per colour, colours in the order they first appear.
    pub fn far_edges(&self) -> &[(String, String)] {
        self.far_edges.get_or_init(|| {
            let mut out: Vec<(String, String)> = Vec::new();
            for (e, a, b) in &self.edges {
                let s = &e.style;
                let g = super::geometry::edge(a, b, &s.route, s.width, false, false);
                match out.iter_mut().find(|(c, _)| *c == s.color) {
                    Some((_, d)) => {
                        d.push(' ');
                        d.push_str(&g.d);
                    }
                    None => out.push((s.color.clone(), g.d.to_string())),
                }
            }
            out
        })
    }
}

/// Two boards are the same when they are the same version (every change makes a new one).
impl PartialEq for BoardDoc {
    fn eq(&self, other: &Self) -> bool {
        self.version == other.version
            && self.ready == other.ready
            && self.live == other.live
            && self.deleted == other.deleted
    }
}

/// The layout entries of card `id` in every view of a `views` root.
pub fn layouts_of(views: &Value, id: &str) -> Vec<(String, Layout)> {
    views
        .as_object()
        .map(|vs| {
            vs.iter()
                .filter_map(|(vid, v)| {
                    v.get("cards")
                        .and_then(|c| c.get(id))
                        .map(|l| (vid.clone(), Layout::from_json(l)))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The views of a `views` root (`main` first, always there).
pub fn views_of(views: &Value) -> Vec<ViewInfo> {
    let mut out: Vec<ViewInfo> = views
        .as_object()
        .map(|vs| {
            vs.iter()
                .map(|(id, v)| ViewInfo {
                    id: id.clone(),
                    name: v
                        .get("name")
                        .and_then(Value::as_str)
                        .unwrap_or(id)
                        .to_string(),
                })
                .collect()
        })
        .unwrap_or_default();
    if !out.iter().any(|v| v.id == MAIN) {
        out.push(ViewInfo {
            id: MAIN.into(),
            name: "Board".into(),
        });
    }
    out.sort_by(|a, b| {
        (a.id != MAIN)
            .cmp(&(b.id != MAIN))
            .then(a.name.cmp(&b.name))
    });
    out
}

impl BoardDoc {
    /// The whole board from the document's roots (`GET .../document`'s `roots`).
    pub fn from_roots(roots: &Value) -> Self {
        let empty = Value::Object(Default::default());
        let views = roots.get("views").unwrap_or(&empty);
        let texts = roots.get("texts").unwrap_or(&empty);
        let cards = roots
            .get("nodes")
            .and_then(Value::as_object)
            .map(|ns| {
                ns.iter()
                    .map(|(id, n)| {
                        let text = texts.get(id).and_then(Value::as_str).unwrap_or("");
                        (
                            id.clone(),
                            Shared::new(Card::from_parts(id, n, text, layouts_of(views, id))),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        let edges = roots
            .get("edges")
            .and_then(Value::as_object)
            .map(|es| {
                es.iter()
                    .filter_map(|(id, e)| {
                        Edge::from_json(id, e).map(|e| (id.clone(), Shared::new(e)))
                    })
                    .collect()
            })
            .unwrap_or_default();
        BoardDoc {
            ready: true,
            live: true,
            deleted: false,
            views: views_of(views),
            cards,
            edges,
            version: 1,
            drawings: HashMap::new(),
            containers: containers_of(roots.get("containers").unwrap_or(&empty)),
        }
    }

    /// View `view`, ready to draw (prepared, or computed now).
    pub fn drawing(&self, view: &str) -> Arc<Drawing> {
        match self.drawings.get(view) {
            Some(d) => d.clone(),
            None => Arc::new(self.draw(view)),
        }
    }

    /// Prepares every view's drawing (the feed does it once per version).
    pub fn prepare(&mut self) {
        let views: Vec<String> = self.views.iter().map(|v| v.id.clone()).collect();
        self.drawings = views
            .into_iter()
            .map(|v| {
                let d = Arc::new(self.draw(&v));
                (v, d)
            })
            .collect();
    }

    fn draw(&self, view: &str) -> Drawing {
        let placed: HashMap<&str, (Placement<'_>, &Shared<Card>)> = self
            .cards
            .values()
            .map(|c| (c.id.as_str(), (c.place(view), c)))
            .collect();
        let depth = |id: &str| -> usize {
            let mut d = 0;
            let mut at = placed.get(id).and_then(|(p, _)| p.parent);
            while let Some(p) = at {
                d += 1;
                if d > 32 {
                    break;
                }
                at = placed.get(p).and_then(|(q, _)| q.parent);
            }
            d
        };
        let mut keyed: Vec<(bool, usize, f64, &str)> = placed
            .iter()
            .map(|(id, (p, c))| {
                let frame = c.kind == CardKind::Frame;
                (!frame, if frame { depth(id) } else { 0 }, p.z, *id)
            })
            .collect();
        keyed.sort_by(|a, b| {
            a.0.cmp(&b.0)
                .then(a.1.cmp(&b.1))
                .then(a.2.total_cmp(&b.2))
                .then(a.3.cmp(b.3))
        });
        let frames = keyed.iter().take_while(|k| !k.0).count();
        let mut minimap = String::with_capacity(keyed.len() * 28);
        let order: Vec<Placed> = keyed
            .iter()
            .filter_map(|(_, _, _, id)| {
                let (p, c) = placed.get(id)?;
                let r = p.rect;
                minimap.push_str(&format!(
                    "M{:.0} {:.0}h{:.0}v{:.0}h{:.0}Z",
                    r.x, r.y, r.w, r.h, -r.w
                ));
                Some(Placed {
                    card: (*c).clone(),
                    rect: r,
                    parent: p.parent.map(Arc::from),
                    collapsed: p.collapsed,
                })
            })
            .collect();
        let mut edges: Vec<(Shared<Edge>, Rect, Rect)> = self
            .edges
            .values()
            .filter_map(|e| {
                let a = placed.get(e.from.as_str())?.0.rect;
                let b = placed.get(e.to.as_str())?.0.rect;
                Some((e.clone(), a, b))
            })
            .collect();
        edges.sort_by(|a, b| a.0.id.cmp(&b.0.id));
        Drawing {
            bounds: Rect::around(order.iter().map(|p| p.rect)),
            frames,
            order,
            edges,
            minimap: Arc::from(minimap),
            far_edges: std::sync::OnceLock::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn services_are_read_as_people_write_them() {
        assert_eq!(
            parse_services(" web:8080, shell:7681:terminal ,").unwrap(),
            json!([{"name": "web", "port": 8080, "terminal": false},
                   {"name": "shell", "port": 7681, "terminal": true}])
        );
        assert!(parse_services("web").unwrap_err().contains("name:port"));
        assert!(parse_services("web:0").unwrap_err().contains("1 to 65535"));
        assert!(parse_services(" , ").unwrap_err().contains("at least one"));
    }
    use serde_json::json;

    #[test]
    fn a_board_reads_from_the_document() {
        let roots = json!({
            "nodes": {
                "n": {"id": "n", "kind": "note", "x": 1, "y": 2, "w": 100, "h": 50, "data": {"fill": "#ff0000"}, "locked_by": "u", "locked_by_name": "Ada"},
                "f": {"id": "f", "kind": "frame", "x": 0, "y": 0, "w": 500, "h": 500, "data": {"title": "Plan"}},
                "g": {"id": "g", "kind": "frame", "x": 10, "y": 10, "w": 100, "h": 100, "data": {}},
                "x": {"id": "x", "kind": "jupyter", "x": 0, "y": 0, "w": 10, "h": 10}
            },
            "edges": {"e": {"id": "e", "from": "n", "to": "f", "data": {"route": "step"}}, "bad": {"id": "bad"}},
            "texts": {"n": "first line\nsecond"},
            "views": {"main": {"cards": {"n": {"z": 5, "parent": "g"}, "g": {"z": 1, "parent": "f"}}}, "v2": {"name": "Two", "cards": {"n": {"x": 900, "z": 1, "collapsed": true}}}}
        });
        let b = BoardDoc::from_roots(&roots);
        let n = &b.cards["n"];
        assert_eq!(n.kind, CardKind::Note);
        assert_eq!(n.style.fill, "#ff0000");
        assert_eq!(n.headline(), "first line");
        assert_eq!(n.locked.as_ref().map(|l| l.name.as_str()), Some("Ada"));
        assert_eq!(n.place("main").rect.x, 1.0);
        assert_eq!(n.place("main").parent, Some("g"));
        let in_two = n.place("v2");
        assert_eq!(
            (in_two.rect.x, in_two.rect.y, in_two.collapsed),
            (900.0, 2.0, true)
        );
        assert_eq!(b.cards["f"].style.title, "Plan");
        assert_eq!(b.cards["x"].kind, CardKind::Other("jupyter".into()));
        assert_eq!(b.edges.len(), 1, "a broken edge is skipped");
        assert_eq!(b.edges["e"].style.route, "step");
        assert_eq!(b.edges["e"].style.end, "arrow");
        let d = b.drawing("main");
        let order: Vec<&str> = d.order.iter().map(|p| p.card.id.as_str()).collect();
        assert_eq!(d.frames, 2);
        assert_eq!(d.edges.len(), 1);
        assert_eq!(d.minimap.matches('M').count(), 4);
        assert_eq!(
            order,
            vec!["f", "g", "x", "n"],
            "frames outer to inner, then by z"
        );
        assert_eq!(
            b.views.iter().map(|v| v.id.as_str()).collect::<Vec<_>>(),
            vec!["main", "v2"]
        );
        let bounds = d.bounds.unwrap();
        assert_eq!((bounds.x, bounds.w), (0.0, 500.0));
    }

    #[test]
    fn far_out_connectors_are_one_path_per_colour() {
        let node =
            |id: &str, x: f64| json!({"id": id, "kind": "note", "x": x, "y": 0, "w": 100, "h": 50});
        let roots = json!({
            "nodes": {"a": node("a", 0.0), "b": node("b", 300.0), "c": node("c", 600.0)},
            "edges": {
                "e1": {"id": "e1", "from": "a", "to": "b", "data": {"color": "#ff0000"}},
                "e2": {"id": "e2", "from": "b", "to": "c", "data": {"color": "#ff0000"}},
                "e3": {"id": "e3", "from": "a", "to": "c", "data": {"color": "#0000ff"}},
                "gone": {"id": "gone", "from": "a", "to": "nobody"}
            }
        });
        let d = BoardDoc::from_roots(&roots).drawing("main");
        let far = d.far_edges();
        let colours: Vec<&str> = far.iter().map(|(c, _)| c.as_str()).collect();
        assert_eq!(colours, vec!["#ff0000", "#0000ff"], "{far:?}");
        assert_eq!(far[0].1.matches('M').count(), 2, "two connectors in red");
        assert_eq!(far[1].1.matches('M').count(), 1);
        assert!(std::ptr::eq(far, d.far_edges()), "made once");
    }
}

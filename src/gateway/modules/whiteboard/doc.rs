//! How a board lives in the project document.
//!
//! A card is a `core-graph` node (kind `note`, `text`, `shape`, `frame`, or any other kind a
//! module or script gave it) whose style is in its `data` map and whose text is
//! `texts[<id>]`. Root map `views` holds the project's board views (id → map {id, name,
//! cards}); `cards` maps a node id to its layout in that view: z-order `z`, frame `parent`,
//! `collapsed`, and, in every view but `main`, its own `x`, `y`, `w`, `h`. The `main` view's
//! geometry is the node's own `x`, `y`, `w`, `h`, so `core-graph` events and the document's
//! JSON agree with the main board. Every node shows in every view; a node without a layout
//! entry sits at its own geometry with z 0.

use crate::code::ErrorCode;
use yrs::{Map, MapPrelim, MapRef, Out, ReadTxn, TransactionMut, WriteTxn};

use crate::gateway::module::EventError;
use crate::gateway::modules::core_graph::{self, entry, num_of, str_of};

pub const VIEWS: &str = "views";
pub const MAIN: &str = "main";

/// A rectangle in board (world) coordinates.
#[derive(Debug, Clone, Copy, PartialEq)]
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
    pub fn contains_point(&self, x: f64, y: f64) -> bool {
        x >= self.x && x <= self.right() && y >= self.y && y <= self.bottom()
    }
    pub fn area(&self) -> f64 {
        self.w * self.h
    }
    /// The smallest rectangle around all of `rects` (`None` for none).
    pub fn around(rects: impl IntoIterator<Item = Rect>) -> Option<Rect> {
        let mut it = rects.into_iter();
        let first = it.next()?;
        let (mut x0, mut y0, mut x1, mut y1) = (first.x, first.y, first.right(), first.bottom());
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

/// One card as a view shows it.
#[derive(Debug, Clone)]
pub struct Placed {
    pub id: String,
    pub kind: String,
    pub rect: Rect,
    pub z: f64,
    pub parent: Option<String>,
}

/// A view of the board, open for reading and writing in one transaction.
pub struct View {
    pub id: String,
    map: MapRef,
    cards: MapRef,
}

fn view_missing(id: &str) -> EventError {
    EventError::not_found(ErrorCode::ViewNotFound, format!("no board view `{id}`"))
}

/// A new view's map.
pub fn view_prelim(id: &str, name: &str) -> MapPrelim {
    MapPrelim::from_iter([
        ("id", yrs::In::Any(id.into())),
        ("name", yrs::In::Any(name.into())),
        ("cards", yrs::In::Map(MapPrelim::default())),
    ])
}

impl View {
    /// The view `id` (`main` when absent); `main` is created on first use (documents older
    /// than the whiteboard have none).
    pub fn open(txn: &mut TransactionMut, id: Option<&str>) -> Result<View, EventError> {
        let id = id.unwrap_or(MAIN);
        let views = txn.get_or_insert_map(VIEWS);
        let map = match entry(&views, txn, id) {
            Some(m) => m,
            None if id == MAIN => views.insert(txn, MAIN, view_prelim(MAIN, "Board")),
            None => return Err(view_missing(id)),
        };
        let cards = match map.get(txn, "cards") {
            Some(Out::YMap(c)) => c,
            _ => map.insert(txn, "cards", MapPrelim::default()),
        };
        Ok(View {
            id: id.to_string(),
            map,
            cards,
        })
    }

    pub fn is_main(&self) -> bool {
        self.id == MAIN
    }

    pub fn map(&self) -> &MapRef {
        &self.map
    }

    /// The layout entry of card `id`, if it has one.
    pub fn layout<T: ReadTxn>(&self, txn: &T, id: &str) -> Option<MapRef> {
        entry(&self.cards, txn, id)
    }

    fn layout_or_create(&self, txn: &mut TransactionMut, id: &str) -> MapRef {
        match entry(&self.cards, txn, id) {
            Some(m) => m,
            None => self.cards.insert(txn, id, MapPrelim::default()),
        }
    }

    /// Where card `node` (id `id`) is in this view.
    pub fn rect<T: ReadTxn>(&self, txn: &T, node: &MapRef, id: &str) -> Rect {
        let own = Rect {
            x: num_of(node, txn, "x").unwrap_or(0.0),
            y: num_of(node, txn, "y").unwrap_or(0.0),
            w: num_of(node, txn, "w").unwrap_or(160.0),
            h: num_of(node, txn, "h").unwrap_or(90.0),
        };
        if self.is_main() {
            return own;
        }
        match self.layout(txn, id) {
            Some(l) => Rect {
                x: num_of(&l, txn, "x").unwrap_or(own.x),
                y: num_of(&l, txn, "y").unwrap_or(own.y),
                w: num_of(&l, txn, "w").unwrap_or(own.w),
                h: num_of(&l, txn, "h").unwrap_or(own.h),
            },
            None => own,
        }
    }

    /// Puts card `node` at `r` in this view (writing only what changed).
    pub fn set_rect(&self, txn: &mut TransactionMut, node: &MapRef, id: &str, r: Rect) {
        let target = if self.is_main() {
            node.clone()
        } else {
            self.layout_or_create(txn, id)
        };
        core_graph::set(&target, txn, "x", r.x);
        core_graph::set(&target, txn, "y", r.y);
        core_graph::set(&target, txn, "w", r.w);
        core_graph::set(&target, txn, "h", r.h);
    }

    pub fn z<T: ReadTxn>(&self, txn: &T, id: &str) -> f64 {
        self.layout(txn, id)
            .and_then(|l| num_of(&l, txn, "z"))
            .unwrap_or(0.0)
    }

    pub fn set_z(&self, txn: &mut TransactionMut, id: &str, z: f64) {
        let l = self.layout_or_create(txn, id);
        core_graph::set(&l, txn, "z", z);
    }

    pub fn parent<T: ReadTxn>(&self, txn: &T, id: &str) -> Option<String> {
        self.layout(txn, id).and_then(|l| str_of(&l, txn, "parent"))
    }

    pub fn set_parent(&self, txn: &mut TransactionMut, id: &str, parent: Option<&str>) {
        match parent {
            Some(p) => {
                let l = self.layout_or_create(txn, id);
                core_graph::set(&l, txn, "parent", p);
            }
            None => {
                if let Some(l) = self.layout(txn, id)
                    && l.contains_key(txn, "parent")
                {
                    l.remove(txn, "parent");
                }
            }
        }
    }

    pub fn set_collapsed(&self, txn: &mut TransactionMut, id: &str, collapsed: bool) {
        if collapsed {
            let l = self.layout_or_create(txn, id);
            core_graph::set(&l, txn, "collapsed", true);
        } else if let Some(l) = self.layout(txn, id)
            && l.contains_key(txn, "collapsed")
        {
            l.remove(txn, "collapsed");
        }
    }

    /// Forgets card `id` (it was deleted).
    pub fn forget(&self, txn: &mut TransactionMut, id: &str) {
        if self.cards.contains_key(txn, id) {
            self.cards.remove(txn, id);
        }
    }

    /// Every card as this view shows it (every node of the project).
    pub fn placed<T: ReadTxn>(&self, txn: &T) -> Vec<Placed> {
        let Some(nodes) = txn.get_map(core_graph::NODES) else {
            return Vec::new();
        };
        nodes
            .iter(txn)
            .filter_map(|(id, v)| {
                let Out::YMap(node) = v else { return None };
                Some(Placed {
                    id: id.to_string(),
                    kind: str_of(&node, txn, "kind").unwrap_or_default(),
                    rect: self.rect(txn, &node, id),
                    z: self.z(txn, id),
                    parent: self.parent(txn, id),
                })
            })
            .collect()
    }

    /// The highest z in the view (0 for an empty one).
    pub fn top_z<T: ReadTxn>(&self, txn: &T) -> f64 {
        self.cards
            .iter(txn)
            .filter_map(|(_, v)| match v {
                Out::YMap(l) => num_of(&l, txn, "z"),
                _ => None,
            })
            .fold(0.0, f64::max)
    }
}

/// The card ids among `all` inside frame `id`, at any depth.
pub fn descendants(all: &[Placed], id: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![id.to_string()];
    while let Some(p) = stack.pop() {
        for c in all
            .iter()
            .filter(|c| c.parent.as_deref() == Some(p.as_str()))
        {
            if c.id != id && !out.contains(&c.id) {
                out.push(c.id.clone());
                stack.push(c.id.clone());
            }
        }
    }
    out
}

/// The frame a card at `rect` belongs in: the smallest frame whose rectangle holds the card's
/// centre, other than the card itself and the frames inside it (a frame never ends up inside
/// itself).
pub fn frame_for(all: &[Placed], id: &str, rect: Rect) -> Option<String> {
    let inside = descendants(all, id);
    all.iter()
        .filter(|f| f.kind == "frame" && f.id != id && !inside.contains(&f.id))
        .filter(|f| f.rect.contains_point(rect.cx(), rect.cy()))
        .min_by(|a, b| a.rect.area().total_cmp(&b.rect.area()))
        .map(|f| f.id.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(id: &str, kind: &str, x: f64, y: f64, w: f64, h: f64, parent: Option<&str>) -> Placed {
        Placed {
            id: id.into(),
            kind: kind.into(),
            rect: Rect { x, y, w, h },
            z: 0.0,
            parent: parent.map(String::from),
        }
    }

    #[test]
    fn the_smallest_containing_frame_wins_and_no_frame_holds_itself() {
        let all = vec![
            p("big", "frame", 0.0, 0.0, 1000.0, 1000.0, None),
            p("small", "frame", 100.0, 100.0, 300.0, 300.0, Some("big")),
            p("inner", "frame", 150.0, 150.0, 100.0, 100.0, Some("small")),
            p("card", "note", 120.0, 120.0, 20.0, 20.0, None),
        ];
        let at = |x, y| Rect {
            x,
            y,
            w: 20.0,
            h: 20.0,
        };
        assert_eq!(
            frame_for(&all, "card", at(120.0, 120.0)).as_deref(),
            Some("small")
        );
        assert_eq!(
            frame_for(&all, "card", at(160.0, 160.0)).as_deref(),
            Some("inner")
        );
        assert_eq!(
            frame_for(&all, "card", at(600.0, 600.0)).as_deref(),
            Some("big")
        );
        assert_eq!(frame_for(&all, "card", at(2000.0, 0.0)), None);
        // `small` dropped over its own child `inner`: not inside it, but inside `big`.
        let r = Rect {
            x: 140.0,
            y: 140.0,
            w: 40.0,
            h: 40.0,
        };
        assert_eq!(frame_for(&all, "small", r).as_deref(), Some("big"));
        assert_eq!(descendants(&all, "big"), vec!["small", "inner"]);
    }
}

//! Where connectors run and what shapes look like, as SVG path data. The board page, the
//! SVG and PNG exports, and `assets/board.js` (while a card is dragged) draw them the same
//! way: keep the three in step.

use super::model::Rect;

/// A connector's drawing: its path, where its label sits, and its arrowheads.
#[derive(Debug, Clone, PartialEq)]
pub struct EdgeDrawing {
    pub d: String,
    pub label: (f64, f64),
    pub start_head: String,
    pub end_head: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Left,
    Right,
    Top,
    Bottom,
}

fn r1(v: f64) -> String {
    let v = (v * 10.0).round() / 10.0;
    if v == v.trunc() {
        format!("{}", v as i64)
    } else {
        format!("{v:.1}")
    }
}

/// The side of `r` that faces `(x, y)`, and its middle.
fn facing(r: &Rect, x: f64, y: f64) -> (Side, (f64, f64)) {
    let (dx, dy) = (x - r.cx(), y - r.cy());
    if dx.abs() * r.h > dy.abs() * r.w {
        if dx > 0.0 {
            (Side::Right, (r.right(), r.cy()))
        } else {
            (Side::Left, (r.x, r.cy()))
        }
    } else if dy > 0.0 {
        (Side::Bottom, (r.cx(), r.bottom()))
    } else {
        (Side::Top, (r.cx(), r.y))
    }
}

fn normal(s: Side) -> (f64, f64) {
    match s {
        Side::Left => (-1.0, 0.0),
        Side::Right => (1.0, 0.0),
        Side::Top => (0.0, -1.0),
        Side::Bottom => (0.0, 1.0),
    }
}

/// Where the line from the middle of `r` towards `(x, y)` leaves `r`.
fn exit(r: &Rect, x: f64, y: f64) -> (f64, f64) {
    let (cx, cy) = (r.cx(), r.cy());
    let (dx, dy) = (x - cx, y - cy);
    if dx == 0.0 && dy == 0.0 {
        return (cx, cy);
    }
    let tx = if dx != 0.0 {
        (r.w / 2.0) / dx.abs()
    } else {
        f64::INFINITY
    };
    let ty = if dy != 0.0 {
        (r.h / 2.0) / dy.abs()
    } else {
        f64::INFINITY
    };
    let t = tx.min(ty);
    (cx + dx * t, cy + dy * t)
}

/// A triangle with its tip at `tip`, pointing along `(dx, dy)`.
pub fn arrow_head(tip: (f64, f64), dir: (f64, f64), width: f64) -> String {
    let len = (dir.0 * dir.0 + dir.1 * dir.1).sqrt();
    if len == 0.0 {
        return String::new();
    }
    let (ux, uy) = (dir.0 / len, dir.1 / len);
    let size = 8.0 + width * 2.0;
    let (bx, by) = (tip.0 - ux * size, tip.1 - uy * size);
    let (px, py) = (-uy * size * 0.5, ux * size * 0.5);
    format!(
        "M{} {}L{} {}L{} {}Z",
        r1(tip.0),
        r1(tip.1),
        r1(bx + px),
        r1(by + py),
        r1(bx - px),
        r1(by - py)
    )
}

/// How a connector from `a` to `b` is drawn (`route`: `straight`, `bezier` or `step`).
pub fn edge(a: &Rect, b: &Rect, route: &str, width: f64, start: bool, end: bool) -> EdgeDrawing {
    let (d, label, start_dir, end_dir, p0, p3) = match route {
        "straight" => {
            let p0 = exit(a, b.cx(), b.cy());
            let p3 = exit(b, a.cx(), a.cy());
            (
                format!("M{} {}L{} {}", r1(p0.0), r1(p0.1), r1(p3.0), r1(p3.1)),
                ((p0.0 + p3.0) / 2.0, (p0.1 + p3.1) / 2.0),
                (p0.0 - p3.0, p0.1 - p3.1),
                (p3.0 - p0.0, p3.1 - p0.1),
                p0,
                p3,
            )
        }
        "step" => {
            let (s0, p0) = facing(a, b.cx(), b.cy());
            let (s3, p3) = facing(b, a.cx(), a.cy());
            let horizontal = matches!(s0, Side::Left | Side::Right);
            let (d, label, last) = if horizontal {
                let mx = (p0.0 + p3.0) / 2.0;
                let tail = if matches!(s3, Side::Left | Side::Right) {
                    (p3.0 - mx, 0.0)
                } else {
                    (0.0, p3.1 - p0.1)
                };
                (
                    format!(
                        "M{} {}H{}V{}H{}",
                        r1(p0.0),
                        r1(p0.1),
                        r1(mx),
                        r1(p3.1),
                        r1(p3.0)
                    ),
                    (mx, (p0.1 + p3.1) / 2.0),
                    tail,
                )
            } else {
                let my = (p0.1 + p3.1) / 2.0;
                (
                    format!(
                        "M{} {}V{}H{}V{}",
                        r1(p0.0),
                        r1(p0.1),
                        r1(my),
                        r1(p3.0),
                        r1(p3.1)
                    ),
                    ((p0.0 + p3.0) / 2.0, my),
                    (0.0, p3.1 - my),
                )
            };
            let n0 = normal(s0);
            (d, label, (-n0.0, -n0.1), last, p0, p3)
        }
        _ => {
            let (s0, p0) = facing(a, b.cx(), b.cy());
            let (s3, p3) = facing(b, a.cx(), a.cy());
            let dist = ((p3.0 - p0.0).powi(2) + (p3.1 - p0.1).powi(2)).sqrt();
            let k = (dist / 3.0).max(40.0);
            let (n0, n3) = (normal(s0), normal(s3));
            let c1 = (p0.0 + n0.0 * k, p0.1 + n0.1 * k);
            let c2 = (p3.0 + n3.0 * k, p3.1 + n3.1 * k);
            // The curve's middle (t = ½).
            let mid = (
                0.125 * p0.0 + 0.375 * c1.0 + 0.375 * c2.0 + 0.125 * p3.0,
                0.125 * p0.1 + 0.375 * c1.1 + 0.375 * c2.1 + 0.125 * p3.1,
            );
            (
                format!(
                    "M{} {}C{} {} {} {} {} {}",
                    r1(p0.0),
                    r1(p0.1),
                    r1(c1.0),
                    r1(c1.1),
                    r1(c2.0),
                    r1(c2.1),
                    r1(p3.0),
                    r1(p3.1)
                ),
                mid,
                (p0.0 - c1.0, p0.1 - c1.1),
                (p3.0 - c2.0, p3.1 - c2.1),
                p0,
                p3,
            )
        }
    };
    EdgeDrawing {
        d,
        label,
        start_head: if start {
            arrow_head(p0, start_dir, width)
        } else {
            String::new()
        },
        end_head: if end {
            arrow_head(p3, end_dir, width)
        } else {
            String::new()
        },
    }
}

/// A shape's outline in a 100 × 100 box (drawn stretched to the card).
pub fn shape_outline(shape: &str) -> &'static str {
    match shape {
        "rounded-rectangle" => "M12 1H88Q99 1 99 12V88Q99 99 88 99H12Q1 99 1 88V12Q1 1 12 1Z",
        "ellipse" => "M50 1A49 49 0 1 1 50 99A49 49 0 1 1 50 1Z",
        "diamond" => "M50 1L99 50L50 99L1 50Z",
        "triangle" => "M50 1L99 99H1Z",
        "hexagon" => "M25 1H75L99 50L75 99H25L1 50Z",
        "parallelogram" => "M25 1H99L75 99H1Z",
        "cylinder" => "M1 12A49 11 0 0 1 99 12V88A49 11 0 0 1 1 88ZM1 12A49 11 0 0 0 99 12",
        "plus" => "M35 1H65V35H99V65H65V99H35V65H1V35H35Z",
        "arrow-rectangle" => "M1 1H75L99 50L75 99H1Z",
        _ => "M1 1H99V99H1Z",
    }
}

/// Every shape, as the style panel offers them.
pub const SHAPES: &[(&str, &str)] = &[
    ("rectangle", "Rectangle"),
    ("rounded-rectangle", "Rounded rectangle"),
    ("ellipse", "Ellipse"),
    ("diamond", "Diamond"),
    ("triangle", "Triangle"),
    ("hexagon", "Hexagon"),
    ("parallelogram", "Parallelogram"),
    ("cylinder", "Cylinder"),
    ("plus", "Plus"),
    ("arrow-rectangle", "Arrow"),
];

/// The dash pattern of a connector.
pub fn dash_array(dash: &str, width: f64) -> Option<String> {
    match dash {
        "dashed" => Some(format!("{} {}", r1(width * 4.0), r1(width * 3.0))),
        "dotted" => Some(format!("{} {}", r1(width), r1(width * 2.0))),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connectors_leave_their_cards_on_the_facing_side() {
        let a = Rect {
            x: 0.0,
            y: 0.0,
            w: 100.0,
            h: 50.0,
        };
        let b = Rect {
            x: 300.0,
            y: 0.0,
            w: 100.0,
            h: 50.0,
        };
        let s = edge(&a, &b, "straight", 2.0, false, true);
        assert_eq!(s.d, "M100 25L300 25");
        assert!(s.start_head.is_empty());
        assert!(s.end_head.starts_with("M300 25"), "{}", s.end_head);
        assert_eq!(s.label, (200.0, 25.0));
        let c = edge(&a, &b, "bezier", 2.0, true, true);
        assert!(c.d.starts_with("M100 25C"), "{}", c.d);
        assert!(c.start_head.starts_with("M100 25"));
        let below = Rect {
            x: 0.0,
            y: 300.0,
            w: 100.0,
            h: 50.0,
        };
        let st = edge(&a, &below, "step", 2.0, false, false);
        assert_eq!(st.d, "M50 50V175H50V300");
        assert_eq!(shape_outline("diamond"), "M50 1L99 50L50 99L1 50Z");
        assert_eq!(dash_array("dashed", 2.0).as_deref(), Some("8 6"));
    }
}

//! A board (or some of its cards) as a standalone SVG document: what the page shows, without
//! the page. The PNG export rasterises this, so both match what people see.

use std::fmt::Write;

use super::geometry::{dash_array, edge, shape_outline};
use super::model::{BoardDoc, CardKind, Rect};

/// Space around the cards.
const PAD: f64 = 40.0;

fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&apos;"),
            c if (c as u32) < 0x20 && c != '\t' => {}
            c => o.push(c),
        }
    }
    o
}

/// `c` as an SVG paint (`transparent` is `none`).
fn paint(c: &str) -> &str {
    if c == "transparent" { "none" } else { c }
}

/// The lines `text` wraps into at `width` (an estimate of the glyphs' width: SVG has no
/// line wrapping of its own).
fn wrap(text: &str, width: f64, size: f64) -> Vec<String> {
    let per_line = ((width / (size * 0.55)).floor() as usize).max(1);
    let mut out = Vec::new();
    for para in text.split('\n') {
        let mut line = String::new();
        for word in para.split(' ') {
            let fits = line.chars().count() + word.chars().count() + usize::from(!line.is_empty())
                <= per_line;
            if !fits && !line.is_empty() {
                out.push(std::mem::take(&mut line));
            }
            let mut w = word;
            while w.chars().count() > per_line {
                let cut: String = w.chars().take(per_line).collect();
                w = &w[cut.len()..];
                out.push(cut);
            }
            if !line.is_empty() {
                line.push(' ');
            }
            line.push_str(w);
        }
        out.push(line);
    }
    out
}

fn text_block(
    out: &mut String,
    text: &str,
    r: &Rect,
    size: f64,
    color: &str,
    centred: bool,
    top: f64,
) {
    let pad = 10.0;
    let lines = wrap(text, r.w - 2.0 * pad, size);
    let line_h = size * 1.3;
    let max = (((r.h - top - pad) / line_h).floor() as usize).max(1);
    let shown = lines.len().min(max);
    let y0 = if centred {
        r.cy() - (shown as f64 * line_h) / 2.0 + size
    } else {
        r.y + top + size
    };
    let (x, anchor) = if centred {
        (r.cx(), "middle")
    } else {
        (r.x + pad, "start")
    };
    let _ = write!(
        out,
        r#"<text font-family="Liberation Sans, Arial, sans-serif" font-size="{size}" fill="{}" text-anchor="{anchor}">"#,
        esc(color)
    );
    for (i, l) in lines.iter().take(shown).enumerate() {
        let _ = write!(
            out,
            r#"<tspan x="{x:.1}" y="{:.1}">{}</tspan>"#,
            y0 + i as f64 * line_h,
            esc(l)
        );
    }
    out.push_str("</text>");
}

/// The SVG of view `view`: every card, or only `only` (and the connectors between them).
pub fn render(doc: &BoardDoc, view: &str, only: Option<&[String]>) -> String {
    let keep = |id: &str| only.is_none_or(|ids| ids.iter().any(|i| i == id));
    let drawing = doc.drawing(view);
    let cards: Vec<_> = drawing
        .order
        .iter()
        .filter(|p| keep(&p.card.id))
        .map(|p| (&p.card, p))
        .collect();
    let bounds = Rect::around(cards.iter().map(|(_, p)| p.rect)).unwrap_or(Rect {
        x: 0.0,
        y: 0.0,
        w: 400.0,
        h: 300.0,
    });
    let (x0, y0) = (bounds.x - PAD, bounds.y - PAD);
    let (w, h) = (bounds.w + 2.0 * PAD, bounds.h + 2.0 * PAD);
    let mut out = String::with_capacity(4096 + cards.len() * 400);
    let _ = write!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{:.0}" height="{:.0}" viewBox="{x0:.1} {y0:.1} {w:.1} {h:.1}">"#,
        w.ceil(),
        h.ceil()
    );
    let _ = write!(
        out,
        r##"<rect x="{x0:.1}" y="{y0:.1}" width="{w:.1}" height="{h:.1}" fill="#f6f7f9"/>"##
    );
    let frames = cards.iter().filter(|(c, _)| c.kind == CardKind::Frame);
    let others = cards.iter().filter(|(c, _)| c.kind != CardKind::Frame);
    for (c, p) in frames {
        let r = p.rect;
        let _ = write!(
            out,
            r#"<g data-node-id="{}"><rect x="{:.1}" y="{:.1}" width="{:.1}" height="{:.1}" rx="8" fill="{}" fill-opacity="{}" stroke="{}" stroke-width="2"/>"#,
            esc(&c.id),
            r.x,
            r.y,
            r.w,
            r.h,
            esc(paint(&c.style.fill)),
            c.style.opacity,
            esc(paint(&c.style.border))
        );
        let _ = write!(
            out,
            r#"<text x="{:.1}" y="{:.1}" font-family="Liberation Sans, Arial, sans-serif" font-size="16" font-weight="bold" fill="{}">{}</text></g>"#,
            r.x + 12.0,
            r.y + 26.0,
            esc(&c.style.color),
            esc(&c.style.title)
        );
    }
    for (e, a, b) in &drawing.edges {
        if !keep(&e.from) || !keep(&e.to) {
            continue;
        }
        let s = &e.style;
        let d = edge(
            a,
            b,
            &s.route,
            s.width,
            s.start == "arrow",
            s.end == "arrow",
        );
        let dash = dash_array(&s.dash, s.width)
            .map(|d| format!(r#" stroke-dasharray="{d}""#))
            .unwrap_or_default();
        let _ = write!(
            out,
            r#"<g data-edge-id="{}"><path d="{}" fill="none" stroke="{}" stroke-width="{}"{dash}/>"#,
            esc(&e.id),
            d.d,
            esc(&s.color),
            s.width
        );
        for head in [&d.start_head, &d.end_head] {
            if !head.is_empty() {
                let _ = write!(out, r#"<path d="{head}" fill="{}"/>"#, esc(&s.color));
            }
        }
        if !s.label.is_empty() {
            let _ = write!(
                out,
                r#"<text x="{:.1}" y="{:.1}" font-family="Liberation Sans, Arial, sans-serif" font-size="13" text-anchor="middle" fill="{}" stroke="white" stroke-width="4" paint-order="stroke">{}</text>"#,
                d.label.0,
                d.label.1 + 4.0,
                esc(&s.color),
                esc(&s.label)
            );
        }
        out.push_str("</g>");
    }
    for (c, p) in others {
        let r = p.rect;
        let _ = write!(out, r#"<g data-node-id="{}">"#, esc(&c.id));
        let st = &c.style;
        match c.kind {
            CardKind::Shape => {
                let _ = write!(
                    out,
                    r#"<svg x="{:.1}" y="{:.1}" width="{:.1}" height="{:.1}" viewBox="0 0 100 100" preserveAspectRatio="none" overflow="visible"><path d="{}" fill="{}" fill-opacity="{}" stroke="{}" stroke-width="2" vector-effect="non-scaling-stroke"/></svg>"#,
                    r.x,
                    r.y,
                    r.w,
                    r.h,
                    shape_outline(&st.shape),
                    esc(paint(&st.fill)),
                    st.opacity,
                    esc(paint(&st.border))
                );
                text_block(&mut out, &c.text, &r, st.font_size, &st.color, true, 0.0);
            }
            CardKind::Text => {
                text_block(&mut out, &c.text, &r, st.font_size, &st.color, false, 4.0);
            }
            _ => {
                let _ = write!(
                    out,
                    r#"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{:.1}" rx="6" fill="{}" fill-opacity="{}" stroke="{}" stroke-width="1.5"/>"#,
                    r.x,
                    r.y,
                    r.w,
                    r.h,
                    esc(paint(&st.fill)),
                    st.opacity,
                    esc(paint(&st.border))
                );
                let top = if matches!(c.kind, CardKind::Other(_)) {
                    let _ = write!(
                        out,
                        r##"<text x="{:.1}" y="{:.1}" font-family="Liberation Sans, Arial, sans-serif" font-size="11" fill="#6b7385">{}</text>"##,
                        r.x + 10.0,
                        r.y + 16.0,
                        esc(c.kind.as_str())
                    );
                    22.0
                } else {
                    6.0
                };
                text_block(&mut out, &c.text, &r, st.font_size, &st.color, false, top);
            }
        }
        out.push_str("</g>");
    }
    out.push_str("</svg>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_svg_holds_every_card_its_text_and_the_connectors() {
        let doc = BoardDoc::from_roots(&json!({
            "nodes": {
                "a": {"kind": "note", "x": 0, "y": 0, "w": 200, "h": 100},
                "b": {"kind": "shape", "x": 400, "y": 0, "w": 100, "h": 100, "data": {"shape": "diamond"}},
                "f": {"kind": "frame", "x": -50, "y": -50, "w": 700, "h": 300, "data": {"title": "A <plan>"}}
            },
            "edges": {"e": {"from": "a", "to": "b", "data": {"label": "then", "dash": "dotted"}}},
            "texts": {"a": "buy milk & eggs, then a long line that has to wrap somewhere", "b": "done?"}
        }));
        let svg = render(&doc, "main", None);
        assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
        assert!(svg.contains("buy milk &amp; eggs"));
        assert!(svg.contains("A &lt;plan&gt;"));
        assert!(svg.contains(">done?<"));
        assert!(svg.contains("data-edge-id=\"e\""));
        assert!(svg.contains(">then<"));
        assert!(svg.contains("M50 1L99 50L50 99L1 50Z"));
        assert!(svg.matches("<tspan").count() >= 3, "long text wraps");
        let only = render(&doc, "main", Some(&["a".to_string()]));
        assert!(!only.contains("data-node-id=\"b\"") && !only.contains("data-edge-id"));
    }
}

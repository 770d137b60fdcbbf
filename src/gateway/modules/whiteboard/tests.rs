//! The whiteboard reducers and per-user undo, run the way a project runs them
//! (`gateway::project::run_event`: one transaction per event, written with the actor's
//! origin).

use crate::code::ErrorCode;
use serde_json::{Value, json};

use crate::gateway::module::{Actor, EventError};

/// A project document with the built-in modules (the shared reducer-test harness).
type Board = crate::gateway::modules::testing::TestProject;

fn editor(id: &str) -> Actor {
    Actor::user(
        id,
        id.to_uppercase(),
        vec![super::EDIT, "core-graph:nodes:write"],
    )
}

fn admin(id: &str) -> Actor {
    Actor::user(
        id,
        id.to_uppercase(),
        vec![
            super::EDIT,
            crate::gateway::modules::core_graph::OVERRIDE_LOCKS,
        ],
    )
}

impl Board {
    fn undo(&mut self, actor: &Actor, redo: bool) -> Result<Vec<String>, EventError> {
        let modules = &self.modules;
        self.undo
            .step(&self.doc, actor, redo, |txn, id| {
                modules.may_change(txn, actor, id)
            })
            .map(|(_, cards)| cards)
    }

    fn node(&self, id: &str) -> Value {
        self.root("nodes")[id].clone()
    }

    fn layout(&self, view: &str, id: &str) -> Value {
        self.root("views")[view]["cards"][id].clone()
    }

    fn text(&self, id: &str) -> Value {
        self.root("texts")[id].clone()
    }

    fn card(&mut self, actor: &Actor, id: &str, kind: &str, (x, y, w, h): (f64, f64, f64, f64)) {
        self.ok(
            actor,
            json!({"type": "whiteboard:add-card", "id": id, "kind": kind, "x": x, "y": y, "w": w, "h": h}),
        );
    }
}

#[test]
fn cards_get_kinds_sizes_styles_text_and_a_place_in_the_stack() {
    let mut b = Board::new();
    let a = editor("ada");
    b.ok(&a, json!({"type": "whiteboard:add-card", "id": "n", "kind": "note", "x": 10, "y": 20, "text": "hello", "style": {"fill": "#ffe066"}}));
    b.ok(&a, json!({"type": "whiteboard:add-card", "id": "s", "kind": "shape", "x": 300, "y": 0, "style": {"shape": "diamond", "border": "#333", "title": "ignored"}}));
    let f = b.ok(&a, json!({"type": "whiteboard:add-card", "kind": "frame", "x": -500, "y": -500, "style": {"title": "Ideas"}}));
    assert_eq!(b.node("n")["kind"], "note");
    assert_eq!(b.node("n")["w"].as_f64(), Some(200.0));
    assert_eq!(b.node("n")["data"]["fill"], "#ffe066");
    assert_eq!(b.text("n"), "hello");
    assert_eq!(b.node("s")["data"]["shape"], "diamond");
    assert!(
        b.node("s")["data"].get("title").is_none(),
        "a title is for frames"
    );
    let fid = f["id"].as_str().unwrap();
    assert_eq!(b.node(fid)["data"]["title"], "Ideas");
    assert_eq!(b.node(fid)["w"].as_f64(), Some(480.0));
    let z = |b: &Board, id: &str| b.layout("main", id)["z"].as_f64().unwrap();
    assert!(z(&b, "n") < z(&b, "s") && z(&b, "s") < z(&b, fid));
    // Created inside the frame: it belongs to it.
    b.card(&a, "in", "note", (-400.0, -400.0, 50.0, 50.0));
    assert_eq!(b.layout("main", "in")["parent"], fid);

    for (ev, code) in [
        (
            json!({"type": "whiteboard:add-card", "kind": "blob", "x": 0, "y": 0}),
            "invalid_event",
        ),
        (
            json!({"type": "whiteboard:add-card", "kind": "note", "x": 0, "y": 0, "style": {"fill": "red"}}),
            "invalid_style",
        ),
        (
            json!({"type": "whiteboard:add-card", "kind": "note", "x": 0, "y": 0, "style": {"opacity": 3}}),
            "invalid_style",
        ),
        (
            json!({"type": "whiteboard:add-card", "kind": "note", "x": 0, "y": 0, "w": -1}),
            "invalid_size",
        ),
        (
            json!({"type": "whiteboard:add-card", "kind": "note", "x": 1e9, "y": 0}),
            "invalid_position",
        ),
        (
            json!({"type": "whiteboard:add-card", "id": "n", "kind": "note", "x": 0, "y": 0}),
            "node_exists",
        ),
        (
            json!({"type": "whiteboard:add-card", "kind": "note", "x": 0, "y": 0, "view": "nope"}),
            "view_not_found",
        ),
        (
            json!({"type": "whiteboard:connect", "from": "n", "to": "n"}),
            "invalid_edge",
        ),
        (
            json!({"type": "whiteboard:connect", "from": "n", "to": "zz"}),
            "node_not_found",
        ),
        (
            json!({"type": "whiteboard:connect", "from": "n", "to": "s", "style": {"width": 40}}),
            "invalid_style",
        ),
    ] {
        assert_eq!(b.code(&a, ev.clone()), code, "{ev}");
    }
}

#[test]
fn moving_a_frame_moves_its_cards_and_a_drop_decides_the_frame() {
    let mut b = Board::new();
    let a = editor("ada");
    b.card(&a, "f", "frame", (0.0, 0.0, 400.0, 400.0));
    b.card(&a, "c", "note", (50.0, 50.0, 100.0, 100.0));
    b.card(&a, "out", "note", (1000.0, 1000.0, 100.0, 100.0));
    assert_eq!(b.layout("main", "c")["parent"], "f");
    b.ok(
        &a,
        json!({"type": "whiteboard:move", "moves": [{"id": "f", "x": 100, "y": 10}], "drop": true}),
    );
    assert_eq!(b.node("f")["x"].as_f64(), Some(100.0));
    assert_eq!(
        b.node("c")["x"].as_f64(),
        Some(150.0),
        "the card inside moved along"
    );
    assert_eq!(b.node("c")["y"].as_f64(), Some(60.0));
    assert_eq!(b.node("out")["x"].as_f64(), Some(1000.0));
    // Dropped into the frame, a card joins it; dragged out, it leaves.
    b.ok(&a, json!({"type": "whiteboard:move", "moves": [{"id": "out", "x": 200, "y": 200}], "drop": true}));
    assert_eq!(b.layout("main", "out")["parent"], "f");
    b.ok(&a, json!({"type": "whiteboard:move", "moves": [{"id": "c", "x": 900, "y": 900}], "drop": true}));
    assert!(b.layout("main", "c").get("parent").is_none());
    // A move without `drop` (mid-drag) leaves frames alone.
    b.ok(
        &a,
        json!({"type": "whiteboard:move", "moves": [{"id": "c", "x": 200, "y": 50}]}),
    );
    assert!(b.layout("main", "c").get("parent").is_none());
    // A frame dropped on a card it holds does not end up inside itself.
    b.card(&a, "g", "frame", (2000.0, 0.0, 300.0, 300.0));
    b.card(&a, "h", "frame", (2010.0, 10.0, 200.0, 200.0));
    assert_eq!(b.layout("main", "h")["parent"], "g");
    b.ok(&a, json!({"type": "whiteboard:move", "moves": [{"id": "g", "x": 2050, "y": 50}], "drop": true}));
    assert!(b.layout("main", "g").get("parent").is_none());
    assert_eq!(b.layout("main", "h")["parent"], "g");
    // Resizing a frame over cards takes them in, and lets go of those it no longer covers.
    b.ok(&a, json!({"type": "whiteboard:resize", "id": "f", "x": 100, "y": 10, "w": 1000, "h": 1000, "drop": true}));
    assert_eq!(b.layout("main", "c")["parent"], "f");
    b.ok(&a, json!({"type": "whiteboard:resize", "id": "f", "x": 100, "y": 10, "w": 50, "h": 50, "drop": true}));
    assert!(b.layout("main", "c").get("parent").is_none());
    assert!(b.layout("main", "out").get("parent").is_none());
}

#[test]
fn deleting_takes_connectors_and_text_and_frees_a_frames_cards() {
    let mut b = Board::new();
    let a = editor("ada");
    b.card(&a, "outer", "frame", (0.0, 0.0, 1000.0, 1000.0));
    b.card(&a, "f", "frame", (100.0, 100.0, 400.0, 400.0));
    b.card(&a, "c", "note", (150.0, 150.0, 50.0, 50.0));
    b.card(&a, "d", "note", (700.0, 700.0, 50.0, 50.0));
    b.ok(
        &a,
        json!({"type": "whiteboard:edit-text", "id": "c", "base": "", "at": 0, "insert": "hi"}),
    );
    let e = b.ok(&a, json!({"type": "whiteboard:connect", "from": "c", "to": "d", "style": {"route": "bezier", "end": "arrow", "label": "next"}}));
    let eid = e["id"].as_str().unwrap().to_string();
    assert_eq!(b.root("edges")[&eid]["data"]["route"], "bezier");
    assert_eq!(b.layout("main", "f")["parent"], "outer");
    assert_eq!(b.layout("main", "c")["parent"], "f");
    b.ok(&a, json!({"type": "whiteboard:delete", "cards": ["f"]}));
    assert_eq!(
        b.layout("main", "c")["parent"],
        "outer",
        "its cards go to the frame's frame"
    );
    b.ok(&a, json!({"type": "whiteboard:delete", "cards": ["c"]}));
    assert!(
        b.root("edges").get(&eid).is_none(),
        "the connector went with its card"
    );
    assert!(b.root("texts").get("c").is_none(), "and the text");
    assert!(b.root("views")["main"]["cards"].get("c").is_none());
    let r = b.ok(&a, json!({"type": "whiteboard:delete", "cards": ["zz"]}));
    assert_eq!(
        r["cards"],
        json!([]),
        "a card someone else deleted already is skipped"
    );
}

#[test]
fn an_insert_remaps_ids_and_places_the_cards_where_asked() {
    let mut b = Board::new();
    let a = editor("ada");
    b.card(&a, "x", "note", (0.0, 0.0, 10.0, 10.0));
    let r = b.ok(&a, json!({"type": "whiteboard:insert", "at": {"x": 1000, "y": 1000},
        "cards": [
            {"ref": "fr", "kind": "frame", "x": 0, "y": 0, "w": 400, "h": 200, "data": {"title": "T"}},
            {"ref": "x", "kind": "note", "x": 10, "y": 10, "w": 100, "h": 100, "text": "copied", "parent": "fr"},
            {"ref": "y", "kind": "custom-kind", "x": 200, "y": 50, "w": 100, "h": 100}
        ],
        "edges": [{"ref": "e", "from": "x", "to": "y", "data": {"dash": "dashed"}}]}));
    let fr = r["cards"]["fr"].as_str().unwrap();
    let x = r["cards"]["x"].as_str().unwrap();
    let y = r["cards"]["y"].as_str().unwrap();
    assert_ne!(x, "x", "a pasted card gets a new id");
    assert_eq!(
        b.node("x")["w"].as_f64(),
        Some(10.0),
        "the old card is untouched"
    );
    // The frame's middle (200, 100) is put at (1000, 1000).
    assert_eq!(b.node(fr)["x"].as_f64(), Some(800.0));
    assert_eq!(b.node(x)["y"].as_f64(), Some(910.0));
    assert_eq!(b.text(x), "copied");
    assert_eq!(b.layout("main", x)["parent"], fr);
    assert_eq!(b.layout("main", y)["parent"], fr, "found by where it lies");
    let e = r["edges"]["e"].as_str().unwrap();
    assert_eq!(b.root("edges")[e]["from"], x);
    assert_eq!(b.root("edges")[e]["data"]["dash"], "dashed");
    let top_before = b.layout("main", "x")["z"].as_f64().unwrap();
    assert!(b.layout("main", x)["z"].as_f64().unwrap() > top_before);

    for (ev, code) in [
        (json!({"type": "whiteboard:insert", "cards": []}), "too_few"),
        (
            json!({"type": "whiteboard:insert", "cards": [{"ref": "a", "kind": "note", "x": 0, "y": 0, "w": 1, "h": 1}, {"ref": "a", "kind": "note", "x": 0, "y": 0, "w": 1, "h": 1}]}),
            "invalid_ref",
        ),
        (
            json!({"type": "whiteboard:insert", "cards": [{"ref": "a", "kind": "note", "x": 0, "y": 0, "w": 1, "h": 1}], "edges": [{"from": "a", "to": "b"}]}),
            "invalid_ref",
        ),
        (
            json!({"type": "whiteboard:insert", "cards": [{"ref": "a", "kind": "note", "x": 0, "y": 0, "w": 0, "h": 1}]}),
            "invalid_size",
        ),
    ] {
        assert_eq!(b.code(&a, ev.clone()), code, "{ev}");
    }
}

#[test]
fn text_edits_from_two_people_both_stay() {
    let mut b = Board::new();
    let (a, c) = (editor("ada"), editor("cy"));
    b.card(&a, "n", "note", (0.0, 0.0, 100.0, 100.0));
    let r = b.ok(&a, json!({"type": "whiteboard:edit-text", "id": "n", "base": "", "at": 0, "insert": "hello world"}));
    assert_eq!(r["text"], "hello world");
    // Both saw "hello world"; Ada types at the start, Cy (not having seen it) at the end.
    b.ok(&a, json!({"type": "whiteboard:edit-text", "id": "n", "base": "hello world", "at": 0, "insert": "Oh, "}));
    let r = b.ok(&c, json!({"type": "whiteboard:edit-text", "id": "n", "base": "hello world", "at": 11, "insert": "!"}));
    assert_eq!(r["text"], "Oh, hello world!");
    let r = b.ok(&c, json!({"type": "whiteboard:edit-text", "id": "n", "base": "Oh, hello world!", "at": 4, "delete": 6}));
    assert_eq!(r["text"], "Oh, world!");
    assert_eq!(
        b.code(
            &a,
            json!({"type": "whiteboard:edit-text", "id": "n", "base": "x", "at": 5})
        ),
        "invalid_position"
    );
    assert_eq!(
        b.code(
            &a,
            json!({"type": "whiteboard:edit-text", "id": "zz", "base": "", "at": 0})
        ),
        "node_not_found"
    );
}

#[test]
fn stacking_order_grouping_aligning_and_distributing() {
    let mut b = Board::new();
    let a = editor("ada");
    b.card(&a, "p", "note", (0.0, 0.0, 100.0, 100.0));
    b.card(&a, "q", "note", (300.0, 50.0, 50.0, 50.0));
    b.card(&a, "r", "note", (500.0, 20.0, 80.0, 80.0));
    let z = |b: &Board, id: &str| b.layout("main", id)["z"].as_f64().unwrap();
    b.ok(
        &a,
        json!({"type": "whiteboard:order", "cards": ["p"], "to": "front"}),
    );
    assert!(z(&b, "p") > z(&b, "r"));
    b.ok(
        &a,
        json!({"type": "whiteboard:order", "cards": ["p"], "to": "back"}),
    );
    assert!(z(&b, "p") < z(&b, "q"));
    b.ok(
        &a,
        json!({"type": "whiteboard:order", "cards": ["p"], "to": "forward"}),
    );
    assert!(z(&b, "p") > z(&b, "q") && z(&b, "p") < z(&b, "r"));
    b.ok(
        &a,
        json!({"type": "whiteboard:order", "cards": ["r"], "to": "backward"}),
    );
    assert!(z(&b, "r") < z(&b, "p") && z(&b, "r") > z(&b, "q"));

    b.ok(
        &a,
        json!({"type": "whiteboard:align", "cards": ["p", "q", "r"], "to": "top"}),
    );
    for id in ["p", "q", "r"] {
        assert_eq!(b.node(id)["y"].as_f64(), Some(0.0), "{id}");
    }
    b.ok(
        &a,
        json!({"type": "whiteboard:align", "cards": ["p", "q", "r"], "to": "middle"}),
    );
    assert_eq!(b.node("q")["y"].as_f64(), Some(25.0));
    b.ok(
        &a,
        json!({"type": "whiteboard:align", "cards": ["q", "r"], "to": "right"}),
    );
    assert_eq!(b.node("q")["x"].as_f64(), Some(530.0));
    b.ok(
        &a,
        json!({"type": "whiteboard:move", "moves": [{"id": "q", "x": 100, "y": 0}]}),
    );
    // p [0,100], q [100,150], r [500,580]: equal gaps between the outer two.
    b.ok(
        &a,
        json!({"type": "whiteboard:distribute", "cards": ["p", "q", "r"], "axis": "horizontal"}),
    );
    assert_eq!(b.node("q")["x"].as_f64(), Some(275.0));
    assert_eq!(
        b.code(
            &a,
            json!({"type": "whiteboard:align", "cards": ["p"], "to": "left"})
        ),
        "too_few"
    );
    assert_eq!(
        b.code(
            &a,
            json!({"type": "whiteboard:distribute", "cards": ["p", "q"], "axis": "vertical"})
        ),
        "too_few"
    );

    let g = b.ok(
        &a,
        json!({"type": "whiteboard:group", "cards": ["p", "q"], "title": "Pair"}),
    );
    let g = g["id"].as_str().unwrap();
    assert_eq!(b.node(g)["kind"], "frame");
    assert_eq!(b.node(g)["data"]["title"], "Pair");
    assert_eq!(b.layout("main", "p")["parent"], g);
    assert_eq!(b.layout("main", "q")["parent"], g);
    let f = b.node(g);
    assert!(
        f["x"].as_f64().unwrap() < 0.0 && f["y"].as_f64().unwrap() < 0.0,
        "around its cards: {f}"
    );
    assert!(z(&b, g) < z(&b, "p").min(z(&b, "q")));
}

#[test]
fn locks_hold_against_everyone_but_the_locker_and_admins() {
    let mut b = Board::new();
    let (ada, bob, boss) = (editor("ada"), editor("bob"), admin("boss"));
    b.card(&ada, "k", "note", (0.0, 0.0, 100.0, 100.0));
    b.card(&ada, "f", "frame", (-50.0, -50.0, 500.0, 500.0));
    b.ok(
        &ada,
        json!({"type": "whiteboard:move", "moves": [{"id": "k", "x": 10, "y": 10}], "drop": true}),
    );
    b.ok(
        &ada,
        json!({"type": "whiteboard:lock", "cards": ["k"], "locked": true}),
    );
    assert_eq!(b.node("k")["locked_by"], "ada");
    assert_eq!(b.node("k")["locked_by_name"], "ADA");
    for ev in [
        json!({"type": "whiteboard:move", "moves": [{"id": "k", "x": 50, "y": 50}]}),
        json!({"type": "whiteboard:resize", "id": "k", "x": 0, "y": 0, "w": 5, "h": 5}),
        json!({"type": "whiteboard:delete", "cards": ["k"]}),
        json!({"type": "whiteboard:style", "cards": ["k"], "style": {"fill": "#000"}}),
        json!({"type": "whiteboard:edit-text", "id": "k", "base": "", "at": 0, "insert": "x"}),
        json!({"type": "whiteboard:lock", "cards": ["k"], "locked": false}),
        json!({"type": "whiteboard:order", "cards": ["k"], "to": "front"}),
        // Moving the frame would move the locked card inside it.
        json!({"type": "whiteboard:move", "moves": [{"id": "f", "x": 0, "y": 0}]}),
        json!({"type": "core-graph:move-node", "id": "k", "x": 1, "y": 1}),
    ] {
        assert_eq!(b.code(&bob, ev.clone()), "locked", "{ev}");
    }
    assert_eq!(b.node("k")["x"].as_f64(), Some(10.0));
    b.ok(
        &ada,
        json!({"type": "whiteboard:move", "moves": [{"id": "k", "x": 20, "y": 20}]}),
    );
    b.ok(
        &boss,
        json!({"type": "whiteboard:move", "moves": [{"id": "k", "x": 30, "y": 30}]}),
    );
    b.ok(
        &boss,
        json!({"type": "whiteboard:lock", "cards": ["k"], "locked": false}),
    );
    b.ok(
        &bob,
        json!({"type": "whiteboard:move", "moves": [{"id": "k", "x": 40, "y": 40}]}),
    );
    assert!(b.node("k").get("locked_by").is_none());
}

#[test]
fn each_view_has_its_own_layout() {
    let mut b = Board::new();
    let a = editor("ada");
    b.card(&a, "c", "note", (0.0, 0.0, 100.0, 100.0));
    b.ok(
        &a,
        json!({"type": "whiteboard:add-view", "id": "v2", "name": "Second"}),
    );
    assert_eq!(b.root("views")["v2"]["name"], "Second");
    b.ok(&a, json!({"type": "whiteboard:move", "view": "v2", "moves": [{"id": "c", "x": 500, "y": 500}]}));
    assert_eq!(b.node("c")["x"].as_f64(), Some(0.0), "main keeps its place");
    assert_eq!(b.layout("v2", "c")["x"].as_f64(), Some(500.0));
    b.ok(
        &a,
        json!({"type": "whiteboard:collapse", "view": "v2", "cards": ["c"], "collapsed": true}),
    );
    assert_eq!(b.layout("v2", "c")["collapsed"], true);
    assert!(b.layout("main", "c").get("collapsed").is_none());
    b.ok(
        &a,
        json!({"type": "whiteboard:rename-view", "id": "v2", "name": "Renamed"}),
    );
    assert_eq!(b.root("views")["v2"]["name"], "Renamed");
    assert_eq!(
        b.code(&a, json!({"type": "whiteboard:delete-view", "id": "main"})),
        "main_view"
    );
    assert_eq!(
        b.code(
            &a,
            json!({"type": "whiteboard:add-view", "id": "v2", "name": "x"})
        ),
        "view_exists"
    );
    assert_eq!(
        b.code(&a, json!({"type": "whiteboard:add-view", "name": ""})),
        "invalid_name"
    );
    b.ok(&a, json!({"type": "whiteboard:delete-view", "id": "v2"}));
    assert!(b.root("views").get("v2").is_none());
}

#[test]
fn undo_reverts_only_my_own_changes() {
    let mut b = Board::new();
    let (ada, bob) = (editor("ada"), editor("bob"));
    b.card(&ada, "a", "note", (0.0, 0.0, 100.0, 100.0));
    b.card(&bob, "b", "note", (500.0, 0.0, 100.0, 100.0));
    // Both change the same card: Ada its colour, Bob its place.
    b.ok(
        &ada,
        json!({"type": "whiteboard:style", "cards": ["b"], "style": {"fill": "#ff0000"}}),
    );
    b.ok(
        &bob,
        json!({"type": "whiteboard:move", "moves": [{"id": "b", "x": 600, "y": 10}]}),
    );
    b.ok(
        &bob,
        json!({"type": "whiteboard:move", "moves": [{"id": "a", "x": 0, "y": 300}]}),
    );
    assert_eq!(b.undo(&ada, false).expect("undo"), vec!["b"]);
    assert!(
        b.node("b")["data"].get("fill").is_none(),
        "Ada's colour is gone"
    );
    assert_eq!(b.node("b")["x"].as_f64(), Some(600.0), "Bob's move stays");
    assert_eq!(b.node("a")["y"].as_f64(), Some(300.0), "and his other move");
    b.undo(&ada, true).expect("redo");
    assert_eq!(b.node("b")["data"]["fill"], "#ff0000");
    // Ada undoes again, twice: the colour, then her card.
    b.undo(&ada, false).expect("undo colour");
    b.undo(&ada, false).expect("undo card");
    assert!(
        b.root("nodes").get("a").is_none(),
        "her card is gone though Bob moved it"
    );
    assert!(b.root("nodes").get("b").is_some(), "Bob's card stays");
    assert!(matches!(
        b.undo(&ada, false),
        Err(EventError::Conflict {
            code: ErrorCode::NothingToUndo,
            ..
        })
    ));
    b.undo(&ada, true).expect("redo the card");
    assert_eq!(b.node("a")["kind"], "note");
    // Bob's own history is untouched by all of it.
    b.undo(&bob, false).expect("bob undoes his last move");
    assert_eq!(b.node("a")["y"].as_f64(), Some(0.0));
}

#[test]
fn a_drag_is_one_step_and_a_deleted_board_part_comes_back_whole() {
    let mut b = Board::new();
    let a = editor("ada");
    b.card(&a, "f", "frame", (0.0, 0.0, 400.0, 400.0));
    b.card(&a, "c", "note", (50.0, 50.0, 100.0, 100.0));
    b.card(&a, "d", "note", (800.0, 0.0, 100.0, 100.0));
    b.ok(&a, json!({"type": "whiteboard:edit-text", "id": "c", "base": "", "at": 0, "insert": "keep me"}));
    b.ok(
        &a,
        json!({"type": "whiteboard:connect", "id": "e", "from": "c", "to": "d"}),
    );
    for i in 1..=10 {
        b.ok(&a, json!({"type": "whiteboard:move", "step": "drag-1", "moves": [{"id": "f", "x": i * 10, "y": 0}], "drop": i == 10}));
    }
    assert_eq!(b.node("f")["x"].as_f64(), Some(100.0));
    b.undo(&a, false).expect("undo the drag");
    assert_eq!(
        b.node("f")["x"].as_f64(),
        Some(0.0),
        "the whole drag, in one step"
    );
    assert_eq!(b.node("c")["x"].as_f64(), Some(50.0));
    b.ok(
        &a,
        json!({"type": "whiteboard:delete", "cards": ["f", "c"]}),
    );
    assert!(b.root("nodes").get("c").is_none());
    b.undo(&a, false).expect("undo the delete");
    assert_eq!(b.node("c")["x"].as_f64(), Some(50.0));
    assert_eq!(b.text("c"), "keep me");
    assert_eq!(b.root("edges")["e"]["to"], "d");
    assert_eq!(b.layout("main", "c")["parent"], "f");
    assert_eq!(b.node("f")["kind"], "frame");
}

#[test]
fn an_undo_that_would_change_someone_elses_locked_card_is_refused() {
    let mut b = Board::new();
    let (ada, bob) = (editor("ada"), editor("bob"));
    b.card(&ada, "c", "note", (0.0, 0.0, 100.0, 100.0));
    b.ok(
        &ada,
        json!({"type": "whiteboard:style", "cards": ["c"], "style": {"fill": "#00ff00"}}),
    );
    b.ok(
        &bob,
        json!({"type": "whiteboard:lock", "cards": ["c"], "locked": true}),
    );
    assert!(matches!(
        b.undo(&ada, false),
        Err(EventError::Forbidden {
            code: ErrorCode::Locked,
            ..
        })
    ));
    assert_eq!(b.node("c")["data"]["fill"], "#00ff00", "nothing changed");
    b.ok(
        &bob,
        json!({"type": "whiteboard:lock", "cards": ["c"], "locked": false}),
    );
    b.undo(&ada, false).expect("allowed once unlocked");
    assert!(b.node("c")["data"].get("fill").is_none());
}

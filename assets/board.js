// The board's island: the browser half of the board page. The server renders the cards and
// connectors from the project's document; this file owns what must answer within a frame:
// the camera (pan, zoom, pinch), every gesture (select, marquee, drag, resize, connect,
// create), the keyboard, the clipboard, text editing, and drawing the others' cursors and
// selections. Every change goes to the public events API from the browser (the session
// cookie and Origin authorise it, as for any client); while a gesture runs, what it moves is
// drawn here and the server's state takes over once the gesture ends.
//
// It talks to its page through one long-lived channel (`attach`): it reports the viewport,
// its presence and selection, and receives the others' presence and text changes.
// Geometry of connectors must match web/src/board/geometry.rs.
(function () {
  "use strict";

  var GRID = 24;
  var MIN_ZOOM = 0.05;
  var MAX_ZOOM = 4;
  var MOVE_EVERY = 80; // ms between move events while dragging
  var ID_CHARS = "0123456789abcdef";

  var channel = null; // { send(v) }
  var B = null; // the mounted board

  function newId() {
    var s = "";
    var a = new Uint8Array(16);
    crypto.getRandomValues(a);
    for (var i = 0; i < 16; i++) s += ID_CHARS[a[i] >> 4] + ID_CHARS[a[i] & 15];
    return s;
  }

  function tell(msg) {
    // While the page's socket is down (the server restarts), nothing can be said.
    if (document.documentElement.getAttribute("data-live") === "reconnecting") return;
    if (channel) {
      try { channel.send(msg); } catch (e) { /* the page is going away */ }
    }
  }

  // ---- geometry (as geometry.rs) -------------------------------------------------------

  function facing(r, x, y) {
    var dx = x - (r.x + r.w / 2), dy = y - (r.y + r.h / 2);
    if (Math.abs(dx) * r.h > Math.abs(dy) * r.w) {
      return dx > 0 ? ["right", [r.x + r.w, r.y + r.h / 2]] : ["left", [r.x, r.y + r.h / 2]];
    }
    return dy > 0 ? ["bottom", [r.x + r.w / 2, r.y + r.h]] : ["top", [r.x + r.w / 2, r.y]];
  }
  var NORMAL = { left: [-1, 0], right: [1, 0], top: [0, -1], bottom: [0, 1] };

  function exit(r, x, y) {
    var cx = r.x + r.w / 2, cy = r.y + r.h / 2, dx = x - cx, dy = y - cy;
    if (dx === 0 && dy === 0) return [cx, cy];
    var tx = dx !== 0 ? (r.w / 2) / Math.abs(dx) : Infinity;
    var ty = dy !== 0 ? (r.h / 2) / Math.abs(dy) : Infinity;
    var t = Math.min(tx, ty);
    return [cx + dx * t, cy + dy * t];
  }

  function arrowHead(tip, dir, width) {
    var len = Math.hypot(dir[0], dir[1]);
    if (!len) return "";
    var ux = dir[0] / len, uy = dir[1] / len, size = 8 + width * 2;
    var bx = tip[0] - ux * size, by = tip[1] - uy * size, px = -uy * size * 0.5, py = ux * size * 0.5;
    return "M" + tip[0] + " " + tip[1] + "L" + (bx + px) + " " + (by + py) + "L" + (bx - px) + " " + (by - py) + "Z";
  }

  function edgePath(a, b, route, width, start, end) {
    var d, sdir, edir, p0, p3;
    if (route === "straight") {
      p0 = exit(a, b.x + b.w / 2, b.y + b.h / 2);
      p3 = exit(b, a.x + a.w / 2, a.y + a.h / 2);
      d = "M" + p0[0] + " " + p0[1] + "L" + p3[0] + " " + p3[1];
      sdir = [p0[0] - p3[0], p0[1] - p3[1]];
      edir = [p3[0] - p0[0], p3[1] - p0[1]];
    } else if (route === "step") {
      var f0 = facing(a, b.x + b.w / 2, b.y + b.h / 2), f3 = facing(b, a.x + a.w / 2, a.y + a.h / 2);
      p0 = f0[1]; p3 = f3[1];
      var horizontal = f0[0] === "left" || f0[0] === "right";
      if (horizontal) {
        var mx = (p0[0] + p3[0]) / 2;
        d = "M" + p0[0] + " " + p0[1] + "H" + mx + "V" + p3[1] + "H" + p3[0];
        edir = (f3[0] === "left" || f3[0] === "right") ? [p3[0] - mx, 0] : [0, p3[1] - p0[1]];
      } else {
        var my = (p0[1] + p3[1]) / 2;
        d = "M" + p0[0] + " " + p0[1] + "V" + my + "H" + p3[0] + "V" + p3[1];
        edir = [0, p3[1] - my];
      }
      var n0 = NORMAL[f0[0]];
      sdir = [-n0[0], -n0[1]];
    } else {
      var g0 = facing(a, b.x + b.w / 2, b.y + b.h / 2), g3 = facing(b, a.x + a.w / 2, a.y + a.h / 2);
      p0 = g0[1]; p3 = g3[1];
      var k = Math.max(Math.hypot(p3[0] - p0[0], p3[1] - p0[1]) / 3, 40);
      var m0 = NORMAL[g0[0]], m3 = NORMAL[g3[0]];
      var c1 = [p0[0] + m0[0] * k, p0[1] + m0[1] * k], c2 = [p3[0] + m3[0] * k, p3[1] + m3[1] * k];
      d = "M" + p0[0] + " " + p0[1] + "C" + c1[0] + " " + c1[1] + " " + c2[0] + " " + c2[1] + " " + p3[0] + " " + p3[1];
      sdir = [p0[0] - c1[0], p0[1] - c1[1]];
      edir = [p3[0] - c2[0], p3[1] - c2[1]];
    }
    return { d: d, heads: (start ? arrowHead(p0, sdir, width) : "") + (end ? arrowHead(p3, edir, width) : "") };
  }

  function intersects(a, b) {
    return a.x <= b.x + b.w && b.x <= a.x + a.w && a.y <= b.y + b.h && b.y <= a.y + a.h;
  }

  // ---- the page's channel ------------------------------------------------------------

  window.dmgBoard = {
    // Called once per board page by the page's bootstrap eval.
    attach: function (dioxus, queue) {
      channel = dioxus;
      var deliver = function (m) { if (B) B.receive(m); else pending.push(m); };
      var pending = [];
      for (var i = 0; i < queue.length; i++) deliver(queue[i]);
      queue.length = 0;
      queue.push = function (m) { deliver(m); return 0; };
      var tryMount = function () {
        var el = document.getElementById("board");
        if (el && el.getAttribute("data-project") && (!B || B.el !== el)) {
          if (B) B.destroy();
          B = mount(el);
          pending.splice(0).forEach(function (m) { B.receive(m); });
        } else if (B && !B.el.isConnected) {
          B.destroy();
          B = null;
        }
      };
      tryMount();
      new MutationObserver(tryMount).observe(document.getElementById("main") || document.body, { childList: true, subtree: true });
    },
    // For tests and scripts: the camera and the selection.
    state: function () {
      if (!B) return null;
      return { camera: Object.assign({}, B.cam), selection: Array.from(B.sel), edges: Array.from(B.edgeSel), tool: B.tool, editing: B.editor ? B.editor.id : null, following: B.following };
    },
  };

  // ---- the board -----------------------------------------------------------------------

  function mount(el) {
    var pid = el.getAttribute("data-project");
    var view = el.getAttribute("data-view") || "main";
    var canEdit = el.getAttribute("data-can-edit") === "true";
    var me = el.getAttribute("data-me");
    var port = el.querySelector("#board-viewport");
    var world = el.querySelector("#board-world");
    var overlay = el.querySelector("#board-overlay");
    var grid = el.querySelector("#board-grid");
    var listeners = [];
    function on(target, type, fn, opts) {
      target.addEventListener(type, fn, opts);
      listeners.push([target, type, fn, opts]);
    }

    var b = {
      el: el,
      cam: { x: 0, y: 0, z: 1 },
      tool: "select",
      sel: new Set(),
      edgeSel: new Set(),
      snap: false,
      peers: [],
      following: null,
      overrides: new Map(), // card id -> {x, y, w, h, settle: time}
      hiddenEdges: new Set(),
      gesture: null,
      pointers: new Map(),
      editor: null,
      clip: null, // {key, text}: the selection as a board file, ready for the clipboard
      space: false,
      hover: null,
    };

    // Overlay parts (the server never writes inside #board-overlay).
    var ns = "http://www.w3.org/2000/svg";
    var preview = document.createElementNS(ns, "svg");
    preview.setAttribute("class", "preview");
    var selLayer = document.createElement("div");
    var remoteLayer = document.createElement("div");
    var cursorLayer = document.createElement("div");
    var marquee = document.createElement("div");
    marquee.className = "marquee";
    marquee.hidden = true;
    overlay.append(remoteLayer, selLayer, preview, marquee, cursorLayer);
    var miniView = el.querySelector("#minimap-view");

    // ---- cards as drawn --------------------------------------------------------------

    function cardEl(id) {
      return world.querySelector('[data-node-id="' + CSS.escape(id) + '"]');
    }
    // Where the server drew a card (its style's --x, --y, --w, --h: as it shows, collapsed
    // or not).
    function rectOf(e) {
      var st = e.style;
      return {
        x: parseFloat(st.getPropertyValue("--x")), y: parseFloat(st.getPropertyValue("--y")),
        w: parseFloat(st.getPropertyValue("--w")), h: parseFloat(st.getPropertyValue("--h")),
      };
    }
    function rect(id) {
      var o = b.overrides.get(id);
      if (o) return o;
      var e = cardEl(id);
      return e ? rectOf(e) : null;
    }
    function allCards() {
      return Array.prototype.slice.call(world.querySelectorAll("[data-node-id]"));
    }
    function lockedByOther(id) {
      var e = cardEl(id);
      var by = e && e.getAttribute("data-locked-by");
      return !!by && by !== me;
    }
    // The cards inside frame `id` (as drawn), at any depth.
    function inside(id) {
      var out = [], stack = [id], cards = allCards();
      while (stack.length) {
        var p = stack.pop();
        for (var i = 0; i < cards.length; i++) {
          var c = cards[i], cid = c.getAttribute("data-node-id");
          if (c.getAttribute("data-parent") === p && out.indexOf(cid) < 0 && cid !== id) { out.push(cid); stack.push(cid); }
        }
      }
      return out;
    }

    // ---- camera ----------------------------------------------------------------------

    var reportTimer = null, lastReport = 0, saveTimer = null;
    // The viewport's and the minimap's boxes, kept (asking the browser every frame would
    // make it lay the page out every frame).
    var portBox = port.getBoundingClientRect();
    var miniBox = null;
    var boxes0 = new ResizeObserver(function () {
      portBox = port.getBoundingClientRect();
      var mm = el.querySelector("#minimap");
      miniBox = mm ? mm.getBoundingClientRect() : null;
      applyCamera();
    });
    boxes0.observe(port);
    function screenToWorld(sx, sy) {
      var r = portBox;
      return [(sx - r.left - b.cam.x) / b.cam.z, (sy - r.top - b.cam.y) / b.cam.z];
    }
    function viewRect() {
      var r = portBox;
      return { x: -b.cam.x / b.cam.z, y: -b.cam.y / b.cam.z, w: r.width / b.cam.z, h: r.height / b.cam.z };
    }
    function applyCamera() {
      world.style.transform = "translate(" + b.cam.x + "px," + b.cam.y + "px) scale(" + b.cam.z + ")";
      // Only when it changes: every card's style depends on it, a pan must not touch it.
      if (world.__zoom !== b.cam.z) {
        world.__zoom = b.cam.z;
        world.style.setProperty("--zoom", b.cam.z);
      }
      // The dots: a layer one cell larger than the screen, moved by less than a cell (so a
      // pan only moves it), its cells a multiple of the grid no smaller than 12 px.
      var cell = GRID * b.cam.z;
      while (cell < 12) cell *= 2;
      if (grid) {
        if (grid.__cell !== cell) {
          grid.__cell = cell;
          grid.style.backgroundSize = cell + "px " + cell + "px";
          grid.style.setProperty("--dot", Math.max(0.6, Math.min(1.6, b.cam.z * 1.2)) + "px");
        }
        var ox = ((b.cam.x % cell) + cell) % cell - cell, oy = ((b.cam.y % cell) + cell) % cell - cell;
        grid.style.transform = "translate(" + ox + "px," + oy + "px)";
      }
      drawMiniView();
      var now = performance.now();
      clearTimeout(reportTimer);
      if (now - lastReport > 150) report(); else reportTimer = setTimeout(report, 100);
      clearTimeout(saveTimer);
      var seenIn = view;
      saveTimer = setTimeout(function () {
        if (seenIn !== view) return;
        try { localStorage.setItem("dmg.camera." + pid + "." + view, JSON.stringify(b.cam)); } catch (e) { /* private mode */ }
      }, 400);
    }
    function report() {
      lastReport = performance.now();
      var v = viewRect();
      tell({ t: "viewport", x: v.x, y: v.y, w: v.w, h: v.h, z: b.cam.z });
    }
    function zoomAt(sx, sy, z) {
      z = Math.max(MIN_ZOOM, Math.min(MAX_ZOOM, z));
      var r = portBox, px = sx - r.left, py = sy - r.top;
      b.cam.x = px - (px - b.cam.x) * (z / b.cam.z);
      b.cam.y = py - (py - b.cam.y) * (z / b.cam.z);
      b.cam.z = z;
      applyCamera();
    }
    function zoomCentre(f) {
      var r = portBox;
      zoomAt(r.left + r.width / 2, r.top + r.height / 2, b.cam.z * f);
    }
    function fitTo(box, maxZoom, minZoom, margin) {
      var r = portBox;
      if (!box || !r.width) return;
      var m = margin === undefined ? 80 : margin;
      var z = Math.min(r.width / (box.w + m), r.height / (box.h + m), maxZoom || 1);
      z = Math.max(minZoom || MIN_ZOOM, Math.min(MAX_ZOOM, z));
      b.cam.z = z;
      b.cam.x = r.width / 2 - (box.x + box.w / 2) * z;
      b.cam.y = r.height / 2 - (box.y + box.h / 2) * z;
      applyCamera();
    }
    function closeViews() {
      var m = el.querySelector("#views-menu");
      if (m) m.open = false;
    }
    // A new view, named in the views menu: made, then shown.
    function addView() {
      var input = el.querySelector("#new-view-name");
      var name = input ? input.value.trim() : "";
      if (!name) { toast("Name the view first"); if (input) input.focus(); return; }
      var id = newId();
      send({ type: "whiteboard:add-view", id: id, name: name.slice(0, 100) }).then(function () {
        if (input) input.value = "";
        closeViews();
        tell({ t: "view", id: id });
      }).catch(function () {});
    }
    // A card picked in the layers view: selected, and brought on screen if it is off it (the
    // zoom stays; the card need not be drawn yet, its rectangle comes with the row).
    function showCard(id, row) {
      var r = (row.getAttribute("data-rect") || "").split(",").map(parseFloat);
      if (r.length === 4 && r.every(isFinite)) {
        var v = viewRect();
        if (r[0] < v.x || r[1] < v.y || r[0] + r[2] > v.x + v.w || r[1] + r[3] > v.y + v.h) {
          stopFollowing();
          if (r[2] * b.cam.z > portBox.width * 0.9 || r[3] * b.cam.z > portBox.height * 0.9) {
            fitTo({ x: r[0], y: r[1], w: r[2], h: r[3] }, b.cam.z);
          } else {
            b.cam.x = portBox.width / 2 - (r[0] + r[2] / 2) * b.cam.z;
            b.cam.y = portBox.height / 2 - (r[1] + r[3] / 2) * b.cam.z;
            applyCamera();
          }
        }
      }
      select([id]);
    }
    function boardBounds() {
      var s = (el.getAttribute("data-bounds") || "").split(",").map(parseFloat);
      return s.length === 4 && s.every(isFinite) ? { x: s[0], y: s[1], w: s[2], h: s[3] } : null;
    }
    function stopFollowing() {
      if (b.following !== null) {
        b.following = null;
        el.removeAttribute("data-following");
      }
    }

    function drawMiniView() {
      var mm = el.querySelector("#minimap");
      if (!mm || !miniView) return;
      var vb = (mm.getAttribute("data-viewbox") || "").split(" ").map(parseFloat);
      if (vb.length !== 4 || !vb.every(isFinite)) { miniView.hidden = true; return; }
      var box = miniBox || (miniBox = mm.getBoundingClientRect());
      var s = Math.min(box.width / vb[2], box.height / vb[3]);
      var ox = (box.width - vb[2] * s) / 2, oy = (box.height - vb[3] * s) / 2;
      var v = viewRect();
      miniView.hidden = false;
      miniView.style.left = (ox + (v.x - vb[0]) * s) + "px";
      miniView.style.top = (oy + (v.y - vb[1]) * s) + "px";
      miniView.style.width = Math.max(4, v.w * s) + "px";
      miniView.style.height = Math.max(4, v.h * s) + "px";
    }

    // ---- events to the server --------------------------------------------------------

    var toastTimer = null;
    function toast(text) {
      var t = el.querySelector("#board-toast");
      if (!t) return;
      t.textContent = text;
      t.classList.add("shown");
      clearTimeout(toastTimer);
      toastTimer = setTimeout(function () { t.classList.remove("shown"); }, 4000);
    }
    async function api(method, path, body, raw) {
      var opts = { method: method, credentials: "same-origin", headers: {}, cache: "no-store" };
      if (body !== undefined) {
        opts.headers["Content-Type"] = "application/json";
        opts.body = raw ? body : JSON.stringify(body);
      }
      var r;
      try { r = await fetch(path, opts); } catch (e) {
        toast("The server cannot be reached; your change was not saved.");
        throw e;
      }
      var data = null;
      try { data = await r.json(); } catch (e) { /* empty */ }
      if (!r.ok) {
        var msg = (data && data.message) || ("Could not save (HTTP " + r.status + ")");
        toast(msg.charAt(0).toUpperCase() + msg.slice(1));
        var err = new Error(msg);
        err.status = r.status;
        err.code = data && data.error;
        throw err;
      }
      return data;
    }
    function send(ev) {
      return api("POST", "/api/v1/projects/" + pid + "/events", ev);
    }
    function quiet(p) { return p.catch(function () { return null; }); }

    // ---- selection and presence ------------------------------------------------------

    var presenceTimer = null, lastPresence = 0, cursor = null;
    function sayPresence() {
      var now = performance.now();
      var go = function () {
        lastPresence = performance.now();
        presenceTimer = null;
        tell({ t: "presence", cursor: cursor, selection: Array.from(b.sel) });
      };
      if (now - lastPresence > 50) go();
      else if (!presenceTimer) presenceTimer = setTimeout(go, 50);
    }
    var clipTimer = null;
    function selectionChanged() {
      var cards = Array.from(b.sel), edges = Array.from(b.edgeSel);
      tell({ t: "select", cards: cards, edges: edges });
      sayPresence();
      drawSelection();
      // The selection as a board file, ready for a copy (a copy event cannot wait).
      clearTimeout(clipTimer);
      b.clip = null;
      if (cards.length) {
        var key = cards.slice().sort().join(",");
        clipTimer = setTimeout(function () {
          fetch(exportUrl("json", cards), { credentials: "same-origin" })
            .then(function (r) { return r.ok ? r.text() : null; })
            .then(function (text) { if (text && Array.from(b.sel).sort().join(",") === key) b.clip = { key: key, text: text }; })
            .catch(function () {});
        }, 120);
      }
    }
    function select(ids, add) {
      if (!add) { b.sel.clear(); b.edgeSel.clear(); }
      ids.forEach(function (id) { b.sel.add(id); });
      selectionChanged();
    }
    function clearSelection() {
      if (!b.sel.size && !b.edgeSel.size) return;
      b.sel.clear();
      b.edgeSel.clear();
      selectionChanged();
    }

    // The selection boxes, resize and connection handles (drawn over the cards, in world
    // coordinates; sizes stay the same on screen through --zoom). The elements are kept and
    // moved, not made anew, so a pointer on a handle keeps its handle.
    var boxes = new Map();
    var HANDLES = ["nw", "n", "ne", "e", "se", "s", "sw", "w"];
    var resizers = HANDLES.map(function (h) {
      var d = document.createElement("div");
      d.className = "sel-handle h-" + h;
      d.setAttribute("data-handle", h);
      d.hidden = true;
      selLayer.appendChild(d);
      return d;
    });
    var SIDES = ["top", "right", "bottom", "left"];
    var connectors = SIDES.map(function (side) {
      var d = document.createElement("div");
      d.className = "conn-handle";
      d.setAttribute("data-side", side);
      d.title = "Drag to connect";
      d.hidden = true;
      selLayer.appendChild(d);
      return d;
    });
    function drawSelection() {
      var ids = Array.from(b.sel);
      boxes.forEach(function (box, id) { if (!b.sel.has(id)) { box.remove(); boxes.delete(id); } });
      ids.forEach(function (id) {
        var r = rect(id);
        var box = boxes.get(id);
        if (!r) { if (box) { box.remove(); boxes.delete(id); } return; }
        if (!box) {
          box = document.createElement("div");
          box.setAttribute("data-selected-id", id);
          selLayer.insertBefore(box, selLayer.firstChild);
          boxes.set(id, box);
        }
        box.className = "sel-box" + (lockedByOther(id) ? " locked" : "");
        place(box, r);
      });
      var one = canEdit && ids.length === 1 && !b.gesture && !lockedByOther(ids[0]) ? rect(ids[0]) : null;
      resizers.forEach(function (d, i) {
        d.hidden = !one;
        if (!one) return;
        var h = HANDLES[i];
        d.setAttribute("data-for", ids[0]);
        d.style.left = (h.indexOf("w") >= 0 ? one.x : h.indexOf("e") >= 0 ? one.x + one.w : one.x + one.w / 2) + "px";
        d.style.top = (h.indexOf("n") >= 0 ? one.y : h.indexOf("s") >= 0 ? one.y + one.h : one.y + one.h / 2) + "px";
      });
      var target = b.hover || (ids.length === 1 ? ids[0] : null);
      var r2 = canEdit && target && !b.gesture ? rect(target) : null;
      connectors.forEach(function (d, i) {
        d.hidden = !r2;
        if (!r2) return;
        d.setAttribute("data-connect", target);
        var at = [[r2.x + r2.w / 2, r2.y], [r2.x + r2.w, r2.y + r2.h / 2], [r2.x + r2.w / 2, r2.y + r2.h], [r2.x, r2.y + r2.h / 2]][i];
        d.style.left = at[0] + "px";
        d.style.top = at[1] + "px";
      });
      b.edgeSel.forEach(function (id) {
        var g = world.querySelector('[data-edge-id="' + CSS.escape(id) + '"]');
        if (g) g.classList.add("selected");
      });
      world.querySelectorAll(".edge.selected").forEach(function (g) {
        if (!b.edgeSel.has(g.getAttribute("data-edge-id"))) g.classList.remove("selected");
      });
    }
    function place(node, r) {
      node.style.left = r.x + "px";
      node.style.top = r.y + "px";
      node.style.width = r.w + "px";
      node.style.height = r.h + "px";
    }

    // The others: cursors with names, and outlines of what they selected.
    function drawPeers() {
      var seen = new Set();
      b.peers.forEach(function (p) {
        if (p.user_id === me && p.client === undefined) return;
        if (p.view && p.view !== view) return;
        var key = String(p.client);
        seen.add(key);
        var c = cursorLayer.querySelector('[data-client="' + key + '"]');
        if (p.cursor) {
          if (!c) {
            c = document.createElement("div");
            c.className = "cursor";
            c.setAttribute("data-client", key);
            c.innerHTML = '<svg viewBox="0 0 16 16" width="16" height="16"><path d="M1 1L15 7L8 8.5L6 15Z"/></svg><span class="cursor-name"></span>';
            cursorLayer.appendChild(c);
          }
          c.setAttribute("data-cursor-user", p.user_id);
          c.style.setProperty("--peer", p.color);
          c.querySelector(".cursor-name").textContent = p.name;
          c.style.left = p.cursor[0] + "px";
          c.style.top = p.cursor[1] + "px";
        } else if (c) {
          c.remove();
        }
      });
      cursorLayer.querySelectorAll("[data-client]").forEach(function (c) {
        if (!seen.has(c.getAttribute("data-client"))) c.remove();
      });
      remoteLayer.textContent = "";
      b.peers.forEach(function (p) {
        if (p.view && p.view !== view) return;
        (p.selection || []).forEach(function (id) {
          var r = rect(id);
          if (!r) return;
          var o = document.createElement("div");
          o.className = "remote-sel";
          o.setAttribute("data-selected-by", p.user_id);
          o.setAttribute("data-selected-id", id);
          o.style.setProperty("--peer", p.color);
          o.title = p.name;
          place(o, r);
          remoteLayer.appendChild(o);
        });
      });
      if (b.following !== null) {
        var f = b.peers.find(function (p) { return String(p.client) === String(b.following); });
        // Their screen, exactly: what they see is what this page shows.
        if (f && f.viewport) fitTo(f.viewport, MAX_ZOOM, MIN_ZOOM, 0);
      }
    }

    // ---- overrides: what a gesture moves, until the server has it --------------------

    function override(id, r) {
      b.overrides.set(id, { x: r.x, y: r.y, w: r.w, h: r.h, settle: 0 });
      var e = cardEl(id);
      if (e) placeCard(e, r);
    }
    // A card's own rectangle while a gesture holds it (writing only what changed, so the
    // page's watch on card styles sees no change it did not make).
    function placeCard(e, r) {
      var st = e.style, v;
      if (st.left !== (v = r.x + "px")) st.left = v;
      if (st.top !== (v = r.y + "px")) st.top = v;
      if (st.width !== (v = r.w + "px")) st.width = v;
      if (st.height !== (v = r.h + "px")) st.height = v;
    }
    function settle(ids) {
      var until = performance.now() + 1500;
      ids.forEach(function (id) { var o = b.overrides.get(id); if (o) o.settle = until; });
      checkSettled();
    }
    function release(id) {
      b.overrides.delete(id);
      var e = cardEl(id);
      if (e) ["left", "top", "width", "height"].forEach(function (p) { e.style.removeProperty(p); });
    }
    function checkSettled() {
      var now = performance.now();
      b.overrides.forEach(function (o, id) {
        if (!o.settle) return;
        var e = cardEl(id);
        var r = e && rectOf(e);
        var same = r && Math.abs(r.x - o.x) < 0.5 && Math.abs(r.y - o.y) < 0.5 && Math.abs(r.w - o.w) < 0.5 && Math.abs(r.h - o.h) < 0.5;
        if (!e || same || now > o.settle) release(id);
      });
      if (!b.overrides.size) showEdges();
      drawSelection();
    }
    // Connectors of moving cards are drawn here while they move.
    function hideEdgesOf(ids) {
      world.querySelectorAll("[data-edge-id]").forEach(function (g) {
        if (ids.indexOf(g.getAttribute("data-from")) >= 0 || ids.indexOf(g.getAttribute("data-to")) >= 0) {
          g.style.visibility = "hidden";
          b.hiddenEdges.add(g.getAttribute("data-edge-id"));
        }
      });
    }
    function showEdges() {
      b.hiddenEdges.forEach(function (id) {
        var g = world.querySelector('[data-edge-id="' + CSS.escape(id) + '"]');
        if (g) g.style.removeProperty("visibility");
      });
      b.hiddenEdges.clear();
      preview.textContent = "";
    }
    function drawEdgePreviews() {
      var out = "";
      b.hiddenEdges.forEach(function (id) {
        var g = world.querySelector('[data-edge-id="' + CSS.escape(id) + '"]');
        if (!g) return;
        var a = rect(g.getAttribute("data-from")), c = rect(g.getAttribute("data-to"));
        if (!a || !c) return;
        var line = g.querySelector(".edge-line");
        var color = line ? line.getAttribute("stroke") : "#495057";
        var w = parseFloat(g.getAttribute("data-width")) || 2;
        var p = edgePath(a, c, g.getAttribute("data-route"), w, g.getAttribute("data-start") === "arrow", g.getAttribute("data-end") === "arrow");
        out += '<path d="' + p.d + '" fill="none" stroke="' + color + '" stroke-width="' + w + '"/>';
        if (p.heads) out += '<path d="' + p.heads + '" fill="' + color + '"/>';
      });
      preview.innerHTML = out;
    }

    // ---- gestures ----------------------------------------------------------------------

    function snapped(v) { return b.snap ? Math.round(v / GRID) * GRID : v; }
    function topLevel(ids) {
      // Cards whose frame is also selected move with it.
      return ids.filter(function (id) {
        var e = cardEl(id), p = e && e.getAttribute("data-parent");
        while (p) {
          if (ids.indexOf(p) >= 0) return false;
          var pe = cardEl(p);
          p = pe && pe.getAttribute("data-parent");
        }
        return true;
      });
    }

    function startDrag(ev, w) {
      var ids = topLevel(Array.from(b.sel)).filter(function (id) { return !lockedByOther(id); });
      if (!ids.length || !canEdit) return null;
      var moving = ids.slice();
      ids.forEach(function (id) { inside(id).forEach(function (c) { if (moving.indexOf(c) < 0) moving.push(c); }); });
      var start = {};
      moving.forEach(function (id) { start[id] = rect(id); });
      return { kind: "drag", ids: ids, moving: moving, start: start, from: w, moved: false, step: "drag-" + newId(), last: 0, sent: null };
    }

    function dragTo(g, w) {
      var dx = w[0] - g.from[0], dy = w[1] - g.from[1];
      if (!g.moved && Math.hypot(dx * b.cam.z, dy * b.cam.z) < 4) return;
      if (!g.moved) {
        g.moved = true;
        hideEdgesOf(g.moving);
        stopEditing();
      }
      var lead = g.start[g.ids[0]];
      if (b.snap && lead) { dx = snapped(lead.x + dx) - lead.x; dy = snapped(lead.y + dy) - lead.y; }
      g.dx = dx; g.dy = dy;
      g.moving.forEach(function (id) {
        var s = g.start[id];
        if (s) override(id, { x: s.x + dx, y: s.y + dy, w: s.w, h: s.h });
      });
      drawEdgePreviews();
      drawSelection();
      paced(g, sendMove);
    }
    // Sends while a gesture goes on: at most one event per MOVE_EVERY, and the last position
    // once the pointer rests (so the others see where it is held, not only where it is dropped).
    function paced(g, sendNow) {
      var now = performance.now();
      clearTimeout(g.timer);
      if (now - g.last >= MOVE_EVERY) { g.last = now; sendNow(g, false); return; }
      g.timer = setTimeout(function () {
        if (b.gesture !== g) return;
        g.last = performance.now();
        sendNow(g, false);
      }, MOVE_EVERY - (now - g.last));
    }

    function sendMove(g, drop) {
      var moves = g.ids.map(function (id) {
        var s = g.start[id];
        return { id: id, x: s.x + (g.dx || 0), y: s.y + (g.dy || 0) };
      });
      var key = JSON.stringify(moves);
      if (!drop && key === g.sent) return null;
      g.sent = key;
      return quiet(send({ type: "whiteboard:move", view: view, moves: moves, drop: drop, step: g.step }));
    }

    function endDrag(g) {
      if (!g.moved) return;
      sendMove(g, true).then(function () { settle(g.moving); });
    }

    function startResize(handle, id, w) {
      var r = rect(id);
      if (!r) return null;
      hideEdgesOf([id]);
      return { kind: "resize", id: id, handle: handle, start: r, from: w, step: "resize-" + newId(), last: 0, r: r };
    }
    function resizeTo(g, w, keepRatio) {
      var s = g.start, h = g.handle, dx = w[0] - g.from[0], dy = w[1] - g.from[1];
      var x0 = s.x, y0 = s.y, x1 = s.x + s.w, y1 = s.y + s.h;
      if (h.indexOf("w") >= 0) x0 = snapped(s.x + dx);
      if (h.indexOf("e") >= 0) x1 = snapped(s.x + s.w + dx);
      if (h.indexOf("n") >= 0) y0 = snapped(s.y + dy);
      if (h.indexOf("s") >= 0) y1 = snapped(s.y + s.h + dy);
      var min = 20;
      if (x1 - x0 < min) { if (h.indexOf("w") >= 0) x0 = x1 - min; else x1 = x0 + min; }
      if (y1 - y0 < min) { if (h.indexOf("n") >= 0) y0 = y1 - min; else y1 = y0 + min; }
      if (keepRatio && h.length === 2) {
        var ratio = s.w / s.h, nw = x1 - x0, nh = y1 - y0;
        if (nw / nh > ratio) nw = nh * ratio; else nh = nw / ratio;
        if (h.indexOf("w") >= 0) x0 = x1 - nw; else x1 = x0 + nw;
        if (h.indexOf("n") >= 0) y0 = y1 - nh; else y1 = y0 + nh;
      }
      g.r = { x: x0, y: y0, w: x1 - x0, h: y1 - y0 };
      override(g.id, g.r);
      drawEdgePreviews();
      drawSelection();
      paced(g, sendResize);
    }
    function sendResize(g, drop) {
      var r = g.r;
      return quiet(send({ type: "whiteboard:resize", view: view, id: g.id, x: r.x, y: r.y, w: r.w, h: r.h, drop: drop, step: g.step }));
    }

    function startConnect(id, w) {
      return { kind: "connect", from: id, at: w };
    }
    function connectTo(g, w) {
      g.at = w;
      var a = rect(g.from);
      if (!a) return;
      var target = cardUnder(g.lastX, g.lastY);
      var p0 = exit(a, w[0], w[1]);
      var out = "";
      if (target && target !== g.from) {
        var c = rect(target);
        if (c) out += '<rect class="connect-target" x="' + c.x + '" y="' + c.y + '" width="' + c.w + '" height="' + c.h + '"/>';
      }
      out += '<path class="connect-line" d="M' + p0[0] + " " + p0[1] + "L" + w[0] + " " + w[1] + '"/>';
      preview.innerHTML = out;
    }
    function endConnect(g) {
      preview.textContent = "";
      var target = cardUnder(g.lastX, g.lastY);
      if (target && target !== g.from) {
        send({ type: "whiteboard:connect", from: g.from, to: target }).then(function (r) {
          if (r && r.result && r.result.id) { b.sel.clear(); b.edgeSel.clear(); b.edgeSel.add(r.result.id); selectionChanged(); }
        }).catch(function () {});
        return;
      }
      var a = rect(g.from);
      if (!target && a && Math.hypot(g.at[0] - (a.x + a.w / 2), g.at[1] - (a.y + a.h / 2)) > Math.max(a.w, a.h)) {
        // Dropped on empty canvas: a new note there, connected.
        var id = newId();
        send({ type: "whiteboard:add-card", id: id, view: view, kind: "note", x: snapped(g.at[0] - 100), y: snapped(g.at[1] - 100) })
          .then(function () { return send({ type: "whiteboard:connect", from: g.from, to: id }); })
          .then(function () { select([id]); })
          .catch(function () {});
      }
    }

    function cardUnder(sx, sy) {
      var hits = document.elementsFromPoint(sx, sy);
      for (var i = 0; i < hits.length; i++) {
        if (!world.contains(hits[i]) || overlay.contains(hits[i])) continue;
        var c = hits[i].closest("[data-node-id]");
        if (c && !c.hidden) return c.getAttribute("data-node-id");
      }
      return null;
    }
    function edgeUnder(target) {
      var g = target.closest && target.closest("[data-edge-id]");
      return g ? g.getAttribute("data-edge-id") : null;
    }

    function marqueeTo(g, w) {
      var x0 = Math.min(g.from[0], w[0]), y0 = Math.min(g.from[1], w[1]);
      var r = { x: x0, y: y0, w: Math.abs(w[0] - g.from[0]), h: Math.abs(w[1] - g.from[1]) };
      marquee.hidden = false;
      place(marquee, r);
      var hits = [];
      allCards().forEach(function (c) {
        if (c.hidden) return;
        if (intersects(r, rectOf(c))) hits.push(c.getAttribute("data-node-id"));
      });
      b.sel = new Set(g.base.concat(hits));
      drawSelection();
    }

    function createAt(kind, w) {
      var size = { note: [200, 200], text: [240, 60], shape: [160, 120], frame: [480, 320] }[kind];
      var id = newId();
      var ev = { type: "whiteboard:add-card", id: id, view: view, kind: kind, x: snapped(w[0] - size[0] / 2), y: snapped(w[1] - size[1] / 2) };
      if (kind === "shape") ev.style = { shape: b.shape || "rectangle" };
      setTool("select");
      send(ev).then(function () {
        select([id]);
        if (kind === "note" || kind === "text" || kind === "shape") whenDrawn(id, function () { startEditing(id); });
      }).catch(function () {});
    }
    function whenDrawn(id, fn) {
      var t0 = performance.now();
      (function wait() {
        if (cardEl(id)) fn();
        else if (performance.now() - t0 < 3000) requestAnimationFrame(wait);
      })();
    }

    function onPointerDown(ev) {
      if (b.editor && b.editor.area.contains(ev.target)) return;
      // A link on a card (a container's service) opens as a link does.
      if (ev.target.closest(".board-card a[href]")) return;
      if (ev.target.closest(".minimap")) return;
      b.pointers.set(ev.pointerId, [ev.clientX, ev.clientY]);
      port.focus({ preventScroll: true });
      if (b.pointers.size === 2) {
        // A second finger: pinch (whatever the first one was doing stops).
        var pts = Array.from(b.pointers.values());
        b.gesture = { kind: "pinch", dist: Math.hypot(pts[0][0] - pts[1][0], pts[0][1] - pts[1][1]), mid: [(pts[0][0] + pts[1][0]) / 2, (pts[0][1] + pts[1][1]) / 2], z: b.cam.z };
        return;
      }
      if (b.pointers.size > 2) return;
      var w = screenToWorld(ev.clientX, ev.clientY);
      var handle = ev.target.closest("[data-handle]");
      var conn = ev.target.closest("[data-connect]");
      // Connectors are drawn over the cards: one under the pointer comes first.
      var edgeId = edgeUnder(ev.target);
      var cardId = edgeId ? null : cardUnder(ev.clientX, ev.clientY);
      stopFollowing();
      port.setPointerCapture(ev.pointerId);
      if (ev.button === 1 || b.space || b.tool === "hand" || (ev.pointerType === "touch" && !cardId && !handle && !conn && b.tool === "select")) {
        b.gesture = { kind: "pan", last: [ev.clientX, ev.clientY] };
        el.classList.add("panning");
        return;
      }
      if (ev.button !== 0) return;
      if (handle && canEdit) {
        b.gesture = startResize(handle.getAttribute("data-handle"), handle.getAttribute("data-for"), w);
        return;
      }
      if (conn && canEdit) {
        b.gesture = startConnect(conn.getAttribute("data-connect"), w);
        return;
      }
      if (canEdit && (b.tool === "note" || b.tool === "text" || b.tool === "shape" || b.tool === "frame")) {
        createAt(b.tool, w);
        return;
      }
      if (canEdit && b.tool === "connector") {
        if (cardId) b.gesture = startConnect(cardId, w);
        return;
      }
      if (cardId) {
        if (ev.shiftKey || ev.metaKey || ev.ctrlKey) {
          if (b.sel.has(cardId)) b.sel.delete(cardId); else b.sel.add(cardId);
          selectionChanged();
          return;
        }
        if (!b.sel.has(cardId)) { b.edgeSel.clear(); select([cardId]); }
        b.gesture = startDrag(ev, w) || { kind: "none" };
        return;
      }
      if (edgeId) {
        if (!(ev.shiftKey || ev.metaKey)) { b.sel.clear(); b.edgeSel.clear(); }
        b.edgeSel.add(edgeId);
        selectionChanged();
        b.gesture = { kind: "none" };
        return;
      }
      stopEditing();
      var base = ev.shiftKey ? Array.from(b.sel) : [];
      if (!ev.shiftKey) { b.sel.clear(); b.edgeSel.clear(); drawSelection(); }
      b.gesture = { kind: "marquee", from: w, base: base };
    }

    function onPointerMove(ev) {
      if (b.pointers.has(ev.pointerId)) b.pointers.set(ev.pointerId, [ev.clientX, ev.clientY]);
      var w = screenToWorld(ev.clientX, ev.clientY);
      cursor = [Math.round(w[0] * 10) / 10, Math.round(w[1] * 10) / 10];
      sayPresence();
      var g = b.gesture;
      if (!g) {
        var h = cardUnder(ev.clientX, ev.clientY);
        if (!h && ev.target.closest && ev.target.closest("[data-connect]")) h = b.hover;
        if (h !== b.hover) { b.hover = h; drawSelection(); }
        return;
      }
      g.lastX = ev.clientX; g.lastY = ev.clientY;
      if (g.kind === "pan") {
        b.cam.x += ev.clientX - g.last[0];
        b.cam.y += ev.clientY - g.last[1];
        g.last = [ev.clientX, ev.clientY];
        applyCamera();
      } else if (g.kind === "pinch") {
        var pts = Array.from(b.pointers.values());
        if (pts.length < 2) return;
        var dist = Math.hypot(pts[0][0] - pts[1][0], pts[0][1] - pts[1][1]);
        var mid = [(pts[0][0] + pts[1][0]) / 2, (pts[0][1] + pts[1][1]) / 2];
        b.cam.x += mid[0] - g.mid[0];
        b.cam.y += mid[1] - g.mid[1];
        g.mid = mid;
        zoomAt(mid[0], mid[1], g.z * dist / Math.max(1, g.dist));
      } else if (g.kind === "drag") {
        dragTo(g, w);
      } else if (g.kind === "resize") {
        resizeTo(g, w, ev.shiftKey);
      } else if (g.kind === "connect") {
        connectTo(g, w);
      } else if (g.kind === "marquee") {
        marqueeTo(g, w);
      }
    }

    function onPointerUp(ev) {
      b.pointers.delete(ev.pointerId);
      var g = b.gesture;
      if (!g) return;
      if (g.kind === "pinch") {
        if (b.pointers.size === 0) b.gesture = null;
        return;
      }
      b.gesture = null;
      el.classList.remove("panning");
      clearTimeout(g.timer);
      if (g.kind === "drag") endDrag(g);
      else if (g.kind === "resize") sendResize(g, true).then(function () { settle([g.id]); });
      else if (g.kind === "connect") endConnect(g);
      else if (g.kind === "marquee") { marquee.hidden = true; selectionChanged(); }
      drawSelection();
    }

    function onWheel(ev) {
      if (b.editor && b.editor.area.contains(ev.target)) return;
      ev.preventDefault();
      stopFollowing();
      var unit = ev.deltaMode === 1 ? 16 : ev.deltaMode === 2 ? 400 : 1;
      if (ev.ctrlKey || ev.metaKey) {
        zoomAt(ev.clientX, ev.clientY, b.cam.z * Math.exp(-ev.deltaY * unit * 0.0025));
      } else {
        var dx = ev.shiftKey && !ev.deltaX ? ev.deltaY : ev.deltaX, dy = ev.shiftKey && !ev.deltaX ? 0 : ev.deltaY;
        b.cam.x -= dx * unit;
        b.cam.y -= dy * unit;
        applyCamera();
      }
    }

    function onDoubleClick(ev) {
      if (!canEdit || (b.editor && b.editor.area.contains(ev.target))) return;
      if (edgeUnder(ev.target)) return;
      var id = cardUnder(ev.clientX, ev.clientY);
      if (id) {
        if (!lockedByOther(id)) startEditing(id);
        return;
      }
      createAt("note", screenToWorld(ev.clientX, ev.clientY));
    }

    // ---- the context menu ------------------------------------------------------------

    var menu = null;
    function closeMenu() { if (menu) { menu.remove(); menu = null; } }
    function onContextMenu(ev) {
      ev.preventDefault();
      closeMenu();
      var w = screenToWorld(ev.clientX, ev.clientY);
      var id = cardUnder(ev.clientX, ev.clientY);
      if (id && !b.sel.has(id)) select([id]);
      var items = [];
      if (canEdit) {
        if (id) {
          items.push(["Edit text", function () { startEditing(id); }], ["Duplicate", duplicate], ["Copy", copyNow],
            ["Bring to front", function () { order("front"); }], ["Send to back", function () { order("back"); }],
            ["Group into a frame", group], [lockedByOther(id) || (cardEl(id) && cardEl(id).getAttribute("data-locked")) ? "Unlock" : "Lock", toggleLock],
            ["Delete", removeSelection]);
        } else {
          items.push(["New sticky note", function () { createAt("note", w); }], ["New text", function () { createAt("text", w); }],
            ["New shape", function () { createAt("shape", w); }], ["New frame", function () { createAt("frame", w); }],
            ["Paste", function () { pasteNow(w); }]);
        }
      }
      items.push(["Zoom to fit", function () { fitTo(boardBounds(), 1); }]);
      menu = document.createElement("div");
      menu.className = "context-menu";
      menu.setAttribute("role", "menu");
      items.forEach(function (it) {
        var bt = document.createElement("button");
        bt.textContent = it[0];
        bt.setAttribute("role", "menuitem");
        bt.addEventListener("click", function () { closeMenu(); it[1](); });
        menu.appendChild(bt);
      });
      menu.style.left = ev.clientX + "px";
      menu.style.top = ev.clientY + "px";
      document.body.appendChild(menu);
      var first = menu.querySelector("button");
      if (first) first.focus();
    }

    // ---- actions -----------------------------------------------------------------------

    function cards() { return Array.from(b.sel); }
    function removeSelection() {
      var c = cards(), e = Array.from(b.edgeSel);
      if (!c.length && !e.length) return;
      quiet(send({ type: "whiteboard:delete", cards: c, edges: e }));
      clearSelection();
    }
    function order(to) { if (cards().length) quiet(send({ type: "whiteboard:order", view: view, cards: cards(), to: to })); }
    function group() {
      if (!cards().length) return;
      send({ type: "whiteboard:group", view: view, cards: cards() }).then(function (r) {
        if (r && r.result && r.result.id) select([r.result.id]);
      }).catch(function () {});
    }
    function toggleLock() {
      var c = cards();
      if (!c.length) return;
      var anyUnlocked = c.some(function (id) { var e = cardEl(id); return e && !e.getAttribute("data-locked"); });
      quiet(send({ type: "whiteboard:lock", cards: c, locked: anyUnlocked }));
    }
    function nudge(dx, dy) {
      var ids = topLevel(cards()).filter(function (id) { return !lockedByOther(id); });
      if (!ids.length) return;
      var moves = ids.map(function (id) { var r = rect(id); return { id: id, x: r.x + dx, y: r.y + dy }; });
      quiet(send({ type: "whiteboard:move", view: view, moves: moves, drop: true, step: "nudge" }));
    }
    function undo(redo) {
      api("POST", "/api/v1/projects/" + pid + "/" + (redo ? "redo" : "undo"), {}).catch(function () {});
    }
    function setTool(t) {
      b.tool = t;
      el.setAttribute("data-active-tool", t);
      el.querySelectorAll("[data-tool]").forEach(function (bt) {
        if (bt.tagName === "BUTTON") bt.setAttribute("aria-pressed", bt.getAttribute("data-tool") === t ? "true" : "false");
      });
    }
    function toggleSnap() {
      b.snap = !b.snap;
      var bt = el.querySelector('[data-action="snap"]');
      if (bt) bt.setAttribute("aria-pressed", b.snap ? "true" : "false");
      toast(b.snap ? "Snapping to the grid" : "Snapping off");
    }
    function selectAll() {
      b.edgeSel.clear();
      select(allCards().filter(function (c) { return !c.hidden; }).map(function (c) { return c.getAttribute("data-node-id"); }));
    }

    function exportUrl(format, ids) {
      var q = "format=" + encodeURIComponent(format) + "&view=" + encodeURIComponent(view);
      if (ids && ids.length) q += "&ids=" + encodeURIComponent(ids.join(","));
      return "/api/v1/projects/" + pid + "/export?" + q;
    }
    function download(format) {
      var a = document.createElement("a");
      a.href = exportUrl(format, cards());
      a.download = "";
      document.body.appendChild(a);
      a.click();
      a.remove();
    }
    async function importText(text, at) {
      var q = "view=" + encodeURIComponent(view);
      if (at) q += "&x=" + at[0] + "&y=" + at[1];
      var r = await api("POST", "/api/v1/projects/" + pid + "/import?" + q, text, true);
      var ids = r && r.cards ? Object.keys(r.cards).map(function (k) { return r.cards[k]; }) : [];
      if (ids.length) select(ids);
      return ids;
    }
    // Where the pointer is on the board, if it is over it.
    function pointerAt() {
      if (!cursor) return null;
      var v = viewRect();
      return intersects(v, { x: cursor[0], y: cursor[1], w: 0, h: 0 }) ? cursor : null;
    }
    function centre() {
      var v = viewRect();
      return [v.x + v.w / 2, v.y + v.h / 2];
    }
    async function selectionFile() {
      var ids = cards();
      var key = ids.slice().sort().join(",");
      if (b.clip && b.clip.key === key) return b.clip.text;
      var r = await fetch(exportUrl("json", ids), { credentials: "same-origin" });
      return r.ok ? r.text() : null;
    }
    function duplicate() {
      var ids = cards();
      if (!ids.length || !canEdit) return;
      var box = null;
      ids.forEach(function (id) { var r = rect(id); if (r) box = box ? { x: Math.min(box.x, r.x), y: Math.min(box.y, r.y), r: Math.max(box.r, r.x + r.w), b: Math.max(box.b, r.y + r.h) } : { x: r.x, y: r.y, r: r.x + r.w, b: r.y + r.h }; });
      selectionFile().then(function (text) {
        if (text && box) return importText(text, [(box.x + box.r) / 2 + 32, (box.y + box.b) / 2 + 32]);
      }).catch(function () {});
    }
    function copyNow() {
      // The write starts now, while the key press still counts as the person's gesture.
      var n = b.sel.size;
      var item = selectionFile().then(function (text) {
        if (!text) throw new Error("nothing to copy");
        return text;
      });
      var plain = function () { return item.then(function (t) { return navigator.clipboard.writeText(t); }); };
      // A promised item keeps the gesture in browsers that ask for one (Safari); where
      // that is refused, the text is written once it is here.
      var done = typeof ClipboardItem !== "undefined" && navigator.clipboard.write
        ? navigator.clipboard.write([new ClipboardItem({ "text/plain": item.then(function (t) { return new Blob([t], { type: "text/plain" }); }) })]).catch(plain)
        : plain();
      done.then(function () { toast(n === 1 ? "Copied 1 card" : "Copied " + n + " cards"); })
        .catch(function () { toast("Could not copy"); });
    }
    function pasteNow(at) {
      if (!navigator.clipboard || !navigator.clipboard.readText) { toast("Press Ctrl+V to paste"); return; }
      navigator.clipboard.readText().then(function (text) { return pasteText(text, at); }).catch(function () { toast("Press Ctrl+V to paste"); });
    }
    function pasteText(text, at) {
      if (!canEdit || !text) return;
      at = at || centre();
      var trimmed = text.trim();
      if (trimmed.charAt(0) === "{") {
        return importText(trimmed, at).catch(function () {});
      }
      // Plain text: a sticky note holding it.
      var id = newId();
      return send({ type: "whiteboard:add-card", id: id, view: view, kind: "note", x: at[0] - 100, y: at[1] - 100, text: text.slice(0, 100000) })
        .then(function () { select([id]); }).catch(function () {});
    }

    function action(name, arg, source) {
      if (name === "undo") undo(false);
      else if (name === "redo") undo(true);
      else if (name === "zoom-in") zoomCentre(1.25);
      else if (name === "zoom-out") zoomCentre(0.8);
      else if (name === "zoom-fit") fitTo(boardBounds(), 1);
      else if (name === "zoom-100") zoomCentre(1 / b.cam.z);
      else if (name === "snap") toggleSnap();
      else if (name === "panel") tell({ t: "panel", name: arg });
      else if (name === "import") pickFile();
      else if (name === "layer") showCard(arg, source);
      else if (name === "view") { closeViews(); tell({ t: "view", id: arg }); }
      else if (name === "add-view") addView();
      else if (name === "rename-view") {
        var rn = el.querySelector("#rename-view-name"), newName = rn ? rn.value.trim() : "";
        if (!newName) { toast("Name the view first"); return; }
        send({ type: "whiteboard:rename-view", id: arg, name: newName.slice(0, 100) }).then(function () { closeViews(); toast("View renamed"); }).catch(function () {});
      }
      else if (name === "delete-view") {
        closeViews();
        send({ type: "whiteboard:delete-view", id: arg }).then(function () { tell({ t: "view", id: "main" }); toast("View deleted"); }).catch(function () {});
      }
      else if (!canEdit) return;
      else if (name === "layer-lock") quiet(send({ type: "whiteboard:lock", cards: [arg], locked: source.getAttribute("data-locked") !== "true" }));
      else if (name === "delete") removeSelection();
      else if (name === "duplicate") duplicate();
      else if (name === "group") group();
      else if (name === "lock") quiet(send({ type: "whiteboard:lock", cards: cards(), locked: arg === "true" }));
      else if (name === "collapse") {
        var anyOpen = cards().some(function (id) { var e = cardEl(id); return e && !e.classList.contains("collapsed"); });
        quiet(send({ type: "whiteboard:collapse", view: view, cards: cards(), collapsed: anyOpen }));
      }
      else if (name === "order") order(arg);
      else if (name === "align") quiet(send({ type: "whiteboard:align", view: view, cards: cards(), to: arg }));
      else if (name === "distribute") quiet(send({ type: "whiteboard:distribute", view: view, cards: cards(), axis: arg }));
      else if (name === "style") {
        var style = JSON.parse(arg);
        if (style.shape) b.shape = style.shape;
        quiet(send({ type: "whiteboard:style", cards: cards(), style: style }));
      } else if (name === "edge-style") quiet(send({ type: "whiteboard:style-edges", edges: Array.from(b.edgeSel), style: JSON.parse(arg) }));
      else if (name === "edge-label") quiet(send({ type: "whiteboard:style-edges", edges: Array.from(b.edgeSel), style: { label: source.value } }));
    }

    function onClick(ev) {
      var t = ev.target.closest("[data-action],[data-tool],[data-export],[data-follow]");
      if (!t || !el.contains(t)) { if (menu && !menu.contains(ev.target)) closeMenu(); return; }
      if (t.hasAttribute("data-tool")) {
        setTool(t.getAttribute("data-tool"));
      } else if (t.hasAttribute("data-export")) {
        download(t.getAttribute("data-export"));
        var m = el.querySelector("#export-menu");
        if (m) m.open = false;
      } else if (t.hasAttribute("data-follow")) {
        b.following = t.getAttribute("data-follow");
        el.setAttribute("data-following", b.following);
        drawPeers();
      } else if (t.tagName !== "INPUT") {
        if (t.classList.contains("dialog-backdrop") && ev.target !== t) return;
        action(t.getAttribute("data-action"), t.getAttribute("data-arg"), t);
        if (t.getAttribute("data-action") === "import") {
          var em = el.querySelector("#export-menu");
          if (em) em.open = false;
        }
      }
    }
    // A file to import, from the browser's file picker. (The input is made here: LiveView
    // sends clicks on a file input of its own to a native dialog a browser does not have.)
    function pickFile() {
      var input = document.createElement("input");
      input.type = "file";
      input.accept = ".json,.canvas,application/json";
      input.className = "visually-hidden";
      input.id = "board-import-file";
      input.addEventListener("change", function () {
        var f = input.files && input.files[0];
        input.remove();
        if (!f) return;
        f.text().then(function (text) {
          return importText(text, centre()).then(function (ids) { toast("Imported " + ids.length + " card" + (ids.length === 1 ? "" : "s")); });
        }).catch(function () {});
      });
      document.body.appendChild(input);
      input.click();
    }
    function onChange(ev) {
      var t = ev.target;
      if (t.getAttribute && t.getAttribute("data-action") === "edge-label") {
        action("edge-label", null, t);
      }
    }

    function typing(target) {
      var t = target || document.activeElement;
      return t && (t.tagName === "INPUT" || t.tagName === "TEXTAREA" || t.tagName === "SELECT" || t.isContentEditable);
    }
    function onKeyDown(ev) {
      if (menu && ev.key === "Escape") { closeMenu(); return; }
      if (ev.target && ev.target.id === "new-view-name" && ev.key === "Enter") { ev.preventDefault(); addView(); return; }
      if (ev.target && ev.target.id === "rename-view-name" && ev.key === "Enter") {
        ev.preventDefault();
        var rb = el.querySelector("#rename-view");
        if (rb) action("rename-view", rb.getAttribute("data-arg"), rb);
        return;
      }
      if (typing(ev.target)) return;
      if (!el.contains(document.activeElement) && document.activeElement !== document.body) return;
      var mod = ev.ctrlKey || ev.metaKey, k = ev.key;
      if (k === " ") { b.space = true; el.classList.add("space"); ev.preventDefault(); return; }
      if (mod && (k === "z" || k === "Z")) { ev.preventDefault(); if (canEdit) undo(ev.shiftKey); return; }
      if (mod && (k === "y" || k === "Y")) { ev.preventDefault(); if (canEdit) undo(true); return; }
      if (mod && (k === "a" || k === "A")) { ev.preventDefault(); selectAll(); return; }
      if (mod && (k === "d" || k === "D")) { ev.preventDefault(); duplicate(); return; }
      if (mod && (k === "g" || k === "G")) { ev.preventDefault(); if (canEdit) group(); return; }
      if (mod && (k === "l" || k === "L")) { ev.preventDefault(); if (canEdit) toggleLock(); return; }
      if (mod && (ev.code === "BracketRight")) { ev.preventDefault(); if (canEdit) order(ev.shiftKey ? "front" : "forward"); return; }
      if (mod && (ev.code === "BracketLeft")) { ev.preventDefault(); if (canEdit) order(ev.shiftKey ? "back" : "backward"); return; }
      // Copy, cut and paste: through the Clipboard API where the page may use it (a secure
      // context), else as the browser's own copy, cut and paste events (onCopy, onPaste).
      var clip = window.isSecureContext && navigator.clipboard;
      if (mod && (k === "c" || k === "C" || k === "x" || k === "X") && clip && b.sel.size) {
        ev.preventDefault();
        var ids = cards();
        copyNow();
        if ((k === "x" || k === "X") && canEdit) {
          quiet(send({ type: "whiteboard:delete", cards: ids, edges: [] }));
          clearSelection();
        }
        return;
      }
      if (mod && (k === "v" || k === "V") && clip && clip.readText && canEdit) {
        ev.preventDefault();
        pasteNow(pointerAt());
        return;
      }
      if (mod) return;
      if (ev.shiftKey && (ev.code === "Digit1")) { ev.preventDefault(); fitTo(boardBounds(), 1); return; }
      if (ev.shiftKey && (ev.code === "Digit0")) { ev.preventDefault(); zoomCentre(1 / b.cam.z); return; }
      if (k === "?") { ev.preventDefault(); tell({ t: "panel", name: "help" }); return; }
      if (k === "Escape") { stopEditing(); clearSelection(); setTool("select"); stopFollowing(); return; }
      if ((k === "Delete" || k === "Backspace") && canEdit) { ev.preventDefault(); removeSelection(); return; }
      if (k === "Enter" && b.sel.size === 1 && canEdit) { ev.preventDefault(); startEditing(cards()[0]); return; }
      if (k === "+" || k === "=") { zoomCentre(1.25); return; }
      if (k === "-" || k === "_") { zoomCentre(0.8); return; }
      var arrows = { ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, -1], ArrowDown: [0, 1] }[k];
      if (arrows && b.sel.size && canEdit) {
        ev.preventDefault();
        var step = b.snap ? GRID : ev.shiftKey ? 10 : 1;
        nudge(arrows[0] * step, arrows[1] * step);
        return;
      }
      var tools = { v: "select", h: "hand", n: "note", t: "text", s: "shape", f: "frame", c: "connector" };
      var lower = k.length === 1 ? k.toLowerCase() : k;
      if (tools[lower] && (canEdit || lower === "v" || lower === "h")) { setTool(tools[lower]); return; }
      if (lower === "g") toggleSnap();
      else if (lower === "l") tell({ t: "panel", name: "layers" });
    }
    function onKeyUp(ev) {
      if (ev.key === " ") { b.space = false; el.classList.remove("space"); }
    }

    function onCopy(ev, cut) {
      if (typing(ev.target) || !b.sel.size || !el.contains(document.activeElement) && document.activeElement !== document.body) return;
      var key = cards().slice().sort().join(",");
      ev.preventDefault();
      var ids = cards();
      if (b.clip && b.clip.key === key && ev.clipboardData) {
        ev.clipboardData.setData("text/plain", b.clip.text);
      } else {
        copyNow();
      }
      if (cut && canEdit) {
        quiet(send({ type: "whiteboard:delete", cards: ids, edges: [] }));
        clearSelection();
      }
    }
    function onPaste(ev) {
      if (typing(ev.target) || !canEdit) return;
      if (!el.contains(document.activeElement) && document.activeElement !== document.body) return;
      var text = ev.clipboardData && ev.clipboardData.getData("text/plain");
      if (!text) return;
      ev.preventDefault();
      pasteText(text, null);
    }
    function onDrop(ev) {
      var f = ev.dataTransfer && ev.dataTransfer.files && ev.dataTransfer.files[0];
      if (!f || !canEdit) return;
      ev.preventDefault();
      var at = screenToWorld(ev.clientX, ev.clientY);
      f.text().then(function (text) { return importText(text, at); }).catch(function () {});
    }

    // ---- text editing ------------------------------------------------------------------

    // One card's text is edited in a textarea over it. Each change is sent as it happens
    // (one event at a time): what was typed, against the text as it was. The answer is the
    // text as it now is, with everyone's edits; it replaces the textarea's unless the
    // person typed more meanwhile.
    function startEditing(id) {
      if (!canEdit) return;
      stopEditing();
      var e = cardEl(id);
      if (!e || lockedByOther(id)) return;
      var kind = e.getAttribute("data-kind");
      // A container card shows its container; it has no text of its own.
      if (kind === "container") return;
      var r = rect(id);
      if (kind === "frame") { editTitle(id, e, r); return; }
      var area = document.createElement("textarea");
      area.className = "text-editor kind-" + kind;
      area.setAttribute("aria-label", "Card text");
      area.setAttribute("data-editing", id);
      var textEl = e.querySelector(".text");
      var value = e.classList.contains("collapsed") ? null : (textEl ? textEl.textContent : "");
      area.value = value || "";
      place(area, r);
      area.style.fontSize = getComputedStyle(e).getPropertyValue("--font") || "16px";
      overlay.appendChild(area);
      e.classList.add("editing");
      var ed = { id: id, area: area, shadow: area.value, inflight: false, lastOp: 0, step: "text-" + newId() };
      b.editor = ed;
      tell({ t: "editing", id: id });
      area.addEventListener("input", function () { pump(ed); });
      area.addEventListener("keydown", function (k) {
        if (k.key === "Escape") { k.preventDefault(); stopEditing(); port.focus(); }
        k.stopPropagation();
      });
      area.addEventListener("blur", function () { setTimeout(function () { if (b.editor === ed && document.activeElement !== area) stopEditing(); }, 0); });
      area.addEventListener("pointerdown", function (p) { p.stopPropagation(); });
      area.focus();
      area.setSelectionRange(area.value.length, area.value.length);
      drawSelection();
    }
    // A frame's title, in a field over it: Enter or leaving it saves, Escape does not.
    function editTitle(id, e, r) {
      var t = e.querySelector(".frame-title");
      var input = document.createElement("input");
      input.className = "title-editor";
      input.setAttribute("aria-label", "Frame title");
      input.maxLength = 200;
      input.value = t ? t.textContent : "";
      var was = input.value;
      input.style.left = r.x + "px";
      input.style.top = r.y + "px";
      input.style.width = Math.max(80, r.w) + "px";
      overlay.appendChild(input);
      e.classList.add("editing");
      var done = false;
      var finish = function (save) {
        if (done) return;
        done = true;
        e.classList.remove("editing");
        input.remove();
        if (b.editor && b.editor.area === input) b.editor = null;
        var v = input.value.trim();
        if (save && v && v !== was) quiet(send({ type: "whiteboard:style", cards: [id], style: { title: v } }));
      };
      input.addEventListener("keydown", function (k) {
        if (k.key === "Enter") { k.preventDefault(); finish(true); port.focus(); }
        else if (k.key === "Escape") { k.preventDefault(); finish(false); port.focus(); }
        k.stopPropagation();
      });
      input.addEventListener("blur", function () { finish(true); });
      input.addEventListener("pointerdown", function (p) { p.stopPropagation(); });
      b.editor = { id: id, area: input, title: true };
      input.focus();
      input.select();
    }
    function pump(ed) {
      if (ed.inflight || ed.area.value === ed.shadow) return;
      var before = ed.shadow, now = ed.area.value;
      var p = 0;
      while (p < before.length && p < now.length && before.charCodeAt(p) === now.charCodeAt(p)) p++;
      var s = 0;
      while (s < before.length - p && s < now.length - p && before.charCodeAt(before.length - 1 - s) === now.charCodeAt(now.length - 1 - s)) s++;
      ed.inflight = true;
      ed.shadow = now;
      send({ type: "whiteboard:edit-text", id: ed.id, base: before, at: p, delete: before.length - s - p, insert: now.slice(p, now.length - s), step: ed.step })
        .then(function (r) {
          ed.inflight = false;
          ed.lastOp = performance.now();
          var text = r && r.result && r.result.text;
          if (typeof text === "string" && ed.area.value === ed.shadow) adopt(ed, text);
          pump(ed);
        })
        .catch(function () { ed.inflight = false; ed.shadow = before; });
    }
    // Puts `text` in the editor, keeping the caret where it was relative to the words.
    function adopt(ed, text) {
      var a = ed.area, old = a.value;
      if (text === old) { ed.shadow = text; return; }
      var p = 0;
      while (p < old.length && p < text.length && old.charCodeAt(p) === text.charCodeAt(p)) p++;
      var delta = text.length - old.length;
      var map = function (i) { return i <= p ? i : Math.max(p, i + delta); };
      var s0 = map(a.selectionStart), s1 = map(a.selectionEnd);
      a.value = text;
      a.setSelectionRange(s0, s1);
      ed.shadow = text;
    }
    function remoteText(id, text) {
      var ed = b.editor;
      if (!ed || ed.id !== id || ed.inflight || ed.area.value !== ed.shadow) return;
      // Right after an answer, a render of the text may still show it as it was before.
      if (performance.now() - ed.lastOp < 600) return;
      adopt(ed, text);
    }
    function stopEditing() {
      var ed = b.editor;
      if (!ed) return;
      if (ed.title) { ed.area.blur(); b.editor = null; return; }
      b.editor = null;
      pump(ed);
      var e = cardEl(ed.id);
      if (e) e.classList.remove("editing");
      ed.area.remove();
      tell({ t: "editing", id: null });
    }

    // ---- the server's changes ------------------------------------------------------------

    var redraw = null;
    function scheduleRedraw() {
      if (redraw) return;
      redraw = requestAnimationFrame(function () {
        redraw = null;
        // Cards that went away leave the selection.
        var gone = false;
        b.sel.forEach(function (id) { if (!cardEl(id)) { b.sel.delete(id); gone = true; } });
        b.edgeSel.forEach(function (id) { if (!world.querySelector('[data-edge-id="' + CSS.escape(id) + '"]')) { b.edgeSel.delete(id); gone = true; } });
        if (gone) selectionChanged();
        if (b.overrides.size) {
          b.overrides.forEach(function (o, id) { var e = cardEl(id); if (e) placeCard(e, o); });
          checkSettled();
        }
        if (b.hiddenEdges.size) {
          hideEdgesOf(Array.from(b.overrides.keys()));
          drawEdgePreviews();
        }
        if (b.editor && !b.editor.title) {
          var r = rect(b.editor.id);
          if (r) place(b.editor.area, r); else stopEditing();
        }
        drawSelection();
        drawPeers();
        drawMiniView();
      });
    }
    // What the server draws (not the overlay, which this file draws itself).
    var observer = new MutationObserver(scheduleRedraw);
    world.querySelectorAll(".frames-layer, .cards-layer, .edges-layer").forEach(function (layer) {
      observer.observe(layer, { subtree: true, childList: true, attributes: true, attributeFilter: ["style", "data-parent", "data-locked-by", "hidden", "d"] });
    });
    var miniObserver = new MutationObserver(function () { drawMiniView(); });
    miniObserver.observe(el, { attributes: true, attributeFilter: ["data-bounds"] });

    b.receive = function (m) {
      if (!m || typeof m !== "object") return;
      if (m.t === "peers") { b.peers = m.peers || []; drawPeers(); }
      else if (m.t === "text") remoteText(m.id, m.text);
    };

    // The minimap: click or drag to look there.
    function miniTo(ev) {
      var mm = el.querySelector("#minimap");
      var vb = (mm.getAttribute("data-viewbox") || "").split(" ").map(parseFloat);
      if (vb.length !== 4) return;
      var box = mm.getBoundingClientRect();
      var s = Math.min(box.width / vb[2], box.height / vb[3]);
      var ox = (box.width - vb[2] * s) / 2, oy = (box.height - vb[3] * s) / 2;
      var wx = vb[0] + (ev.clientX - box.left - ox) / s, wy = vb[1] + (ev.clientY - box.top - oy) / s;
      var r = portBox;
      b.cam.x = r.width / 2 - wx * b.cam.z;
      b.cam.y = r.height / 2 - wy * b.cam.z;
      stopFollowing();
      applyCamera();
    }
    var miniDown = false;
    var mmEl = el.querySelector("#minimap");
    if (mmEl) {
      on(mmEl, "pointerdown", function (ev) { miniDown = true; mmEl.setPointerCapture(ev.pointerId); miniTo(ev); });
      on(mmEl, "pointermove", function (ev) { if (miniDown) miniTo(ev); });
      on(mmEl, "pointerup", function () { miniDown = false; });
    }

    on(port, "pointerdown", onPointerDown);
    on(port, "pointermove", onPointerMove);
    on(port, "pointerup", onPointerUp);
    on(port, "pointercancel", onPointerUp);
    on(port, "pointerleave", function () { cursor = null; sayPresence(); if (b.hover) { b.hover = null; drawSelection(); } });
    on(port, "wheel", onWheel, { passive: false });
    on(port, "dblclick", onDoubleClick);
    on(port, "contextmenu", onContextMenu);
    on(port, "dragover", function (ev) { if (canEdit) ev.preventDefault(); });
    on(port, "drop", onDrop);
    on(el, "click", onClick);
    on(el, "change", onChange);
    on(document, "keydown", onKeyDown);
    on(document, "keyup", onKeyUp);
    on(document, "copy", function (ev) { onCopy(ev, false); });
    on(document, "cut", function (ev) { onCopy(ev, true); });
    on(document, "paste", onPaste);
    on(document, "pointerdown", function (ev) { if (menu && !menu.contains(ev.target)) closeMenu(); }, true);
    on(window, "resize", function () { portBox = port.getBoundingClientRect(); miniBox = null; applyCamera(); });
    on(window, "scroll", function () { portBox = port.getBoundingClientRect(); miniBox = null; }, true);
    // Browsers zoom the whole page on ctrl+wheel and pinch; the board zooms instead.
    on(el, "gesturestart", function (ev) { ev.preventDefault(); });

    // Where this person last looked in the view shown (null if never, or unreadable).
    function savedCamera() {
      var c = null;
      try { c = JSON.parse(localStorage.getItem("dmg.camera." + pid + "." + view) || "null"); } catch (e) { c = null; }
      if (!c || !isFinite(c.x) || !isFinite(c.y) || !isFinite(c.z) || c.z <= 0) return null;
      return { x: c.x, y: c.y, z: Math.max(MIN_ZOOM, Math.min(MAX_ZOOM, c.z)) };
    }
    // Another view shown (the page re-renders with its id): its own camera, or all of it.
    new MutationObserver(function () {
      var next = el.getAttribute("data-view") || "main";
      if (next === view) return;
      view = next;
      clearSelection();
      stopFollowing();
      var cam = savedCamera();
      if (cam) {
        b.cam = cam;
        applyCamera();
      } else {
        var vb = boardBounds();
        if (vb) fitTo(vb, 1, 0.2); else applyCamera();
      }
      drawPeers();
    }).observe(el, { attributes: true, attributeFilter: ["data-view"] });

    // Where to look first: where this person looked last, or the whole board.
    var saved = savedCamera();
    if (saved) {
      b.cam = saved;
      applyCamera();
    } else {
      var bb = boardBounds();
      // A big board opens readable (no smaller than 20 %), around its middle.
      if (bb) fitTo(bb, 1, 0.2);
      else {
        b.cam = { x: portBox.width / 2, y: portBox.height / 2, z: 1 };
        applyCamera();
      }
      // The board's content may arrive after the first draw: fit it once it is ready
      // (an empty board stays where it is, so a person's first card does not move it).
      var waitReady = new MutationObserver(function () {
        if (el.getAttribute("data-ready") !== "true") return;
        waitReady.disconnect();
        var nb = boardBounds();
        if (nb && !bb) fitTo(nb, 1, 0.2);
      });
      if (el.getAttribute("data-ready") !== "true") waitReady.observe(el, { attributes: true, attributeFilter: ["data-ready"] });
    }
    report();
    setTool("select");

    b.destroy = function () {
      listeners.forEach(function (l) { l[0].removeEventListener(l[1], l[2], l[3]); });
      observer.disconnect();
      miniObserver.disconnect();
      boxes0.disconnect();
      closeMenu();
      if (b.editor) b.editor.area.remove();
    };
    return b;
  }
})();

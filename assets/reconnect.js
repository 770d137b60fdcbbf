// Keeps a Demiurge page alive across server restarts. The stock LiveView glue opens its
// WebSocket once and never retries; this wraps the WebSocket constructor so that when the
// LiveView socket closes, the page shows a banner, waits for the server to answer /readyz
// (with backoff and jitter) and then reloads, which opens a fresh LiveView session. Readiness,
// not liveness: a stopping server still answers /healthz for a moment, and a reload into it
// would land on the browser's own error page, where no script runs to try again.
(function () {
  "use strict";
  var Native = window.WebSocket;
  var waiting = false;

  function setState(state) {
    document.documentElement.setAttribute("data-live", state);
  }

  function showBanner() {
    var b = document.getElementById("reconnect-banner");
    if (!b) {
      b = document.createElement("div");
      b.id = "reconnect-banner";
      b.setAttribute("role", "status");
      b.textContent = "Connection lost. Reconnecting\u2026";
      document.body.appendChild(b);
    }
  }

  function sleep(ms) {
    return new Promise(function (r) { setTimeout(r, ms); });
  }

  async function waitAndReload() {
    if (waiting) return;
    waiting = true;
    setState("reconnecting");
    showBanner();
    var delay = 200;
    for (;;) {
      try {
        var r = await fetch("/readyz", { cache: "no-store" });
        if (r.ok) { window.location.reload(); return; }
      } catch (e) { /* server still down */ }
      await sleep(delay + Math.random() * delay * 0.3);
      delay = Math.min(delay * 2, 5000);
    }
  }

  function Wrapped(url, protocols) {
    var ws = protocols === undefined ? new Native(url) : new Native(url, protocols);
    if (String(url).indexOf("/ui/ws") !== -1) {
      ws.addEventListener("open", function () { setState("connected"); });
      ws.addEventListener("close", waitAndReload);
    }
    return ws;
  }
  Wrapped.prototype = Native.prototype;
  Wrapped.CONNECTING = 0; Wrapped.OPEN = 1; Wrapped.CLOSING = 2; Wrapped.CLOSED = 3;
  window.WebSocket = Wrapped;
  setState("connecting");
})();

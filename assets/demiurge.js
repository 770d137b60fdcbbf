// The browser half of the Demiurge UI. The LiveView components run on the server; for
// anything that needs the browser's own credentials (the session cookie, a passkey) they ask
// this file to do it, through the public JSON API, exactly as any other client would.
(function () {
  "use strict";

  // The LiveView runtime writes the address back as `path?#` (its history keeps a query and
  // a hash even when they are empty): keep addresses clean, as they can be bookmarked.
  function clean(url) {
    if (typeof url !== "string") return url;
    return url.replace(/\?#$/, "").replace(/\?$/, "").replace(/#$/, "");
  }
  ["replaceState", "pushState"].forEach(function (name) {
    var native = history[name].bind(history);
    history[name] = function (state, title, url) { return native(state, title, clean(url)); };
  });

  // LiveView handles events asynchronously, so it cannot stop a form from navigating.
  // Forms inside the app never post by themselves; their submit goes to the component only.
  document.addEventListener("submit", function (e) {
    var f = e.target;
    if (f && f.closest && f.closest("#main") && !f.hasAttribute("action")) {
      e.preventDefault();
    }
  }, true);

  function b64uToBuf(s) {
    s = String(s).replace(/-/g, "+").replace(/_/g, "/");
    while (s.length % 4) s += "=";
    var bin = atob(s);
    var out = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out.buffer;
  }

  function bufToB64u(buf) {
    if (buf === null || buf === undefined) return null;
    var bytes = new Uint8Array(buf);
    var bin = "";
    for (var i = 0; i < bytes.length; i++) bin += String.fromCharCode(bytes[i]);
    return btoa(bin).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function withIds(list) {
    return (list || []).map(function (c) {
      var copy = Object.assign({}, c);
      copy.id = b64uToBuf(c.id);
      return copy;
    });
  }

  window.dmg = {
    // A JSON API call with the browser's cookie. Never throws: {status, body, retry_after}.
    api: async function (method, path, body) {
      var opts = { method: method, headers: {}, credentials: "same-origin", cache: "no-store" };
      if (body !== null && body !== undefined) {
        opts.headers["Content-Type"] = "application/json";
        opts.body = JSON.stringify(body);
      }
      try {
        var r = await fetch(path, opts);
        var text = await r.text();
        var data = null;
        if (text) {
          try { data = JSON.parse(text); } catch (e) { data = { error: "not_json", message: text.slice(0, 200) }; }
        }
        return { status: r.status, body: data, retry_after: r.headers.get("retry-after") };
      } catch (e) {
        return { status: 0, body: { error: "network", message: "The server cannot be reached." } };
      }
    },

    // navigator.credentials.create() with the server's options; the answer as JSON.
    passkeyCreate: async function (options) {
      try {
        var pk = Object.assign({}, options.publicKey);
        pk.challenge = b64uToBuf(pk.challenge);
        pk.user = Object.assign({}, pk.user, { id: b64uToBuf(pk.user.id) });
        pk.excludeCredentials = withIds(pk.excludeCredentials);
        var c = await navigator.credentials.create({ publicKey: pk });
        return { ok: true, credential: {
          id: c.id, rawId: bufToB64u(c.rawId), type: c.type,
          response: {
            attestationObject: bufToB64u(c.response.attestationObject),
            clientDataJSON: bufToB64u(c.response.clientDataJSON),
          },
          extensions: c.getClientExtensionResults ? c.getClientExtensionResults() : {},
        } };
      } catch (e) {
        return { ok: false, message: e && e.name === "NotAllowedError"
          ? "The passkey prompt was closed or timed out." : String(e && e.message || e) };
      }
    },

    // navigator.credentials.get() with the server's options; the answer as JSON.
    passkeyGet: async function (options) {
      try {
        var pk = Object.assign({}, options.publicKey);
        pk.challenge = b64uToBuf(pk.challenge);
        pk.allowCredentials = withIds(pk.allowCredentials);
        var c = await navigator.credentials.get({ publicKey: pk });
        return { ok: true, credential: {
          id: c.id, rawId: bufToB64u(c.rawId), type: c.type,
          response: {
            authenticatorData: bufToB64u(c.response.authenticatorData),
            clientDataJSON: bufToB64u(c.response.clientDataJSON),
            signature: bufToB64u(c.response.signature),
            userHandle: bufToB64u(c.response.userHandle),
          },
          extensions: c.getClientExtensionResults ? c.getClientExtensionResults() : {},
        } };
      } catch (e) {
        return { ok: false, message: e && e.name === "NotAllowedError"
          ? "The passkey prompt was closed or timed out." : String(e && e.message || e) };
      }
    },

    // Where this page is: path and query.
    here: function () {
      return { path: location.pathname, query: location.search };
    },

    go: function (path) {
      location.assign(path);
    },
  };
})();

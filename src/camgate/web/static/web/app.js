/* camgate web UI: copy buttons, and the dashboard's live refresh from /status.json.
 * Every page works without this file; it only adds convenience. Text from the server
 * is always set with textContent, never parsed as HTML. */
(function () {
  "use strict";

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  // For the pages' own scripts, loaded after this one.
  window.camgate = { el: el };

  // ---- Copy buttons -------------------------------------------------------

  function copyWithSelection(text) {
    // navigator.clipboard needs a secure context; a gateway on http://192.168.x.y is not.
    var area = document.createElement("textarea");
    area.value = text;
    area.setAttribute("readonly", "");
    area.style.position = "fixed";
    area.style.top = "-1000px";
    document.body.appendChild(area);
    area.select();
    var ok = false;
    try { ok = document.execCommand("copy"); } catch (e) { ok = false; }
    document.body.removeChild(area);
    return ok;
  }

  function copyText(text) {
    if (navigator.clipboard && window.isSecureContext) {
      return navigator.clipboard.writeText(text).then(
        function () { return true; },
        function () { return copyWithSelection(text); }
      );
    }
    return Promise.resolve(copyWithSelection(text));
  }

  function flash(button, label) {
    var original = button.dataset.label || button.textContent;
    button.dataset.label = original;
    button.textContent = label;
    clearTimeout(button._copyTimer);
    button._copyTimer = setTimeout(function () { button.textContent = original; }, 2000);
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest("button.copy");
    if (!button) return;
    copyText(button.getAttribute("data-copy") || "").then(function (ok) {
      flash(button, ok ? "Copied" : "Copy failed");
    });
  });

  // ---- Dashboard live refresh --------------------------------------------

  var root = document.getElementById("dashboard");
  if (!root) return;

  var statusUrl = root.getAttribute("data-status-url");
  var interval = parseInt(root.getAttribute("data-refresh-ms"), 10) || 5000;
  var liveLine = document.getElementById("live-status");
  var failures = 0;
  var timer = null;

  function muted(text) { return el("span", "muted", text); }

  function tunnelNodes(tunnel) {
    var nodes = [el("span", "badge state-" + tunnel.state, tunnel.label)];
    if (tunnel.reason) nodes.push(el("span", "reason", tunnel.reason));
    return nodes;
  }

  function endpointNodes(endpoints, none) {
    if (!endpoints || !endpoints.length) return [muted(none || "None yet")];
    var list = el("ul", "endpoints");
    endpoints.forEach(function (endpoint) {
      var item = el("li");
      item.appendChild(el("span", "endpoint-name", endpoint.name));
      item.appendChild(document.createTextNode(" "));
      item.appendChild(el("code", "endpoint-url", endpoint.url || endpoint.address));
      if (endpoint.url && (endpoint.scheme === "rtsp" || endpoint.scheme === "rtsps")) {
        var copy = el("button", "button button-small copy", "Copy");
        copy.type = "button";
        copy.setAttribute("data-copy", endpoint.url);
        copy.setAttribute("aria-label", "Copy " + endpoint.name + " URL");
        item.appendChild(document.createTextNode(" "));
        item.appendChild(copy);
      } else if (endpoint.url && (endpoint.scheme === "http" || endpoint.scheme === "https")) {
        var open = el("a", "button button-small", "Open");
        open.href = endpoint.url;
        open.target = "_blank";
        open.rel = "noopener noreferrer";
        item.appendChild(document.createTextNode(" "));
        item.appendChild(open);
      }
      list.appendChild(item);
    });
    return [list];
  }

  function healthNodes(health) {
    var badge = el("span", "badge health-" + health.state, health.label);
    if (health.checked_at) badge.title = "Checked " + health.checked_at;
    var nodes = [badge];
    if (health.reason) nodes.push(el("span", "reason", health.reason));
    if (health.stream) nodes.push(el("span", "stream", health.stream));
    return nodes;
  }

  // The picture sits on its placeholder; until it loads, or if it cannot (the camera
  // gives none, or this gateway serves no snapshots), the placeholder shows.
  function thumbNodes(camera) {
    var box = el("div", "thumb");
    box.appendChild(el("span", "thumb-placeholder", camera.health.placeholder));
    if (camera.health.snapshot_url) {
      var img = el("img");
      img.src = camera.health.snapshot_url;
      img.alt = "Picture from camera " + camera.camera_id;
      img.loading = "lazy";
      img.decoding = "async";
      img.width = 96;
      img.height = 54;
      box.appendChild(img);
    }
    return [box];
  }

  function hideBrokenPicture(img) { img.hidden = true; }

  document.addEventListener("error", function (event) {
    if (event.target.tagName === "IMG" && event.target.closest(".thumb")) hideBrokenPicture(event.target);
  }, true);
  Array.prototype.forEach.call(document.querySelectorAll(".thumb img"), function (img) {
    if (img.complete && img.naturalWidth === 0) hideBrokenPicture(img);  // failed before this script ran
  });

  function addressNodes(camera) {
    var ports = camera.rtsp_only ? "RTSP " + camera.rtsp_port + " only"
                                 : "HTTP " + camera.http_port + " · RTSP " + camera.rtsp_port;
    var nodes = [el("code", null, camera.ip), document.createTextNode(" "), el("span", "ports", ports)];
    if (camera.rtsp_path) nodes.push(document.createTextNode(" "), el("code", "stream-path", camera.rtsp_path));
    return nodes;
  }

  function idNodes(camera) {
    var nodes = [document.createTextNode(camera.camera_id)];
    if (camera.name) nodes.push(document.createTextNode(" "), el("span", "camera-name", camera.name));
    if (camera.camid !== null) {
      var vms = el("span", "vms-id", "VMS " + camera.camid);
      vms.title = "The VMS's id for this camera";
      nodes.push(document.createTextNode(" "), vms);
    }
    return nodes;
  }

  function spans(pairs) {
    var nodes = [];
    pairs.forEach(function (pair, index) {
      if (index) nodes.push(document.createTextNode(" "));
      var span = el("span", null, pair[1]);
      if (pair[0]) span.title = pair[0];
      nodes.push(span);
    });
    return nodes;
  }

  function cameraCells(camera) {
    var t = camera.tunnel;
    var edit = el("a", "button button-small", "Edit");
    edit.href = camera.edit_url;
    edit.setAttribute("aria-label", "Edit camera " + camera.camera_id);
    var remove = el("a", "button button-small button-danger-quiet", "Delete");
    remove.href = camera.delete_url;
    remove.setAttribute("aria-label", "Delete camera " + camera.camera_id);
    return [
      ["Picture", "picture", thumbNodes(camera)],
      ["ID", "num ids", idNodes(camera)],
      ["Address", "address", addressNodes(camera)],
      ["Camera", "health", healthNodes(camera.health)],
      ["Tunnel", "tunnel", tunnelNodes(t)],
      ["Public endpoints", "endpoints-cell", endpointNodes(t.endpoints, t.no_endpoints)],
      ["Traffic", "traffic", spans([["to the cloud", "↑ " + t.to_cloud], ["from the cloud", "↓ " + t.from_cloud]])
        .concat([document.createTextNode(" "), el("span", "connections", t.connections)])],
      ["Actions", "row-actions", [edit, document.createTextNode(" "), remove]]
    ];
  }

  // Replace a cell's content only when what it shows changed, so keyboard focus (say,
  // on a Copy button) and a button's "Copied" are not lost to a refresh that changed
  // nothing. The comparison is with what was last rendered, not with the live DOM.
  function fill(cell, nodes) {
    var scratch = document.createElement(cell.tagName);
    nodes.forEach(function (node) { scratch.appendChild(node); });
    var rendered = scratch.innerHTML;
    if (cell._rendered === rendered) return;
    cell._rendered = rendered;
    cell.replaceChildren.apply(cell, Array.prototype.slice.call(scratch.childNodes));
  }

  function renderCameras(cameras) {
    var body = document.getElementById("camera-rows");
    var existing = {};
    Array.prototype.forEach.call(body.rows, function (row) {
      existing[row.getAttribute("data-camera-id")] = row;
    });
    var previous = null;
    cameras.forEach(function (camera) {
      var id = String(camera.camera_id);
      var row = existing[id];
      delete existing[id];
      var cells = cameraCells(camera);
      if (!row || row.cells.length !== cells.length) {
        var fresh = el("tr");
        fresh.setAttribute("data-camera-id", id);
        cells.forEach(function () { fresh.appendChild(el("td")); });
        if (row) row.replaceWith(fresh);
        row = fresh;
      }
      cells.forEach(function (spec, index) {
        var cell = row.cells[index];
        cell.setAttribute("data-label", spec[0]);
        cell.className = spec[1];
        fill(cell, spec[2]);
      });
      var expectedPosition = previous ? previous.nextSibling : body.firstChild;
      if (row !== expectedPosition) body.insertBefore(row, expectedPosition);
      previous = row;
    });
    Object.keys(existing).forEach(function (id) { existing[id].remove(); });

    document.getElementById("camera-count").textContent = cameras.length;
    document.getElementById("camera-table").hidden = cameras.length === 0;
    document.getElementById("empty-state").hidden = cameras.length !== 0;
  }

  function render(state) {
    fill(document.getElementById("gateway-tunnel"), tunnelNodes(state.gateway.tunnel));
    fill(document.getElementById("gateway-endpoints"), endpointNodes(state.gateway.tunnel.endpoints));
    fill(document.getElementById("camera-summary"), [document.createTextNode(state.gateway.summary)]);
    renderCameras(state.cameras);
  }

  function setLive(text, stale) {
    liveLine.textContent = text;
    liveLine.classList.toggle("is-stale", !!stale);
  }

  function schedule(delay) {
    clearTimeout(timer);
    timer = setTimeout(poll, delay);
  }

  function poll() {
    if (document.hidden) return; // resumes on visibilitychange
    fetch(statusUrl, { credentials: "same-origin", headers: { "Accept": "application/json" }, cache: "no-store" })
      .then(function (response) {
        if (response.status === 401) {
          var login = root.getAttribute("data-login-url") || "/login/";
          window.location.assign(login + "?next=" + encodeURIComponent(window.location.pathname));
          throw new Error("signed out");
        }
        if (!response.ok) throw new Error("HTTP " + response.status);
        return response.json();
      })
      .then(function (state) {
        render(state);
        failures = 0;
        setLive("Live · updated " + new Date().toLocaleTimeString(), false);
        root.setAttribute("data-refreshed", String(Date.now()));
        schedule(interval);
      })
      .catch(function (error) {
        if (error && error.message === "signed out") return;
        failures += 1;
        setLive("Cannot reach the gateway; retrying…", true);
        schedule(Math.min(interval * Math.pow(2, failures), 60000));
      });
  }

  document.addEventListener("visibilitychange", function () {
    if (!document.hidden) schedule(0);
  });

  // Take over the server-rendered table at once, from the same data it was made from,
  // so later refreshes only touch what really changed.
  var initial = document.getElementById("dashboard-state");
  if (initial) render(JSON.parse(initial.textContent));
  setLive("Live · refreshes every " + Math.round(interval / 1000) + " s", false);
  schedule(interval);
})();

/* camgate web UI: the "Find cameras" page. It scans through POST /api/discover/, then
 * for each camera picked reads its facts (POST /api/onvif/) and adds it (POST
 * /api/add-camera/), with the browser's session and CSRF token, as a VMS would with
 * its API token. Text from the network is set with textContent, never parsed as HTML.
 * Camera passwords go only into request bodies: never into a URL, an attribute or a
 * message on the page. */
(function () {
  "use strict";

  var root = document.getElementById("finder");
  if (!root) return;

  var urls = {
    discover: root.getAttribute("data-discover-url"),
    onvif: root.getAttribute("data-onvif-url"),
    add: root.getAttribute("data-add-url"),
    camera: root.getAttribute("data-camera-url"),
    login: root.getAttribute("data-login-url")
  };
  // Cameras are asked a few at a time: each read is a handful of SOAP calls the gateway
  // makes, and its web server has few threads.
  var PARALLEL_ADDS = 3;
  var NAME_MAX = 100;  // the camera's name field
  var ERROR_LABELS = {
    auth_failed: "Login refused",
    unreachable: "Unreachable",
    not_onvif: "Not ONVIF"
  };

  var scanForm = document.getElementById("scan-form");
  var scanButton = document.getElementById("scan-button");
  var scanAddress = document.getElementById("scan-address");
  var scanAddressError = document.getElementById("scan-address-error");
  var scanTimeout = document.getElementById("scan-timeout");
  var scanProgress = document.getElementById("scan-progress");
  var scanBar = document.getElementById("scan-bar");
  var scanProgressText = document.getElementById("scan-progress-text");
  var scanStatus = document.getElementById("scan-status");
  var found = document.getElementById("found");
  var foundCount = document.getElementById("found-count");
  var noneFound = document.getElementById("none-found");
  var addForm = document.getElementById("add-form");
  var rowsBody = document.getElementById("device-rows");
  var selectAll = document.getElementById("select-all");
  var addControls = document.getElementById("add-controls");
  var addButton = document.getElementById("add-button");
  var addStatus = document.getElementById("add-status");
  var sharedUsername = document.getElementById("login-username");
  var sharedPassword = document.getElementById("login-password");
  var csrfToken = scanForm.querySelector("input[name=csrfmiddlewaretoken]").value;
  // One thing at a time: a scan replaces the rows that an add is working on.
  var adding = false;
  var scanning = false;

  var el = window.camgate.el;  // from app.js

  // ---- Talking to the API -------------------------------------------------

  function SignedOut() {}

  // Resolves to {status, body} for any HTTP answer; rejects when the gateway cannot be
  // reached, or sends the browser to the login page when the session is gone.
  function post(url, body, timeoutSeconds) {
    var controller = new AbortController();
    var timer = setTimeout(function () { controller.abort(); }, timeoutSeconds * 1000);
    return fetch(url, {
      method: "POST",
      credentials: "same-origin",
      cache: "no-store",
      headers: { "Content-Type": "application/json", "Accept": "application/json", "X-CSRFToken": csrfToken },
      body: JSON.stringify(body),
      signal: controller.signal
    }).then(function (response) {
      clearTimeout(timer);
      if (response.status === 401) {
        window.location.assign(urls.login + "?next=" + encodeURIComponent(window.location.pathname));
        throw new SignedOut();
      }
      return response.json().catch(function () { return {}; }).then(function (json) {
        return { status: response.status, body: json };
      });
    }, function (error) {
      clearTimeout(timer);
      throw error;
    });
  }

  // "ip: Enter a valid address. serial: …" from DRF's {"field": ["message"]} or {"detail": "…"}.
  function describeErrors(body) {
    if (!body || typeof body !== "object") return "the gateway refused it";
    if (typeof body.detail === "string") return body.detail;
    var parts = [];
    Object.keys(body).forEach(function (field) {
      var value = body[field];
      var text = Array.isArray(value) ? value.join(" ") : String(value);
      parts.push(field === "non_field_errors" ? text : field + ": " + text);
    });
    return parts.join("; ") || "the gateway refused it";
  }

  // What to say when a request got no answer; nothing when the page is leaving for
  // the login page.
  function unreachableGateway(error) {
    if (error instanceof SignedOut) return "";
    return "The gateway did not answer" + (error && error.name === "AbortError" ? " in time." : ".");
  }

  // ---- Scanning -------------------------------------------------------------

  var progressTimer = null;

  function showProgress(seconds, rangeScan) {
    var started = Date.now();
    scanProgress.hidden = false;
    scanBar.max = seconds * 10;
    scanBar.value = 0;
    function tick() {
      var elapsed = (Date.now() - started) / 1000;
      if (elapsed < seconds) {
        scanBar.value = elapsed * 10;
        scanProgressText.textContent = "Listening for answers… " + Math.ceil(seconds - elapsed) + " s";
      } else {
        scanBar.removeAttribute("value");  // indeterminate: the answer is on its way
        scanProgressText.textContent = "Collecting the answers…";
      }
    }
    tick();
    progressTimer = setInterval(tick, 100);
    scanStatus.textContent = rangeScan ? "Scanning the range for up to " + seconds + " s…"
                                       : "Scanning this network for up to " + seconds + " s…";
  }

  function hideProgress() {
    clearInterval(progressTimer);
    scanProgress.hidden = true;
  }

  function setAddressError(text) {
    scanAddressError.textContent = text || "";
    scanAddressError.hidden = !text;
    scanAddress.closest(".field").classList.toggle("has-error", !!text);
    if (text) {
      scanAddress.setAttribute("aria-invalid", "true");
      scanAddress.setAttribute("aria-describedby", "scan-address-error scan-address-help");
    } else {
      scanAddress.removeAttribute("aria-invalid");
      scanAddress.setAttribute("aria-describedby", "scan-address-help");
    }
  }

  function scan(event) {
    event.preventDefault();
    if (scanning || adding) return;
    var seconds = parseInt(scanTimeout.value, 10) || 3;
    var address = scanAddress.value.trim();
    var body = { timeout: seconds };
    if (address) body.address = address;
    setAddressError("");
    scanning = true;
    scanButton.disabled = addButton.disabled = true;
    found.setAttribute("aria-busy", "true");
    showProgress(seconds, !!address);
    // The range scan is bounded by the gateway; this only guards against a lost answer.
    post(urls.discover, body, seconds + 60).then(function (answer) {
      if (answer.status === 200 && answer.body && Array.isArray(answer.body.devices)) {
        showDevices(answer.body.devices, seconds);
      } else if (answer.status === 400 && answer.body && answer.body.address) {
        setAddressError(describeErrors({ non_field_errors: answer.body.address }));
        scanStatus.textContent = "Scan not started: check the address.";
        scanAddress.focus();
      } else {
        scanStatus.textContent = "Scan failed: " + describeErrors(answer.body) + ".";
      }
    }).catch(function (error) {
      var problem = unreachableGateway(error);
      if (problem) scanStatus.textContent = problem;
    }).then(function () {
      hideProgress();
      scanning = false;
      scanButton.disabled = addButton.disabled = false;
      found.removeAttribute("aria-busy");
    });
  }

  // ---- The table of devices ---------------------------------------------------

  function deviceKey(device) { return device.ip + ":" + device.onvif_port; }

  function cameraLink(cameraId, prefix) {
    var link = el("a", null, prefix + cameraId);
    link.href = urls.camera + cameraId;
    return link;
  }

  function loginCell(device, index) {
    var details = el("details", "row-login");
    var summary = el("summary", null, "Own login");
    summary.setAttribute("aria-label", "Own login for " + device.ip);
    details.appendChild(summary);
    [["username", "Username", "text"], ["password", "Password", "password"]].forEach(function (spec) {
      var id = "row-" + index + "-" + spec[0];
      var label = el("label", null, spec[1]);
      label.htmlFor = id;
      var input = el("input", "row-" + spec[0]);
      input.type = spec[2];
      input.id = id;
      input.autocomplete = spec[2] === "password" ? "new-password" : "off";
      input.spellcheck = false;
      input.setAttribute("aria-label", spec[1] + " for " + device.ip);
      var field = el("div", "field");
      field.appendChild(label);
      field.appendChild(input);
      details.appendChild(field);
    });
    return details;
  }

  function setOutcome(row, kind, label, detail, link) {
    var cell = row.querySelector("td.outcome");
    var nodes = [];
    row.setAttribute("data-outcome", kind);
    if (label) nodes.push(el("span", "badge outcome-" + kind, label));
    if (link) nodes.push(document.createTextNode(" "), link);
    if (detail) nodes.push(el("span", "reason", detail));
    cell.replaceChildren.apply(cell, nodes);
  }

  function markAdded(row, cameraId, label) {
    var box = row.querySelector("input.pick");
    box.checked = false;
    box.disabled = true;
    box.setAttribute("aria-label", row.getAttribute("data-ip") + " is already a camera here");
    row.classList.add("is-added");
    var login = row.querySelector(".row-login");
    if (login) login.hidden = true;
    setOutcome(row, "added", label, "", cameraLink(cameraId, "Camera "));
  }

  // Cameras need not say their name or hardware in discovery.
  function orDash(text) {
    if (text) return document.createTextNode(text);
    var dash = el("span", "muted", "—");
    dash.title = "Not given by the camera";
    return dash;
  }

  function deviceRow(device, index) {
    var row = el("tr");
    row.setAttribute("data-key", deviceKey(device));
    row.setAttribute("data-ip", device.ip);
    row._device = device;

    var box = el("input", "pick");
    box.type = "checkbox";
    box.setAttribute("aria-label", "Select " + device.ip + (device.name ? " (" + device.name + ")" : ""));
    var cells = [
      ["Select", "select", [box]],
      ["Address", "address", [el("code", null, device.ip)]],
      ["Name", "name", [orDash(device.name)]],
      ["Hardware", "hardware", [orDash(device.hardware)]],
      ["ONVIF port", "num", [document.createTextNode(device.onvif_port)]],
      ["Own login", "login", [loginCell(device, index)]],
      ["Outcome", "outcome", []]
    ];
    cells.forEach(function (spec) {
      var cell = el("td", spec[1]);
      cell.setAttribute("data-label", spec[0]);
      spec[2].forEach(function (node) { cell.appendChild(node); });
      row.appendChild(cell);
    });
    if (device.camera_id !== null && device.camera_id !== undefined) {
      markAdded(row, device.camera_id, "Already added");
    }
    return row;
  }

  function showDevices(devices, seconds) {
    rowsBody.replaceChildren.apply(rowsBody, devices.map(deviceRow));
    foundCount.textContent = devices.length;
    found.hidden = false;
    noneFound.hidden = devices.length !== 0;
    addForm.hidden = devices.length === 0;
    addStatus.textContent = "";
    var already = devices.filter(function (d) { return d.camera_id !== null && d.camera_id !== undefined; }).length;
    if (!devices.length) {
      scanStatus.textContent = "No camera answered within " + seconds + " s.";
    } else {
      scanStatus.textContent = devices.length + (devices.length === 1 ? " camera" : " cameras") + " found" +
        (already ? ", " + already + " of them added already." : ".");
    }
    syncSelection();
  }

  function pickBoxes() {
    return Array.prototype.slice.call(rowsBody.querySelectorAll("input.pick:not(:disabled)"));
  }

  function syncSelection() {
    var boxes = pickBoxes();
    var picked = boxes.filter(function (box) { return box.checked; }).length;
    selectAll.checked = boxes.length > 0 && picked === boxes.length;
    selectAll.indeterminate = picked > 0 && picked < boxes.length;
    selectAll.disabled = boxes.length === 0 || adding;
    // With every camera found added already, there is nothing to log in to or add.
    addControls.hidden = boxes.length === 0 && !adding;
    addButton.hidden = addControls.hidden;
    addButton.textContent = picked ? "Add selected (" + picked + ")" : "Add selected";
  }

  // ---- Adding ---------------------------------------------------------------

  function credentialsFor(row) {
    var ownUser = row.querySelector("input.row-username");
    if (ownUser && ownUser.value) {
      return { username: ownUser.value, password: row.querySelector("input.row-password").value };
    }
    return { username: sharedUsername.value, password: sharedPassword.value };
  }

  // What the camera said about itself, in the shape /api/add-camera/ takes.
  function cameraFrom(device, facts, login) {
    var camera = { ip: device.ip, onvif_port: device.onvif_port, username: login.username, password: login.password };
    ["http_port", "rtsp_port", "rtsp_path", "serial", "mac"].forEach(function (field) {
      if (facts[field] !== null && facts[field] !== undefined && facts[field] !== "") camera[field] = facts[field];
    });
    camera.name = String(facts.model || device.name || "").slice(0, NAME_MAX);
    return camera;
  }

  function addOne(row) {
    var device = row._device;
    var login = credentialsFor(row);
    setOutcome(row, "working", "Reading the camera…");
    return post(urls.onvif, { ip: device.ip, onvif_port: device.onvif_port, username: login.username,
                              password: login.password }, 60)
      .then(function (answer) {
        if (answer.status !== 200) {
          var code = answer.body && answer.body.error;
          var label = ERROR_LABELS[code] || "Not read";
          var reason = code && ERROR_LABELS[code] ? answer.body.reason : describeErrors(answer.body);
          setOutcome(row, code && ERROR_LABELS[code] ? code : "failed", label, reason);
          return false;
        }
        setOutcome(row, "working", "Adding…");
        return post(urls.add, cameraFrom(device, answer.body, login), 30).then(function (added) {
          if (added.status === 201 && added.body && added.body.camera_id !== undefined) {
            markAdded(row, added.body.camera_id, "Added");
            return true;
          }
          setOutcome(row, "failed", "Not added", describeErrors(added.body));
          return false;
        });
      })
      .catch(function (error) {
        var problem = unreachableGateway(error);
        if (problem) setOutcome(row, "failed", "Not added", problem);
        return false;
      });
  }

  // Runs addOne over the rows, a few at once; one row's failure never stops the others.
  function addAll(rows) {
    var next = 0, added = 0, failed = 0;
    function worker() {
      if (next >= rows.length) return Promise.resolve();
      var row = rows[next++];
      return addOne(row).then(function (ok) {
        if (ok) added += 1; else failed += 1;
        addStatus.textContent = "Adding… " + (added + failed) + " of " + rows.length + " done.";
        return worker();
      });
    }
    var workers = [];
    for (var i = 0; i < Math.min(PARALLEL_ADDS, rows.length); i += 1) workers.push(worker());
    return Promise.all(workers).then(function () { return { added: added, failed: failed }; });
  }

  function addSelected(event) {
    event.preventDefault();
    if (adding || scanning) return;
    var rows = pickBoxes().filter(function (box) { return box.checked; }).map(function (box) { return box.closest("tr"); });
    if (!rows.length) {
      addStatus.textContent = "Select the cameras to add first.";
      return;
    }
    adding = true;
    addButton.disabled = scanButton.disabled = true;
    rows.forEach(function (row) { row.querySelector("input.pick").disabled = true; });
    syncSelection();
    addStatus.textContent = "Adding… 0 of " + rows.length + " done.";
    addAll(rows).then(function (outcome) {
      adding = false;
      addButton.disabled = scanButton.disabled = false;
      rows.forEach(function (row) {
        if (!row.classList.contains("is-added")) row.querySelector("input.pick").disabled = false;
      });
      syncSelection();
      var parts = [];
      if (outcome.added) parts.push(outcome.added + " added");
      if (outcome.failed) parts.push(outcome.failed + " not added: see beside " + (outcome.failed === 1 ? "its row" : "their rows"));
      addStatus.textContent = parts.join(", ") + ".";
    });
  }

  // ---- Wiring ---------------------------------------------------------------

  scanForm.addEventListener("submit", scan);
  addForm.addEventListener("submit", addSelected);
  rowsBody.addEventListener("change", function (event) {
    if (event.target.classList.contains("pick")) syncSelection();
  });
  selectAll.addEventListener("change", function () {
    pickBoxes().forEach(function (box) { box.checked = selectAll.checked; });
    syncSelection();
  });
  document.getElementById("scan-controls").disabled = false;
})();

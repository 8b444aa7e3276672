// The dashboard, live in place: no library, no reload.
// Every second it asks live/?state=<digest> whether a status, reason or the breaker
// changed; every refresh interval it asks for the sections themselves. The server
// renders every part with the page's own templates; this script only puts each part
// in place, changing just the text and attributes that differ, so that scrolling,
// a selection and focus survive. Ages count on by themselves between answers.
// Without JavaScript the page falls back to its <noscript> meta refresh.
(function () {
  "use strict";
  var root = document.getElementById("qd");
  if (!root || !window.fetch) {
    return;
  }
  var url = root.dataset.liveUrl;
  var every = Number(root.dataset.refreshSeconds) * 1000;
  var state = root.dataset.state;
  var received = Date.now(); // when the ages on the page were true
  var full = Date.now(); // when the sections were last brought up to date
  var busy = false;
  var offline = document.getElementById("qd-offline");

  // "3 minutes old", as questdash.templatetags.dashboard.describe_age says it.
  function describe(seconds) {
    var units = [["day", 86400], ["hour", 3600], ["minute", 60], ["second", 1]];
    seconds = Math.max(0, Math.floor(seconds));
    for (var i = 0; i < units.length; i++) {
      if (seconds >= units[i][1] || units[i][1] === 1) {
        var count = Math.floor(seconds / units[i][1]);
        return count + " " + units[i][0] + (count === 1 ? "" : "s") + " old";
      }
    }
  }

  function tick() {
    var elapsed = (Date.now() - received) / 1000;
    root.querySelectorAll("[data-age]").forEach(function (node) {
      var text = describe(Number(node.dataset.age) + elapsed);
      if (node.textContent !== text) {
        node.textContent = text;
      }
    });
  }

  // Make `old` look like `fresh`, touching only what differs.
  function sync(old, fresh) {
    if (old.nodeType !== fresh.nodeType || old.nodeName !== fresh.nodeName) {
      old.replaceWith(fresh);
      return;
    }
    if (old.nodeType !== Node.ELEMENT_NODE) {
      if (old.nodeValue !== fresh.nodeValue) {
        old.nodeValue = fresh.nodeValue;
      }
      return;
    }
    Array.prototype.slice.call(old.attributes).forEach(function (attr) {
      if (!fresh.hasAttribute(attr.name)) {
        old.removeAttribute(attr.name);
      }
    });
    Array.prototype.slice.call(fresh.attributes).forEach(function (attr) {
      if (old.getAttribute(attr.name) !== attr.value) {
        old.setAttribute(attr.name, attr.value);
      }
    });
    var kids = Array.prototype.slice.call(fresh.childNodes);
    kids.forEach(function (kid, i) {
      if (i < old.childNodes.length) {
        sync(old.childNodes[i], kid);
      } else {
        old.appendChild(kid);
      }
    });
    while (old.childNodes.length > kids.length) {
      old.removeChild(old.lastChild);
    }
  }

  function apply(answer) {
    Object.keys(answer.parts).forEach(function (id) {
      var node = document.getElementById(id);
      var template = document.createElement("template");
      template.innerHTML = answer.parts[id].trim();
      if (node && template.content.firstElementChild) {
        sync(node, template.content.firstElementChild);
      }
    });
    received = Date.now();
    tick();
  }

  function lost(why) {
    offline.textContent = "No answer from the site since " +
      new Date().toISOString().slice(11, 19) + " UTC (" + why + "); trying again every second.";
    offline.hidden = false;
  }

  function poll() {
    var whole = Date.now() - full >= every;
    if (busy || (document.hidden && !whole)) {
      return;
    }
    busy = true;
    fetch(whole ? url : url + "?state=" + encodeURIComponent(state), {
      credentials: "same-origin",
      cache: "no-store",
      headers: {Accept: "application/json"},
    }).then(function (response) {
      var type = response.headers.get("Content-Type") || "";
      var refused = response.status === 401 || response.status === 403;
      if (refused || response.redirected || type.indexOf("application/json") !== 0) {
        window.location.reload(); // logged out: the page itself says where to go
        return null;
      }
      if (!response.ok) {
        throw new Error("HTTP " + response.status);
      }
      return response.json();
    }).then(function (answer) {
      if (!answer) {
        return;
      }
      if (offline.hidden === false) {
        offline.hidden = true;
      }
      if (answer.changed) {
        apply(answer);
        full = Date.now();
      }
      state = answer.state;
      root.dataset.state = state;
    }).catch(function (error) {
      lost(error.message);
    }).then(function () {
      busy = false;
    });
  }

  setInterval(tick, 1000);
  setInterval(poll, 1000);
})();

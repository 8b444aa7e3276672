// A page that shows a last good copy reloads itself every few seconds, so that it comes
// back by itself when QuestDB does; but never while someone is selecting text or typing
// (a <meta> refresh would take that away). Without JavaScript, the page's <noscript>
// meta refresh does the same, unconditionally.
(function () {
  "use strict";
  var node = document.querySelector("[data-refresh-seconds]");
  var seconds = node ? Number(node.dataset.refreshSeconds) : 0;
  if (!(seconds > 0)) {
    return;
  }
  function busy() {
    var active = document.activeElement;
    var typing = active && /^(INPUT|TEXTAREA|SELECT)$/.test(active.tagName);
    return typing || String(window.getSelection()) !== "";
  }
  setInterval(function () {
    if (!busy()) {
      window.location.reload();
    }
  }, seconds * 1000);
})();

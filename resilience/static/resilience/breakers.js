// The breaker page's countdowns to the next probe: "in 23 s", ticking each second.
// Counted from the seconds the server computed on the store's clock, so a browser
// whose clock is off still counts right.
(function () {
  "use strict";
  var started = Date.now();
  function tick() {
    var elapsed = (Date.now() - started) / 1000;
    document.querySelectorAll("[data-countdown]").forEach(function (node) {
      var left = Math.max(0, Math.round(Number(node.dataset.countdown) - elapsed));
      node.textContent = left > 0 ? "in " + left + " s" : "due now";
    });
  }
  tick();
  setInterval(tick, 1000);
})();

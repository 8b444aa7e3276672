// The breaker page, live: countdowns to the next probe, and a reload every few seconds
// that waits while an operator types a reason (a <meta> refresh would wipe it).
(function () {
  "use strict";
  var started = Date.now();

  // "in 23 s", counted from the seconds the server computed on the store's clock,
  // so a browser whose clock is off still counts right.
  function tick() {
    var elapsed = (Date.now() - started) / 1000;
    document.querySelectorAll("[data-countdown]").forEach(function (node) {
      var left = Math.max(0, Math.round(Number(node.dataset.countdown) - elapsed));
      node.textContent = left > 0 ? "in " + left + " s" : "due now";
    });
  }

  function typing() {
    var reasons = Array.prototype.slice.call(document.querySelectorAll("input[name=reason]"));
    return reasons.some(function (input) {
      return input.value !== "" || input === document.activeElement;
    });
  }

  tick();
  setInterval(tick, 1000);
  var note = document.querySelector("[data-refresh-seconds]");
  var seconds = note ? Number(note.dataset.refreshSeconds) : 0;
  if (seconds > 0) {
    setInterval(function () {
      if (!typing()) {
        window.location.reload();
      }
    }, seconds * 1000);
  }
})();

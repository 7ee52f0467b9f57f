// AetherFlow dashboard: live refresh by polling, no framework, no build step.
// A page whose <main> says data-live="on" is fetched again every few seconds and its
// content swapped in place (open <details> stay open, scroll stays where it is).
(function () {
  "use strict";
  var PERIOD = 2000;
  var main = document.getElementById("live");
  var indicator = document.getElementById("live-indicator");
  if (!main) return;
  function openDetails(root) {
    var ids = [];
    root.querySelectorAll("details[id]").forEach(function (d) { if (d.open) ids.push(d.id); });
    return ids;
  }
  function refresh() {
    if (main.getAttribute("data-live") !== "on" || document.hidden) return schedule();
    var url = location.pathname + location.search.replace(/([?&])message=[^&]*&?/, "$1");
    fetch(url, { headers: { "X-Requested-With": "aetherflow-live" }, credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.text() : Promise.reject(r.status); })
      .then(function (text) {
        var doc = new DOMParser().parseFromString(text, "text/html");
        var fresh = doc.getElementById("live");
        if (!fresh) return;
        var active = document.activeElement;
        if (active && main.contains(active) && /INPUT|TEXTAREA|SELECT/.test(active.tagName)) return; // the user is typing
        var open = openDetails(main);
        main.innerHTML = fresh.innerHTML;
        main.setAttribute("data-live", fresh.getAttribute("data-live") || "off");
        open.forEach(function (id) { var d = document.getElementById(id); if (d) d.open = true; });
        if (indicator) indicator.textContent = "updated " + new Date().toLocaleTimeString();
      })
      .catch(function () { if (indicator) indicator.textContent = "offline?"; })
      .then(schedule);
  }
  function schedule() { setTimeout(refresh, PERIOD); }
  if (indicator && main.getAttribute("data-live") === "on") indicator.textContent = "live";
  schedule();
})();

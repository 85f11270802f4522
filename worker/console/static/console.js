// regsync console: times in the viewer's zone (UTC stays in the title), live run progress, select-all, print.
"use strict";
(function () {
  function localise(root) {
    root.querySelectorAll("time[data-local]").forEach(function (el) {
      var moment = new Date(el.getAttribute("datetime"));
      if (isNaN(moment)) { return; }
      var opts = el.dataset.local === "time"
        ? { hour: "2-digit", minute: "2-digit" }
        : { year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit" };
      el.textContent = new Intl.DateTimeFormat(undefined, opts).format(moment);
      el.title = el.getAttribute("datetime").replace("T", " ").slice(0, 16) + " UTC";
    });
  }
  function poll(box) {
    var url = box.dataset.poll;
    var timer = setInterval(function () {
      fetch(url, { credentials: "same-origin", headers: { "Accept": "text/html" } })
        .then(function (r) { if (!r.ok) { throw new Error(r.status); } return r.text(); })
        .then(function (html) {
          box.innerHTML = html;
          localise(box);
          var panel = box.querySelector("[data-final]");
          var badge = document.querySelector("[data-run-status]");
          if (panel && badge) {
            badge.textContent = panel.dataset.status.replace(/_/g, " ");
            badge.className = "status s-" + panel.dataset.status;
          }
          if (panel && panel.dataset.final === "true") { clearInterval(timer); }
        })
        .catch(function () { clearInterval(timer); });
    }, 1000);
  }
  document.addEventListener("DOMContentLoaded", function () {
    localise(document);
    document.querySelectorAll("[data-poll]").forEach(poll);
    document.querySelectorAll("[data-select-all]").forEach(function (box) {
      box.addEventListener("change", function () {
        document.querySelectorAll("input[name='" + box.dataset.selectAll + "']").forEach(function (c) { c.checked = box.checked; });
      });
    });
    document.querySelectorAll("[data-print]").forEach(function (b) { b.addEventListener("click", function () { window.print(); }); });
  });
})();

// Small behaviours of portal pages, wired here rather than in inline handlers (the Content-Security-Policy allows
// scripts from our own files only): [data-select-on-click] selects a read-only field's text for copying (the
// invitation link), [data-print] prints the page (a statement's printed copy).
(function () {
  "use strict";
  document.querySelectorAll("[data-select-on-click]").forEach(function (field) {
    field.addEventListener("click", function () { field.select(); });
  });
  document.querySelectorAll("[data-print]").forEach(function (button) {
    button.addEventListener("click", function () { window.print(); });
  });
})();

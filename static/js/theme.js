// The colour theme: "system" (follow prefers-color-scheme), "light" or "dark", remembered in this
// browser. Loaded in <head> without defer so the page is painted in the right colours at once.
(function () {
  var KEY = "chimera-theme", ORDER = ["system", "light", "dark"];
  var root = document.documentElement;
  function saved() {
    try { var v = localStorage.getItem(KEY); return ORDER.indexOf(v) >= 0 ? v : "system"; } catch (e) { return "system"; }
  }
  function apply(theme) {
    if (theme === "system") delete root.dataset.theme; else root.dataset.theme = theme;
    var button = document.getElementById("theme-toggle");
    if (button) {
      button.textContent = "Theme: " + theme;
      button.setAttribute("aria-label", "Colour theme: " + theme + " (change)");
    }
  }
  apply(saved());
  // The button may be swapped in later (htmx-boosted forms replace the body): label it each time.
  document.addEventListener("DOMContentLoaded", function () { apply(saved()); });
  document.addEventListener("htmx:afterSettle", function () { apply(saved()); });
  document.addEventListener("click", function (evt) {
    if (!evt.target || evt.target.id !== "theme-toggle") return;
    var next = ORDER[(ORDER.indexOf(saved()) + 1) % ORDER.length];
    try { localStorage.setItem(KEY, next); } catch (e) { /* private mode: this page only */ }
    apply(next);
  });
})();

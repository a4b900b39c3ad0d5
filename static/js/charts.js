// Chimera: draws the charts of answers' chart parts (templates/chat/partials/parts/chart.html).
// Each <figure data-chart="line|bar|pie|scatter"> holds its data as JSON in a
// <script type="application/json"> child, in the shape documented on chat.schemas.ChartPart:
//   {labels: [...], series: [{name, values: [...]}]}   line, bar, pie
//   {series: [{name, points: [[x, y], ...]}]}           scatter
// Chart.js (static/vendor) is loaded the first time a page has a chart. Charts that arrive later
// over the socket are found by a MutationObserver; charts whose canvas left the page are destroyed.
// A chart that cannot be drawn keeps its table of numbers open, with a note.
(function () {
  "use strict";

  var libUrl = document.currentScript && document.currentScript.dataset.chartjs;
  var loading = null;
  var drawn = [];

  function loadChartJs() {
    if (window.Chart) return Promise.resolve(window.Chart);
    if (!loading) {
      loading = new Promise(function (resolve, reject) {
        var s = document.createElement("script");
        s.src = libUrl;
        s.onload = function () { resolve(window.Chart); };
        s.onerror = function () { loading = null; reject(new Error("the chart library did not load")); };
        document.head.appendChild(s);
      });
    }
    return loading;
  }

  function axis(title, extra) {
    var a = { title: { display: !!title, text: title || "" } };
    for (var k in extra) a[k] = extra[k];
    return a;
  }

  function config(type, data) {
    var datasets;
    if (type === "scatter") {
      datasets = data.series.map(function (s) {
        return { label: s.name, data: s.points.map(function (p) { return { x: p[0], y: p[1] }; }) };
      });
    } else {
      datasets = data.series.map(function (s) { return { label: s.name, data: s.values }; });
    }
    var options = {
      responsive: true,
      maintainAspectRatio: false,
      animation: false,
      plugins: { legend: { display: type === "pie" || datasets.length > 1 } },
    };
    if (type !== "pie") {
      options.scales = {
        x: axis(data.xLabel, type === "scatter" ? { type: "linear" } : {}),
        y: axis(data.yLabel, { beginAtZero: type === "bar" }),
      };
    }
    return { type: type, data: { labels: type === "scatter" ? undefined : data.labels, datasets: datasets }, options: options };
  }

  function fail(figure, why) {
    figure.dataset.chartFailed = "";
    var box = figure.querySelector(".chart-canvas");
    if (box) box.hidden = true;
    var note = document.createElement("p");
    note.className = "chart-note";
    note.setAttribute("role", "note");
    note.textContent = "This chart could not be drawn (" + why + "); its numbers are below.";
    figure.insertBefore(note, box ? box.nextSibling : figure.firstChild);
    var table = figure.querySelector("details.chart-table");
    if (table) table.open = true;
  }

  function draw(figure) {
    if (figure.dataset.drawn !== undefined) return;
    figure.dataset.drawn = "";
    var canvas = figure.querySelector("canvas");
    var json = figure.querySelector('script[type="application/json"]');
    var data;
    try {
      data = JSON.parse(json.textContent);
    } catch (e) {
      fail(figure, "its data is not readable");
      return;
    }
    loadChartJs().then(function (Chart) {
      if (!figure.isConnected) return;
      try {
        drawn.push(new Chart(canvas, config(figure.dataset.chart, data)));
        figure.dataset.chartReady = "";
      } catch (e) {
        fail(figure, e.message || "unexpected data");
      }
    }, function (e) { fail(figure, e.message); });
  }

  function drawAll(root) {
    if (root.matches && root.matches("figure[data-chart]")) draw(root);
    if (root.querySelectorAll) root.querySelectorAll("figure[data-chart]").forEach(draw);
  }

  function forgetDetached() {
    drawn = drawn.filter(function (chart) {
      if (chart.canvas && chart.canvas.isConnected) return true;
      chart.destroy();
      return false;
    });
  }

  new MutationObserver(function (mutations) {
    var removed = false;
    mutations.forEach(function (m) {
      m.addedNodes.forEach(function (n) { if (n.nodeType === 1) drawAll(n); });
      if (m.removedNodes.length) removed = true;
    });
    if (removed && drawn.length) forgetDetached();
  }).observe(document.documentElement, { childList: true, subtree: true });

  // The staff dashboard (static/js/dashboard.js) falls back the same way.
  window.ChimeraCharts = { fail: fail };

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", function () { drawAll(document); });
  } else {
    drawAll(document);
  }
})();

// Chimera: draws the staff dashboard's charts (templates/usage/dashboard.html) with the vendored
// Chart.js, loaded by the page before this file. Each <figure data-dashboard-chart> holds its numbers
// as JSON in a <script type="application/json"> child, built by usage.dashboard.Chart.payload:
//   {kind: "line"|"bar", labels: [...], stacked, yTitle, y2Title,
//    datasets: [{label, data: [...], group?, dash?, type?, axis?}]}
// After drawing, a figure carries data-chart-ready and data-points (the points drawn); a chart that
// cannot be drawn says so and opens its table of numbers.
(function () {
  "use strict";

  var PALETTE = ["#4b3fd8", "#e4572e", "#17a398", "#f3a712", "#8e44ad", "#2e86de", "#c0392b", "#6ab04c"];

  function cssVar(name, fallback) {
    var v = getComputedStyle(document.documentElement).getPropertyValue(name).trim();
    return v || fallback;
  }

  function colorFor(spec, d, i) {
    // The latency chart draws three lines per group: one colour per group, dashes for p50 and p99.
    if (d.group === undefined) return PALETTE[i % PALETTE.length];
    var groups = [];
    spec.datasets.forEach(function (x) { if (groups.indexOf(x.group) < 0) groups.push(x.group); });
    return PALETTE[groups.indexOf(d.group) % PALETTE.length];
  }

  function config(spec) {
    var datasets = spec.datasets.map(function (d, i) {
      var color = colorFor(spec, d, i);
      var type = d.type || spec.kind;
      var set = {
        label: d.label,
        data: d.data,
        type: type,
        borderColor: color,
        backgroundColor: type === "bar" ? color + "b3" : color,
        borderWidth: type === "bar" ? 0 : 2,
        pointRadius: spec.labels.length > 60 ? 0 : 2,
        spanGaps: true,
        yAxisID: d.axis === "y2" ? "y2" : "y",
      };
      if (d.dash) set.borderDash = [5, 4];
      if (d.axis === "y2") set.order = 2;  // behind the lines
      return set;
    });
    var scales = {
      x: { stacked: !!spec.stacked, ticks: { maxRotation: 0, autoSkip: true, autoSkipPadding: 12 } },
      y: { stacked: !!spec.stacked, beginAtZero: true, title: { display: !!spec.yTitle, text: spec.yTitle } },
    };
    if (spec.y2Title) {
      scales.y2 = { position: "right", beginAtZero: true, grid: { drawOnChartArea: false },
                    title: { display: true, text: spec.y2Title } };
    }
    return {
      type: spec.kind,
      data: { labels: spec.labels, datasets: datasets },
      options: {
        responsive: true,
        maintainAspectRatio: false,
        animation: false,
        interaction: { mode: "index", intersect: false },
        scales: scales,
        plugins: { legend: { labels: { boxWidth: 12, font: { size: 11 } } } },
      },
    };
  }

  // The chart parts' own fallback (static/js/charts.js, loaded on every page before this file):
  // a note, and the table of numbers opened.
  function fail(figure, why) {
    window.ChimeraCharts.fail(figure, why);
  }

  function draw(figure) {
    var canvas = figure.querySelector("canvas");
    var json = figure.querySelector('script[type="application/json"]');
    if (!canvas || !json) return;  // nothing in this range: the figure says so
    if (!window.Chart) { fail(figure, "the chart library did not load"); return; }
    try {
      var spec = JSON.parse(json.textContent);
      new window.Chart(canvas, config(spec));
      var points = 0;
      spec.datasets.forEach(function (d) {
        d.data.forEach(function (v) { if (v !== null) points += 1; });
      });
      figure.dataset.points = String(points);
      figure.dataset.chartReady = "";
    } catch (e) {
      fail(figure, e.message || "unexpected data");
    }
  }

  function start() {
    if (window.Chart) {
      window.Chart.defaults.color = cssVar("--muted", "#6b6b76");
      window.Chart.defaults.borderColor = cssVar("--line", "#e3e3e8");
    }
    document.querySelectorAll("figure[data-dashboard-chart]").forEach(draw);
    document.body.dataset.dashboardReady = "";
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();

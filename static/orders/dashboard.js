/* Draws the admin analytics dashboard's charts with Chart.js (static/vendor/chartjs).
 * The data comes from the page (json_script "ck-chart-data", built by backoffice.dashboard.chart_payload).
 * Money arrives in integer minor units with its currency exponent; it is scaled here for display only. */
(function () {
  "use strict";

  var PALETTE = ["#417690", "#e0883a", "#2e9e57", "#8e5ba8", "#c94f4f", "#3a9fb8", "#b8a03a", "#6b7b8c"];
  var TONES = { good: "#2e9e57", bad: "#c94f4f", warn: "#d08400", info: "#417690" };

  function css(name, fallback) {
    var value = getComputedStyle(document.documentElement).getPropertyValue(name);
    return (value && value.trim()) || fallback;
  }

  function moneyFormatter(dataset) {
    var exponent = dataset.exponent || 0;
    var scale = Math.pow(10, exponent);
    var format;
    try {
      format = new Intl.NumberFormat(undefined, {
        style: "currency", currency: (dataset.currency || "usd").toUpperCase(),
        minimumFractionDigits: exponent, maximumFractionDigits: exponent
      });
    } catch (e) {
      format = new Intl.NumberFormat(undefined, { minimumFractionDigits: exponent, maximumFractionDigits: exponent });
    }
    return function (minor) { return format.format(minor / scale); };
  }

  function formatter(dataset) {
    if (dataset.kind === "money") { return moneyFormatter(dataset); }
    if (dataset.kind === "seconds") { return function (v) { return v == null ? "–" : (Math.round(v * 10) / 10) + " s"; }; }
    if (dataset.kind === "percent") { return function (v) { return v + " %"; }; }
    return function (v) { return String(v); };
  }

  function build(spec) {
    var canvas = document.getElementById("chart-" + spec.id);
    if (!canvas) { return; }
    var fg = css("--body-fg", "#333");
    var grid = css("--hairline-color", "#e5e5e5");
    var formats = spec.datasets.map(formatter);
    var hasSecondAxis = spec.datasets.some(function (d) { return d.yAxisID === "y2"; });
    var doughnut = spec.type === "doughnut";

    var datasets = spec.datasets.map(function (d, i) {
      var color = TONES[d.color] || PALETTE[i % PALETTE.length];
      var scale = d.kind === "money" ? Math.pow(10, d.exponent || 0) : 1;
      var ds = {
        label: d.label,
        data: d.data.map(function (v) { return v == null ? null : v / scale; }),
        backgroundColor: doughnut ? d.data.map(function (_, j) { return PALETTE[j % PALETTE.length]; }) : color,
        borderColor: doughnut ? css("--body-bg", "#fff") : color,
        borderWidth: doughnut ? 2 : (d.type === "line" ? 2 : 0),
        type: d.type || undefined,
        yAxisID: d.yAxisID || undefined,
        tension: 0.25,
        pointRadius: d.type === "line" ? 2 : undefined,
        order: d.type === "line" ? 0 : 1
      };
      return ds;
    });

    var scales = {};
    if (!doughnut) {
      var first = spec.datasets[0] || {};
      scales.x = { stacked: !!spec.stacked, ticks: { color: fg, maxRotation: 0, autoSkip: true, maxTicksLimit: 10 }, grid: { display: false } };
      scales.y = {
        stacked: !!spec.stacked, beginAtZero: true, grid: { color: grid },
        ticks: { color: fg, precision: first.kind === "count" ? 0 : undefined,
          callback: function (value) {
            if (first.kind === "money") { return moneyFormatter(first)(Math.round(value * Math.pow(10, first.exponent || 0))); }
            return value;
          } }
      };
      if (hasSecondAxis) {
        scales.y2 = { position: "right", beginAtZero: true, grid: { drawOnChartArea: false }, ticks: { color: fg },
          title: { display: true, text: "seconds", color: fg } };
      }
    }

    new window.Chart(canvas, {
      type: doughnut ? "doughnut" : "bar",
      data: { labels: spec.labels, datasets: datasets },
      options: {
        responsive: true, maintainAspectRatio: false, animation: false,
        interaction: { mode: doughnut ? "nearest" : "index", intersect: false },
        scales: scales,
        plugins: {
          legend: { position: doughnut ? "right" : "bottom", labels: { color: fg, boxWidth: 12 } },
          tooltip: {
            callbacks: {
              label: function (ctx) {
                var source = spec.datasets[ctx.datasetIndex];
                var raw = source.data[ctx.dataIndex];
                var label = doughnut ? spec.labels[ctx.dataIndex] : ctx.dataset.label;
                return label + ": " + formats[ctx.datasetIndex](raw);
              }
            }
          }
        }
      }
    });
  }

  function draw() {
    var node = document.getElementById("ck-chart-data");
    if (!node || !window.Chart) { return; }
    JSON.parse(node.textContent).forEach(build);
    document.documentElement.setAttribute("data-charts-ready", "1");
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", draw);
  } else {
    draw();
  }
}());

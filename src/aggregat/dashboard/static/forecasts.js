// The forecast chart: actual load, P50 and the P10–P90 band with uPlot. The server downsamples
// to the chart's width; zooming asks it again for the visible range only.
"use strict";
(function () {
  const el = document.getElementById("chart");
  if (!el || typeof uPlot === "undefined") return;
  const url = el.dataset.seriesUrl;
  const horizon = el.dataset.horizon;
  const issue = el.dataset.issue;
  const tz = el.dataset.tz;
  const info = document.getElementById("chart-info");
  let plot = null;
  let full = null;   // [min, max] of the whole series, to zoom out
  let pending = 0;

  function query(start, end, width) {
    const q = new URLSearchParams({horizon: horizon, issue: issue, width: String(width)});
    if (start != null) q.set("start", String(Math.floor(start)));
    if (end != null) q.set("end", String(Math.ceil(end)));
    return url + "?" + q.toString();
  }

  function columns(d) {
    return [d.x, d.actual, d.p10, d.p50, d.p90];
  }

  function describe(d) {
    info.textContent = d.points.toLocaleString() + " points in view" +
      (d.raw ? "" : ", drawn as " + d.x.length.toLocaleString() + " (min/max per pixel)");
  }

  async function load(start, end) {
    const ticket = ++pending;
    const width = Math.max(200, Math.round(el.clientWidth));
    const response = await fetch(query(start, end, width), {credentials: "same-origin"});
    const d = await response.json();
    if (ticket !== pending) return null;  // a newer zoom superseded this one
    return d;
  }

  const bandFill = "rgba(59, 130, 196, 0.18)";
  function options(width) {
    return {
      width: width, height: 400, tzDate: (ts) => uPlot.tzDate(new Date(ts * 1e3), tz),
      cursor: {drag: {x: true, y: false, setScale: false}},
      scales: {x: {time: true}},
      series: [
        {},
        {label: "actual (MW)", stroke: "#1d2430", width: 1.3, spanGaps: false},
        {label: "P10", stroke: "rgba(59,130,196,0.5)", width: 1},
        {label: "P50 (MW)", stroke: "#3b82c4", width: 1.6},
        {label: "P90", stroke: "rgba(59,130,196,0.5)", width: 1},
      ],
      bands: [{series: [4, 2], fill: bandFill}],
      axes: [{}, {label: "MW"}],
      hooks: {
        setSelect: [(u) => {
          if (u.select.width < 4) return;
          const min = u.posToVal(u.select.left, "x");
          const max = u.posToVal(u.select.left + u.select.width, "x");
          u.setSelect({left: 0, width: 0, top: 0, height: 0}, false);
          zoom(min, max);
        }],
      },
    };
  }

  async function zoom(min, max) {
    const d = await load(min, max);
    if (!d) return;
    plot.setData(columns(d), false);
    plot.setScale("x", {min: min, max: max});
    describe(d);
  }

  async function init() {
    const d = await load(null, null);
    if (!d) return;
    full = d.x.length ? [d.x[0], d.x[d.x.length - 1]] : null;
    plot = new uPlot(options(el.clientWidth - 16), columns(d), el);
    describe(d);
    el.addEventListener("dblclick", () => { if (full) zoom(full[0], full[1]); });
    window.addEventListener("resize", () => plot.setSize({width: el.clientWidth - 16, height: 400}));
    el.dataset.ready = "1";
  }

  function errorChart() {
    const target = document.getElementById("error-chart");
    const source = document.getElementById("daily-error-data");
    if (!target || !source) return;
    const rows = JSON.parse(source.textContent);
    let x = rows.map((r) => Date.parse(r.day + "T12:00:00Z") / 1e3);
    let mae = rows.map((r) => r.mae), bias = rows.map((r) => r.bias);
    if (x.length === 1) {  // one day alone: uPlot would span years around it; a day each side
      x = [x[0] - 86400, x[0], x[0] + 86400];
      mae = [null, mae[0], null];
      bias = [null, bias[0], null];
    }
    const data = [x, mae, bias];
    new uPlot({
      width: target.clientWidth - 16, height: 200, tzDate: (ts) => uPlot.tzDate(new Date(ts * 1e3), tz),
      scales: {x: {time: true}},
      series: [{}, {label: "daily MAE (MW)", stroke: "#d64545", width: 1.5, points: {show: true}},
               {label: "bias (MW)", stroke: "#6b7480", width: 1, dash: [4, 4]}],
      axes: [{}, {label: "MW"}],
    }, data, target);
    target.dataset.ready = "1";
  }

  init();
  errorChart();
})();

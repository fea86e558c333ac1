// tunneltwin charts: uPlot with a date-time axis in the site's zone, cursors and zoom synced
// across a page's charts, and legends that hide and show a series. The replay report and the
// daemon's live page both draw with this, so the two look the same.
// Drag to zoom (all charts follow), double-click to reset, click a legend entry to hide or
// show it, hover for the values at that time.
window.TTCharts = function (zone, parent) {
  "use strict";
  const fmt = new Intl.DateTimeFormat("en-GB", { timeZone: zone, year: "numeric", month: "2-digit", day: "2-digit",
                                                 hour: "2-digit", minute: "2-digit", hourCycle: "h23" });
  const label = (ts) => {  // 2024-11-15 06:00, in the site's zone
    const p = Object.fromEntries(fmt.formatToParts(new Date(ts * 1000)).map((x) => [x.type, x.value]));
    return p.year + "-" + p.month + "-" + p.day + " " + p.hour + ":" + p.minute;
  };
  const axisLabels = {};  // what each x axis drew last: the self-tests read it
  const sync = uPlot.sync("tunneltwin");
  const plots = [];
  const LIMIT = { stroke: "#888", dash: [6, 4], width: 1 };
  const COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf"];

  function xAxis(title) {
    return {
      label: "time (" + zone + ")",
      values: (u, splits) => {
        const out = splits.map((ts) => { const s = label(ts); return s.endsWith("00:00") ? s.slice(0, 10) : s.slice(11); });
        axisLabels[title] = out;
        return out;
      },
    };
  }

  // series: [{label, values, stroke, dash, width, step, digits}]; x: unix seconds
  function chart(title, unit, x, series, opts) {
    const el = document.createElement("section");
    el.className = "chart";
    el.innerHTML = "<h3></h3>";
    el.querySelector("h3").textContent = title;
    parent.appendChild(el);
    const u = new uPlot({
      width: Math.max(400, el.clientWidth), height: (opts && opts.height) || 240,
      cursor: { sync: { key: sync.key, setSeries: false }, drag: { x: true, y: false, setScale: true } },
      scales: { x: { time: true } }, tzDate: (ts) => uPlot.tzDate(new Date(ts * 1000), zone),
      axes: [xAxis(title), { label: unit, size: 60 }],
      series: [{ label: "time", value: (u, ts) => (ts == null ? "" : label(ts)) },
               ...series.map((s) => ({ label: s.label, stroke: s.stroke, width: s.width || 1.5, dash: s.dash,
                                       paths: s.step ? uPlot.paths.stepped({ align: 1 }) : undefined,
                                       spanGaps: false, points: { show: false },
                                       value: (u, v) => (v == null ? "-" : (+v).toFixed(s.digits ?? 2)) }))],
      hooks: { setSelect: [(u) => { if (u.select.width > 0) zoomAll(u); }] },
    }, [x, ...series.map((s) => s.values)], el);
    u.title = title;
    plots.push(u);
    return u;
  }

  function zoomAll(from) {
    const { min, max } = from.scales.x;
    for (const u of plots) if (u !== from) u.setScale("x", { min, max });
  }

  function painted(u) {  // canvas pixels drawn on
    const c = u.ctx.canvas, img = u.ctx.getImageData(0, 0, c.width, c.height).data;
    let n = 0;
    for (let i = 3; i < img.length; i += 4) if (img[i] > 0) n++;
    return n;
  }

  parent.addEventListener("dblclick", () => {
    for (const u of plots) { const x = u.data[0]; u.setScale("x", { min: x[0], max: x[x.length - 1] }); }
  });
  window.addEventListener("resize", () => { for (const u of plots) u.setSize({ width: u.root.parentNode.clientWidth, height: u.height }); });
  return { label, chart, plots, axisLabels, painted, LIMIT, colour: (i) => COLOURS[i % COLOURS.length] };
};

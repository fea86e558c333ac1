// tunneltwin report: the charts of one or several runs on shared, synced time axes.
// Data comes from <script id="data" type="application/json"> (scenarios/report.py).
// Drag to zoom (all charts follow), double-click to reset, click a legend entry to hide or
// show that series, hover for the values at that time. Times show in the site's zone.
(function () {
  "use strict";
  const D = JSON.parse(document.getElementById("data").textContent);
  const COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf"];
  const LIMIT = { stroke: "#888", dash: [6, 4], width: 1 };
  const zone = D.zone;
  const fmt = new Intl.DateTimeFormat("en-GB", { timeZone: zone, year: "numeric", month: "2-digit", day: "2-digit",
                                                 hour: "2-digit", minute: "2-digit", hourCycle: "h23" });
  const label = (ts) => {  // 2024-11-15 06:00, in the site's zone
    const p = Object.fromEntries(fmt.formatToParts(new Date(ts * 1000)).map((x) => [x.type, x.value]));
    return p.year + "-" + p.month + "-" + p.day + " " + p.hour + ":" + p.minute;
  };
  const axisLabels = {};  // what each x axis drew last: the self-test reads it
  const sync = uPlot.sync("tunneltwin");
  const plots = [];

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

  function chart(title, unit, series, opts) {
    const el = document.createElement("section");
    el.className = "chart";
    el.innerHTML = "<h3></h3>";
    el.querySelector("h3").textContent = title;
    document.getElementById("charts").appendChild(el);
    const data = [D.t, ...series.map((s) => s.values)];
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
    }, data, el);
    u.title = title;
    plots.push(u);
    return u;
  }

  function zoomAll(from) {
    const { min, max } = from.scales.x;
    for (const u of plots) if (u !== from) u.setScale("x", { min, max });
  }

  document.addEventListener("dblclick", () => { for (const u of plots) u.setScale("x", { min: D.t[0], max: D.t[D.t.length - 1] }); });
  window.addEventListener("resize", () => { for (const u of plots) u.setSize({ width: u.root.parentNode.clientWidth, height: u.height }); });

  const names = Object.keys(D.runs);
  const colour = (i) => COLOURS[i % COLOURS.length];
  const each = (key, extra) => names.map((n, i) => Object.assign({ label: n, values: D.runs[n][key], stroke: colour(i) }, extra || {}));
  const flat = (v) => D.t.map(() => v);

  chart("Tunnel level", "m", [...each("level_m"),
    ...D.limits.level.map(([v, name]) => Object.assign({ label: name + " " + v + " m", values: flat(v) }, LIMIT))]);
  chart("Inflow and pumped flow F2", "m³/h", [{ label: "inflow", values: D.inflow_m3h, stroke: "#555", digits: 0 },
    ...each("outflow_m3h", { digits: 0 }),
    Object.assign({ label: "F2 max " + D.limits.f2_max + " m³/h", values: flat(D.limits.f2_max) }, LIMIT)]);
  chart("Price", "EUR/MWh", [{ label: "price", values: D.price_eur_per_mwh, stroke: "#555", step: true }], { height: 160 });
  chart("Pumping power", "kW", each("power_kw", { digits: 0 }));
  chart("Pumps running", "pumps", each("pumps_on", { step: true, digits: 0 }), { height: 160 });
  chart("Cumulative cost", "EUR", each("cost_cum_eur"));

  if (location.hash === "#selftest") setTimeout(selftest, 200);

  function painted(u) {  // canvas pixels drawn on
    const c = u.ctx.canvas, img = u.ctx.getImageData(0, 0, c.width, c.height).data;
    let n = 0;
    for (let i = 3; i < img.length; i += 4) if (img[i] > 0) n++;
    return n;
  }

  // #selftest: what a browser drew, for tests/test_report.py. Hides the first run's series
  // by a click on its legend entry, measures the chart without it, and shows it again.
  function selftest() {
    const level = plots[0];
    const entry = level.root.querySelectorAll(".u-legend .u-series")[1].querySelector(".u-label");
    const shown = plots.map(painted);
    const toggle = [level.series[1].show];
    entry.dispatchEvent(new MouseEvent("click", { bubbles: true }));
    toggle.push(level.series[1].show);
    setTimeout(() => {
      const without = painted(level);
      entry.dispatchEvent(new MouseEvent("click", { bubbles: true }));
      toggle.push(level.series[1].show);
      const out = {
        charts: plots.map((u, k) => ({ title: u.title, time_axis: u.scales.x.time === true, painted_px: shown[k],
                                       series: u.series.slice(1).map((s, i) => ({ label: s.label,
                                         points: u.data[i + 1].filter((v) => v != null).length })),
                                       x_labels: axisLabels[u.title] || [] })),
        legend_toggle: toggle, level_painted_without_first: without,
        kpi_table_px: document.querySelector("table.kpi").scrollWidth, page_px: document.body.clientWidth,
        first: label(D.t[0]), last: label(D.t[D.t.length - 1]),
      };
      const pre = document.createElement("pre");
      pre.id = "selftest";
      pre.textContent = JSON.stringify(out);
      document.body.appendChild(pre);
    }, 200);
  }
})();

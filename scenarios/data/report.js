// tunneltwin report: the charts of one or several runs on shared, synced time axes.
// Data comes from <script id="data" type="application/json"> (scenarios/report.py).
// Drag to zoom (all charts follow), double-click to reset, click a legend entry to hide or
// show that series, hover for the values at that time. Times show in the site's zone.
(function () {
  "use strict";
  const D = JSON.parse(document.getElementById("data").textContent);
  const C = TTCharts(D.zone, document.getElementById("charts"));
  const LIMIT = C.LIMIT, label = C.label, plots = C.plots, painted = C.painted, axisLabels = C.axisLabels;

  const names = Object.keys(D.runs);
  const colour = C.colour;
  const each = (key, extra) => names.map((n, i) => Object.assign({ label: n, values: D.runs[n][key], stroke: colour(i) }, extra || {}));
  const flat = (v) => D.t.map(() => v);

  C.chart("Tunnel level", "m", D.t, [...each("level_m"),
    ...D.limits.level.map(([v, name]) => Object.assign({ label: name + " " + v + " m", values: flat(v) }, LIMIT))]);
  C.chart("Inflow and pumped flow F2", "m³/h", D.t, [{ label: "inflow", values: D.inflow_m3h, stroke: "#555", digits: 0 },
    ...each("outflow_m3h", { digits: 0 }),
    Object.assign({ label: "F2 max " + D.limits.f2_max + " m³/h", values: flat(D.limits.f2_max) }, LIMIT)]);
  C.chart("Price", "EUR/MWh", D.t, [{ label: "price", values: D.price_eur_per_mwh, stroke: "#555", step: true }], { height: 160 });
  C.chart("Pumping power", "kW", D.t, each("power_kw", { digits: 0 }));
  C.chart("Pumps running", "pumps", D.t, each("pumps_on", { step: true, digits: 0 }), { height: 160 });
  C.chart("Cumulative cost", "EUR", D.t, each("cost_cum_eur"));

  if (location.hash === "#selftest") setTimeout(selftest, 200);

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

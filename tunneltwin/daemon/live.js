// tunneltwin live page: the daemon's last day and its plan ahead, updated from /events.
// Reads the API with the token in the page's address (/live?token=...).
(function () {
  "use strict";
  const cfg = JSON.parse(document.getElementById("config").textContent);
  const token = new URLSearchParams(location.search).get("token") || "";
  const headers = token ? { Authorization: "Bearer " + token } : {};
  const get = (path) => fetch(path, { headers }).then((r) => {
    if (!r.ok) throw new Error(path + ": HTTP " + r.status);
    return r.json();
  });
  const C = TTCharts(cfg.zone, document.getElementById("charts"));
  const secs = (iso) => Date.parse(iso) / 1000;
  const hist = { t: [], level: [], inflow: [], f2: [] };  // measured, one point per tick
  let latest = null;  // the last tick: status, forecast and plan
  const charts = {};
  const seen = { ticks: 0, alerts: [] };
  document.getElementById("station").textContent = cfg.station;

  function remember(status) {
    const t = secs(status.time);
    if (hist.t.length && t <= hist.t[hist.t.length - 1]) return;
    hist.t.push(t); hist.level.push(status.level_m); hist.inflow.push(status.inflow_m3h);
    hist.f2.push(status.outflow_m3h ?? null);
  }

  function ahead() {  // the plan and forecast, per step after the latest tick
    const plan = (latest && latest.plan) || {}, fc = (latest && latest.forecast) || {};
    const step = fc.step_s || plan.step_s || 900;
    const n = latest ? Math.max((plan.level_m || []).length, (fc.inflow_m3h || []).length,
                                (fc.price_eur_per_kwh || []).length) : 0;
    const t0 = latest ? secs(latest.status.time) : 0;
    return { t: Array.from({ length: n }, (_, k) => t0 + (k + 1) * step), level: plan.level_m || [],
             f2: plan.outflow_m3h || [], inflow: fc.inflow_m3h || [], price: (fc.price_eur_per_kwh || []).map((p) => p * 1000),
             low: ((fc.inflow_quantiles_m3h || {}).p10) || [], high: ((fc.inflow_quantiles_m3h || {}).p90) || [] };
  }

  function series() {
    const a = ahead(), nh = hist.t.length, x = [...hist.t, ...a.t];
    const past = (v) => [...v, ...a.t.map(() => null)];
    const next = (v) => [...hist.t.map(() => null), ...a.t.map((_, k) => v[k] ?? null)];
    const flat = (v) => x.map(() => v);
    const L = cfg.limits || {};
    return {
      x,
      level: [past(hist.level), next(a.level),
              ...(cfg.limits ? [flat(L.min_level_m), flat(L.alarm_level_m), flat(L.max_level_m)] : [])],
      flows: [past(hist.inflow), next(a.inflow), next(a.low), next(a.high), past(hist.f2), next(a.f2),
              ...(cfg.limits ? [flat(L.max_outflow_m3h)] : [])],
      price: [next(a.price)],
      nh,
    };
  }

  function draw() {
    const s = series();
    const lim = (label) => Object.assign({ label }, C.LIMIT);
    if (!charts.level) {
      const L = cfg.limits || {};
      charts.level = C.chart("Tunnel level", "m", s.x, [
        { label: "measured", values: s.level[0], stroke: C.colour(0) },
        { label: "plan", values: s.level[1], stroke: C.colour(0), dash: [4, 3] },
        ...(cfg.limits ? [lim("min " + L.min_level_m + " m"), lim("alarm " + L.alarm_level_m + " m"),
                          lim("max " + L.max_level_m + " m")].map((o, i) => Object.assign(o, { values: s.level[2 + i] })) : [])]);
      charts.flows = C.chart("Inflow and F2", "m³/h", s.x, [
        { label: "inflow", values: s.flows[0], stroke: "#555", digits: 0 },
        { label: "inflow forecast", values: s.flows[1], stroke: "#555", dash: [4, 3], digits: 0 },
        { label: "P10", values: s.flows[2], stroke: "#aaa", dash: [2, 3], width: 1, digits: 0 },
        { label: "P90", values: s.flows[3], stroke: "#aaa", dash: [2, 3], width: 1, digits: 0 },
        { label: "F2", values: s.flows[4], stroke: C.colour(1), digits: 0 },
        { label: "F2 plan", values: s.flows[5], stroke: C.colour(1), dash: [4, 3], digits: 0 },
        ...(cfg.limits ? [Object.assign(lim("F2 max " + L.max_outflow_m3h + " m³/h"), { values: s.flows[6] })] : [])]);
      charts.price = C.chart("Price ahead", "EUR/MWh", s.x, [{ label: "price", values: s.price[0], stroke: "#555", step: true }],
                             { height: 160 });
    } else {
      charts.level.setData([s.x, ...s.level]);
      charts.flows.setData([s.x, ...s.flows]);
      charts.price.setData([s.x, ...s.price]);
    }
  }

  function panels() {
    const st = latest.status;
    document.getElementById("status").textContent = st.state + " at " + C.label(secs(st.time)) + " (" + cfg.zone +
      "), " + st.controller + " deciding; level " + st.level_m.toFixed(2) + " m, inflow " + Math.round(st.inflow_m3h) +
      " m³/h" + (latest.plan ? ", plan " + latest.plan.status + " costing " + latest.plan.cost_eur + " EUR" : "") +
      (latest.kpis && latest.kpis.today ? "; today " + latest.kpis.today.cost_eur + " EUR" : "");
    const rows = Object.entries(st.setpoints).map(([id, p]) =>
      "<tr><td>" + id + "</td><td>" + (p.on ? "on" : "off") + "</td><td>" + (p.on ? p.freq_hz.toFixed(1) + " Hz" : "") + "</td></tr>");
    document.getElementById("pumps").innerHTML = "<tr><th>pump</th><th>state</th><th>speed</th></tr>" + rows.join("");
    get("/operator").then((o) => { document.getElementById("operator").textContent = o.text; }).catch(() => {});
  }

  function showAlert(a) {
    const li = document.createElement("li");
    li.textContent = C.label(secs(a.time)) + " " + a.kind + ": " + a.message;
    const list = document.getElementById("alerts");
    list.insertBefore(li, list.firstChild);
    while (list.children.length > 10) list.removeChild(list.lastChild);
  }

  function tick(report) {
    latest = report;
    remember(report.status);
    draw();
    panels();
  }

  Promise.all([get("/system/history"), get("/alerts")]).then(([history, alerts]) => {
    history.forEach(remember);
    alerts.recent.forEach(showAlert);
    draw();
    const start = { points: hist.t.length };
    stream = new EventSource("/events" + (token ? "?token=" + encodeURIComponent(token) : ""));
    stream.addEventListener("tick", (e) => { tick(JSON.parse(e.data)); seen.ticks++; check(start); });
    stream.addEventListener("alert", (e) => { const a = JSON.parse(e.data); showAlert(a); seen.alerts.push(a.kind); check(start); });
    stream.addEventListener("status", (e) => {
      document.getElementById("status").textContent = "daemon " + JSON.parse(e.data).state;
    });
    if (location.hash === "#selftest") setTimeout(() => report(start, "timed out"), 60000);
  }).catch((err) => { document.getElementById("status").textContent = String(err); });

  // #selftest, for tests/test_live.py: once two ticks and an alert have come in over the
  // stream, write what the page holds into the DOM.
  let reported = false;
  let stream = null;
  function check(start) {
    // at once, not on a timer: a headless browser's clock stands still while the stream is open
    if (location.hash === "#selftest" && seen.ticks >= 3 && seen.alerts.length) report(start, "ok");
  }
  function report(start, why) {
    if (reported) return;
    reported = true;
    stream.close();  // a headless browser's clock waits for open requests: let it finish
    const pre = document.createElement("pre");
    pre.id = "selftest";
    pre.textContent = JSON.stringify({
      why, ticks: seen.ticks, alerts_seen: seen.alerts, points_at_start: start.points,
      points_now: charts.level.data[1].filter((v) => v != null).length,
      plan_points: charts.level.data[2].filter((v) => v != null).length,
      band_points: charts.flows.data[4].filter((v) => v != null).length,
      painted_px: C.plots.map(C.painted), x_labels: C.axisLabels["Tunnel level"] || [],
      alerts_shown: [...document.querySelectorAll("#alerts li")].map((li) => li.textContent),
      pumps_rows: document.querySelectorAll("#pumps tr").length - 1,
      operator: document.getElementById("operator").textContent,
      status: document.getElementById("status").textContent,
    });
    document.body.appendChild(pre);
  }
})();

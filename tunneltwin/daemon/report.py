"""The daemon's per-tick report: what SCADA sees of it (status, plan, forecast, KPIs)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from controller.base import Report
from kernel.clock import SiteClock
from kernel.contracts import Observation, Setpoints

if TYPE_CHECKING:
    from tunneltwin.daemon.stats import Stats


def report(obs: Observation, sp: Setpoints, name: str, said: Report, stats: Stats,
           clock: SiteClock | None = None) -> dict[str, Any]:
    """``said``: what the deciding controller reported of this decision; times carry the
    site clock's offset."""
    tel = obs.telemetry
    stamp = (clock or SiteClock()).stamp
    out: dict[str, Any] = {
        "status": {"state": "running", "time": stamp(tel.time), "controller": name,
                   "level_m": round(tel.level_m, 3), "inflow_m3h": round(tel.inflow_m3h, 1),
                   "outflow_m3h": round(tel.outflow_m3h, 1),
                   "setpoints": {p.id: {"on": p.on, "freq_hz": round(p.freq_hz, 2),
                                        "stop_below_m": round(p.stop_below_m, 3)} for p in sp.pumps}},
        "kpis": stats.summary(),
        "forecast": {"start": stamp(tel.time), "step_s": obs.prices.step_s,
                     "price_eur_per_kwh": list(obs.prices.eur_per_kwh)},
    }
    if said.inflow_forecast_m3h is not None:
        out["forecast"]["inflow_m3h"] = [round(x, 1) for x in said.inflow_forecast_m3h]
    if said.inflow_quantiles_m3h:
        out["forecast"]["inflow_quantiles_m3h"] = {f"p{round(q * 100):02d}": [round(x, 1) for x in v]
                                                   for q, v in sorted(said.inflow_quantiles_m3h.items())}
    if (plan := said.plan) is not None:
        step_h = obs.prices.step_s / 3600
        priced = zip(plan.power_kw, obs.prices.eur_per_kwh, strict=False)
        out["plan"] = {"start": stamp(plan.start), "step_s": obs.prices.step_s,
                       "level_m": [round(x, 3) for x in plan.level_m],
                       "outflow_m3h": [round(x, 1) for x in plan.outflow_m3h],
                       "power_kw": [round(x, 1) for x in plan.power_kw], "status": plan.status,
                       "running_by_group": {g: list(n) for g, n in plan.running_by_group.items()},
                       "cost_eur": round(sum(kw * price * step_h for kw, price in priced), 2)}
    return out

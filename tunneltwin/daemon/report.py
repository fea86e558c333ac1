"""The daemon's per-tick report: what SCADA sees of it (status, plan, forecast, KPIs)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from controller.base import Controller
from controller.mpc import MpcController
from kernel.contracts import Observation, Setpoints

if TYPE_CHECKING:
    from tunneltwin.daemon.stats import Stats


def report(obs: Observation, sp: Setpoints, controller: Controller, stats: Stats) -> dict[str, Any]:
    tel = obs.telemetry
    out: dict[str, Any] = {
        "status": {"state": "running", "time": tel.time.isoformat(), "controller": controller.name,
                   "level_m": round(tel.level_m, 3), "inflow_m3h": round(tel.inflow_m3h, 1),
                   "setpoints": {p.id: {"on": p.on, "freq_hz": round(p.freq_hz, 2),
                                        "stop_below_m": round(p.stop_below_m, 3)} for p in sp.pumps}},
        "kpis": stats.summary(),
        "forecast": {"start": tel.time.isoformat(), "step_s": obs.prices.step_s,
                     "price_eur_per_kwh": list(obs.prices.eur_per_kwh)},
    }
    if isinstance(controller, MpcController):
        forecast = controller.log[-1].inflow_forecast_m3h if controller.log else ()
        out["forecast"]["inflow_m3h"] = [round(x, 1) for x in forecast]
        plan = controller.plan
        if plan is not None and controller.plan_time is not None:
            out["plan"] = {"start": controller.plan_time.isoformat(), "step_s": obs.prices.step_s,
                           "level_m": [round(x, 3) for x in controller.model.levels(plan.volumes_m3)],
                           "outflow_m3h": [round(float(x), 1) for x in plan.outflow_m3h],
                           "power_kw": [round(float(x), 1) for x in plan.power_kw], "status": plan.status}
    return out

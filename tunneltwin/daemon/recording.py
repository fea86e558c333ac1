"""What one tick leaves in the audit log, and the state a restart resumes from."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from controller.base import Report
from controller.explain import problem_to_json
from kernel.contracts import Observation, Setpoints, Telemetry
from kernel.operator import OperatorCommands
from tunneltwin.daemon.audit import TickRecord

RAW_FIELDS = ("level_m", "volume_m3", "inflow_m3h")  # what validation may replace by an estimate


def raw_changes(tel: Telemetry, raw: Telemetry | None, behind: timedelta = timedelta(0)) -> dict[str, Any]:
    """The readings validation replaced by an estimate this tick, as the plant gave them, and the
    plant's time where its clock runs ``behind`` the daemon's."""
    if raw is None or raw.time + behind != tel.time:
        return {}
    out: dict[str, Any] = {k: getattr(raw, k) for k in RAW_FIELDS if getattr(raw, k) != getattr(tel, k)}
    if behind:
        out["time"] = raw.time.isoformat()
    used = {p.id: p.flow_m3h for p in tel.pumps}
    return out | {f"pump {p.id} flow_m3h": p.flow_m3h for p in raw.pumps if used.get(p.id, p.flow_m3h) != p.flow_m3h}


def tick_record(obs: Observation, sp: Setpoints, readback: Setpoints | None, name: str, said: Report,
                decide_s: float, rep: dict[str, Any], cmd: OperatorCommands,
                alarms: list[dict[str, Any]], raw: Telemetry | None = None,
                behind: timedelta = timedelta(0)) -> tuple[TickRecord, dict[str, Any]]:
    """``name`` decided this tick and ``said`` is its report of the decision. ``raw``: the
    telemetry as read; where validation replaced a value by its estimate, the record keeps
    both (``telemetry.raw``), since the substituted value alone lost what the plant said.
    ``behind``: how far the plant clock runs behind the daemon's time (``obs`` is on the
    daemon's); a restart resumes with it, and the pump timers stay on the plant's clock."""
    tel = obs.telemetry
    used = tel.model_dump(mode="json")
    if changed := raw_changes(tel, raw, behind):
        used["raw"] = changed
    rec = TickRecord(tel.time, name, used, sp.model_dump(mode="json"),
                     readback.model_dump(mode="json") if readback else None, decide_s,
                     forecast=_summary(rep.get("forecast")), plan=rep.get("plan"),
                     overrides=overrides(said, tel.time), alarms=alarms, solver_status=_status(said),
                     problem=problem_to_json(said.problem) if said.problem is not None else None)
    state = {"timers": timers(obs, behind), "operator": command(cmd),
             "clock": {"plant_behind_s": behind.total_seconds()}} | ({"plan": rep["plan"]} if "plan" in rep else {})
    return rec, state


def timers(obs: Observation, behind: timedelta = timedelta(0)) -> dict[str, dict[str, Any]]:
    """Per pump: on, since when (plant time), starts, run hours: what a restart needs."""
    tel = obs.telemetry
    plant_time = tel.time - behind
    return {p.id: {"on": p.status.is_on, "since": (plant_time - timedelta(seconds=p.time_in_state_s)).isoformat(),
                   "starts": p.starts, "run_hours_h": p.run_hours_h} for p in tel.pumps}


def command(cmd: OperatorCommands) -> dict[str, Any]:
    weights = {} if cmd.smooth_eur_per_m3h is None else {"smooth_eur_per_m3h": cmd.smooth_eur_per_m3h}
    return {"optimiser": "on" if cmd.optimiser_on else "off", "modes": cmd.modes, "limits": cmd.limits,
            "weights": weights}


def _summary(forecast: dict[str, Any] | None) -> dict[str, Any] | None:
    if not forecast:
        return None
    inflow = forecast.get("inflow_m3h") or []
    prices = forecast.get("price_eur_per_kwh") or []
    return {"inflow_m3h_next": inflow[:4], "inflow_m3h_mean": sum(inflow) / len(inflow) if inflow else None,
            "prices_known": len(prices), "price_eur_per_kwh_next": prices[:4]}


def overrides(said: Report, now: datetime) -> list[dict[str, Any]]:
    """The supervisor's changes to the decision made at ``now``, newest first."""
    return [{"rule": o.rule, "pump": o.pump_id, "detail": o.detail} for o in reversed(said.overrides) if o.time == now]


def _status(said: Report) -> str | None:
    return f"{said.source}: {said.status}" if said.source is not None else None


def forecast_error(said: Report, obs: Observation) -> float | None:
    """The inflow forecast made at the last tick for the interval just ended, minus what came."""
    if said.previous_forecast_m3h is None:
        return None
    return said.previous_forecast_m3h - obs.telemetry.inflow_m3h

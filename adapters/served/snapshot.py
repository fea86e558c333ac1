"""What our simulators serve: each bound field's canonical value, from the twin's observation."""

from __future__ import annotations

from typing import Any

from adapters.tagmap import Binding
from controller.forecast import ExternalInflow
from kernel.contracts import QUANTILE_FIELDS, Observation
from twin.lockstep import LockstepPlant

FORECAST_STEPS = 192  # a served external forecast reaches 2 days at 15 min, past any horizon we plan


class Snapshot:
    """One observation laid out by table, so any tag map can pick its fields."""

    def __init__(self, plant: LockstepPlant, obs: Observation, forecast: ExternalInflow | None = None) -> None:
        tel = obs.telemetry
        ahead = forecast.ahead(tel.time, plant.setup.step_s, FORECAST_STEPS) if forecast else None
        self.forecast: dict[str, Any] = {} if ahead is None else {
            "time": ahead.start, "step_s": ahead.step_s, "inflow_m3h": list(ahead.inflow_m3h),
            **{QUANTILE_FIELDS[p]: list(v) for p, v in ahead.quantiles.items() if p in QUANTILE_FIELDS}}
        self.station: dict[str, Any] = {
            "time": tel.time, "level_m": tel.level_m, "volume_m3": tel.volume_m3, "inflow_m3h": tel.inflow_m3h,
            "outflow_m3h": tel.outflow_m3h, "overflow_m3": tel.overflow_m3, "prices": list(obs.prices.eur_per_kwh)}
        self.pumps = {p.id: {**p.model_dump(), "running": p.status.is_on} for p in tel.pumps}
        self.steps = {"done": plant.k, "remaining": plant.setup.steps - plant.k}

    def value(self, b: Binding) -> Any | None:
        """None for fields a simulator does not serve from telemetry (setpoints, step requests)."""
        if b.table == "station":
            return self.station.get(b.field)
        if b.table == "pump" and b.pump:
            return self.pumps[b.pump].get(b.field)
        if b.table == "step":
            return self.steps.get(b.field)
        if b.table == "forecast":
            return self.forecast.get(b.field)
        return None

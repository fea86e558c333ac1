"""A replay's result: one row per control step, the row describing the step ending at its time."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
from numpy.typing import NDArray

from kernel.contracts import Setpoints
from kernel.recorded import RecordedData
from twin.twin import IntervalRecord

Array = NDArray[np.float64]


@dataclass
class Trajectory:
    pump_ids: list[str]
    step_s: float
    timestamps: list[datetime] = field(default_factory=list)
    rows: dict[str, list[float]] = field(default_factory=dict)
    pump_on: list[list[bool]] = field(default_factory=list)
    pump_freq_hz: list[list[float]] = field(default_factory=list)
    pump_flow_m3h: list[list[float]] = field(default_factory=list)
    pump_power_kw: list[list[float]] = field(default_factory=list)
    pump_available: list[list[bool]] = field(default_factory=list)
    solve_s: list[float] = field(default_factory=list)

    def add(self, time: datetime, level_m: float, volume_m3: float, rec: IntervalRecord,
            price: float, commanded: dict[str, tuple[bool, float]], available: list[bool],
            spilled_m3: float) -> None:
        hours = self.step_s / 3600
        power = float(rec.pump_power_kw.sum())
        self.timestamps.append(time)
        for key, value in (("level_m", level_m), ("volume_m3", volume_m3),
                           ("inflow_m3h", rec.inflow_m3h), ("outflow_m3h", float(rec.pump_flow_m3h.sum())),
                           ("price_eur_per_kwh", price), ("power_kw", power),
                           ("energy_kwh", power * hours), ("cost_eur", power * hours * price),
                           ("overflow_m3", spilled_m3)):
            self.rows.setdefault(key, []).append(value)
        # on = commanded on for the interval (or stopped inside it by its stop level, see
        # LockstepPlant.step). Not "pumped": a stop's 30 s ramp-down delivers a little water
        # when the twin steps finely near a stop level, and is not a run of the pump
        self.pump_on.append([commanded[p][0] for p in self.pump_ids])
        self.pump_freq_hz.append([commanded[p][1] for p in self.pump_ids])
        self.pump_flow_m3h.append([float(x) for x in rec.pump_flow_m3h])
        self.pump_power_kw.append([float(x) for x in rec.pump_power_kw])
        self.pump_available.append(available)

    def col(self, key: str) -> Array:
        return np.asarray(self.rows.get(key, []), dtype=float)

    def arr(self, name: str) -> NDArray[np.float64]:
        return np.asarray(getattr(self, name), dtype=float).reshape(len(self.timestamps), -1)

    def __len__(self) -> int:
        return len(self.timestamps)


def commanded(setpoints: Setpoints, previous: dict[str, tuple[bool, float]]) -> dict[str, tuple[bool, float]]:
    out = dict(previous)
    for sp in setpoints.pumps:
        out[sp.id] = (sp.on, sp.freq_hz if sp.on else 0.0)
    return out


def from_recorded(data: RecordedData, pump_ids: list[str], price_key: str,
                  available: list[bool]) -> Trajectory:
    """The recorded operation as a trajectory, so the rule checker can judge it as it is."""
    traj = Trajectory(pump_ids, data.step_s)
    hours = data.step_s / 3600
    price = data.prices_eur_per_kwh[price_key]
    for k in range(1, len(data)):
        flows = np.array([data.pump_flow_m3h[p][k] for p in pump_ids])
        powers = np.array([data.pump_power_kw[p][k] for p in pump_ids])
        rec = IntervalRecord(data.step_s, flows, powers, powers * hours, float(data.inflow_m3h[k]), 0.0)
        cmd = {p: (bool(flows[j] > 0 or powers[j] > 0), float(data.pump_freq_hz[p][k]))
               for j, p in enumerate(pump_ids)}
        traj.add(data.timestamps[k], float(data.level_m[k]), float(data.volume_m3[k]), rec,
                 float(price[k]), cmd, available, 0.0)
    return traj

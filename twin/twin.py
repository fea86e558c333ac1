"""The Twin: one SimPy environment driving the plant, advanced in lockstep by its caller.

Lockstep means the caller owns time: ``advance`` runs the plant exactly one control
interval (or any span), then the caller reads ``telemetry`` and ``apply``s setpoints.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import simpy

from kernel.contracts import PumpTelemetry, Setpoints, Telemetry
from kernel.errors import SetpointError
from kernel.physics import PlantPhysics
from kernel.site import Site
from twin import model, processes
from twin.processes import InflowFn


@dataclass
class IntervalMeter:
    """Integrates flows and energy since the last ``take``; gives step averages."""

    n_pumps: int

    def __post_init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.seconds = 0.0
        self.pump_m3 = np.zeros(self.n_pumps)
        self.pump_kwh = np.zeros(self.n_pumps)
        self.inflow_m3 = 0.0
        self.spilled_m3 = 0.0

    def add(self, flows: model.StepFlows, dt: float) -> None:
        self.seconds += dt
        self.pump_m3 += flows.pump_flow_m3h * dt / 3600.0
        self.pump_kwh += flows.pump_power_kw * dt / 3600.0
        self.inflow_m3 += flows.inflow_m3h * dt / 3600.0
        self.spilled_m3 += flows.spilled_m3


@dataclass(frozen=True)
class IntervalRecord:
    """Step averages over the span since the previous record."""

    seconds: float
    pump_flow_m3h: np.ndarray
    pump_power_kw: np.ndarray
    pump_energy_kwh: np.ndarray
    inflow_m3h: float
    spilled_m3: float


class Twin:
    """Digital twin of one site, starting at ``start`` with the tunnel at ``level_m``."""

    def __init__(self, site: Site, start: datetime, inflow: InflowFn, level_m: float,
                 running: dict[str, float] | None = None,
                 physics: PlantPhysics | None = None) -> None:
        self.site = site
        self.start = start
        self.ids = site.pump_ids
        self.model = model.PlantModel.from_site(site, physics)
        self.inflow_m3h = inflow
        running = running or {}
        self.state = self.model.initial_state(
            level_m,
            on=np.array([i in running for i in self.ids]),
            freq_hz=np.array([running.get(i, 0.0) for i in self.ids]),
            available=np.array([p.available for p in site.pumps]),
        )
        self.meter = IntervalMeter(len(self.ids))
        self.env = simpy.Environment()
        self.env.process(processes.plant(self.env, self, site.timing.internal_step_s))
        self._last_inflow_m3h = inflow(0.0)
        self._last_flow = self.model.pump_flows(self.state.freq_hz, level_m)

    @property
    def now(self) -> datetime:
        return self.start + timedelta(seconds=float(self.env.now))

    def advance(self, seconds: float | None = None) -> IntervalRecord:
        """Run the plant for ``seconds`` (default one control interval) and meter it."""
        span = self.site.timing.control_interval_s if seconds is None else seconds
        self.meter.reset()
        self.env.run(until=self.env.now + span)
        return self._record()

    def _record(self) -> IntervalRecord:
        m = self.meter
        hours = m.seconds / 3600.0
        self._last_inflow_m3h = m.inflow_m3 / hours if hours else self._last_inflow_m3h
        self._last_flow = self.model.pump_flows(self.state.freq_hz, self.level_m)
        return IntervalRecord(m.seconds, m.pump_m3 / hours, m.pump_kwh / hours, m.pump_kwh.copy(),
                              self._last_inflow_m3h, m.spilled_m3)

    def stopped_by_level(self) -> list[str]:
        """Pumps their stop level stopped since their last start."""
        s = self.state
        off = (s.status == model.OFF) | (s.status == model.STOPPING)
        return [p for k, p in enumerate(self.ids) if s.stopped_at_level[k] and off[k]]

    def schedule_outage(self, pump_id: str, start_s: float, end_s: float) -> None:
        self.env.process(processes.outage(self.env, self, self.ids.index(pump_id), start_s, end_s))

    @property
    def level_m(self) -> float:
        return self.model.physics.geometry.level(self.state.volume_m3)

    def set_level(self, level_m: float) -> None:
        """Tracking mode: correct the twin to a measured level, as beside a live plant."""
        self.state.volume_m3 = self.model.physics.geometry.volume(level_m)

    def validate(self, setpoints: Setpoints) -> list[int]:
        """Each command's pump index; SetpointError for the first one the plant cannot carry out."""
        return [self._validate(sp.id, sp.on, sp.freq_hz) for sp in setpoints.pumps]

    def apply(self, setpoints: Setpoints) -> None:
        """Validate every pump command first, so a bad setpoint changes nothing."""
        on = self.state.status.copy() != model.OFF
        on &= self.state.status != model.STOPPING
        freq = self.state.target_hz.copy()
        stops = self.state.stop_below_m.copy()
        for index, sp in zip(self.validate(setpoints), setpoints.pumps, strict=True):
            on[index] = sp.on
            freq[index] = sp.freq_hz if sp.on else 0.0
            stops[index] = sp.stop_below_m
        model.command(self.model, self.state, on, freq, stops)

    def _validate(self, pump_id: str, on: bool, freq_hz: float) -> int:
        if pump_id not in self.ids:
            raise SetpointError(f"unknown pump {pump_id!r}; this site has {self.ids}")
        if math.isnan(freq_hz):
            raise SetpointError(f"pump {pump_id}: frequency is NaN")
        ptype = self.site.pump_type(pump_id)
        if on and not ptype.drive_min_hz <= freq_hz <= ptype.drive_max_hz:
            raise SetpointError(
                f"pump {pump_id}: frequency {freq_hz} Hz outside the drive's range "
                f"{ptype.drive_min_hz}-{ptype.drive_max_hz} Hz")
        return self.ids.index(pump_id)

    def telemetry(self) -> Telemetry:
        s = self.state
        flow, power = self._last_flow
        pumps = tuple(
            PumpTelemetry(
                id=pid, status=model.STATUS[int(s.status[k])], freq_hz=float(s.freq_hz[k]),
                flow_m3h=float(flow[k]), power_kw=float(power[k]), run_hours_h=s.run_s[k] / 3600,
                starts=int(s.starts[k]), time_in_state_s=float(s.since_switch_s[k]),
                available=bool(s.available[k]))
            for k, pid in enumerate(self.ids))
        return Telemetry(time=self.now, level_m=self.level_m, volume_m3=s.volume_m3,
                         inflow_m3h=self._last_inflow_m3h, outflow_m3h=float(flow.sum()),
                         overflow_m3=s.overflow_m3, pumps=pumps)

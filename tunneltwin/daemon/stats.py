"""The daemon's running totals: what it saw and did, for the summary, the KPIs and the probes."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from datetime import date, datetime

from kernel.contracts import Observation
from scenarios.kpis import percentiles

KEEP = 35_040  # per-tick timings kept for the percentiles: a year at 15 min, a few hundred kB


@dataclass
class Stats:
    """What the daemon saw and did. Energy and cost are estimates from telemetry: the power read at
    each tick, taken as the mean over the interval it closes, at that interval's price."""

    step_h: float
    emptying_level_m: float | None = None  # the day counts as emptied at or below it
    ticks: int = 0
    first: datetime | None = None
    last: datetime | None = None
    level_min_m: float = float("inf")
    level_max_m: float = float("-inf")
    energy_kwh: float = 0.0
    cost_eur: float = 0.0
    decide_s: deque[float] = field(default_factory=lambda: deque(maxlen=KEEP))
    io_s: deque[float] = field(default_factory=lambda: deque(maxlen=KEEP))  # read telemetry + write + read back
    step_s: deque[float] = field(default_factory=lambda: deque(maxlen=KEEP))  # the lockstep handshake or the wait
    fallbacks: int = 0
    forecast_fallbacks: int = 0  # decisions on the internal forecast: the external one stale or unusable
    write_rejections: int = 0
    comms_errors: int = 0
    reconnects: int = 0
    wall_s: float = 0.0
    today: Day | None = None  # the plant day of the last reading
    _price: float | None = None

    def record(self, obs: Observation, decide_s: float, io_s: float) -> None:
        tel = obs.telemetry
        self.ticks += 1
        self.first = self.first or tel.time
        self.last = tel.time
        self.level_min_m = min(self.level_min_m, tel.level_m)
        self.level_max_m = max(self.level_max_m, tel.level_m)
        if self.today is None or self.today.date != tel.time.date():
            self.today = Day(tel.time.date(), last_f2_m3h=self.today.last_f2_m3h if self.today else None)
        kwh = 0.0
        if self._price is not None:  # this reading closes the interval that the last tick's price covered
            kwh = sum(p.power_kw for p in tel.pumps) * self.step_h
            self.energy_kwh += kwh
            self.cost_eur += kwh * self._price
        self.today.add(tel.level_m, tel.level_at_most_m(), tel.outflow_m3h, kwh, kwh * (self._price or 0.0))
        self._price = obs.prices.eur_per_kwh[0] if obs.prices.eur_per_kwh else None
        self.decide_s.append(decide_s)
        self.io_s.append(io_s)

    def summary(self) -> dict[str, object]:
        return {"ticks": self.ticks, "plant_time": [str(self.first), str(self.last)],
                "level_m": [round(self.level_min_m, 3), round(self.level_max_m, 3)],
                "energy_kwh_from_telemetry": round(self.energy_kwh, 1),
                "cost_eur_from_telemetry": round(self.cost_eur, 2),
                "decide_s": percentiles(self.decide_s) if self.decide_s else {},
                "io_s": percentiles(self.io_s) if self.io_s else {},
                "step_s": percentiles(self.step_s) if self.step_s else {},
                "fallbacks": self.fallbacks, "external_forecast_fallbacks": self.forecast_fallbacks,
                "write_rejections": self.write_rejections,
                "comms_errors": self.comms_errors, "reconnects": self.reconnects, "wall_s": round(self.wall_s, 2),
                "today": self.today.summary(self.emptying_level_m) if self.today else None}


@dataclass
class Day:
    """The plant day so far (the plant clock's date): what an operator asks of today."""

    date: date
    cost_eur: float = 0.0
    energy_kwh: float = 0.0
    level_min_m: float = float("inf")
    level_min_high_m: float = float("inf")  # the lowest of the highest the level may have been (estimates)
    f2_changes_m3h: list[float] = field(default_factory=list)  # |F2 - F2 of the tick before|
    last_f2_m3h: float | None = None

    def add(self, level_m: float, level_high_m: float, f2_m3h: float, kwh: float, eur: float) -> None:
        self.level_min_m = min(self.level_min_m, level_m)
        self.level_min_high_m = min(self.level_min_high_m, level_high_m)
        self.energy_kwh += kwh
        self.cost_eur += eur
        if self.last_f2_m3h is not None:
            self.f2_changes_m3h.append(abs(f2_m3h - self.last_f2_m3h))
        self.last_f2_m3h = f2_m3h

    def summary(self, emptying_level_m: float | None) -> dict[str, object]:
        changes = self.f2_changes_m3h
        return {"date": self.date.isoformat(), "cost_eur": round(self.cost_eur, 2),
                "energy_kwh": round(self.energy_kwh, 1), "level_min_m": round(self.level_min_m, 3),
                "emptied": None if emptying_level_m is None else self.level_min_high_m <= emptying_level_m,
                "f2_mean_abs_step_change_m3h": round(sum(changes) / len(changes), 1) if changes else None}

"""Rule-based level controller, like a plant's own; also the fallback when the optimiser fails.

Each interval: choose an outflow that steers the level to a target, pick the pump set
that can deliver it within the timers, then a common frequency. It keeps every hard
rule by construction: it only starts a pump if the level can absorb two hours of that
set at minimum speed, never stops the last pump, and checks the predicted level.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from controller.base import Report
from controller.model import StationModel
from kernel.contracts import Observation, PumpSetpoint, Setpoints, Telemetry
from kernel.site import Site


@dataclass(frozen=True)
class BaselineSettings:
    target_level_m: float = 2.0  # normal operating level
    settle_h: float = 1.0  # time constant for steering the level back to target
    emptying_from_hour: int = 1  # local hour from which the daily emptying may start
    safety_margin_m: float = 0.15  # kept above the minimum level over a 2-hour start
    guard_margin_m: float = 0.05  # kept above the minimum level at the end of each interval
    alarm_margin_m: float = 0.4  # start everything allowed this far below the alarm
    flow_margin: float = 0.97  # fraction of the F2 limit we plan up to
    inflow_low_factor: float = 0.9  # times the last day's lowest inflow, for the 2-hour start check
    pessimistic_inflow: float = 0.85  # inflow factor the guard checks the floor with
    landing_below_m: float = 0.12  # land this far under the emptying level
    dry_window_h: float = 24.0  # sliding inflow window (a full diurnal cycle) for "dry weather"


@dataclass
class DayTracker:
    """Has the tunnel been emptied today? (Causal, and an estimated level counts only if its
    high end is under the emptying level.)"""

    day: date | None = None
    emptied: bool = False

    def update(self, tel: Telemetry, emptying_level_m: float) -> None:
        today = tel.time.date()
        if self.day != today:
            self.day, self.emptied = today, False
        if tel.level_at_most_m() <= emptying_level_m:
            self.emptied = True



class BaselineController:
    name = "baseline"

    def __init__(self, site: Site, settings: BaselineSettings | None = None,
                 model: StationModel | None = None) -> None:
        self.site = site
        self.rules = site.rules
        self.cfg = settings or BaselineSettings()
        self.model = model or StationModel(site)
        self.step_h = site.timing.control_interval_s / 3600
        self.days = DayTracker()
        self.recent_inflow: deque[float] = deque(maxlen=round(86400 / site.timing.control_interval_s))
        self._observed: Telemetry | None = None

    def retune(self, site: Site) -> None:
        """Operator-tightened rules from the next decision on (the daemon's live limits)."""
        self.site, self.rules = site, site.rules
        self.model.site = site

    def reprice(self, smooth_eur_per_m3h: float | None) -> None:
        """The rule-based baseline prices nothing."""

    def report(self) -> Report:
        """The rule-based baseline forecasts nothing and plans nothing."""
        return Report()

    def decide(self, obs: Observation) -> Setpoints:
        tel = obs.telemetry
        if self._observed is not tel:
            self.observe(tel)
        target = self._target_outflow(tel)
        on = self._choose_set(tel, target)
        freq = self.model.freq_for_flow(on, target, tel.level_m)
        on, freq = self._f2_limit(tel, on, freq, target)
        on, freq = self._guard(tel, on, freq)
        return self._setpoints(on, freq)

    def recall(self, history: Sequence[Telemetry]) -> None:
        """The day and inflow history from readings taken before this run."""
        for tel in history:
            self.observe(tel)

    def observe(self, tel: Telemetry) -> None:
        """Keep the day and inflow history current even on intervals another controller decides."""
        self.days.update(tel, self.rules.emptying_level_m)
        self.recent_inflow.append(tel.inflow_m3h)
        self._observed = tel

    # -- targets ---------------------------------------------------------------

    def dry(self) -> bool:
        """Dry weather: the last ``dry_window_h`` of inflow, as a daily rate, is under the limit.
        (The rule checker judges the whole day afterwards; a controller can only look back.)"""
        n = round(self.cfg.dry_window_h / self.step_h)
        recent = list(self.recent_inflow)[-n:]
        return sum(recent) / len(recent) * 24 < self.rules.dry_day_max_inflow_m3

    def emptying_now(self, tel: Telemetry) -> bool:
        return not self.days.emptied and tel.time.hour >= self.cfg.emptying_from_hour and self.dry()

    def _target_outflow(self, tel: Telemetry) -> float:
        if self.emptying_now(tel):
            # Land under the emptying level, planned on a pessimistic inflow so that a miss
            # lands high and retries next interval; the guard keeps the floor in any case.
            land = self.rules.emptying_level_m - self.cfg.landing_below_m
            inflow = self.cfg.pessimistic_inflow * tel.inflow_m3h
            wanted = inflow + (tel.volume_m3 - self.model.volume(land)) / self.step_h
        else:
            gap = tel.volume_m3 - self.model.volume(self.cfg.target_level_m)
            wanted = tel.inflow_m3h + gap / self.cfg.settle_h
        return min(max(wanted, 0.0), self.cfg.flow_margin * self.rules.max_outflow_m3h)

    # -- pump set --------------------------------------------------------------

    def _on(self, tel: Telemetry) -> list[int]:
        return [i for i, p in enumerate(tel.pumps) if p.status.is_on and p.available]

    def _startable(self, tel: Telemetry, on: list[int]) -> list[int]:
        return [i for i, p in enumerate(tel.pumps) if i not in on and p.available
                and (p.status.is_on or p.time_in_state_s >= self.rules.min_off_s)]

    def _stoppable(self, tel: Telemetry, on: list[int]) -> list[int]:
        return [i for i in on if tel.pumps[i].time_in_state_s >= self.rules.min_on_s]

    def _choose_set(self, tel: Telemetry, target: float) -> list[int]:
        on = self._on(tel)
        if not on:
            return [self._first_pump(tel)]
        on = self._add_pumps(tel, on, target)
        on = self._drop_pumps(tel, on, target)
        return self._swap_to_smaller(tel, on, target)

    def _first_pump(self, tel: Telemetry) -> int:
        """Nothing runs: the always-one-pump rule outranks min-off, so take the best we have."""
        avail = [i for i, p in enumerate(tel.pumps) if p.available]
        ready = self._startable(tel, []) or avail
        return min(ready, key=lambda i: (self._max_flow([i], tel), tel.pumps[i].run_hours_h))

    def _max_flow(self, on: list[int], tel: Telemetry) -> float:
        return self.model.set_flow(on, self.rules.max_freq_hz, tel.level_m)

    def _min_flow(self, on: list[int], tel: Telemetry) -> float:
        return self.model.set_flow(on, self.rules.min_freq_hz, tel.level_m)

    def _add_pumps(self, tel: Telemetry, on: list[int], target: float) -> list[int]:
        high = tel.level_m >= self.rules.alarm_level_m - self.cfg.alarm_margin_m
        while self._max_flow(on, tel) < target or high:
            options = [i for i in self._startable(tel, on)
                       if self._start_is_safe(tel, [*on, i]) or high]
            options = [i for i in options if self._min_flow([*on, i], tel)
                       <= self.cfg.flow_margin * self.rules.max_outflow_m3h]
            if not options:
                break
            fits = [i for i in options if self._max_flow([*on, i], tel) >= target]
            pick = min(fits or options, key=lambda i: (
                self._min_flow([i], tel) if fits else -self._max_flow([i], tel),
                tel.pumps[i].run_hours_h))
            on = [*on, pick]
            high = high and self._max_flow(on, tel) < self.rules.max_outflow_m3h * 0.9
        return on

    def _f2_limit(self, tel: Telemetry, on: list[int], freq: float, target: float) -> tuple[list[int], float]:
        """F2 within its limit at the level the interval may reach (a pump lifts more as the
        level rises): slow down, and where even minimum speed is too much (a full tunnel, 5
        pumps: 16,328 m3/h at 14.1 m) stop the pumps that may stop, largest first. The limit
        holds over the alarm too: one hard rule is not traded for another."""
        limit = self.rules.max_outflow_m3h
        high = self.model.level_reached(tel.level_m, tel.volume_m3, tel.inflow_m3h - target, self.step_h)
        for i in sorted(self._stoppable(tel, on), key=lambda i: -self.model.set_flow([i], freq, high)):
            if len(on) > 1 and self.model.set_flow(on, self.rules.min_freq_hz, high) > limit:
                on = [j for j in on if j != i]
        return on, min(freq, self.model.freq_for_flow(on, limit, high))

    def _start_is_safe(self, tel: Telemetry, new_set: list[int]) -> bool:
        """Can the tunnel absorb this set at minimum speed for the whole min-on time?"""
        hours = self.rules.min_on_s / 3600
        low = self.cfg.inflow_low_factor * min(self.recent_inflow, default=tel.inflow_m3h)
        drain = (self._min_flow(new_set, tel) - low) * hours
        floor = self.model.volume(self.rules.min_level_m + self.cfg.safety_margin_m)
        return drain <= 0.0 or tel.volume_m3 - drain >= floor

    def _drop_pumps(self, tel: Telemetry, on: list[int], target: float) -> list[int]:
        while len(on) > 1 and self._min_flow(on, tel) > target:
            options = [i for i in self._stoppable(tel, on)
                       if self._max_flow([j for j in on if j != i], tel) >= min(target, tel.inflow_m3h)]
            if not options:
                break
            drop = max(options, key=lambda i: (self._min_flow([i], tel), tel.pumps[i].run_hours_h))
            on = [j for j in on if j != drop]
        return on

    def _swap_to_smaller(self, tel: Telemetry, on: list[int], target: float) -> list[int]:
        """One pump left and even its minimum is too much (low night inflow): hand over to a
        smaller pump, since the always-one-pump rule forbids simply stopping it."""
        if len(on) != 1 or self._min_flow(on, tel) <= target or on[0] not in self._stoppable(tel, on):
            return on
        smaller = [i for i in self._startable(tel, on)
                   if self._min_flow([i], tel) < self._min_flow(on, tel) and self._start_is_safe(tel, [i])]
        if not smaller:
            return on
        return [min(smaller, key=lambda i: (abs(self._min_flow([i], tel) - target), tel.pumps[i].run_hours_h))]

    # -- last check ------------------------------------------------------------

    def _max_safe_outflow(self, tel: Telemetry) -> float:
        """Most we may pump this interval so a pessimistic inflow still ends above the floor."""
        floor = self.model.volume(self.rules.min_level_m + self.cfg.guard_margin_m)
        return self.cfg.pessimistic_inflow * tel.inflow_m3h + (tel.volume_m3 - floor) / self.step_h

    def _guard(self, tel: Telemetry, on: list[int], freq: float) -> tuple[list[int], float]:
        """Slow down to the safe outflow; if even minimum speed is too much, shed what may stop."""
        cap = self._max_safe_outflow(tel)
        if self.model.set_flow(on, freq, tel.level_m) <= cap:
            return on, freq
        freq = min(freq, self.model.freq_for_flow(on, cap, tel.level_m))
        for i in sorted(self._stoppable(tel, on), key=lambda i: -self._min_flow([i], tel)):
            if len(on) > 1 and self.model.set_flow(on, freq, tel.level_m) > cap:
                on = [j for j in on if j != i]
        return on, freq

    def _setpoints(self, on: list[int], freq: float) -> Setpoints:
        ids = self.model.ids
        return Setpoints(pumps=tuple(
            PumpSetpoint(id=pid, on=i in on, freq_hz=round(freq, 3) if i in on else 0.0)
            for i, pid in enumerate(ids)))

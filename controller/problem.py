"""Building the MILP's input from telemetry and forecasts: a pure function of what is given.

Nothing here changes state. The emptying days arrive as step sets already settled against
the bookings (``controller.emptying``); the level guess arrives from the previous plan.
"""

from __future__ import annotations

import dataclasses
import math
from datetime import date, datetime, timedelta

import numpy as np
from numpy.typing import NDArray

from controller.emptying import EmptyingTracker, day_of
from controller.milp import Group, Problem, Weights
from controller.model import StationModel
from controller.settings import MpcSettings
from controller.supervisor import Supervisor
from controller.uncertainty import Spread
from kernel.contracts import Telemetry
from kernel.site import Site

Array = NDArray[np.float64]


def tail_quantiles(risk: float) -> tuple[tuple[float, float], ...]:
    """The inflow's upper tail as a few quantiles, each with the probability it stands for,
    down to the rarest storm the reserve plans for (quantile 1 - risk): P90 for 0.90-0.99, P99
    for 0.99-0.999, and so on by decades; the last, 1 - risk, for the risk itself. Summing
    over them undercounts the expected excess (each band counts at its lower edge, and the
    tail past 1 - risk at 1 - risk). Risk 0: none."""
    if risk <= 0:
        return ()
    edges = [0.9]
    while 1 - edges[-1] > risk * (1 + 1e-9):
        edges.append(round(1 - (1 - edges[-1]) / 10, 12))
    edges[-1] = 1 - risk
    return tuple((q, round(hi - q, 12)) for q, hi in zip(edges, [*edges[1:], 1.0], strict=True))


class ProblemBuilder:
    def __init__(self, site: Site, cfg: MpcSettings, model: StationModel, supervisor: Supervisor) -> None:
        self.site, self.cfg, self.model, self.supervisor = site, cfg, model, supervisor
        self.step_s = site.timing.control_interval_s
        self.step_h = self.step_s / 3600
        self.steps = max(1, round(cfg.horizon_h * 3600 / self.step_s))

    def problem(self, tel: Telemetry, inflow: Array, prices: Array, emptying_days: tuple[tuple[int, ...], ...],
                guess: Array, spread: Spread | None = None, landing_miss: float = 0.0,
                retry_miss: float = 0.0) -> Problem:
        rules, cfg = self.site.rules, self.cfg
        groups = self.groups(tel)
        locked_on, locked_off = self.locks(tel, groups)
        integer_steps = None if cfg.solver.integer_h is None else round(cfg.solver.integer_h / self.step_h)
        return Problem(
            step_h=self.step_h, volume0_m3=tel.volume_m3, inflow_m3h=inflow, price_eur_per_kwh=prices,
            level_guess_m=guess, groups=groups,
            n_now=np.array([sum(tel.pumps[i].status.is_on for i in g.members) for g in groups], dtype=np.int64),
            locked_on=locked_on, locked_off=locked_off, outflow_now_m3h=tel.outflow_m3h,
            v_min_m3=self.model.volume(rules.min_level_m + cfg.floor_margin_m),
            v_max_m3=self.model.volume(rules.alarm_level_m - cfg.ceiling_margin_m),
            v_empty_m3=self.model.volume(rules.emptying_level_m - cfg.emptying_below_m),
            v_low_m3=self.model.volume(rules.emptying_level_m),
            q_floor_m3h=self.floor_flows(groups), inflow_low_m3h=self.low_side(spread),
            plc_stops=cfg.stop_levels,
            guard_steps=self.guard_steps(guess),
            emptying_days=emptying_days,
            min_on_steps=math.ceil(rules.min_on_s / self.step_s - 1e-9),
            min_off_steps=math.ceil(rules.min_off_s / self.step_s - 1e-9),
            max_outflow_m3h=cfg.solver.flow_margin * rules.max_outflow_m3h, min_pumps_on=rules.min_pumps_on,
            weights=self.weights(prices), integer_steps=integer_steps, block_steps=cfg.solver.block_steps,
            fine_steps=self.fine_steps(tel.time), block_flows=cfg.solver.block_flows,
            reserve_m3=None if spread is None else self.storm_reserve(tel, groups, spread, cfg.solver.flow_margin
                                                                        * rules.max_outflow_m3h),
            reserve_p=tuple(p for _, p in tail_quantiles(cfg.storm_risk)),
            v_alarm_m3=self.model.volume(rules.alarm_level_m), landing_miss=landing_miss, retry_miss=retry_miss)

    def storm_reserve(self, tel: Telemetry, groups: tuple[Group, ...], spread: Spread, f2_max_m3h: float) -> Array:
        """Per tail quantile t of ``tail_quantiles(storm_risk)`` (rows) and step k (columns),
        the room to keep free under the alarm: the most inflow, on that quantile, that the pumps
        available now cannot remove within the F2 limit over any stretch of the next
        ``storm_window_h`` hours: R_tk = max(0, max_m sum_(j=k+1..k+m) e_tj), e_tj the excess
        volume of step j. Zero in dry weather (the tail stays far under the capacity); it grows
        with wet weather, a forecast that sees rain, and with pumps out of service."""
        n = len(spread.at(0.5))
        tails = tail_quantiles(self.cfg.storm_risk)
        if not tails:
            return np.zeros((0, n))
        level = np.array([self.site.rules.alarm_level_m])
        capacity = sum(float(self.model.band(i, level)[1][0]) for g in groups for i in g.members)
        window = max(1, round(self.cfg.storm_window_h / self.step_h))
        reserve = np.zeros((len(tails), n))
        for t, (q, _) in enumerate(tails):
            excess = (spread.at(q) - min(capacity, f2_max_m3h)) * self.step_h
            total = np.r_[0.0, np.cumsum(excess)]  # total[j] = excess of steps 0..j-1
            for k in range(n - 1):
                reserve[t, k] = max(0.0, float(np.max(total[k + 2:min(k + 1 + window, n) + 1])) - total[k + 1])
        return reserve

    def step_end(self, now: datetime, k: int) -> datetime:
        """End of plan step k; its reading belongs to the day of ``step_end - STAMP``."""
        return now + timedelta(seconds=(k + 1) * self.step_s)

    def step_ends(self, now: datetime) -> list[datetime]:
        return [self.step_end(now, k) for k in range(self.steps)]

    def fine_steps(self, now: datetime) -> int:
        """With held flows, the fine steps stretch so that blocks start on the clock's block
        boundaries (whole hours for 4 x 15 min): prices change on the hour, and a block across
        it would hold its flows through a price change."""
        if not self.cfg.solver.block_flows:
            return self.cfg.solver.fine_steps
        block_s = self.cfg.solver.block_steps * self.step_s
        seconds = now.hour * 3600 + now.minute * 60 + now.second
        to_boundary = round((-seconds % block_s) / self.step_s)
        return self.cfg.solver.fine_steps + (to_boundary - self.cfg.solver.fine_steps) % self.cfg.solver.block_steps

    def low_side(self, spread: Spread | None) -> Array | None:
        """The inflow the floor, the guards and the dry-day test plan against: the ``floor_risk``
        quantile of the forecast's spread (None without a spread: the forecast itself). It is
        as wide as the errors the forecast has made at each lead time in this weather, so the
        near term is guarded tightly only when the forecast has been wrong there."""
        if spread is None or self.cfg.floor_risk <= 0:
            return None
        return spread.at(self.cfg.floor_risk)

    def guard_steps(self, guess: Array) -> tuple[int, ...]:
        """Near-term steps expected near the bottom, where an inflow dip would empty the tunnel."""
        near = guess[:self.cfg.solver.fine_steps]
        return tuple(int(k) for k in np.flatnonzero(near < self.cfg.guard_level_m))

    def floor_flows(self, groups: tuple[Group, ...]) -> Array:
        level = np.array([self.site.rules.min_level_m])
        return np.array([np.mean([self.model.band(i, level)[0][0] for i in g.members]) for g in groups])

    def groups(self, tel: Telemetry) -> tuple[Group, ...]:
        by_type: dict[str, list[int]] = {}
        for i, (pump, t) in enumerate(zip(self.site.pumps, tel.pumps, strict=True)):
            if t.available:
                key = pump.type if self.cfg.solver.grouped else pump.id
                by_type.setdefault(key, []).append(i)
        return tuple(Group(name, tuple(members)) for name, members in by_type.items())

    def locks(self, tel: Telemetry, groups: tuple[Group, ...]) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
        """Per group and step: pumps that must still run (min-on) or still rest (min-off)."""
        rules = self.site.rules
        ahead = np.arange(self.steps) * self.step_s + 1.0  # 1 s of timer slack
        on = np.zeros((len(groups), self.steps), dtype=np.int64)
        off = np.zeros_like(on)
        for g, group in enumerate(groups):
            for i in group.members:
                p = tel.pumps[i]
                if p.status.is_on:
                    on[g] += p.time_in_state_s + ahead < rules.min_on_s
                else:
                    off[g] += p.time_in_state_s + ahead < rules.min_off_s
        return on, off

    def mid_levels(self, volume0_m3: float, volumes_m3: Array) -> Array:
        starts = np.r_[volume0_m3, volumes_m3[:-1]]
        return self.model.levels(0.5 * (starts + volumes_m3))

    def emptying_candidates(self, tel: Telemetry, inflow: Array, days: EmptyingTracker,
                            low: Array | None = None) -> dict[date, list[int]]:
        """Per day that still needs its emptying inside the horizon, the steps it may land on.

        A day counts when it is whole in the horizon from here, or is today; it needs emptying
        unless it is wet even on the low side of the inflow (``low``, the floor_risk quantile;
        None: the forecast): measured so far plus the low side of the rest over the dry-day
        limit. Only a day that is surely wet goes without its emptying.
        """
        by_day: dict[date, list[int]] = {}
        for k, end in enumerate(self.step_ends(tel.time)):
            by_day.setdefault(day_of(end), []).append(k)
        today = day_of(self.step_end(tel.time, 0))
        per_day = round(86400 / self.step_s)
        out = {}
        for day, steps in by_day.items():
            if day in days.emptied or (day != today and len(steps) < per_day):
                continue
            expected = (days.inflow_m3.get(day, 0.0) if day == today else 0.0) \
                + float((inflow if low is None else low)[steps].sum()) * self.step_h
            if expected < self.site.rules.dry_day_max_inflow_m3:
                out[day] = steps
        return out

    def weights(self, prices: Array) -> Weights:
        """The terminal cost: a stored m3 will be pumped later at about today's mean price."""
        kwh_per_m3 = self._typical_kwh_per_m3()
        value = self.cfg.solver.terminal_factor * float(np.mean(prices)) * kwh_per_m3
        w = self.cfg.weights
        return dataclasses.replace(w, terminal_eur_per_m3=w.terminal_eur_per_m3 + value)

    def _typical_kwh_per_m3(self) -> float:
        level = 0.5 * (self.site.rules.min_level_m + self.site.rules.alarm_level_m)
        i = next(i for i, p in enumerate(self.site.pumps) if p.available)
        flow, power = self.model.pump_flow_power(i, self.site.rules.max_freq_hz, level)
        return power / flow if flow > 0 else 0.1


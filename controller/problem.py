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


class ProblemBuilder:
    def __init__(self, site: Site, cfg: MpcSettings, model: StationModel, supervisor: Supervisor) -> None:
        self.site, self.cfg, self.model, self.supervisor = site, cfg, model, supervisor
        self.step_s = site.timing.control_interval_s
        self.step_h = self.step_s / 3600
        self.steps = max(1, round(cfg.horizon_h * 3600 / self.step_s))

    def problem(self, tel: Telemetry, inflow: Array, prices: Array, emptying_days: tuple[tuple[int, ...], ...],
                guess: Array, spread: Spread | None = None) -> Problem:
        rules, cfg = self.site.rules, self.cfg
        groups = self.groups(tel)
        locked_on, locked_off = self.locks(tel, groups)
        integer_steps = None if cfg.integer_h is None else round(cfg.integer_h / self.step_h)
        return Problem(
            step_h=self.step_h, volume0_m3=tel.volume_m3, inflow_m3h=inflow, price_eur_per_kwh=prices,
            level_guess_m=guess, groups=groups,
            n_now=np.array([sum(tel.pumps[i].status.is_on for i in g.members) for g in groups], dtype=np.int64),
            locked_on=locked_on, locked_off=locked_off, outflow_now_m3h=tel.outflow_m3h,
            v_min_m3=self.model.volume(rules.min_level_m + cfg.floor_margin_m),
            v_max_m3=self.model.volume(rules.alarm_level_m - cfg.ceiling_margin_m),
            v_empty_m3=self.model.volume(rules.emptying_level_m - cfg.emptying_below_m),
            v_low_m3=self.model.volume(rules.emptying_level_m + cfg.low_floor_above_m),
            floor_buffer_m3=cfg.floor_inflow_share * inflow * self.step_h,
            q_floor_m3h=self.floor_flows(groups), self_regulating=cfg.supervisor.pessimistic_inflow,
            regulating_ahead=cfg.guard_ahead, regulating_from=cfg.guard_ahead_steps,
            landing_regulating=cfg.landing_guard if cfg.stop_levels else 1.0,
            guard_inflow_m3h=self.guard_inflow(tel, inflow) if cfg.guards_on_measured else None,
            guards_always=cfg.guards_always, plc_stops=cfg.stop_levels,
            first_floor_inflow_m3h=self.pessimistic_inflow(tel, float(inflow[0])) if cfg.robust_first_step
            else None,
            guard_steps=self.guard_steps(guess),
            emptying_days=emptying_days,
            min_on_steps=math.ceil(rules.min_on_s / self.step_s - 1e-9),
            min_off_steps=math.ceil(rules.min_off_s / self.step_s - 1e-9),
            max_outflow_m3h=cfg.flow_margin * rules.max_outflow_m3h, min_pumps_on=rules.min_pumps_on,
            weights=self.weights(prices), integer_steps=integer_steps, block_steps=cfg.block_steps,
            fine_steps=self.fine_steps(tel.time), block_flows=cfg.block_flows,
            reserve_m3=None if spread is None else self.storm_reserve(tel, groups, spread, cfg.flow_margin
                                                                        * rules.max_outflow_m3h),
            v_alarm_m3=self.model.volume(rules.alarm_level_m))

    def storm_reserve(self, tel: Telemetry, groups: tuple[Group, ...], spread: Spread, f2_max_m3h: float) -> Array:
        """Per step k, the room to keep free under the alarm: the most inflow, on the high
        quantile (1 - storm_risk), that the pumps available now cannot remove within the F2
        limit over any stretch of the next ``storm_window_h`` hours:
        R_k = max(0, max_m sum_(j=k+1..k+m) e_j), e_j the excess volume of step j. Zero in dry
        weather (the high quantile stays far under the capacity); it grows with wet weather, a
        forecast that sees rain, and with pumps out of service (a lower capacity)."""
        n = len(spread.at(0.5))
        if self.cfg.storm_risk <= 0:
            return np.zeros(n)
        level = np.array([self.site.rules.alarm_level_m])
        capacity = sum(float(self.model.band(i, level)[1][0]) for g in groups for i in g.members)
        excess = (spread.at(1 - self.cfg.storm_risk) - min(capacity, f2_max_m3h)) * self.step_h
        window = max(1, round(self.cfg.storm_window_h / self.step_h))
        total = np.r_[0.0, np.cumsum(excess)]  # total[j] = excess of steps 0..j-1
        reserve = np.zeros(n)
        for k in range(n - 1):
            reserve[k] = max(0.0, float(np.max(total[k + 2:min(k + 1 + window, n) + 1])) - total[k + 1])
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
        if not self.cfg.block_flows:
            return self.cfg.fine_steps
        block_s = self.cfg.block_steps * self.step_s
        seconds = now.hour * 3600 + now.minute * 60 + now.second
        to_boundary = round((-seconds % block_s) / self.step_s)
        return self.cfg.fine_steps + (to_boundary - self.cfg.fine_steps) % self.cfg.block_steps

    def pessimistic_inflow(self, tel: Telemetry, forecast_m3h: float) -> float:
        """The supervisor's pessimistic factor on the lower of forecast and measurement."""
        return self.cfg.supervisor.pessimistic_inflow * min(forecast_m3h, tel.inflow_m3h)

    def guard_inflow(self, tel: Telemetry, inflow: Array) -> Array:
        """Near term, a pump set near the bottom must regulate itself on the lower of forecast and
        measurement: a diurnal profile expecting the morning rise (recorded: 2,725 forecast,
        2,134 measured, 1,186 came) must not license a large pump that then runs its 2 h."""
        out = np.array(inflow, dtype=float)
        near = slice(0, self.cfg.fine_steps)
        out[near] = np.minimum(out[near], tel.inflow_m3h)
        return out

    def guard_steps(self, guess: Array) -> tuple[int, ...]:
        """Near-term steps expected near the bottom, where an inflow dip would empty the tunnel."""
        near = guess[:self.cfg.fine_steps]
        return tuple(int(k) for k in np.flatnonzero(near < self.cfg.guard_level_m))

    def floor_flows(self, groups: tuple[Group, ...]) -> Array:
        level = np.array([self.site.rules.min_level_m])
        return np.array([np.mean([self.model.band(i, level)[0][0] for i in g.members]) for g in groups])

    def groups(self, tel: Telemetry) -> tuple[Group, ...]:
        by_type: dict[str, list[int]] = {}
        for i, (pump, t) in enumerate(zip(self.site.pumps, tel.pumps, strict=True)):
            if t.available:
                key = pump.type if self.cfg.grouped else pump.id
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

    def emptying_candidates(self, tel: Telemetry, inflow: Array, days: EmptyingTracker) -> dict[date, list[int]]:
        """Per day that still needs its emptying inside the horizon, the steps it may land on.

        A day counts when it is whole in the horizon from here, or is today; it needs emptying
        unless measured-plus-forecast inflow says clearly wet.
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
                + float(inflow[steps].sum()) * self.step_h
            if expected < self.site.rules.dry_day_max_inflow_m3 * self.cfg.dry_margin:
                out[day] = self.landable(steps, inflow)
        return out

    def landable(self, steps: list[int], inflow: Array) -> list[int]:
        """Steps where an emptying can land in the band at all. The dispatched landing keeps the
        interval above the floor on a pessimistic inflow, and ends above the minimum level if
        held a second interval (a refused write): half the band to the minimum per interval.
        Where the inflow is high, the gap between nominal and pessimistic is wider than that
        and the step ends above the band. Planning on the first cap alone, the MPC booked
        landings the dispatch could not make: it crept along 0.7-0.8 m for hours, missed the
        emptying, and met inflow dips there. The steps around a landing must qualify too: told
        the actual inflow, the oracle booked one-interval dips (3,100 m3/h between 4,600 and
        6,700) that no pump set could meet, and crept all evening at high prices. Where no step
        of the day has such neighbours, the steps that qualify alone (recorded high prices, day
        0: without them the last day chased its emptying at 0.6-0.9 EUR/kWh, 3,200 EUR more);
        every step if none does (the day then takes its best chance)."""
        top = self.model.volume(self.site.rules.emptying_level_m)
        held_m3 = 0.5 * (top - self.model.volume(self.site.rules.min_level_m))
        band_m3 = min(top - self.supervisor.floor.volume_m3(), held_m3)
        cap = self.cfg.landing_share * band_m3 / max((1 - self.cfg.supervisor.pessimistic_inflow) * self.step_h, 1e-9)
        w = self.cfg.landing_window
        ok = [k for k in steps if float(np.max(inflow[max(k - w, 0):k + w + 1])) <= cap]
        return ok or [k for k in steps if inflow[k] <= cap] or steps

    def weights(self, prices: Array) -> Weights:
        """The terminal cost: a stored m3 will be pumped later at about today's mean price."""
        kwh_per_m3 = self._typical_kwh_per_m3()
        value = self.cfg.terminal_factor * float(np.mean(prices)) * kwh_per_m3
        w = self.cfg.weights
        return dataclasses.replace(w, terminal_eur_per_m3=w.terminal_eur_per_m3 + value)

    def _typical_kwh_per_m3(self) -> float:
        level = 0.5 * (self.site.rules.min_level_m + self.site.rules.alarm_level_m)
        i = next(i for i, p in enumerate(self.site.pumps) if p.available)
        flow, power = self.model.pump_flow_power(i, self.site.rules.max_freq_hz, level)
        return power / flow if flow > 0 else 0.1


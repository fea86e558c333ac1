"""Receding-horizon controller: forecast, solve the MILP, apply the first step, repeat.

It works from telemetry and published prices alone, so the same object runs against the
twin, a recorded replay or a real plant. Whatever happens in the solver, every interval
gets a command: a failed or empty solve hands the interval to the rule-based baseline,
and every command passes the safety supervisor.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

import numpy as np
import structlog
from numpy.typing import NDArray

from controller.baseline import BaselineController
from controller.dispatch import Preference, dispatch
from controller.forecast import ForecastSettings, InflowForecaster, PriceBook
from controller.milp import Group, Ints, Plan, Problem, Weights, coefficients, solve
from controller.model import StationModel
from controller.supervisor import Supervisor, SupervisorSettings
from kernel.contracts import Observation, Setpoints, Telemetry
from kernel.site import Site

log = structlog.get_logger("tunneltwin.mpc")
Array = NDArray[np.float64]
STAMP = timedelta(seconds=1)  # a reading stamped at a step's end belongs to the step's day


@dataclass(frozen=True)
class MpcSettings:
    horizon_h: float = 24.0  # plan length; the plan step is the site's control interval
    time_limit_s: float = 2.0  # HiGHS stops here and we take its incumbent
    mip_gap: float = 0.005
    grouped: bool = True  # identical pumps as integer counts (False: one binary per pump)
    integer_h: float | None = 2.0  # counts integer this far ahead, relaxed beyond (None: all)
    block_steps: int = 4  # beyond fine_steps, pump counts change only every this many steps
    fine_steps: int = 8  # the first steps, where counts may change every step
    block_flows: bool = False  # beyond fine_steps, flows are held for a clock hour too (not near emptying)
    guard_level_m: float = 1.0  # near-term steps expected below this keep a self-regulating pump set
    choose_time_limit_s: float = 1.0  # for the once-a-day solve that picks the emptying time
    step_budget_s: float = 2.0  # all solves of one interval together (relinearisation passes)
    relinearise: int = 2  # extra solves allowed when the plan strays from its linearisation levels
    relinearise_m: float = 0.2  # ... by more than this
    relinearise_steps: int = 8  # ... within this many steps
    floor_margin_m: float = 0.05  # planned levels stay this far above the minimum level
    ceiling_margin_m: float = 0.5  # ... and this far below the alarm level
    emptying_below_m: float = 0.08  # the emptying step aims this far under the emptying level
    low_floor_above_m: float = 0.0  # outside the emptying step, stay at least this far over its level
    floor_inflow_share: float = 0.5  # ... and this share of the step's inflow (m3) over the floor margin
    robust_first_step: bool = True  # the applied step keeps the floor on the supervisor's pessimistic inflow
    guards_always: bool = True  # near-bottom guards also when no day in the horizon needs its emptying
    guards_on_measured: bool = True  # over the first fine_steps they assume min(forecast, measured)
    dry_margin: float = 1.1  # plan the emptying unless the day's inflow exceeds limit x this
    guard_ahead: float = 0.025  # landing guards from guard_ahead_steps on admit this share of inflow less
    guard_ahead_steps: int = 2
    landing_guard: float = 0.5  # guard share at a landing and 2 steps after, for pumps the PLC cannot stop
    landing_share: float = 1.2  # empty only where a pessimistic inflow moves the level <= this x the band
    landing_window: int = 1  # ... and so does the inflow of this many steps on either side
    stop_levels: bool = True  # give running pumps the floor as a stop level the PLC executes by itself
    warm_start: bool = False  # start HiGHS from the previous plan's pump counts, shifted (off: no faster)
    flow_margin: float = 0.97  # plan F2 up to this share of its limit
    terminal_factor: float = 1.0  # stored water at the end costs this x horizon mean price x kWh/m3
    weights: Weights = field(default_factory=Weights)
    forecast: ForecastSettings = field(default_factory=ForecastSettings)
    supervisor: SupervisorSettings = field(default_factory=SupervisorSettings)

    def reproducible(self, limit_s: float = 60.0) -> MpcSettings:
        """Solve every interval to the MIP gap, not to the clock: HiGHS is deterministic, so the
        same input then gives the same run on any machine load. The time limits stay as a
        backstop. For validation runs and tests; a daemon needs its decision within the interval."""
        return dataclasses.replace(self, time_limit_s=max(self.time_limit_s, limit_s),
                                   choose_time_limit_s=max(self.choose_time_limit_s, limit_s),
                                   step_budget_s=max(self.step_budget_s, 3 * limit_s))


@dataclass(frozen=True)
class StepLog:
    time: datetime
    source: str  # "mpc", or "baseline" when the solver gave no plan
    status: str
    solve_s: float
    objective: float
    inflow_forecast_m3h: tuple[float, ...]


class EmptyingTracker:
    """Which days have had their level at or below the emptying level (from measurements)."""

    def __init__(self, level_m: float) -> None:
        self.level_m = level_m
        self.emptied: set[date] = set()
        self.inflow_m3: dict[date, float] = {}

    def update(self, tel: Telemetry, step_h: float) -> None:
        day = (tel.time - STAMP).date()
        self.inflow_m3[day] = self.inflow_m3.get(day, 0.0) + tel.inflow_m3h * step_h
        if tel.level_m <= self.level_m:
            self.emptied.add(day)
        for old in [d for d in self.inflow_m3 if d < day - timedelta(days=7)]:
            del self.inflow_m3[old]
        self.emptied = {d for d in self.emptied if d >= day - timedelta(days=7)}


class MpcController:
    name = "mpc"

    def __init__(self, site: Site, settings: MpcSettings | None = None, model: StationModel | None = None,
                 forecaster: InflowForecaster | None = None, log_limit: int | None = None) -> None:
        self.site = site
        self.cfg = settings or MpcSettings()
        self.model = model or StationModel(site)
        self.step_s = site.timing.control_interval_s
        self.step_h = self.step_s / 3600
        self.steps = max(1, round(self.cfg.horizon_h * 3600 / self.step_s))
        self.forecaster = forecaster or InflowForecaster(self.step_s, self.cfg.forecast)
        self.prices = PriceBook()
        self.fallback = BaselineController(site, model=self.model)
        self.supervisor = Supervisor(site, self.model, self.cfg.supervisor)
        self.days = EmptyingTracker(site.rules.emptying_level_m)
        self.appointments: dict[date, datetime] = {}  # day -> end of the step that empties it
        self.plan: Plan | None = None
        self.plan_time: datetime | None = None
        self.log: deque[StepLog] = deque(maxlen=log_limit)  # a daemon bounds it; a replay keeps all
        self.last_problem: Problem | None = None

    def retune(self, site: Site) -> None:
        """Operator-tightened rules from the next decision on; forecasts and bookings are kept."""
        self.site = site
        self.supervisor.site = site
        self.fallback.retune(site)  # shares our StationModel, so it moves too

    # -- the loop --------------------------------------------------------------

    def decide(self, obs: Observation) -> Setpoints:
        tel = obs.telemetry
        self.observe(obs)
        inflow = self.forecaster.forecast(tel.time, self.steps)
        prices, _ = self.prices.horizon(tel.time, self.steps, self.step_s)
        problem = self.last_problem = self.problem(tel, inflow, prices)
        plan = self._solve(problem, tel.time)
        if plan is None:
            sp, source, status = self._with_stop_levels(tel, self.fallback.decide(obs)), "baseline", "no plan"
        else:
            sp = self.dispatch_step(tel, problem.groups, plan.counts[:, 0], plan.flows_m3h[:, 0],
                                    float(plan.volumes_m3[0]), float(problem.inflow_m3h[0]), problem.v_empty_m3,
                                    self._preference(problem, plan))
            source, status = "mpc", plan.status
        self._remember(tel, plan, source, status, inflow)
        return self.supervisor.check(tel, sp, hold=source == "baseline")

    def observe(self, obs: Observation) -> None:
        tel = obs.telemetry
        self.forecaster.observe(tel.time, tel.inflow_m3h)
        self.prices.observe(obs.prices)
        self.days.update(tel, self.step_h)
        self.fallback.observe(tel)

    def _solve(self, problem: Problem, now: datetime) -> Plan | None:
        """Solve; if the plan's near-term levels stray from the levels its flows were linearised
        at (it matters most near the bottom, where flow falls fast with level), solve again at
        the plan's own levels, within one time budget per interval."""
        choosing = any(len(day) > 1 for day in problem.emptying_days)
        limit = self.cfg.choose_time_limit_s if choosing else self.cfg.time_limit_s
        deadline = time.perf_counter() + max(limit, self.cfg.step_budget_s)
        plan: Plan | None = None
        for _ in range(1 + self.cfg.relinearise):
            remaining = deadline - time.perf_counter()
            if plan is not None and remaining < 0.1:
                break
            try:
                coef = coefficients(self.model, problem.groups, problem.level_guess_m)
                new = solve(problem, coef, min(limit, max(remaining, 0.1)), self.cfg.mip_gap,
                            self._start_counts(now, problem) if plan is None else None)
            except ValueError as exc:  # non-finite input: never let it reach HiGHS
                log.error("plan_input_rejected", error=str(exc))
                return None
            if new is None:
                break
            plan = new
            levels = self._mid_levels(problem.volume0_m3, plan.volumes_m3)
            near = slice(0, self.cfg.relinearise_steps)
            if np.max(np.abs(levels[near] - problem.level_guess_m[near])) <= self.cfg.relinearise_m:
                break
            problem = dataclasses.replace(problem, level_guess_m=levels, guard_steps=self._guard_steps(levels))
        if plan is not None and choosing:
            self._book(problem, plan, now)
        return plan

    def _start_counts(self, now: datetime, problem: Problem) -> Ints | None:
        """The previous plan's pump counts from now on, its last step repeated to fill the
        horizon: the issue's warm start, which HiGHS completes into a first incumbent."""
        if not self.cfg.warm_start or self.plan is None or self.plan_time is None:
            return None
        shift = round((now - self.plan_time).total_seconds() / self.step_s)
        old = self.plan.counts[:, shift:]
        if shift < 0 or old.shape[1] == 0 or old.shape[0] != len(problem.groups):
            return None
        pad = np.repeat(old[:, -1:], problem.horizon - old.shape[1], axis=1)
        return np.concatenate([old, pad], axis=1)[:, :problem.horizon]

    def dispatch_step(self, tel: Telemetry, groups: tuple[Group, ...], counts: Ints, flows_m3h: Array,
                      end_volume_m3: float, inflow_m3h: float, v_empty_m3: float,
                      prefer: Preference | None = None) -> Setpoints:
        """A plan step on real pumps. On an emptying step, land it by simulating the interval
        (flow falls fast as the level nears the bottom), so a miss is rare."""
        mid = self.model.level(0.5 * (tel.volume_m3 + end_volume_m3))
        sp = self._with_stop_levels(tel, dispatch(tel, self.model, groups, counts, flows_m3h, mid, prefer))
        if end_volume_m3 > v_empty_m3 + 1.0:
            return sp
        on = [i for i, p in enumerate(sp.pumps) if p.on]
        f = min(self.model.freq_to_land(on, v_empty_m3, tel.volume_m3, inflow_m3h, self.step_s),
                self._freq_above_floor(tel, sp, inflow_m3h))
        return Setpoints(pumps=tuple(p.model_copy(update={"freq_hz": round(f, 3)}) if p.on else p for p in sp.pumps))

    def _preference(self, problem: Problem, plan: Plan) -> Preference:
        """How dispatch ranks a group's pumps (``cost_rank``): by energy over the group's planned
        run (from now while the plan keeps the count, at least a minimum run) and run hours. A
        running pump may hand over to a rested one only where the plan keeps the count for a
        minimum run and stays clear of the bottom: the new pump cannot be stopped for 2 h."""
        least = max(1, round(self.site.rules.min_on_s / self.step_s))
        clear = float(np.min(self.model.levels(plan.volumes_m3[:least]))) >= self.cfg.guard_level_m
        price_h = [0.0] * len(self.site.pumps)
        swappable = set()
        for g, group in enumerate(problem.groups):
            keep = plan.counts[g] >= max(int(plan.counts[g, 0]), 1)
            steps = len(keep) if keep.all() else int(np.argmin(keep))
            run_price_h = float(np.sum(problem.price_eur_per_kwh[:max(steps, least)])) * self.step_h
            for i in group.members:
                price_h[i] = run_price_h
            if clear and steps >= least:
                swappable.add(group.name)
        w = self.cfg.weights
        return Preference(tuple(price_h), w.run_hour_eur, 2 * w.switch_eur, frozenset(swappable))

    def _with_stop_levels(self, tel: Telemetry, sp: Setpoints) -> Setpoints:
        """The floor as every running pump's stop level (``Supervisor.with_floor_stops``), unless
        the plant takes none. Pumps inside their 2 h run go on (soak: three pumps started for a
        drawdown, held by two refused writes from 0.995 m, took the level to 0.31 m)."""
        return self.supervisor.with_floor_stops(tel, sp) if self.cfg.stop_levels else sp

    def _freq_above_floor(self, tel: Telemetry, sp: Setpoints, inflow_m3h: float) -> float:
        """The landing must not go under the floor if the inflow falls short: the band is
        only ~200 m3 deep, a few minutes of a forecast error in rain. So it lands for the
        supervisor's pessimistic inflow on the lower of forecast and measurement; a shortfall
        then ends the step above the band (try again) rather than under the minimum.

        It must also be safe to hold: a refused write leaves the plant on this command for
        another interval (the soak drained the tunnel to 0.0 m that way), so two intervals
        on the same inflow must still end at or above the minimum level. The command's stop
        levels are simulated as the PLC executes them (``Supervisor.ends_above``)."""
        on = [i for i, p in enumerate(sp.pumps) if p.on]
        stops = self.supervisor.plc_stops(tel, {p.id: p.stop_below_m for p in sp.pumps if p.on})
        return self.supervisor.floor_freq_hz(on, tel.volume_m3, self._pessimistic_inflow(tel, inflow_m3h),
                                             hold=True, stops=stops)

    def _pessimistic_inflow(self, tel: Telemetry, forecast_m3h: float) -> float:
        """The supervisor's pessimistic factor on the lower of forecast and measurement."""
        return self.cfg.supervisor.pessimistic_inflow * min(forecast_m3h, tel.inflow_m3h)

    def _mid_levels(self, volume0_m3: float, volumes_m3: Array) -> Array:
        starts = np.r_[volume0_m3, volumes_m3[:-1]]
        return self.model.levels(0.5 * (starts + volumes_m3))

    def _book(self, problem: Problem, plan: Plan, now: datetime) -> None:
        """Keep the emptying time the plan chose, so later solves need no binaries for it."""
        chosen = [day for day in problem.emptying_days if len(day) > 1]
        self.appointments.update(self.emptied_steps(now, chosen, problem.v_empty_m3, plan))

    def step_end(self, now: datetime, k: int) -> datetime:
        """End of plan step k; its reading belongs to the day of ``step_end - STAMP``."""
        return now + timedelta(seconds=(k + 1) * self.step_s)

    def emptied_steps(self, now: datetime, days: list[tuple[int, ...]], v_empty_m3: float,
                      plan: Plan) -> dict[date, datetime]:
        """Day -> end of the first step of that day's candidates where the plan is emptied."""
        out = {}
        for day in days:
            hit = [k for k in day if plan.volumes_m3[k] <= v_empty_m3 + 1.0]
            if hit:
                end = self.step_end(now, hit[0])
                out[(end - STAMP).date()] = end
        return out

    def _remember(self, tel: Telemetry, plan: Plan | None, source: str, status: str, inflow: Array) -> None:
        self.plan, self.plan_time = plan, tel.time
        seconds = plan.seconds if plan else 0.0
        objective = plan.objective if plan else math.nan
        self.log.append(StepLog(tel.time, source, status, seconds, objective, tuple(map(float, inflow))))
        if source != "mpc":
            log.warning("fallback", time=tel.time.isoformat(), reason=status)

    # -- building the problem --------------------------------------------------

    def problem(self, tel: Telemetry, inflow: Array, prices: Array) -> Problem:
        rules = self.site.rules
        groups = self.groups(tel)
        locked_on, locked_off = self.locks(tel, groups)
        integer_steps = None if self.cfg.integer_h is None else round(self.cfg.integer_h / self.step_h)
        guess = self.level_guess(tel)
        return Problem(
            step_h=self.step_h, volume0_m3=tel.volume_m3, inflow_m3h=inflow, price_eur_per_kwh=prices,
            level_guess_m=guess, groups=groups,
            n_now=np.array([sum(tel.pumps[i].status.is_on for i in g.members) for g in groups], dtype=np.int64),
            locked_on=locked_on, locked_off=locked_off, outflow_now_m3h=tel.outflow_m3h,
            v_min_m3=self.model.volume(rules.min_level_m + self.cfg.floor_margin_m),
            v_max_m3=self.model.volume(rules.alarm_level_m - self.cfg.ceiling_margin_m),
            v_empty_m3=self.model.volume(rules.emptying_level_m - self.cfg.emptying_below_m),
            v_low_m3=self.model.volume(rules.emptying_level_m + self.cfg.low_floor_above_m),
            floor_buffer_m3=self.cfg.floor_inflow_share * inflow * self.step_h,
            q_floor_m3h=self._floor_flows(groups), self_regulating=self.cfg.supervisor.pessimistic_inflow,
            regulating_ahead=self.cfg.guard_ahead, regulating_from=self.cfg.guard_ahead_steps,
            landing_regulating=self.cfg.landing_guard if self.cfg.stop_levels else 1.0,
            guard_inflow_m3h=self._guard_inflow(tel, inflow) if self.cfg.guards_on_measured else None,
            guards_always=self.cfg.guards_always, plc_stops=self.cfg.stop_levels,
            first_floor_inflow_m3h=self._pessimistic_inflow(tel, float(inflow[0])) if self.cfg.robust_first_step
            else None,
            guard_steps=self._guard_steps(guess),
            emptying_days=self.emptying_days(tel, inflow),
            min_on_steps=math.ceil(rules.min_on_s / self.step_s - 1e-9),
            min_off_steps=math.ceil(rules.min_off_s / self.step_s - 1e-9),
            max_outflow_m3h=self.cfg.flow_margin * rules.max_outflow_m3h, min_pumps_on=rules.min_pumps_on,
            weights=self._weights(prices), integer_steps=integer_steps, block_steps=self.cfg.block_steps,
            fine_steps=self.fine_steps(tel.time), block_flows=self.cfg.block_flows)

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

    def _guard_inflow(self, tel: Telemetry, inflow: Array) -> Array:
        """Near term, a pump set near the bottom must regulate itself on the lower of forecast and
        measurement: a diurnal profile expecting the morning rise (recorded: 2,725 forecast,
        2,134 measured, 1,186 came) must not license a large pump that then runs its 2 h."""
        out = np.array(inflow, dtype=float)
        near = slice(0, self.cfg.fine_steps)
        out[near] = np.minimum(out[near], tel.inflow_m3h)
        return out

    def _guard_steps(self, guess: Array) -> tuple[int, ...]:
        """Near-term steps expected near the bottom, where an inflow dip would empty the tunnel."""
        near = guess[:self.cfg.fine_steps]
        return tuple(int(k) for k in np.flatnonzero(near < self.cfg.guard_level_m))

    def _floor_flows(self, groups: tuple[Group, ...]) -> Array:
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

    def level_guess(self, tel: Telemetry) -> Array:
        """Mean level of each step, from the previous plan shifted by the time since it was made."""
        volumes = np.full(self.steps, tel.volume_m3)
        if self.plan is not None and self.plan_time is not None:
            shift = round((tel.time - self.plan_time).total_seconds() / self.step_s)
            old = self.plan.volumes_m3[shift:]
            if len(old):
                volumes[:len(old)] = old[:self.steps]
                volumes[len(old):] = old[-1]
        return self._mid_levels(tel.volume_m3, volumes)

    def emptying_days(self, tel: Telemetry, inflow: Array) -> tuple[tuple[int, ...], ...]:
        """Step sets of the days that still need their emptying inside the horizon.

        A day counts when it is whole in the horizon from here, or is today; it needs emptying
        unless measured-plus-forecast inflow says clearly wet.
        """
        ends = [self.step_end(tel.time, k) - STAMP for k in range(self.steps)]
        by_day: dict[date, list[int]] = {}
        for k, t in enumerate(ends):
            by_day.setdefault(t.date(), []).append(k)
        today = ends[0].date()
        per_day = round(86400 / self.step_s)
        out = []
        for day, steps in by_day.items():
            if day in self.days.emptied or (day != today and len(steps) < per_day):
                continue
            expected = (self.days.inflow_m3.get(day, 0.0) if day == today else 0.0) \
                + float(inflow[steps].sum()) * self.step_h
            if expected < self.site.rules.dry_day_max_inflow_m3 * self.cfg.dry_margin:
                out.append(self._booked(day, self._landable(steps, inflow), ends))
        return tuple(out)

    def _landable(self, steps: list[int], inflow: Array) -> list[int]:
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
        band_m3 = min(top - self.supervisor.floor_volume_m3(), held_m3)
        cap = self.cfg.landing_share * band_m3 / max((1 - self.cfg.supervisor.pessimistic_inflow) * self.step_h, 1e-9)
        w = self.cfg.landing_window
        ok = [k for k in steps if float(np.max(inflow[max(k - w, 0):k + w + 1])) <= cap]
        return ok or [k for k in steps if inflow[k] <= cap] or steps

    def _booked(self, day: date, steps: list[int], ends: list[datetime]) -> tuple[int, ...]:
        """The day's booked emptying step if it is still ahead, else every step (choose again)."""
        booked = self.appointments.get(day)
        for k in steps:
            if booked is not None and ends[k] + STAMP == booked:
                return (k,)
        self.appointments.pop(day, None)
        return tuple(steps)

    def _weights(self, prices: Array) -> Weights:
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

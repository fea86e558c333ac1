"""Receding-horizon controller: forecast, solve the MILP, apply the first step, repeat.

It works from telemetry and published prices alone, so the same object runs against the
twin, a recorded replay or a real plant. Whatever happens in the solver, every interval
gets a command: a failed or empty solve hands the interval to the rule-based baseline,
and every command passes the safety supervisor.

The parts: the forecasts (``controller.forecast``), the emptying state (``controller.emptying``),
the problem (``controller.problem``, pure), the solve (``controller.solve``) and dispatch
(``controller.dispatch``). This class holds their state and runs them in order.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime

import numpy as np
import structlog
from numpy.typing import NDArray

from controller.base import PlanView, Report
from controller.baseline import BaselineController
from controller.dispatch import Dispatcher
from controller.emptying import Bookings, EmptyingTracker, Landings
from controller.forecast import ExternalInflow, InflowForecaster, PriceBook
from controller.milp import Ints, Plan, Problem, lands
from controller.model import StationModel
from controller.problem import ProblemBuilder
from controller.settings import MpcSettings
from controller.solve import choosing, relinearised
from controller.supervisor import InflowBand, Supervisor, SupervisorSettings
from controller.uncertainty import ForecastSpread, Spread
from kernel.contracts import Observation, Setpoints, Telemetry
from kernel.site import Site

log = structlog.get_logger("tunneltwin.mpc")
Array = NDArray[np.float64]
REPORTED = (0.1, 0.5, 0.9, 0.99)  # the inflow quantiles each decision logs (calibration, reports)


@dataclass(frozen=True)
class StepLog:
    time: datetime
    source: str  # "mpc", or "baseline" when the solver gave no plan
    status: str
    solve_s: float
    objective: float
    inflow_forecast_m3h: tuple[float, ...]
    weather: str = "dry"  # the weather state the forecast's spread was taken for
    inflow_quantiles_m3h: dict[float, tuple[float, ...]] | None = None  # P10/P50/P90/P99 per step


class MpcController:
    name = "mpc"

    def __init__(self, site: Site, settings: MpcSettings | None = None, model: StationModel | None = None,
                 forecaster: InflowForecaster | None = None, log_limit: int | None = None) -> None:
        self.site = site
        self.cfg = self.configured = settings or MpcSettings()
        self.model = model or StationModel(site)
        self.step_s = site.timing.control_interval_s
        self.forecaster = forecaster or InflowForecaster(self.step_s, self.cfg.forecast)
        self.prices = PriceBook()
        self.fallback = BaselineController(site, model=self.model)
        self.supervisor = Supervisor(site, self.model, SupervisorSettings(self.cfg.floor_margin_m,
                                                                          self.cfg.alarm_margin_m))
        self.builder = ProblemBuilder(site, self.cfg, self.model, self.supervisor)
        self.dispatcher = Dispatcher(site, self.cfg, self.model, self.supervisor)
        self.steps = self.builder.steps
        self.spread = ForecastSpread(self.step_s, self.steps)
        self.external_misses = 0  # intervals an attached external forecast did not cover (internal used)
        self.external_used = False
        self.external_state: str | None = None  # the last decision's: "used", "stale", "unusable" or none given
        self.days = EmptyingTracker(site.rules.emptying_level_m)
        self.bookings = Bookings()
        self.landings = Landings(site.rules.emptying_level_m)
        self.plan: Plan | None = None
        self.plan_time: datetime | None = None
        self.log: deque[StepLog] = deque(maxlen=log_limit)  # a daemon bounds it; a replay keeps all
        self.last_problem: Problem | None = None  # as built this interval
        self.solved: Problem | None = None  # ... and as last solved (relinearised), None without a plan

    def retune(self, site: Site) -> None:
        """Operator-tightened rules from the next decision on; forecasts and bookings are kept."""
        self.site = self.supervisor.site = self.builder.site = self.dispatcher.site = site
        self.fallback.retune(site)  # shares our StationModel, so it moves too

    def reprice(self, smooth_eur_per_m3h: float | None) -> None:
        """The operator's price on F2 changes from the next decision (None: the settings' own)."""
        smooth = self.configured.weights.smooth_eur_per_m3h if smooth_eur_per_m3h is None else smooth_eur_per_m3h
        self.cfg = dataclasses.replace(self.cfg, weights=dataclasses.replace(self.cfg.weights,
                                                                             smooth_eur_per_m3h=smooth))
        self.builder.cfg = self.dispatcher.cfg = self.cfg

    # -- the loop --------------------------------------------------------------

    def decide(self, obs: Observation) -> Setpoints:
        tel = obs.telemetry
        self.observe(obs)
        inflow = self.forecaster.forecast(tel.time, self.steps)
        spread = self.spread_of(tel, inflow)
        self.supervisor.band = self.interval_band(spread, inflow)
        prices, _ = self.prices.horizon(tel.time, self.steps, self.step_s)
        ends = self.builder.step_ends(tel.time)
        candidates = self.builder.emptying_candidates(tel, inflow, self.days, self.builder.low_side(spread))
        self.bookings.forget_stale(candidates, ends)
        problem = self.last_problem = self.problem(tel, inflow, prices, candidates, spread)
        shift = None if self.plan_time is None else round((tel.time - self.plan_time).total_seconds() / self.step_s)
        start = start_counts(self.plan, shift, problem) if self.cfg.solver.warm_start else None
        plan, solved = relinearised(self.builder, self.cfg, problem, start)
        self.solved = solved if plan is not None else None
        if plan is None:
            sp = self.dispatcher.with_stop_levels(tel, self.fallback.decide(obs))
            source, status = "baseline", "no plan"
        else:
            if choosing(problem):
                self.bookings.book([d for d in problem.emptying_days if len(d) > 1], ends, problem.v_empty_m3, plan)
            sp = self.dispatcher.step(tel, problem.groups, plan.counts[:, 0], plan.flows_m3h[:, 0],
                                      float(plan.volumes_m3[0]), float(problem.inflow_m3h[0]), problem.v_empty_m3,
                                      self.dispatcher.preference(problem, plan))
            source, status = "mpc", plan.status
        self.landings.dispatched(plan is not None and lands(float(plan.volumes_m3[0]), problem.v_empty_m3))
        self._remember(tel, plan, source, status, inflow, spread)
        return self.supervisor.check(tel, sp, hold=source == "baseline")

    def spread_of(self, tel: Telemetry, inflow: Array) -> Spread:
        """How far this forecast may be off: learnt quantiles for the weather now. The forecast
        is filed with its weather, so its errors are learnt as its steps are measured."""
        state = self.forecaster.weather(tel.time)
        self.spread.issued(tel.time, state, inflow)
        learnt = self.spread.spread(state, inflow)
        external = self.forecaster.external
        if external is None:
            return learnt
        if not external.covers(tel.time, self.steps, self.step_s):
            self.external_misses += 1
            if self.external_misses == 1 or self.external_used:
                log.warning("external_forecast_stale", time=tel.time.isoformat(),
                            detail="the external inflow forecast does not cover the horizon: internal forecast used")
            self.external_used, self.external_state = False, "stale"
            return learnt
        self.external_used, self.external_state = True, "used"
        return learnt.given(external.window_quantiles(tel.time, self.steps, self.step_s) or {})

    def interval_band(self, spread: Spread, inflow: Array) -> InflowBand:
        """How far the inflow may move within the next interval, for the supervisor, the
        landing cap and dispatch: the floor_risk and 1 - storm_risk quantiles one interval
        ahead, as factors on the forecast (the supervisor applies them to the measured
        inflow, so a forecast gone wrong does not loosen its check), and the high one as the
        forecast gives it (a forecast that sees the inflow rise tightens the check). Zero
        spread: (1, 1) and the forecast."""
        ahead = max(float(inflow[0]), 1e-9)
        low = float(spread.at(self.cfg.floor_risk)[0]) / ahead if self.cfg.floor_risk > 0 else 1.0
        top = float(spread.at(1 - self.cfg.storm_risk)[0]) if self.cfg.storm_risk > 0 else ahead
        return InflowBand(low=min(max(low, 0.0), 1.0), high=max(top / ahead, 1.0), ahead_high_m3h=max(top, ahead))

    def observe(self, obs: Observation) -> None:
        """Learn from the interval just measured; take the external forecast the plant serves
        (one it could not serve leaves the internal forecast, and is counted)."""
        tel = obs.telemetry
        self.external_state = None
        if obs.inflow_forecast is not None:
            self.forecaster.external = ExternalInflow.served(obs.inflow_forecast)
        elif obs.inflow_forecast_problem is not None:
            self.forecaster.external = None
            self.external_misses += 1
            self.external_state = "unusable"
        self.prices.observe(obs.prices)
        self.landings.update(tel)
        self.learn(tel)

    def learn(self, tel: Telemetry) -> None:
        """What one reading teaches: the inflow profile, the waiting forecasts' errors, the days."""
        self.spread.observe(tel.time, tel.inflow_m3h)
        self.forecaster.observe(tel.time, tel.inflow_m3h)
        self.days.update(tel, self.builder.step_h)
        self.fallback.observe(tel)

    def recall(self, history: Sequence[Telemetry]) -> None:
        """Learn from readings before this run as ``decide`` did (not the landings: they need plans)."""
        for tel in history:
            self.learn(tel)
            inflow = self.forecaster.forecast(tel.time, self.steps)
            self.spread.issued(tel.time, self.forecaster.weather(tel.time), inflow)

    def problem(self, tel: Telemetry, inflow: Array, prices: Array,
                candidates: dict[date, list[int]] | None = None, spread: Spread | None = None) -> Problem:
        """This interval's MILP input: a pure function of the state (changes nothing).
        ``candidates``: the days' emptying candidates, if the caller has them already;
        ``spread``: the forecast's quantiles (None: no storm reserve)."""
        return self.builder.problem(tel, inflow, prices, self.emptying_days(tel, inflow, candidates, spread),
                                    self.level_guess(tel), spread, *self.landing_miss(spread))

    def landing_miss(self, spread: Spread | None) -> tuple[float, float]:
        """The chances that a landing, and a retry after a missed one, miss: the record's, or none
        where the forecast has no spread (the oracle's, a perfect external forecast's): a landing
        then ends where it aims, and a prior of misses would only move it off the cheapest step."""
        if spread is None or spread.is_point:
            return 0.0, 0.0
        return self.landings.miss, self.landings.retry_miss

    def emptying_days(self, tel: Telemetry, inflow: Array, candidates: dict[date, list[int]] | None = None,
                      spread: Spread | None = None) -> tuple[tuple[int, ...], ...]:
        """Step sets of the days that still need their emptying inside the horizon: a booked
        day's booked step, or every step it may land on."""
        ends = self.builder.step_ends(tel.time)
        if candidates is None:
            candidates = self.builder.emptying_candidates(tel, inflow, self.days, self.builder.low_side(spread))
        return tuple(self.bookings.steps(day, steps, ends) for day, steps in candidates.items())

    def level_guess(self, tel: Telemetry) -> Array:
        """Mean level of each step, from the previous plan shifted by the time since it was made."""
        volumes = np.full(self.steps, tel.volume_m3)
        if self.plan is not None and self.plan_time is not None:
            shift = round((tel.time - self.plan_time).total_seconds() / self.step_s)
            old = self.plan.volumes_m3[shift:]
            if len(old):
                volumes[:len(old)] = old[:self.steps]
                volumes[len(old):] = old[-1]
        return self.builder.mid_levels(tel.volume_m3, volumes)

    def report(self) -> Report:
        last = self.log[-1] if self.log else None
        plan = self.plan
        groups = self.solved.groups if self.solved is not None else []
        view = None if plan is None or self.plan_time is None else PlanView(
            self.plan_time, self.step_s, tuple(map(float, self.model.levels(plan.volumes_m3))),
            tuple(map(float, plan.outflow_m3h)), tuple(map(float, plan.power_kw)), plan.status,
            {g.name: tuple(int(c) for c in plan.counts[i]) for i, g in enumerate(groups)
             if i < plan.counts.shape[0]})
        before = self.log[-2].inflow_forecast_m3h if len(self.log) >= 2 else ()
        now = last.time if last else None
        made = itertools.takewhile(lambda o: o.time == now, reversed(self.supervisor.overrides))
        return Report(source=last.source if last else None, status=last.status if last else None,
                      inflow_forecast_m3h=last.inflow_forecast_m3h if last else (),
                      inflow_quantiles_m3h=last.inflow_quantiles_m3h if last else None,
                      previous_forecast_m3h=float(before[0]) if before else None, plan=view,
                      overrides=tuple(reversed(list(made))), problem=self.solved,
                      external_forecast=self.external_state)

    def _remember(self, tel: Telemetry, plan: Plan | None, source: str, status: str, inflow: Array,
                  spread: Spread) -> None:
        self.plan, self.plan_time = plan, tel.time
        seconds = plan.seconds if plan else 0.0
        objective = plan.objective if plan else math.nan
        quantiles = {p: tuple(map(float, spread.at(p))) for p in REPORTED}
        self.log.append(StepLog(tel.time, source, status, seconds, objective, tuple(map(float, inflow)),
                                spread.state, quantiles))
        if source != "mpc":
            log.warning("fallback", time=tel.time.isoformat(), reason=status)


def start_counts(plan: Plan | None, shift: int | None, problem: Problem) -> Ints | None:
    """The pump counts of a plan made ``shift`` steps ago, from now on, its last step repeated
    to fill the horizon: the issue's warm start, which HiGHS completes into a first incumbent."""
    old = None if plan is None or shift is None or shift < 0 else plan.counts[:, shift:]
    if old is None or old.shape[1] == 0 or old.shape[0] != len(problem.groups):
        return None
    pad = np.repeat(old[:, -1:], problem.horizon - old.shape[1], axis=1)
    return np.concatenate([old, pad], axis=1)[:, :problem.horizon]

"""Perfect-foresight bound: the whole scenario solved once with the actual inflow and prices.

It is what the MPC would do if it knew the future exactly and could plan the whole
period at once, under the same plant model and rules. It is then executed on the twin
by tracking the planned volume (so linearisation error does not accumulate), through
the same dispatch and safety supervisor. A change in pump availability re-plans the
remaining period (an outage is foreseen only as far as the telemetry shows it).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from datetime import date, datetime

import numpy as np
from numpy.typing import NDArray

from controller.milp import Plan, Problem
from controller.mpc import STAMP, MpcController, MpcSettings
from tunneltwin.contracts import Observation, Setpoints, Telemetry
from tunneltwin.site import Site

Array = NDArray[np.float64]


@dataclass(frozen=True)
class OracleSettings:
    time_limit_s: float = 60.0  # per solve
    passes: int = 2  # re-solves with the level trajectory of the previous pass
    mip_gap: float = 0.002
    block_steps: int = 4


class OracleController:
    name = "oracle"

    def __init__(self, site: Site, start: datetime, inflow_m3h: Array, price_eur_per_kwh: Array,
                 settings: OracleSettings | None = None, mpc: MpcSettings | None = None,
                 end_volume_max_m3: float | None = None) -> None:
        """Given ``end_volume_max_m3`` (a compared run's end volume), the oracle plans the
        scenario to end no fuller than that run and puts no value on water left stored, so
        it cannot look cheap by pumping less than the run did. The switching and smoothness
        terms stay: without them pump-outage's oracle paid 2,415.24 EUR instead of 2,479.73
        (the MPC 2,483.75), but on the recorded high-price days 40,951.83 EUR, 10 % above the
        MPC's 37,268.18. Without the cap it values stored water as the MPC does."""
        self.cfg = settings or OracleSettings()
        self.end_volume_max_m3 = end_volume_max_m3
        self.start = start
        self.inflow = np.asarray(inflow_m3h, dtype=float)
        self.price = np.asarray(price_eur_per_kwh, dtype=float)
        base = mpc or MpcSettings()
        if end_volume_max_m3 is not None:
            no_terminal = dataclasses.replace(base.weights, terminal_eur_per_m3=0.0)
            base = dataclasses.replace(base, terminal_factor=0.0, weights=no_terminal)
        self.step_s = site.timing.control_interval_s
        hours = len(self.inflow) * self.step_s / 3600
        # landing_share, floor_inflow_share and robust_first_step hedge the inflow forecast's
        # error near the bottom; the oracle knows the inflow, and restricting its emptying steps
        # measured worse (recorded days, high prices: 5 breaches and a 43 % gap against 1 and 0.3 %).
        self.planner = MpcController(site, dataclasses.replace(
            base, horizon_h=hours, integer_h=None, dry_margin=1.0, block_steps=self.cfg.block_steps,
            landing_share=math.inf, floor_inflow_share=0.0, robust_first_step=False,
            time_limit_s=self.cfg.time_limit_s, choose_time_limit_s=self.cfg.time_limit_s,
            step_budget_s=self.cfg.time_limit_s * 3,
            mip_gap=self.cfg.mip_gap))
        self.plan: Plan | None = None
        self.plan_k0 = 0
        self.available: tuple[bool, ...] = ()
        self.solve_s: list[float] = []
        self.booked: dict[date, datetime] = {}  # the plan's emptying step (end time) per day
        self.replanned: set[date] = set()
        self.v_empty_m3 = 0.0  # the emptying volume the current plan aimed at

    def decide(self, obs: Observation) -> Setpoints:
        tel = obs.telemetry
        k = round((tel.time - self.start).total_seconds() / self.step_s)
        self.planner.days.update(tel, self.step_s / 3600)
        available = tuple(p.available for p in tel.pumps)
        if self.plan is None or available != self.available or self._missed_emptying(tel):
            self._plan_from(tel, k)
            self.available = available
        self.planner.fallback.observe(tel)
        if self.plan is None:  # no feasible plan at all: the baseline keeps the plant safe
            return self.planner.supervisor.check(tel, self.planner.fallback.decide(obs), hold=True)
        return self.planner.supervisor.check(tel, self._track(tel, k))

    def _plan_from(self, tel: Telemetry, k: int) -> None:
        """Plan the rest of the scenario.

        Choosing every day's emptying step with binaries over a 10-day horizon does not finish
        in minutes, so: plan without emptying, book each dry day's emptying where that plan is
        lowest, re-plan with the bookings (passes also refresh the level linearisation), then
        let the free choice improve on it from that warm start within the time limit.
        """
        inflow, prices = self.inflow[k:], self.price[k:]
        p = self.planner
        p.steps, p.plan, p.appointments = len(inflow), None, {}
        self.plan, self.plan_k0 = None, k
        free = p.problem(tel, inflow, prices)
        self.v_empty_m3 = free.v_empty_m3
        first = self._pass(tel, dataclasses.replace(free, emptying_days=()))
        if first is None:
            return
        for _ in range(self.cfg.passes):
            p.appointments = self._lowest_steps(tel, free, first)
            booked = self._pass(tel, p.problem(tel, inflow, prices))
            if booked is None:
                break
            first = self.plan = booked
        p.appointments = {}
        if self.plan is not None:
            better = self._pass(tel, p.problem(tel, inflow, prices), warm=self.plan.x)
            if better is not None and better.objective < self.plan.objective - 1e-6:
                self.plan = better
            self.booked = p.emptied_steps(tel.time, list(free.emptying_days), free.v_empty_m3, self.plan)

    def _missed_emptying(self, tel: Telemetry) -> bool:
        """Today's planned emptying step has passed and the level never got there: re-plan once."""
        day = (tel.time - STAMP).date()
        due = self.booked.get(day)
        if due is None or tel.time < due or day in self.planner.days.emptied or day in self.replanned:
            return False
        self.replanned.add(day)
        return True

    def _pass(self, tel: Telemetry, problem: Problem, warm: Array | None = None) -> Plan | None:
        p = self.planner
        problem = dataclasses.replace(problem, v_end_max_m3=self.end_volume_max_m3)
        plan = p._solve(problem, tel.time, warm)
        if plan is not None:
            self.solve_s.append(plan.seconds)
            p.plan, p.plan_time = plan, tel.time
            self.groups = problem.groups
        return plan

    def _lowest_steps(self, tel: Telemetry, free: Problem, plan: Plan) -> dict[date, datetime]:
        """Each day's booking at the free plan's lowest step, at least one minimum run ahead:
        a plan that starts high has its lowest point at its first steps, and a booking there
        cannot be reached (the dry-week oracle booked 00:15 from 2 m and its plan fell apart)."""
        out = {}
        for day in free.emptying_days:
            ahead = [j for j in day if j >= free.min_on_steps] or list(day)
            end = self.planner.step_end(tel.time, min(ahead, key=lambda j: plan.volumes_m3[j]))
            out[(end - STAMP).date()] = end
        return out

    def _track(self, tel: Telemetry, k: int) -> Setpoints:
        """Planned counts; flows scaled so the step ends at the planned volume."""
        assert self.plan is not None
        j = min(k - self.plan_k0, self.plan.volumes_m3.size - 1)
        planned = self.plan.flows_m3h[:, j]
        inflow = float(self.inflow[min(k, len(self.inflow) - 1)])
        wanted = inflow + (tel.volume_m3 - self.plan.volumes_m3[j]) / (self.step_s / 3600)
        total = float(planned.sum())
        flows = planned * (max(wanted, 0.0) / total) if total > 0 else planned
        return self.planner.dispatch_step(tel, self.groups, self.plan.counts[:, j], flows,
                                          float(self.plan.volumes_m3[j]), inflow, self.v_empty_m3)

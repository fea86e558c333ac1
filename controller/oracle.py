"""Perfect-foresight bound: the whole scenario solved once with the actual inflow and prices.

It is what the MPC would do if it knew the future exactly and could plan the whole
period at once, under the same plant model and rules. It is then executed on the twin
by tracking the planned volume (so linearisation error does not accumulate), through
the same dispatch and safety supervisor. A change in pump availability re-plans the
remaining period (an outage is foreseen only as far as the telemetry shows it).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime

import numpy as np
from numpy.typing import NDArray

from controller.dispatch import dispatch
from controller.milp import Plan
from controller.mpc import MpcController, MpcSettings
from tunneltwin.contracts import Observation, Setpoints, Telemetry
from tunneltwin.site import Site

Array = NDArray[np.float64]


@dataclass(frozen=True)
class OracleSettings:
    time_limit_s: float = 120.0  # per linearisation pass
    passes: int = 3  # re-solves with the level trajectory of the previous pass
    mip_gap: float = 0.002
    block_steps: int = 4


class OracleController:
    name = "oracle"

    def __init__(self, site: Site, start: datetime, inflow_m3h: Array, price_eur_per_kwh: Array,
                 settings: OracleSettings | None = None, mpc: MpcSettings | None = None) -> None:
        self.cfg = settings or OracleSettings()
        self.start = start
        self.inflow = np.asarray(inflow_m3h, dtype=float)
        self.price = np.asarray(price_eur_per_kwh, dtype=float)
        base = mpc or MpcSettings()
        self.step_s = site.timing.control_interval_s
        hours = len(self.inflow) * self.step_s / 3600
        self.planner = MpcController(site, dataclasses.replace(
            base, horizon_h=hours, integer_h=None, dry_margin=1.0, block_steps=self.cfg.block_steps,
            emptying_stride=self.cfg.block_steps,
            time_limit_s=self.cfg.time_limit_s, choose_time_limit_s=self.cfg.time_limit_s,
            mip_gap=self.cfg.mip_gap))
        self.plan: Plan | None = None
        self.plan_k0 = 0
        self.available: tuple[bool, ...] = ()
        self.solve_s: list[float] = []

    def decide(self, obs: Observation) -> Setpoints:
        tel = obs.telemetry
        k = round((tel.time - self.start).total_seconds() / self.step_s)
        self.planner.days.update(tel, self.step_s / 3600)
        available = tuple(p.available for p in tel.pumps)
        if self.plan is None or available != self.available:
            self._plan_from(tel, k)
            self.available = available
        if self.plan is None:  # no feasible plan at all: the baseline keeps the plant safe
            self.planner.fallback.observe(tel)
            return self.planner.supervisor.check(tel, self.planner.fallback.decide(obs))
        self.planner.fallback.observe(tel)
        return self.planner.supervisor.check(tel, self._track(tel, k))

    def _plan_from(self, tel: Telemetry, k: int) -> None:
        inflow, prices = self.inflow[k:], self.price[k:]
        p = self.planner
        p.steps, p.plan_clock = len(inflow), tel.time
        p.plan, p.appointments = None, {}
        for _ in range(self.cfg.passes):
            problem = p.problem(tel, inflow, prices)
            plan = p._solve(problem)
            if plan is None:
                break
            self.solve_s.append(plan.seconds)
            p.plan, p.plan_time, p.appointments = plan, tel.time, {}
            self.groups = problem.groups
        self.plan, self.plan_k0 = p.plan, k

    def _track(self, tel: Telemetry, k: int) -> Setpoints:
        """Planned counts; flows scaled so the step ends at the planned volume."""
        assert self.plan is not None
        j = min(k - self.plan_k0, self.plan.volumes_m3.size - 1)
        planned = self.plan.flows_m3h[:, j]
        wanted = self.inflow[min(k, len(self.inflow) - 1)] + (tel.volume_m3 - self.plan.volumes_m3[j]) \
            / (self.step_s / 3600)
        total = float(planned.sum())
        flows = planned * (max(wanted, 0.0) / total) if total > 0 else planned
        return dispatch(tel, self.planner.model, self.groups, self.plan.counts[:, j], flows)

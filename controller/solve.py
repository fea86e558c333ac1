"""Solving one interval's problem: the MILP at guessed levels, then again at the plan's own
levels while they stray, all within one time budget per interval."""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import structlog

from controller.emptying import first_landing
from controller.milp import Ints, Plan, Problem, coefficients, solve
from controller.problem import ProblemBuilder
from controller.settings import MpcSettings

log = structlog.get_logger("tunneltwin.mpc")


def choosing(problem: Problem) -> bool:
    """The problem still chooses some day's emptying step (a once-a-day, longer solve)."""
    return any(len(day) > 1 for day in problem.emptying_days)


def time_limit_s(cfg: MpcSettings, problem: Problem) -> float:
    """One solve's time limit: the choosing one while it still chooses a day's emptying step."""
    return cfg.solver.choose_time_limit_s if choosing(problem) else cfg.solver.time_limit_s


def relinearised(builder: ProblemBuilder, cfg: MpcSettings, problem: Problem,
                 start: Ints | None = None) -> tuple[Plan | None, Problem]:
    """Solve; if the plan's near-term levels stray from the levels its flows were linearised
    at (it matters most near the bottom, where flow falls fast with level), solve again at
    the plan's own levels, within one time budget per interval. A day's emptying step is
    chosen by the first solve; the passes after it keep that step (``held``), as the next
    interval's solve would keep it booked. Returns the plan (None when there is none) and the
    problem it solved last."""
    deadline = time.perf_counter() + max(time_limit_s(cfg, problem), cfg.solver.step_budget_s)
    plan: Plan | None = None
    for _ in range(1 + cfg.solver.relinearise):
        limit = time_limit_s(cfg, problem)
        remaining = deadline - time.perf_counter()
        if plan is not None and remaining < 0.1:
            break
        try:
            coef = coefficients(builder.model, problem.groups, problem.level_guess_m)
            new = solve(problem, coef, min(limit, max(remaining, 0.1)), cfg.solver.mip_gap,
                        start if plan is None else None)
        except ValueError as exc:  # non-finite input: never let it reach HiGHS
            log.error("plan_input_rejected", error=str(exc))
            return None, problem
        if new is None:
            break
        plan = new
        levels = builder.mid_levels(problem.volume0_m3, plan.volumes_m3)
        near = slice(0, cfg.solver.relinearise_steps)
        if np.max(np.abs(levels[near] - problem.level_guess_m[near])) <= cfg.solver.relinearise_m:
            break
        problem = dataclasses.replace(problem, level_guess_m=levels, guard_steps=builder.guard_steps(levels),
                                      emptying_days=held(problem, plan))
    return plan, problem


def held(problem: Problem, plan: Plan) -> tuple[tuple[int, ...], ...]:
    """The days' emptying steps as ``plan`` chose them: each day still choosing keeps the
    first of its candidates where the plan lands, or all of them where it lands on none."""
    def chosen(day: tuple[int, ...]) -> tuple[int, ...]:
        hit = first_landing(day, problem.v_empty_m3, plan)
        return day if len(day) == 1 or hit is None else (hit,)
    return tuple(chosen(day) for day in problem.emptying_days)

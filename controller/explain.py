"""A tick's MILP as a person or another solver can read it: the problem's input as JSON (the
daemon audits it), the model rebuilt from it with named columns and constraint families,
written as ``.lp`` and ``.mps``, solved, and taken apart into objective terms in EUR and the
constraints that bind. The families are the equations of docs/optimiser.md."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import highspy
import numpy as np

from controller.lp import INF, Model, Result, quiet_highs
from controller.milp import Group, Plan, Problem, Weights, build, coefficients, plan_of
from controller.model import StationModel

INTS = ("n_now", "locked_on", "locked_off")
# objective terms by column block: what each block's cost is, in EUR
TERMS = {"n": "energy (pumps on)", "q": "energy (flow)", "s": "starts", "d": "stops", "v": "water left stored",
         "lo": "under the floor", "hi": "over the ceiling", "dq": "F2 changes", "miss": "emptying missed",
         "short": "booked emptying short",
         "guard_slack": "guard broken", "landing_slack": "landing guard broken",
         "committed_slack": "committed pumps under the floor",
         "overflow": "expected overflow (storm reserve)"}

# the hard rules and the emptying first when listing binding rows; the modelling rows after
FIRST = ("floor", "storm_reserve", "emptying_booked", "emptying_step", "emptying_day", "end_cap",
         "max_outflow", "min_pumps", "guard", "landing_guard", "committed", "timers")


def problem_to_json(p: Problem) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in dataclasses.fields(p):
        value = getattr(p, f.name)
        if isinstance(value, np.ndarray):
            value = value.tolist()
        elif f.name == "groups":
            value = [[g.name, list(g.members)] for g in value]
        elif f.name == "weights":
            value = dataclasses.asdict(value)
        elif f.name == "emptying_days":
            value = [list(day) for day in value]
        elif f.name in ("guard_steps", "reserve_p"):
            value = list(value)
        out[f.name] = value
    return out


def problem_from_json(data: dict[str, Any]) -> Problem:
    kw: dict[str, Any] = {}
    for f in dataclasses.fields(Problem):
        if f.name not in data:
            continue
        value = data[f.name]
        if f.name == "groups":
            value = tuple(Group(name, tuple(members)) for name, members in value)
        elif f.name == "weights":
            value = Weights(**value)
        elif f.name == "emptying_days":
            value = tuple(tuple(day) for day in value)
        elif f.name in ("guard_steps", "reserve_p"):
            value = tuple(value)
        elif isinstance(value, list):  # every other list is an array
            value = np.asarray(value, dtype=np.int64 if f.name in INTS else float)
        kw[f.name] = value
    return Problem(**kw)


@dataclass(frozen=True)
class Binding:
    row: str
    activity: float
    bound: float
    side: str  # "lower" or "upper"

    @property
    def family(self) -> str:
        """The constraint family of the row (``floor_12`` -> ``floor``)."""
        return self.row.rpartition("_")[0]


@dataclass(frozen=True)
class Explanation:
    status: str
    objective_eur: float
    terms_eur: dict[str, float]
    binding: tuple[Binding, ...]
    plan: Plan | None
    rows: int
    cols: int
    integers: int


def explain(p: Problem, model: StationModel, out: Path | None = None, time_limit_s: float = 60.0,
            mip_gap: float = 1e-6) -> Explanation:
    """Rebuild the MILP, write ``out.lp`` and ``out.mps`` (given ``out``), solve and explain it."""
    coef = coefficients(model, p.groups, p.level_guess_m)
    m, v = build(p, coef)
    if out is not None:
        write(m, out)
    r = m.solve(time_limit_s, mip_gap)
    plan = plan_of(p, coef, v, r) if r.has_solution else None
    return Explanation(r.status, r.objective, terms(m, r), tuple(binding(m, r)) if r.has_solution else (), plan,
                       len(m.row_lo), m.n_cols, sum(m.integer))


def write(m: Model, out: Path) -> list[Path]:
    """The model as ``.lp`` and ``.mps`` files beside each other, names kept."""
    out.parent.mkdir(parents=True, exist_ok=True)
    h = quiet_highs()
    h.setOptionValue("output_flag", False)
    h.passModel(m.highs(named=True))
    paths = [out.with_suffix(".lp"), out.with_suffix(".mps")]
    for path in paths:
        if h.writeModel(str(path)) != highspy.HighsStatus.kOk:
            raise OSError(f"{path}: HiGHS could not write the model")
    return paths


def terms(m: Model, r: Result) -> dict[str, float]:
    """The objective split by column block, in EUR (only the blocks that cost something)."""
    cost, x = np.asarray(m.cost), r.x
    out: dict[str, float] = {}
    for name, block in m.blocks:
        idx = block.index().ravel()
        value = float(cost[idx] @ x[idx])
        if value != 0.0:
            label = TERMS.get(name, name)
            out[label] = out.get(label, 0.0) + value
    return out


def binding(m: Model, r: Result, tol: float = 1e-6) -> list[Binding]:
    """Rows at one of their finite bounds in the solution, the rules first (``FIRST``). Left out:
    equations (the mass balance binds by definition) and rows whose every column is zero (a
    pump group that is off sits at its flow band's bounds; that says nothing)."""
    rows, cols = np.asarray(m.rows, dtype=np.int64), np.asarray(m.cols, dtype=np.int64)
    activity = np.zeros(len(m.row_lo))
    np.add.at(activity, rows, np.asarray(m.vals) * r.x[cols])
    moving = np.zeros(len(m.row_lo), dtype=bool)
    np.logical_or.at(moving, rows, np.abs(r.x[cols]) > tol)
    names = m.row_names()
    out = []
    for i, (a, lo, hi) in enumerate(zip(activity, m.row_lo, m.row_hi, strict=True)):
        if lo == hi or not moving[i]:
            continue
        for side, bound in (("lower", lo), ("upper", hi)):
            if abs(bound) < INF and abs(a - bound) <= tol * max(1.0, abs(bound)):
                out.append(Binding(names[i], float(a), float(bound), side))
    rank = {family: k for k, family in enumerate(FIRST)}
    return sorted(out, key=lambda b: rank.get(b.family, len(FIRST)))

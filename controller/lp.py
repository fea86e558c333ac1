"""A small sparse MILP builder over HiGHS: variables in named blocks, rows as coefficient lists.

Building the matrix ourselves (rather than one highspy call per row) keeps a 96-step
model's set-up in milliseconds, which matters when it is rebuilt every control interval.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import itertools
import os
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

import highspy
import numpy as np
from numpy.typing import NDArray

Array = NDArray[np.float64]
INF = highspy.kHighsInf


@dataclass
class Block:
    """A contiguous range of columns, shaped like the quantity it holds (e.g. groups x steps)."""

    start: int
    shape: tuple[int, ...]

    def __getitem__(self, key: int | tuple[int, int]) -> int:
        if isinstance(key, tuple):
            return self.start + key[0] * self.shape[1] + key[1]
        return self.start + key

    def index(self) -> NDArray[np.int64]:
        return np.arange(self.start, self.start + int(np.prod(self.shape))).reshape(self.shape)

    def values(self, x: Array) -> Array:
        return np.asarray(x[self.start:self.start + int(np.prod(self.shape))]).reshape(self.shape)


@dataclass
class Result:
    status: str
    has_solution: bool
    x: Array
    objective: float
    gap: float
    seconds: float


@dataclass
class Model:
    lower: list[float] = field(default_factory=list)
    upper: list[float] = field(default_factory=list)
    cost: list[float] = field(default_factory=list)
    integer: list[int] = field(default_factory=list)
    rows: list[int] = field(default_factory=list)
    cols: list[int] = field(default_factory=list)
    vals: list[float] = field(default_factory=list)
    row_lo: list[float] = field(default_factory=list)
    row_hi: list[float] = field(default_factory=list)
    blocks: list[tuple[str, Block]] = field(default_factory=list)  # column blocks by name, in order
    families: list[tuple[str, int]] = field(default_factory=list)  # (family, first row), in row order

    @property
    def n_cols(self) -> int:
        return len(self.lower)

    def block(self, name: str, shape: tuple[int, ...], lower: Array | float = 0.0, upper: Array | float = INF,
              cost: Array | float = 0.0, integer: bool = False) -> Block:
        """Columns named ``name`` with their indices (``n_0_3``: group 0, block 3)."""
        n = int(np.prod(shape))
        start = self.n_cols
        for target, value in ((self.lower, lower), (self.upper, upper), (self.cost, cost)):
            target.extend(np.broadcast_to(np.asarray(value, dtype=float), shape).ravel().tolist())
        self.integer.extend([1 if integer else 0] * n)
        block = Block(start, shape)
        self.blocks.append((name, block))
        return block

    def family(self, name: str) -> None:
        """The rows added from here on belong to constraint family ``name`` (docs/optimiser.md)."""
        self.families.append((name, len(self.row_lo)))

    def col_names(self) -> list[str]:
        """``n_0_3`` for a block named once (group 0, block 3); ``guard_slack_7`` (the 8th) for
        single columns added under one name many times."""
        once = Counter(name for name, _ in self.blocks)
        seen: Counter[str] = Counter()
        names: list[str] = []
        for name, block in self.blocks:
            if once[name] == 1:
                names.extend(f"{name}_{'_'.join(map(str, ix))}" for ix in np.ndindex(*block.shape))
            else:
                size = int(np.prod(block.shape))
                names.extend(f"{name}_{seen[name] + i}" for i in range(size))
                seen[name] += size
        return names

    def row_names(self) -> list[str]:
        """``family_i``: the family's i-th row, counted across every stretch of rows it was given."""
        seen: Counter[str] = Counter()
        names: list[str] = []
        marks = [("row", 0), *self.families, ("", len(self.row_lo))]
        for (family, first), (_, end) in itertools.pairwise(marks):
            names.extend(f"{family}_{seen[family] + i}" for i in range(end - first))
            seen[family] += end - first
        return names

    def highs(self, named: bool = False) -> highspy.HighsLp:
        """The model as HiGHS takes it; ``named`` adds the column and row names (for files)."""
        lp = self._lp()
        if named:
            lp.col_names_ = self.col_names()
            lp.row_names_ = self.row_names()
        return lp

    def row(self, terms: list[tuple[int, float]], lo: float = -INF, hi: float = INF) -> None:
        r = len(self.row_lo)
        for col, coef in terms:
            if coef != 0.0:
                self.rows.append(r)
                self.cols.append(col)
                self.vals.append(float(coef))
        self.row_lo.append(float(lo))
        self.row_hi.append(float(hi))

    def rows_of(self, cols: NDArray[np.int64], coefs: Array, lo: Array | float = -INF,
                hi: Array | float = INF) -> None:
        """Many rows at once, each like ``row``: ``cols`` and ``coefs`` are (rows, terms), the
        terms in row order, zero coefficients dropped (so short rows pad with zeros). The
        per-row Python calls were most of the model's set-up, itself about 5 % of a replay."""
        cols = np.asarray(cols, dtype=np.int64)
        coefs = np.broadcast_to(np.asarray(coefs, dtype=float), cols.shape)
        n, r = cols.shape[0], len(self.row_lo)
        keep = coefs != 0.0
        self.rows.extend(np.broadcast_to(np.arange(r, r + n)[:, None], cols.shape)[keep].tolist())
        self.cols.extend(cols[keep].tolist())
        self.vals.extend(coefs[keep].tolist())
        self.row_lo.extend(np.broadcast_to(np.asarray(lo, dtype=float), (n,)).tolist())
        self.row_hi.extend(np.broadcast_to(np.asarray(hi, dtype=float), (n,)).tolist())

    def add_cost(self, col: int, value: float) -> None:
        self.cost[col] += value

    def solve(self, time_limit_s: float, mip_gap: float = 1e-3,
              partial: tuple[NDArray[np.int32], Array] | None = None,
              heuristics_off: tuple[str, ...] | None = None) -> Result:
        """``partial`` gives some columns, which HiGHS completes into a first incumbent.
        ``heuristics_off`` replaces HEURISTICS_OFF (for bench/heuristics.py)."""
        h = quiet_highs()
        options: dict[str, bool | float | int] = {"output_flag": False, "time_limit": float(time_limit_s),
                                                  "mip_rel_gap": float(mip_gap), "threads": 1}
        options |= dict.fromkeys(HEURISTICS_OFF if heuristics_off is None else heuristics_off, False)
        for name, value in options.items():
            set_option(h, name, value)
        h.passModel(self._lp())
        if partial is not None:
            h.setSolution(len(partial[0]), partial[0], partial[1])
        t0 = time.perf_counter()
        h.run()
        seconds = time.perf_counter() - t0
        info = h.getInfo()
        status = h.modelStatusToString(h.getModelStatus())
        has = info.primal_solution_status == 2  # kSolutionStatusFeasible
        x = np.asarray(h.getSolution().col_value, dtype=float) if has else np.zeros(self.n_cols)
        gap = float(getattr(info, "mip_gap", 0.0)) if has else float("inf")
        return Result(status, has, x, float(info.objective_function_value), gap, seconds)

    def _lp(self) -> highspy.HighsLp:
        lp = highspy.HighsLp()
        lp.num_col_ = self.n_cols
        lp.num_row_ = len(self.row_lo)
        lp.col_cost_ = np.asarray(self.cost)
        lp.col_lower_ = np.asarray(self.lower)
        lp.col_upper_ = np.asarray(self.upper)
        lp.row_lower_ = np.asarray(self.row_lo)
        lp.row_upper_ = np.asarray(self.row_hi)
        starts, index, values = _csc(self.rows, self.cols, self.vals, self.n_cols)
        lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
        lp.a_matrix_.start_ = starts
        lp.a_matrix_.index_ = index
        lp.a_matrix_.value_ = values
        if any(self.integer):
            lp.integrality_ = [highspy.HighsVarType.kInteger if i else highspy.HighsVarType.kContinuous
                               for i in self.integer]
        return lp


def _csc(rows: list[int], cols: list[int], vals: list[float], n_cols: int
         ) -> tuple[NDArray[np.int32], NDArray[np.int32], Array]:
    c = np.asarray(cols, dtype=np.int64)
    order = np.argsort(c, kind="stable")
    starts = np.searchsorted(c[order], np.arange(n_cols + 1)).astype(np.int32)
    return starts, np.asarray(rows, dtype=np.int32)[order], np.asarray(vals, dtype=float)[order]


# HiGHS's sub-MIP heuristics (RINS, RENS) spent 90 % of the slowest interval solve (1.75 of
# 2.0 s on a 16-integer plan) for no better incumbent. Off, over a 2-day replay's 207 solves
# the slowest fell from 2.0 to about 1.1 s and the sum from 35 to 25-30 s, and no plan's
# objective moved by more than 0.9 EUR. Feasibility jump (run before the root LP) found
# nothing the root did not: off, every third solve of the recorded 10 days re-solved took
# 17-22 % less time in sum with every objective unchanged (python -m bench.heuristics).
HEURISTICS_OFF = ("mip_heuristic_run_rins", "mip_heuristic_run_rens", "mip_heuristic_run_feasibility_jump")

_BANNER_DONE = False


def set_option(h: highspy.Highs, name: str, value: bool | float | int) -> None:
    """Set a HiGHS option or fail saying which: an older HiGHS refuses options it does not know
    (the heuristics switches came in 1.11) and would otherwise run untuned in silence."""
    if h.setOptionValue(name, value) != highspy.HighsStatus.kOk:
        raise RuntimeError(f"HiGHS refused option {name} = {value!r}: tunneltwin needs highspy >= 1.11, "
                           f"this is {importlib.metadata.version('highspy')}")


def quiet_highs() -> highspy.Highs:
    """HiGHS prints a banner to fd 1 the first time it is built; keep it off our stdout."""
    global _BANNER_DONE
    if _BANNER_DONE:
        return highspy.Highs()  # type: ignore[no-untyped-call]
    with _stdout_to_devnull():
        h = highspy.Highs()  # type: ignore[no-untyped-call]
    _BANNER_DONE = True
    return h


@contextlib.contextmanager
def _stdout_to_devnull() -> Iterator[None]:
    try:
        fd = os.dup(1)
    except OSError:
        yield
        return
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 1)
            yield
    finally:
        os.dup2(fd, 1)
        os.close(fd)

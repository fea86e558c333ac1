"""The MPC's settings: what the loop, the problem builder and dispatch read (``config/mpc.toml``)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from controller.forecast import ForecastSettings
from controller.milp import Weights

MAX_HORIZON_H = 168.0  # a week: 672 steps of 15 min per plan


def _bounded(obj: object, bounds: dict[str, tuple[float, float]]) -> None:
    for name, (lo, hi) in bounds.items():
        value = getattr(obj, name)
        if not lo <= value <= hi:
            raise ValueError(f"{name} = {value}: must be between {lo} and {hi}")


@dataclass(frozen=True)
class SolverSettings:
    """How the MILP is built and solved: measured choices, not an operator's settings, so
    ``config/mpc.toml`` does not take them. Each was chosen by a benchmark (``bench/mpc.py``,
    docs/optimiser.md) and is changed here, in code, with a new measurement."""

    time_limit_s: float = 2.0  # HiGHS stops here and we take its incumbent
    mip_gap: float = 0.005  # relative optimality gap accepted
    grouped: bool = True  # identical pumps as integer counts (False: one binary per pump)
    integer_h: float | None = 2.0  # counts integer this far ahead, relaxed beyond (None: all)
    fine_steps: int = 8  # the first steps, where counts may change every step
    block_steps: int = 4  # beyond fine_steps, pump counts change only every this many steps
    block_flows: bool = False  # beyond fine_steps, flows are held for a clock hour too (not near emptying)
    choose_time_limit_s: float = 3.0  # for the once-a-day solve that picks the emptying time (about 15
    # in 10 days; at 1 s a few stopped with a choice up to 30 % dearer: docs/benchmarks.md)
    step_budget_s: float = 2.0  # all solves of one interval together (relinearisation passes)
    relinearise: int = 2  # extra solves allowed when the plan strays from its linearisation levels
    relinearise_m: float = 0.2  # ... by more than this
    relinearise_steps: int = 8  # ... within this many steps
    warm_start: bool = False  # start HiGHS from the previous plan's pump counts, shifted (off: no faster)
    terminal_factor: float = 1.0  # stored water at the end costs this x horizon mean price x kWh/m3
    flow_margin: float = 0.97  # plan F2 up to this share of its limit (the linearised flows' error)

    def __post_init__(self) -> None:
        _bounded(self, {"time_limit_s": (0.0, 600), "flow_margin": (0.1, 1.0), "block_steps": (1, 96),
                        "fine_steps": (0, 96), "choose_time_limit_s": (0.0, 600),
                        "step_budget_s": (0.0, 1800), "mip_gap": (0.0, 0.5), "relinearise": (0, 10)})


@dataclass(frozen=True)
class MpcSettings:
    """What a site sets (``config/mpc.toml``): margins in metres, risks as probabilities,
    weights in EUR, the forecast's memory. ``solver`` is code's, not the file's."""

    horizon_h: float = 24.0  # plan length; the plan step is the site's control interval
    floor_margin_m: float = 0.05  # planned levels stay this far above the minimum level
    ceiling_margin_m: float = 0.5  # ... and this far below the alarm level
    alarm_margin_m: float = 0.3  # the supervisor: each interval ends this far under the alarm on the high side
    emptying_below_m: float = 0.08  # the emptying step aims this far under the emptying level
    guard_level_m: float = 1.0  # near-term steps expected below this keep a self-regulating pump set
    stop_levels: bool = True  # give running pumps the floor as a stop level the PLC executes by itself
    floor_risk: float = 0.003  # the floor, guards and dry-day test hold unless the inflow falls under its this-quantile
    storm_risk: float = 0.001  # the rarest storm the reserve plans for: the inflow's (1 - this) quantile; 0: none
    storm_window_h: float = 12.0  # ... over any stretch of this many hours ahead
    weights: Weights = field(default_factory=Weights)
    forecast: ForecastSettings = field(default_factory=ForecastSettings)
    solver: SolverSettings = field(default_factory=SolverSettings)

    def __post_init__(self) -> None:
        """Bounds that keep a solve finite: a zero horizon ran silently, and a horizon of 1e9 h
        hung the daemon (the problem grows with it)."""
        _bounded(self, {"horizon_h": (0.25, MAX_HORIZON_H),
                        "storm_risk": (0.0, 0.5), "floor_risk": (0.0, 0.5), "storm_window_h": (0.25, MAX_HORIZON_H)})

    def reproducible(self, limit_s: float = 60.0) -> MpcSettings:
        """Solve every interval to the MIP gap, not to the clock: HiGHS is deterministic, so the
        same input then gives the same run on any machine load. The time limits stay as a
        backstop. For validation runs and tests; a daemon needs its decision within the interval."""
        s = self.solver
        return self.with_solver(time_limit_s=max(s.time_limit_s, limit_s),
                                choose_time_limit_s=max(s.choose_time_limit_s, limit_s),
                                step_budget_s=max(s.step_budget_s, 3 * limit_s))

    def with_solver(self, **changes: object) -> MpcSettings:
        """These settings with the solver's tuning changed (benchmarks and tests)."""
        return dataclasses.replace(self, solver=dataclasses.replace(self.solver, **changes))  # type: ignore[arg-type]

"""The MPC's settings: what the loop, the problem builder and dispatch read (``config/mpc.toml``)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from controller.forecast import ForecastSettings
from controller.milp import Weights
from controller.supervisor import SupervisorSettings

MAX_HORIZON_H = 168.0  # a week: 672 steps of 15 min per plan


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
    storm_risk: float = 0.01  # the storm reserve holds unless the inflow beats its (1 - this) quantile; 0: none
    storm_window_h: float = 12.0  # ... over any stretch of this many hours ahead
    weights: Weights = field(default_factory=Weights)
    forecast: ForecastSettings = field(default_factory=ForecastSettings)
    supervisor: SupervisorSettings = field(default_factory=SupervisorSettings)

    def __post_init__(self) -> None:
        """Bounds that keep a solve finite: a zero horizon or block ran silently, and a horizon
        of 1e9 h hung the daemon (the problem grows with it)."""
        bounds = {"horizon_h": (0.25, MAX_HORIZON_H), "block_steps": (1, 96), "fine_steps": (0, 96),
                  "time_limit_s": (0.0, 600), "choose_time_limit_s": (0.0, 600), "step_budget_s": (0.0, 1800),
                  "mip_gap": (0.0, 0.5), "relinearise": (0, 10), "flow_margin": (0.1, 1.0),
                  "storm_risk": (0.0, 0.5), "storm_window_h": (0.25, MAX_HORIZON_H)}
        for name, (lo, hi) in bounds.items():
            value = getattr(self, name)
            if not lo <= value <= hi:
                raise ValueError(f"{name} = {value}: must be between {lo} and {hi}")

    def reproducible(self, limit_s: float = 60.0) -> MpcSettings:
        """Solve every interval to the MIP gap, not to the clock: HiGHS is deterministic, so the
        same input then gives the same run on any machine load. The time limits stay as a
        backstop. For validation runs and tests; a daemon needs its decision within the interval."""
        return dataclasses.replace(self, time_limit_s=max(self.time_limit_s, limit_s),
                                   choose_time_limit_s=max(self.choose_time_limit_s, limit_s),
                                   step_budget_s=max(self.step_budget_s, 3 * limit_s))

"""Perfect-foresight reference: the MPC's own loop, told the actual inflow and every price.

Each interval it solves the MPC's problem over 48 h on the scenario's real inflow and prices
(no forecast error, no unpublished prices), through the same model, dispatch and safety
supervisor. Only the knowledge differs: its forecast spread is zero, so what the MPC keeps
against forecast error (the floor's shortfall, the guards' low inflow, the storm reserve)
is exactly the known inflow, and so is the look-ahead that knowledge allows
(``told_the_future``). So its cost is what better information buys. That makes it a bound
in practice, not a proof: both runs are one path of a chaotic loop. As shipped it paid less
than the MPC in all 11 runs measured, by 0.05-57 % (README, "Oracle").

Why not the whole scenario in one MILP (the previous oracle): over 5-10 days HiGHS does not
close the gap in minutes (storm: 263 % after 60 s solves, 13.5 min per run), and tracking
that plan on the twin paid more than the MPC (storm 371.61 EUR and 2 emptyings missed
against 262.64 and none). The loop takes 1-2 min per 10-day run.
"""

from __future__ import annotations

import dataclasses
from datetime import date, datetime, timedelta

import numpy as np
from numpy.typing import NDArray

from controller.forecast import ExternalInflow
from controller.milp import Problem
from controller.mpc import MpcController
from controller.settings import MpcSettings
from controller.uncertainty import QUANTILES, Spread
from kernel.contracts import PriceCurve, Telemetry
from kernel.site import Site

Array = NDArray[np.float64]


LOOK_AHEAD_H = 48.0


class OracleController(MpcController):
    name = "oracle"

    def __init__(self, site: Site, start: datetime, inflow_m3h: Array, price_eur_per_kwh: Array,
                 mpc: MpcSettings | None = None, end_volume_max_m3: float | None = None) -> None:
        """Given ``end_volume_max_m3`` (a compared run's end volume), the scenario's last step
        ends no fuller than that, so the oracle cannot look cheap by pumping less than the run
        did. Past the scenario's end the horizon sees its last day's inflow again, and its
        prices too unless capped: with the cap, pumping after the end costs nothing, since it
        is outside the compared cost and the cap alone says how full the end may be (with the
        last day's prices it pumped below the cap before the end: 39.88 EUR against the MPC's
        39.75 over 12 h of the excerpt; priced at zero 39.58)."""
        super().__init__(site, told_the_future(mpc or MpcSettings()))
        self.start, self.end_volume_max_m3 = start, end_volume_max_m3
        self.length = len(inflow_m3h)
        inflow, prices = (_padded(np.asarray(a, dtype=float), self.steps) for a in (inflow_m3h, price_eur_per_kwh))
        if end_volume_max_m3 is not None:
            prices[self.length:] = 0.0
        times = [start + timedelta(seconds=(k + 1) * self.step_s) for k in range(len(inflow))]
        self.forecaster.external = ExternalInflow(times, inflow)
        self.prices.observe(PriceCurve(start=start, step_s=self.step_s, eur_per_kwh=tuple(map(float, prices))))

    def spread_of(self, tel: Telemetry, inflow: Array) -> Spread:
        """It is told the inflow: the same model with no spread (every quantile the truth)."""
        return Spread("known", {p: np.asarray(inflow, dtype=float) for p in QUANTILES})

    def problem(self, tel: Telemetry, inflow: Array, prices: Array,
                candidates: dict[date, list[int]] | None = None, spread: Spread | None = None) -> Problem:
        p = super().problem(tel, inflow, prices, candidates, spread)
        left = self.length - round((tel.time - self.start).total_seconds() / self.step_s)
        if self.end_volume_max_m3 is None or not 0 < left <= p.horizon:
            return p
        return dataclasses.replace(p, v_end_max_m3=self.end_volume_max_m3, v_end_step=left - 1)


def told_the_future(mpc: MpcSettings) -> MpcSettings:
    """The MPC's settings, looking ``LOOK_AHEAD_H`` ahead, since it knows that far: the MPC's
    24 h is what its published prices and its forecast support. At 24 h both loops were equally
    myopic and the oracle paid up to 0.4 % more on the recorded high-price runs (README,
    "Oracle"). Nothing else changes: its spread is zero (``spread_of``), so the floor, the
    guards, the dry-day test and the storm reserve plan on the known inflow through the same
    model. The supervisor stays whole."""
    return dataclasses.replace(mpc, horizon_h=max(mpc.horizon_h, LOOK_AHEAD_H))


def _padded(values: Array, steps: int) -> Array:
    """The series, then its last ``steps`` values again (or the whole series, repeated)."""
    tail = np.resize(values[-steps:], steps)
    return np.concatenate([values, tail])

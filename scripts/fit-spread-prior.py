"""Fit the forecast-spread prior (controller/uncertainty.py PRIOR) on the synthetic generator.

Runs the MPC's inflow forecaster causally over a long synthetic series with rain (the
generator is fitted to the recorded data), files each error log(measured / forecast) under
the weather state at issue and the lead bucket, and prints the quantile table to paste.
Usage: python scripts/fit-spread-prior.py [DAYS] [SEED]
"""

from __future__ import annotations

import sys
from datetime import datetime, timedelta

import numpy as np

from controller.config import DEFAULT_MPC, load_mpc
from controller.forecast import InflowForecaster
from controller.uncertainty import LEAD_EDGES_H, QUANTILES, STATES, ForecastSpread
from scenarios import synthetic


def main() -> None:
    days = int(sys.argv[1]) if len(sys.argv) > 1 else 730
    seed = int(sys.argv[2]) if len(sys.argv) > 2 else 7
    step_s, horizon = 900.0, 96
    start = datetime(2025, 1, 6)
    inflow, _ = synthetic.generate(synthetic.load_params(), start, days * 96, step_s, seed, rain=True)
    fc = InflowForecaster(step_s, load_mpc(DEFAULT_MPC).forecast)
    learner = ForecastSpread(step_s, horizon, keep=None)
    for k, q in enumerate(inflow):
        t = start + timedelta(seconds=(k + 1) * step_s)
        fc.observe(t, float(q))
        learner.observe(t, float(q))
        if k >= 7 * 96:  # a week of history first, as a daemon has after its first week
            learner.issued(t, fc.weather(t), fc.forecast(t, horizon))
    counts = {s: sum(len(learner.errors[(s, b)]) for b in range(len(LEAD_EDGES_H) + 1)) for s in STATES}
    print(f"# {days} days, seed {seed}; errors per state: {counts}")
    print("PRIOR = {")
    for s in STATES:
        rows = []
        for i, _ in enumerate(QUANTILES):
            vals = []
            for b in range(len(LEAD_EDGES_H) + 1):
                e = learner.errors[(s, b)]
                vals.append(float(np.quantile(np.fromiter(e, float), QUANTILES[i])) if e else 0.0)
            rows.append("(" + ", ".join(f"{v:.3f}" for v in vals) + ")")
        print(f'    "{s}": (' + ",\n        ".join(rows) + "),")
    print("}")


if __name__ == "__main__":
    main()

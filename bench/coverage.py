"""Calibration of the learnt inflow spread without the optimiser: the forecast does not depend on
the pumps (the inflow is the plant's, not ours), so the MPC's forecaster and spread learner are
run causally over each scenario's inflow, as the MPC calls them, and each quantile's coverage
(the share of measured inflows at or under it) is counted at 1 h and 12 h lead, and the point
forecast's median |log(measured / forecast)| at 1, 4 and 12 h.

Usage: python bench/coverage.py [--stretch | --onsets] [SCENARIO_OR_ENSEMBLE ...]   (default:
       storm-ensemble, and the recorded 10 days where ../shared has them)

--stretch: instead, by weather state, the P99 of log(measured / forecast) of one step at a lead
against that of the volume from now to the lead: what the storm reserve sums per step against
the quantile of the window's own volume.

--onsets: instead, the 12-h forecasts of an ensemble's inline members (not its included scenario
files) split by what they aim at: an interval outside the member's storms (from its start to the
end of its recession), one in a storm that began after the forecast was issued (an onset no
forecast from telemetry sees), or one in a storm already under way; each class's share of
misses over P90 and P99 and under P10.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from controller.config import DEFAULT_MPC, load_mpc
from controller.forecast import InflowForecaster
from controller.milp import Array
from controller.settings import MpcSettings
from controller.uncertainty import ForecastSpread, Spread
from kernel.site import Site, load_site
from scenarios.ensemble import Member, members
from scenarios.replay import ReplaySetup
from scenarios.scenario import Storm, load_scenario

PS = (0.1, 0.9, 0.99, 0.999)
LEADS_H = (1, 12)
RECORDED = Path(__file__).resolve().parents[2] / "shared" / "hsy-data" / "Hackathon_HSY_data.xlsx"


def forecasts(setup: ReplaySetup) -> Iterator[tuple[int, datetime, Array, str]]:
    """Step by step through the scenario, as the MPC calls them: the forecaster observes the
    interval ending at step k, then gives its point forecast and weather state at that time."""
    cfg = load_mpc(DEFAULT_MPC)
    horizon = horizon_steps(setup, cfg)
    forecaster = InflowForecaster(setup.step_s, cfg.forecast)
    for k in range(1, len(setup.inflow_m3h)):
        t = setup.start + timedelta(seconds=k * setup.step_s)
        forecaster.observe(t, float(setup.inflow_m3h[k - 1]))  # the interval ending now
        yield k, t, forecaster.forecast(t, horizon), forecaster.weather(t)


def horizon_steps(setup: ReplaySetup, cfg: MpcSettings) -> int:
    return round(cfg.horizon_h * 3600 / setup.step_s)


ERROR_LEADS_H = (1, 4, 12)


def bands(setup: ReplaySetup) -> Iterator[tuple[int, Array, Spread]]:
    """``forecasts`` with the spread learner fed as the MPC feeds it: step k, the point forecast
    and its learnt quantiles."""
    spread = ForecastSpread(setup.step_s, horizon_steps(setup, load_mpc(DEFAULT_MPC)))
    for k, t, point, state in forecasts(setup):
        spread.observe(t, float(setup.inflow_m3h[k - 1]))
        spread.issued(t, state, point)
        yield k, point, spread.spread(state, point)


def hits(setup: ReplaySetup) -> tuple[dict[tuple[int, float], list[bool]], dict[int, list[float]]]:
    """(lead h, p) -> for each forecast, whether the measured inflow was at or under its
    p-quantile; and lead h -> the point forecast's |log(measured / forecast)| for each."""
    inflow = np.asarray(setup.inflow_m3h, dtype=float)
    out: dict[tuple[int, float], list[bool]] = {(h, p): [] for h in LEADS_H for p in PS}
    errors: dict[int, list[float]] = {h: [] for h in ERROR_LEADS_H}
    for k, point, band in bands(setup):
        for h in LEADS_H:
            j = round(h * 3600 / setup.step_s) - 1
            if k + j < len(inflow):
                for p in PS:
                    out[(h, p)].append(bool(inflow[k + j] <= band.at(p)[j]))
        for h in ERROR_LEADS_H:
            j = round(h * 3600 / setup.step_s) - 1
            if k + j < len(inflow):
                errors[h].append(abs(float(np.log(max(inflow[k + j], 1.0) / max(point[j], 1.0)))))
    return out, errors


STRETCH_LEADS_H = (1, 4, 12)


def stretch(name: str, setups: list[ReplaySetup]) -> None:
    """Per weather state and lead: P99 of the step's log error, and of the volume's up to it."""
    errors: dict[tuple[str, int], list[tuple[float, float]]] = {}
    for setup in setups:
        inflow = np.asarray(setup.inflow_m3h, dtype=float)
        for k, _, point, state in forecasts(setup):
            for h in STRETCH_LEADS_H:
                j = round(h * 3600 / setup.step_s)
                if k + j <= len(inflow):
                    errors.setdefault((state, h), []).append(
                        (float(np.log(inflow[k + j - 1] / point[j - 1])),
                         float(np.log(inflow[k:k + j].sum() / point[:j].sum()))))
    print(f"{name}: P99 of log(measured / forecast), one step at the lead / the volume up to it")
    for (state, h), pairs in sorted(errors.items()):
        a = np.array(pairs)
        print(f"  {state:7s} {h:3d} h  {np.quantile(a[:, 0], 0.99):.3f} / {np.quantile(a[:, 1], 0.99):.3f}"
              f"  (n={len(a)})")


def table(name: str, setups: list[ReplaySetup]) -> None:
    total: dict[tuple[int, float], list[bool]] = {}
    errors: dict[int, list[float]] = {}
    for s in setups:
        covered, missed_by = hits(s)
        for key, v in covered.items():
            total.setdefault(key, []).extend(v)
        for h, e in missed_by.items():
            errors.setdefault(h, []).extend(e)
    cells = "  ".join(f"P{p * 100:02g}@{h}h {np.mean(total[(h, p)]):.3f}" for h in LEADS_H for p in PS)
    error = " / ".join(f"{np.median(errors[h]):.3f}" for h in ERROR_LEADS_H)
    hours = "/".join(str(h) for h in ERROR_LEADS_H)
    print(f"{name:16s} {cells}  median |log error| at {hours} h {error}  (n={len(total[(1, 0.1)])})")


def storm_class(storms: list[Storm], issued_h: float, aimed_h: float) -> str:
    for s in storms:
        if s.start_h <= aimed_h <= s.start_h + s.duration_h + s.decay_h:
            return "storm begun after issue" if issued_h < s.start_h else "storm under way"
    return "no storm"


def onsets(name: str, runs: list[Member], site: Site) -> None:
    """12-h coverage by what the forecast aims at (module docstring, --onsets)."""
    counts: dict[str, np.ndarray] = {}
    for member in runs:
        if member.inline is None:  # an included scenario file: its storms are not read here
            continue
        setup = member.load(site)
        storms = [Storm.model_validate(s) for s in member.inline.get("storm", [])]
        inflow = np.asarray(setup.inflow_m3h, dtype=float)
        j = round(12 * 3600 / setup.step_s) - 1
        hours = setup.step_s / 3600
        for k, _, band in bands(setup):
            if k + j >= len(inflow):
                continue
            cls = storm_class(storms, k * hours, (k + j + 1) * hours)
            came = inflow[k + j]
            counts.setdefault(cls, np.zeros(4))[:] += (1, came > band.at(0.9)[j], came > band.at(0.99)[j],
                                                        came < band.at(0.1)[j])
    n = sum(c[0] for c in counts.values())
    print(f"{name}: 12-h forecasts by what they aim at (n={int(n)})")
    for cls, (m, over90, over99, under10) in counts.items():
        print(f"  {cls:24s} share {m / n:.3f}  over P90 {over90 / m:.3f}  over P99 {over99 / m:.3f}  "
              f"under P10 {under10 / m:.3f}  (its misses over P90: {over90 / n:.3f} of all)")


def main(refs: list[str]) -> None:
    site = load_site()
    if "--onsets" in refs:
        for ref in [r for r in refs if r != "--onsets"] or ["storm-ensemble"]:
            onsets(ref, members([ref]), site)
        return
    show = stretch if "--stretch" in refs else table
    refs = [r for r in refs if r != "--stretch"]
    for ref in refs or ["storm-ensemble"]:
        show(ref, [m.load(site) for m in members([ref])])
    if not refs and RECORDED.exists():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            show("recorded", [load_scenario(str(RECORDED), site, "normal", None, None)])


if __name__ == "__main__":
    main(sys.argv[1:])

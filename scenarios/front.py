"""The trade-off front of a sweep: per scenario, each run's cost against the treatment plant's
feed roughness and against pump starts, with the points no other run beats on both marked."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

AXES = (("f2_mean_abs_step_change_m3h", "mean |dF2| per interval, m3/h"), ("pump_starts", "pump starts"))
REFERENCES = ("historical", "baseline")  # drawn on the front, never part of it


@dataclass(frozen=True)
class Point:
    label: str  # controller and settings
    cost_eur: float
    x: float
    reference: bool  # the recorded operation or the rule-based baseline
    dominated: bool  # another MPC run costs no more and is no rougher, and beats it on one


def dominated(cost: float, x: float, others: Sequence[tuple[float, float]]) -> bool:
    return any(c <= cost and o <= x and (c < cost or o < x) for c, o in others)


def points(rows: Sequence[dict[str, Any]], scenario: str, x_key: str) -> list[Point]:
    """The scenario's runs that finished, as points; only the MPC's runs can dominate."""
    ok = [r for r in rows if r["scenario"] == scenario and r["status"] == "ok" and r.get(x_key) not in (None, "")]
    mpc = [(float(r["cost_eur"]), float(r[x_key])) for r in ok if r["controller"] not in REFERENCES]
    return [Point(f"{r['controller']} {r['settings']}", float(r["cost_eur"]), float(r[x_key]),
                  r["controller"] in REFERENCES,
                  r["controller"] not in REFERENCES and dominated(float(r["cost_eur"]), float(r[x_key]), mpc))
            for r in ok]


def scenarios_with_a_front(rows: Sequence[dict[str, Any]], least: int = 3) -> list[str]:
    """Scenarios where the MPC ran with at least ``least`` settings: a sweep over a setting."""
    names = dict.fromkeys(r["scenario"] for r in rows)
    return [s for s in names if len({r["settings"] for r in rows if r["scenario"] == s
                                     and r["controller"] not in REFERENCES and r["status"] == "ok"}) >= least]


def markdown(rows: Sequence[dict[str, Any]]) -> list[str]:
    """Per scenario with a front: each run's cost and feed and wear figures, and whether it is
    dominated (on cost against mean |dF2|, or against starts)."""
    out: list[str] = []
    for scenario in scenarios_with_a_front(rows):
        by_axis = {key: {p.label: p for p in points(rows, scenario, key)} for key, _ in AXES}
        out += ["", f"Front on {scenario} (dominated: another MPC run costs no more and is no rougher):", "",
                "| run | cost EUR | mean abs dF2 m3/h | jumps | F2 std m3/h | max hourly swing m3/h | starts "
                "| run-hour spread h | dominated on dF2 | dominated on starts |",
                "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |"]
        for r in rows:
            if r["scenario"] != scenario or r["status"] != "ok":
                continue
            label = f"{r['controller']} {r['settings']}"
            flags = ["reference" if by_axis[k][label].reference else ("yes" if by_axis[k][label].dominated else "no")
                     for k, _ in AXES]
            out.append(f"| {label} | {float(r['cost_eur']):,.0f} | {r['f2_mean_abs_step_change_m3h']} | "
                       f"{r['f2_jumps']} | {r['f2_std_m3h']} | {r['f2_max_hourly_swing_m3h']} | {r['pump_starts']} | "
                       f"{r['run_hour_spread_h']} | {flags[0]} | {flags[1]} |")
    return out

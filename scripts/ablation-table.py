"""The hedges' ablation as markdown tables, each from an ablation sweep and its reference sweep.

    tunneltwin sweep storm-ensemble --controllers mpc --each --vary floor_inflow_share=0.0 \
        --vary robust_first_step=false --vary guards_on_measured=false --vary landing_guard=1.0 \
        --vary dry_margin=1.0 --out docs/ablation
    tunneltwin sweep recorded-normal.toml recorded-high.toml --controllers mpc --reproducible \
        --each --vary ... --out docs/ablation-recorded
    python scripts/ablation-table.py docs/ablation:docs/storm-ensemble \
        docs/ablation-recorded:docs/recorded-days > docs/ablation.md

A reference sweep gives the default MPC, and the baseline where it has one
(scripts/storm-safety.sh writes both references). Per setting: total cost, hard breaches,
m3*h over the alarm, and storm safety against the baseline, beside the default's.
"""

from __future__ import annotations

import contextlib
import csv
import json
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

from scenarios.sweep import storm_safety


def rows(directory: Path) -> list[dict[str, Any]]:
    out = []
    with (directory / "sweep.csv").open() as f:
        for r in csv.DictReader(f):
            for k, v in r.items():
                with contextlib.suppress(ValueError):
                    r[k] = int(v) if v.lstrip("-").isdigit() else float(v)
            out.append(r)
    return out


def table(ablation: Path, reference: Path) -> None:
    ref = [r for r in rows(reference) if r["settings"] == "default"]
    runs = ref + [r for r in rows(ablation) if r["settings"] != "default"]
    by: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in runs:
        if r["controller"] == "mpc" and r["status"] == "ok":
            by[r["settings"]].append(r)
    base = [r for r in ref if r["controller"] == "baseline"]
    meta = json.loads((ablation / "sweep.json").read_text())
    scenarios = sorted({r["scenario"] for r in runs})
    print(f"### {ablation.name}: {len(scenarios)} scenario(s), beside {reference.name}\n")
    print("Versions: " + ", ".join(f"{k} {v}" for k, v in meta["versions"].items()) + ".\n")
    safety = " storm safety vs baseline |" if base else ""
    print("| MPC setting | runs | cost EUR | hard breaches | under the minimum level | emptying missed "
          f"| m3*h over the alarm |{safety}")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |" + (" ---: |" if base else ""))
    for label, group in by.items():
        def total(key: str, group: list[dict[str, Any]] = group) -> float:
            return float(sum(r[key] for r in group))

        cells = [label, str(len(group)), f"{total('cost_eur'):,.0f}", f"{total('hard_violations'):.0f}",
                 f"{total('breaches_level_below_min'):.0f}", f"{total('breaches_daily_emptying'):.0f}",
                 f"{total('m3h_above_alarm'):,.0f}"]
        if base:
            verdicts = storm_safety(base + [{**r, "settings": label} for r in group], 7.2, 16000.0)
            cells.append(f"{sum(v.ok for v in verdicts)} of {len(verdicts)}")
        print("| " + " | ".join(cells) + " |")
    print()


def main() -> None:
    for pair in sys.argv[1:]:
        ablation, _, reference = pair.partition(":")
        table(Path(ablation), Path(reference))


if __name__ == "__main__":
    main()

"""The hedges' ablation as a markdown table, from two sweeps of the storm ensemble.

    tunneltwin sweep storm-ensemble --controllers mpc --each --vary floor_inflow_share=0.0 \
        --vary robust_first_step=false --vary guards_on_measured=false --vary landing_guard=1.0 \
        --vary dry_margin=1.0 --out docs/ablation
    python scripts/ablation-table.py docs/ablation docs/storm-ensemble > docs/ablation.md

The second sweep gives the baseline and the default MPC (scripts/storm-safety.sh writes it).
Per setting: total cost, hard breaches by rule, m3*h over the alarm, and storm safety against
the baseline, beside the default's.
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


def main() -> None:
    ablation, reference = Path(sys.argv[1]), Path(sys.argv[2])
    ref = [r for r in rows(reference) if r["settings"] == "default"]
    runs = ref + [r for r in rows(ablation) if r["settings"] != "default"]
    by: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in runs:
        if r["controller"] == "mpc" and r["status"] == "ok":
            by[r["settings"]].append(r)
    base = [r for r in ref if r["controller"] == "baseline"]
    versions = json.loads((ablation / "sweep.json").read_text())["versions"]
    print("Each hedge against forecast error turned off alone, on the storm ensemble (27 runs each).")
    print("Versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()) + ".\n")
    print("| MPC setting | runs | cost EUR | hard breaches | under the minimum level | emptying missed "
          "| m3*h over the alarm | storm safety vs baseline |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for label, group in by.items():
        verdicts = storm_safety(base + [{**r, "settings": label} for r in group], 7.2, 16000.0)
        print(f"| {label} | {len(group)} | {sum(r['cost_eur'] for r in group):,.0f} "
              f"| {sum(r['hard_violations'] for r in group)} | {sum(r['breaches_level_below_min'] for r in group)} "
              f"| {sum(r['breaches_daily_emptying'] for r in group)} "
              f"| {sum(r['m3h_above_alarm'] for r in group):,.0f} "
              f"| {sum(v.ok for v in verdicts)} of {len(verdicts)} |")


if __name__ == "__main__":
    main()

"""How wrong the flow balance's dead reckoning gets over n ticks, measured on a daemon's audit
log: from each clean tick, the level carried on by the inflow and the pumps' flows as the
daemon read them, against the level read n ticks later. Clean: no telemetry alarm in the
window and the level read, not estimated (the fault soak's audit has long clean stretches
between its faults).

The validator's doubt while it dead-reckons (``Validator._dead_reckoned``) is set from this.

Usage: python bench/dead_reckoning.py AUDIT.sqlite   (e.g. from bench/fault_soak.py --keep DIR)
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kernel.physics import PlantPhysics
from kernel.site import load_site
from tunneltwin.daemon.audit import read_ticks
from tunneltwin.daemon.validation import Limits

TICKS = (1, 2, 4, 8)
SHARE = Limits().balance_tol_share  # the validator's balance tolerance, 15 % of what moved per tick


def clean(row: dict[str, Any]) -> bool:
    tel, alarms = row["telemetry"], row["alarms"] or []
    return (tel.get("level_high_m") is None and "level_m" not in (tel.get("raw") or {})
            and not any(a.get("kind", "").startswith("telemetry") for a in alarms))


def main(path: Path) -> None:
    site = load_site()
    geometry = PlantPhysics.from_site(site).geometry
    step_h = site.timing.control_interval_s / 3600
    rows = [(clean(r), r["telemetry"]) for r in read_ticks(path)]
    print(f"{path}: {len(rows)} ticks, {sum(c for c, _ in rows)} clean")
    print(f"ticks  cases  p99 |error| m3  p99 share of what moved (below 2 m)  {SHARE:.0%} summed as roots / in a line")
    for n in TICKS:
        errors, moved, start = [], [], []
        for i in range(len(rows) - n):
            window = rows[i:i + n + 1]
            if not all(c for c, _ in window):
                continue
            volume = geometry.volume(window[0][1]["level_m"])
            for _, tel in window[1:]:
                pumps = sum(p["flow_m3h"] for p in tel["pumps"])
                volume = max(0.0, volume + (tel["inflow_m3h"] - pumps) * step_h)
            errors.append(abs(geometry.volume(window[-1][1]["level_m"]) - volume))
            moved.append(sum((t["inflow_m3h"] + t["outflow_m3h"]) * step_h for _, t in window[1:]))
            start.append(window[0][1]["level_m"])
        if not errors:
            print(f"{n:5d}  no clean window")
            continue
        e, m, low = np.array(errors), np.array(moved), np.array(start) < 2.0
        share = e / m
        below = f"{np.quantile(share[low], 0.99):.3f}" if low.any() else "-"
        print(f"{n:5d}  {len(e):5d}  {np.quantile(e, 0.99):13.0f}  {np.quantile(share, 0.99):.3f} ({below})"
              f"{'':27s}{SHARE / np.sqrt(n):.3f} / {SHARE:.3f}")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(Path(sys.argv[1]))

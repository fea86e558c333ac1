"""`tunneltwin audit`: the audit log as a summary (with gaps), CSV or JSON lines."""

from __future__ import annotations

import csv
import io
import json
from collections import defaultdict
from datetime import datetime
from pathlib import Path
from typing import Any

from tunneltwin.daemon.audit import read_ticks

CSV_COLUMNS = ("seq", "run_id", "tick", "plant_time", "wall_time", "controller", "level_m", "inflow_m3h",
               "pumps_on", "readback_ok", "overrides", "alarms", "solver_status", "decide_s")


def export(db: Path, since: datetime | None, until: datetime | None, fmt: str) -> str:
    rows = list(read_ticks(db, since, until))
    if fmt == "jsonl":
        return "".join(json.dumps(r) + "\n" for r in rows)
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(CSV_COLUMNS)
        writer.writerows(_flat(r) for r in rows)
        return out.getvalue()
    return summary(rows)


def _flat(r: dict[str, Any]) -> list[Any]:
    tel, sp = r["telemetry"], r["setpoints"]
    on = " ".join(p["id"] for p in sp["pumps"] if p["on"])
    return [r["seq"], r["run_id"], r["tick"], r["plant_time"], r["wall_time"], r["controller"], tel["level_m"],
            tel["inflow_m3h"], on, r["readback"] is not None and r["readback"] == sp, len(r["overrides"]),
            len(r["alarms"]), r["solver_status"], r["decide_s"]]


def summary(rows: list[dict[str, Any]]) -> str:
    """Ticks per daemon run and any gap in their numbering (a lost record)."""
    if not rows:
        return "no ticks in that window\n"
    runs: dict[str, list[int]] = defaultdict(list)
    for r in rows:
        runs[r["run_id"]].append(r["tick"])
    lines = [f"{len(rows)} ticks, {rows[0]['plant_time']} .. {rows[-1]['plant_time']}, {len(runs)} daemon run(s)"]
    for run, ticks in runs.items():
        missing = sorted(set(range(min(ticks), max(ticks) + 1)) - set(ticks))
        lines.append(f"  run {run}: ticks {min(ticks)}..{max(ticks)}, "
                     + (f"MISSING {missing[:10]}" if missing else "none missing"))
    alarms = sum(len(r["alarms"]) for r in rows)
    overrides = sum(len(r["overrides"]) for r in rows)
    lines.append(f"  alarms {alarms}, supervisor overrides {overrides}, "
                 f"write read-backs differing {sum(r['readback'] != r['setpoints'] for r in rows)}")
    return "\n".join(lines) + "\n"

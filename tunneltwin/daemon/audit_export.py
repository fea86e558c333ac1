"""`tunneltwin audit`: the audit log as a summary (with gaps), CSV or JSON lines."""

from __future__ import annotations

import csv
import io
import itertools
import json
from collections import defaultdict
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from adapters.client.port import check_readback
from kernel.contracts import Setpoints
from kernel.errors import WriteRejected
from tunneltwin.daemon.audit import read_ticks

CSV_COLUMNS = ("seq", "run_id", "tick", "plant_time", "wall_time", "controller", "level_m", "inflow_m3h",
               "pumps_on", "readback_ok", "overrides", "alarms", "solver_status", "decide_s")


def export(db: Path, since: datetime | None, until: datetime | None, fmt: str, interval_s: float = 900.0) -> str:
    """``interval_s``: the site's control interval; plant time advancing by more between two
    consecutive ticks (whichever daemon run wrote them) is a gap in the summary."""
    rows = list(read_ticks(db, since, until))
    if fmt == "jsonl":
        return "".join(json.dumps(r) + "\n" for r in rows)
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(CSV_COLUMNS)
        writer.writerows(_flat(r) for r in rows)
        return out.getvalue()
    return summary(rows, interval_s)


def _flat(r: dict[str, Any]) -> list[Any]:
    tel, sp = r["telemetry"], r["setpoints"]
    on = " ".join(p["id"] for p in sp["pumps"] if p["on"])
    return [r["seq"], r["run_id"], r["tick"], r["plant_time"], r["wall_time"], r["controller"], tel["level_m"],
            tel["inflow_m3h"], on, readback_held(r), len(r["overrides"]),
            len(r["alarms"]), r["solver_status"], r["decide_s"]]


def readback_held(r: dict[str, Any]) -> bool:
    """The plant read back what the tick wrote, within the daemon's own read-back tolerances (a
    Float32 tag rounds 47.3 Hz to 47.29999923706055; that is the command held, not a difference)."""
    if r["readback"] is None:
        return False
    got = Setpoints.model_validate(r["readback"])
    try:
        check_readback(Setpoints.model_validate(r["setpoints"]), got, any(p.stop_below_m for p in got.pumps))
    except WriteRejected:
        return False
    return True


def plant_time_gaps(rows: list[dict[str, Any]], interval_s: float) -> list[tuple[datetime, datetime]]:
    """(last tick before, first tick after) wherever plant time jumps by more than 1.5 intervals:
    the daemon was down, or the plant's clock jumped."""
    times = sorted(datetime.fromisoformat(r["plant_time"]) for r in rows)
    limit = timedelta(seconds=1.5 * interval_s)
    return [(a, b) for a, b in itertools.pairwise(times) if b - a > limit]


def summary(rows: list[dict[str, Any]], interval_s: float = 900.0) -> str:
    """Ticks per daemon run, any gap in their numbering (a lost record), and any gap in plant
    time between ticks (a daemon down, between runs or within one)."""
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
    gaps = plant_time_gaps(rows, interval_s)
    if gaps:
        lost = sum(round((b - a).total_seconds() / interval_s) - 1 for a, b in gaps)
        lines.append(f"  plant-time GAPS {len(gaps)} ({lost} control intervals without a tick):")
        lines += [f"    {a.isoformat()} .. {b.isoformat()} ({(b - a).total_seconds() / 3600:.2f} h)"
                  for a, b in gaps[:10]]
        if len(gaps) > 10:
            lines.append(f"    ... and {len(gaps) - 10} more")
    else:
        lines.append("  plant time: no gaps")
    alarms = sum(len(r["alarms"]) for r in rows)
    overrides = sum(len(r["overrides"]) for r in rows)
    lines.append(f"  alarms {alarms}, supervisor overrides {overrides}, "
                 f"write read-backs differing {sum(not readback_held(r) for r in rows)}")
    return "\n".join(lines) + "\n"

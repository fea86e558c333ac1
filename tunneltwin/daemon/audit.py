"""The daemon's memory: an audit log of every tick, and the state a restart resumes from.

One SQLite file (stdlib), WAL mode so `tunneltwin audit` can read while the daemon writes,
an explicit schema version, and retention by plant time. Each tick is written with the
state (pump timers, operator commands, last plan) in one transaction, so after a crash,
even ``kill -9``, the state matches the last tick recorded. A failed write (disk full)
keeps the records in memory and retries at the next tick: nothing is dropped unless the
backlog cap is reached, and that is counted.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
import zlib
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from kernel.contracts import Telemetry
from kernel.errors import ConfigError

SCHEMA_VERSION = 1
SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS ticks (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id TEXT NOT NULL,          -- one per daemon start
    tick INTEGER NOT NULL,         -- 0, 1, 2 ... within the run: a gap means a lost record
    plant_time TEXT NOT NULL,      -- the reading's time; where the plant clock went back, moved on by its lag
    wall_time TEXT NOT NULL,
    controller TEXT NOT NULL,
    telemetry TEXT NOT NULL,       -- JSON, as read
    forecast TEXT,                 -- JSON summary
    plan TEXT,                     -- JSON
    setpoints TEXT NOT NULL,       -- JSON, as written
    readback TEXT,                 -- JSON, as read back ('null' when the write failed)
    overrides TEXT NOT NULL,       -- JSON list: the supervisor's overrides this tick
    alarms TEXT NOT NULL,          -- JSON list: alerts raised this tick
    solver_status TEXT,
    decide_s REAL NOT NULL,
    UNIQUE (run_id, tick)
);
CREATE INDEX IF NOT EXISTS ticks_plant_time ON ticks (plant_time);
CREATE TABLE IF NOT EXISTS state (key TEXT PRIMARY KEY, value TEXT NOT NULL, plant_time TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS problems (  -- the optimiser's input per tick, for `tunneltwin explain`
    run_id TEXT NOT NULL,
    tick INTEGER NOT NULL,
    plant_time TEXT NOT NULL,
    problem BLOB NOT NULL,         -- zlib-compressed JSON (controller.explain.problem_to_json)
    PRIMARY KEY (run_id, tick)
);
CREATE INDEX IF NOT EXISTS problems_plant_time ON problems (plant_time);
"""
COLUMNS = ("run_id", "tick", "plant_time", "wall_time", "controller", "telemetry", "forecast", "plan", "setpoints",
           "readback", "overrides", "alarms", "solver_status", "decide_s")
BACKLOG_CAP = 20_000  # ticks kept in memory while the disk refuses writes (~7 months at 15 min)
RECALL_ROWS = 20_000  # ticks a restart reads back at most (8 days at 1-min intervals: 11,520)


@dataclass
class TickRecord:
    plant_time: datetime
    controller: str
    telemetry: dict[str, Any]
    setpoints: dict[str, Any]
    readback: dict[str, Any] | None
    decide_s: float
    forecast: dict[str, Any] | None = None
    plan: dict[str, Any] | None = None
    overrides: list[Any] | None = None
    alarms: list[Any] | None = None
    solver_status: str | None = None
    problem: dict[str, Any] | None = None  # the optimisation problem this tick solved


class AuditLog:
    def __init__(self, path: Path, retention_days: float = 400.0) -> None:
        self.path, self.retention = path, timedelta(days=retention_days)
        self.run_id = uuid.uuid4().hex[:12]
        self.ticks = 0
        self.backlog: deque[tuple[tuple[Any, ...], dict[str, tuple[str, str]], bytes | None]] = deque()
        self.dropped = 0
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")  # WAL: a crash loses no committed tick
            self.db.executescript(SCHEMA)
        except sqlite3.DatabaseError as exc:
            raise ConfigError(f"{path}: cannot open the audit log: {exc}") from exc
        self._check_version()

    def _check_version(self) -> None:
        row = self.db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        if row is None:
            self.db.execute("INSERT INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
        elif int(row[0]) != SCHEMA_VERSION:
            raise ConfigError(f"{self.path}: audit schema version {row[0]}, this tunneltwin writes "
                              f"{SCHEMA_VERSION}; migrate or point [audit] db elsewhere")

    # -- writing -----------------------------------------------------------------------

    def record(self, rec: TickRecord, state: dict[str, Any]) -> bool:
        """Queue one tick (and the state it leaves) and write everything queued; False if the disk refused."""
        row = (self.run_id, self.ticks, rec.plant_time.isoformat(), datetime.now().isoformat(timespec="seconds"),
               rec.controller, json.dumps(rec.telemetry), _js(rec.forecast), _js(rec.plan), json.dumps(rec.setpoints),
               json.dumps(rec.readback), json.dumps(rec.overrides or []), json.dumps(rec.alarms or []),
               rec.solver_status, rec.decide_s)
        self.ticks += 1
        t = rec.plant_time.isoformat()
        problem = zlib.compress(json.dumps(rec.problem).encode()) if rec.problem is not None else None
        self.backlog.append((row, {k: (json.dumps(v), t) for k, v in state.items()}, problem))
        while len(self.backlog) > BACKLOG_CAP:
            self.backlog.popleft()
            self.dropped += 1
        return self.flush()

    def flush(self) -> bool:
        if not self.backlog:
            return True
        try:
            self.db.execute("BEGIN")
            self.db.executemany(f"INSERT INTO ticks ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})",
                                [row for row, _, _ in self.backlog])
            self.db.executemany("INSERT INTO problems VALUES (?, ?, ?, ?)",
                                [(row[0], row[1], row[2], blob) for row, _, blob in self.backlog if blob is not None])
            latest: dict[str, tuple[str, str]] = {}
            for _, state, _ in self.backlog:
                latest.update(state)
            self.db.executemany("INSERT OR REPLACE INTO state VALUES (?, ?, ?)",
                                [(k, v, t) for k, (v, t) in latest.items()])
            self.db.execute("COMMIT")
        except sqlite3.OperationalError:  # disk full, I/O error, locked: keep it all for the next try
            if self.db.in_transaction:
                self.db.execute("ROLLBACK")
            return False
        self.backlog.clear()
        return True

    def prune(self, now: datetime) -> int:
        """Delete ticks older than the retention (plant time); returns how many."""
        try:
            oldest = (now - self.retention).isoformat()
            self.db.execute("DELETE FROM problems WHERE plant_time < ?", (oldest,))
            cur = self.db.execute("DELETE FROM ticks WHERE plant_time < ?", (oldest,))
        except sqlite3.OperationalError:
            return 0
        return cur.rowcount

    # -- reading -----------------------------------------------------------------------

    def telemetry_before(self, until: datetime, span: timedelta) -> tuple[list[Telemetry], int]:
        """The readings recorded in the ``span`` before ``until`` (plant time), oldest first, one
        per time (the latest recorded), and how many rows in that stretch could not be read back.
        Reads at most the last ``RECALL_ROWS`` ticks."""
        since = until - span
        rows: dict[datetime, str] = {}
        unread = 0
        for plant_time, telemetry in self.db.execute(
                "SELECT plant_time, telemetry FROM ticks ORDER BY seq DESC LIMIT ?", (RECALL_ROWS,)):
            try:
                t = datetime.fromisoformat(plant_time)
                if since <= t < until:
                    rows.setdefault(t, telemetry)
            except (ValueError, TypeError):  # not a time, or one without its zone
                unread += 1
        out = []
        for t in sorted(rows):
            try:
                data = json.loads(rows[t])
                data.pop("raw", None)  # what the plant said where validation replaced it
                out.append(Telemetry.model_validate(data))
            except (ValueError, TypeError, AttributeError):  # pydantic's ValidationError is a ValueError
                unread += 1
        return out, unread

    def state(self, key: str) -> Any:
        row = self.db.execute("SELECT value FROM state WHERE key = ?", (key,)).fetchone()
        return None if row is None else json.loads(row[0])

    def close(self) -> None:
        self.flush()
        self.db.close()


def _js(value: Any) -> str | None:
    return None if value is None else json.dumps(value)


def read_ticks(path: Path, since: datetime | None = None, until: datetime | None = None) -> Iterator[dict[str, Any]]:
    """Rows as dicts (JSON columns decoded), oldest first; read-only, safe beside a running daemon."""
    if not path.exists():
        raise ConfigError(f"{path}: no audit log here")
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        query = f"SELECT seq, {', '.join(COLUMNS)} FROM ticks WHERE plant_time >= ? AND plant_time <= ? ORDER BY seq"
        lo = since.isoformat() if since else ""
        hi = until.isoformat() if until else "9999"
        for row in db.execute(query, (lo, hi)):
            rec = dict(zip(("seq", *COLUMNS), row, strict=True))
            for key in ("telemetry", "forecast", "plan", "setpoints", "readback", "overrides", "alarms"):
                rec[key] = json.loads(rec[key]) if rec[key] is not None else None
            yield rec
    except sqlite3.DatabaseError as exc:
        raise ConfigError(f"{path}: not a tunneltwin audit log: {exc}") from exc
    finally:
        db.close()


def read_problem(path: Path, plant_time: datetime) -> tuple[dict[str, Any], dict[str, Any]]:
    """The tick recorded at ``plant_time`` (the last run's, if several) and the optimisation problem
    it solved. Errors name the file and the time."""
    ticks = [t for t in read_ticks(path, plant_time, plant_time)]
    if not ticks:
        raise ConfigError(f"{path}: no tick at plant time {plant_time.isoformat()}")
    tick = ticks[-1]
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        row = db.execute("SELECT problem FROM problems WHERE run_id = ? AND tick = ?",
                         (tick["run_id"], tick["tick"])).fetchone()
    except sqlite3.DatabaseError as exc:
        raise ConfigError(f"{path}: not a tunneltwin audit log: {exc}") from exc
    finally:
        db.close()
    if row is None:
        raise ConfigError(f"{path}: the tick at {plant_time.isoformat()} was decided by {tick['controller']} "
                          f"({tick['solver_status'] or 'no solver'}): no optimisation problem was recorded")
    return tick, json.loads(zlib.decompress(row[0]))

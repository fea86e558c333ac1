"""The audit log: every tick accounted for, a full disk survived, a restart resumed."""

from __future__ import annotations

import asyncio
import dataclasses
import sqlite3
import sys
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from adapters.client.sim import SimPort
from adapters.served.opcua import OpcuaSimulator
from adapters.tagmap import load_tagmap
from controller.baseline import BaselineController
from controller.config import DEFAULT_MPC, load_mpc
from controller.mpc import MpcController
from kernel.contracts import Setpoints
from kernel.errors import ConfigError
from kernel.settings import CONFIG_DIR
from kernel.site import Site
from scenarios.replay import ReplaySetup
from scenarios.scenario import load_scenario
from tests.plants import free_port
from tunneltwin.daemon.audit import SCHEMA_VERSION, AuditLog, read_ticks
from tunneltwin.daemon.audit_export import export
from tunneltwin.daemon.loop import Service
from twin.lockstep import LockstepPlant

STEP = '''
[step]
request = { path = "Clock/StepRequest", unit = "count" }
done = { path = "Clock/StepDone", unit = "count" }
remaining = { path = "Clock/StepsRemaining", unit = "count" }
'''


@pytest.fixture(scope="module")
def day(site: Site) -> ReplaySetup:
    setup = load_scenario("dry-week", site, None, None, None)
    return dataclasses.replace(setup, inflow_m3h=setup.inflow_m3h[:96], price_eur_per_kwh=setup.price_eur_per_kwh[:96])


async def test_every_tick_is_recorded_with_its_state(tmp_path: Path, day: ReplaySetup) -> None:
    audit = AuditLog(tmp_path / "audit.sqlite")
    baseline = BaselineController(day.site)
    await Service(SimPort(LockstepPlant(day)), baseline, baseline, day.site, max_ticks=12, audit=audit).run()
    audit.close()
    rows = list(read_ticks(tmp_path / "audit.sqlite"))
    assert [r["tick"] for r in rows] == list(range(12))
    first = rows[0]
    assert first["telemetry"]["time"] == day.start.isoformat() and first["readback"] == first["setpoints"]
    assert "none missing" in export(tmp_path / "audit.sqlite", None, None, "summary")
    reopened = AuditLog(tmp_path / "audit.sqlite")
    assert set(reopened.state("timers")) == set(day.site.pump_ids)
    assert reopened.state("operator") == {"optimiser": "on", "modes": {}, "limits": {}, "weights": {}}


async def test_the_mpc_ticks_carry_their_plan_and_inflow_forecast(tmp_path: Path, day: ReplaySetup) -> None:
    """What the plan was and what inflow it expected is what an engineer asks after a bad hour."""
    audit = AuditLog(tmp_path / "audit.sqlite")
    mpc = MpcController(day.site)
    await Service(SimPort(LockstepPlant(day)), mpc, BaselineController(day.site), day.site, max_ticks=2,
                  audit=audit).run()
    audit.close()
    rows = list(read_ticks(tmp_path / "audit.sqlite"))
    assert [r["tick"] for r in rows] == [0, 1]
    for row in rows:
        assert len(row["plan"]["level_m"]) == mpc.steps and row["plan"]["status"]
        assert len(row["forecast"]["inflow_m3h_next"]) == 4 and row["forecast"]["inflow_m3h_mean"] > 0


async def test_a_restarted_daemon_recalls_what_the_readings_taught(tmp_path: Path, day: ReplaySetup) -> None:
    """Killed after 40 ticks and started again on the same audit log, the optimiser forecasts
    the next interval as the one that ran on would have: the inflow profile and the record of
    forecast errors come back from the audit's readings. Without the log it forecasts else."""
    step, k = timedelta(seconds=day.site.timing.control_interval_s), 40
    config = load_mpc(DEFAULT_MPC)
    ran_on = MpcController(day.site, config)
    await Service(SimPort(LockstepPlant(day)), ran_on, BaselineController(day.site), day.site,
                  max_ticks=k + 1).run()
    path = tmp_path / "audit.sqlite"
    first = AuditLog(path)
    short = dataclasses.replace(day, inflow_m3h=day.inflow_m3h[:k], price_eur_per_kwh=day.price_eur_per_kwh[:k])
    await Service(SimPort(LockstepPlant(short)), BaselineController(day.site), BaselineController(day.site),
                  day.site, max_ticks=k, audit=first).run()
    first.close()
    # a plant's first reading is its first interval's inflow; the run that went on read interval k - 1's at tick k
    later = dataclasses.replace(day, start=day.start + k * step, inflow_m3h=day.inflow_m3h[k - 1:],
                                price_eur_per_kwh=day.price_eur_per_kwh[k - 1:])
    restarted, fresh = MpcController(day.site, config), MpcController(day.site, config)
    audit = AuditLog(path)
    await Service(SimPort(LockstepPlant(later)), restarted, BaselineController(day.site), day.site, max_ticks=1,
                  audit=audit).run()
    audit.close()
    await Service(SimPort(LockstepPlant(later)), fresh, BaselineController(day.site), day.site, max_ticks=1).run()
    history, unread = AuditLog(path).telemetry_before(day.start + k * step, timedelta(days=8))
    assert len(history) == k and unread == 0 and history[0].time == day.start
    assert ran_on.log[-1].time == restarted.log[-1].time == day.start + k * step
    assert restarted.report().inflow_forecast_m3h == pytest.approx(ran_on.report().inflow_forecast_m3h, rel=1e-12)
    band, ran_band = restarted.report().inflow_quantiles_m3h, ran_on.report().inflow_quantiles_m3h
    assert band is not None and ran_band is not None and band.keys() == ran_band.keys()
    for p, values in band.items():  # the learnt errors came back: the spread as well
        assert values == pytest.approx(ran_band[p], rel=1e-9)
    def counts(mpc: MpcController) -> dict[tuple[str, int], int]:
        return {key: len(errors) for key, errors in mpc.spread.errors.items()}

    assert counts(restarted) == counts(ran_on)
    assert fresh.report().inflow_forecast_m3h != pytest.approx(ran_on.report().inflow_forecast_m3h, rel=0.01)


async def test_a_reading_the_restart_cannot_read_back_is_counted_and_alarmed(tmp_path: Path, day: ReplaySetup) -> None:
    """A row whose telemetry no longer validates is skipped, the others are learnt from, and the
    restart says how many it could not read and where."""
    path = tmp_path / "audit.sqlite"
    audit = AuditLog(path)
    baseline = BaselineController(day.site)
    await Service(SimPort(LockstepPlant(day)), baseline, baseline, day.site, max_ticks=12, audit=audit).run()
    audit.close()
    db = sqlite3.connect(path)
    db.execute("""UPDATE ticks SET telemetry = '{"time": "2025-01-06T01:00:00", "level_m": "high"}' WHERE tick = 4""")
    db.commit()
    db.close()
    step = timedelta(seconds=day.site.timing.control_interval_s)
    history, unread = AuditLog(path).telemetry_before(day.start + 12 * step, timedelta(days=8))
    assert unread == 1 and len(history) == 11 and step * 4 not in [t.time - day.start for t in history]
    later = dataclasses.replace(day, start=day.start + 12 * step, inflow_m3h=day.inflow_m3h[11:],
                                price_eur_per_kwh=day.price_eur_per_kwh[11:])
    reopened = AuditLog(path)
    again = Service(SimPort(LockstepPlant(later)), baseline, baseline, day.site, max_ticks=1, audit=reopened)
    await again.run()
    reopened.close()
    message = next(a["message"] for a in again.alerts if a["kind"] == "history_unreadable")
    assert message.startswith(f"1 reading(s) in the audit log {path}")


def test_a_full_disk_loses_nothing(tmp_path: Path, day: ReplaySetup) -> None:
    """SQLite's max_page_count makes the file 'full' exactly as a full disk does (SQLITE_FULL)."""
    from tunneltwin.daemon.audit import TickRecord

    audit = AuditLog(tmp_path / "audit.sqlite")
    pages = audit.db.execute("PRAGMA page_count").fetchone()[0]
    audit.db.execute(f"PRAGMA max_page_count = {pages}")
    big = {"blob": "x" * 20_000}
    rec = TickRecord(day.start, "baseline", big, {"pumps": []}, None, 0.0)
    assert audit.record(rec, {}) is False and len(audit.backlog) == 1  # refused, kept
    assert audit.record(rec, {}) is False and len(audit.backlog) == 2
    audit.db.execute("PRAGMA max_page_count = 1000000")  # space again
    assert audit.record(rec, {}) is True and not audit.backlog
    audit.close()
    assert [r["tick"] for r in read_ticks(tmp_path / "audit.sqlite")] == [0, 1, 2]


def test_the_summary_shows_plant_time_between_runs_and_float32_read_backs_as_held(tmp_path: Path) -> None:
    """Two daemon runs with an hour between them: each run's numbering is whole, so only plant
    time shows the gap. A Float32 tag reads 47.3 Hz back as 47.29999923706055: that is held."""
    import struct
    from datetime import timedelta

    from tunneltwin.daemon.audit import TickRecord

    f32 = struct.unpack("f", struct.pack("f", 47.3))[0]
    wrote = {"pumps": [{"id": "P1", "on": True, "freq_hz": 47.3, "stop_below_m": 0.0}]}
    held = {"pumps": [{"id": "P1", "on": True, "freq_hz": f32, "stop_below_m": 0.0}]}
    off = {"pumps": [{"id": "P1", "on": False, "freq_hz": 0.0, "stop_below_m": 0.0}]}
    t0 = datetime(2026, 1, 1)
    path = tmp_path / "audit.sqlite"
    for start, readbacks in ((t0, [held, held, held]), (t0 + timedelta(hours=1, minutes=30), [held, off])):
        audit = AuditLog(path)
        for k, rb in enumerate(readbacks):
            tel = {"level_m": 1.0, "inflow_m3h": 3000.0}
            audit.record(TickRecord(start + timedelta(minutes=15 * k), "baseline", tel, wrote, rb, 0.0), {})
        audit.close()
    text = export(path, None, None, "summary", interval_s=900.0)
    assert text.count("none missing") == 2  # each run's own numbering is whole
    assert "plant-time GAPS 1 (3 control intervals without a tick)" in text
    assert "2026-01-01T00:30:00 .. 2026-01-01T01:30:00 (1.00 h)" in text
    assert "write read-backs differing 1" in text  # the 'off' read-back, not the Float32 ones
    rows = export(path, None, None, "csv").splitlines()[1:]
    assert [r.split(",")[9] for r in rows] == ["True", "True", "True", "True", "False"]


def test_schema_version_and_bad_files_are_named(tmp_path: Path) -> None:
    path = tmp_path / "audit.sqlite"
    AuditLog(path).close()
    with sqlite3.connect(path) as db:
        db.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    expected = rf"audit.sqlite: audit schema version 99, this tunneltwin writes {SCHEMA_VERSION}"
    with pytest.raises(ConfigError, match=expected):
        AuditLog(path)
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"not a database at all" * 100)
    with pytest.raises(ConfigError, match=r"junk\.sqlite"):
        AuditLog(junk)


class HoldingSimulator(OpcuaSimulator):
    """Our simulator, able to hold the plant still between two steps (the test's pause button)."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.gate = asyncio.Event()
        self.gate.set()
        held = self.stepper.held

        async def gated() -> Setpoints:  # a step waits at the gate before it takes the setpoints
            await self.gate.wait()
            return await held()

        self.stepper.held = gated


def _started_30_min_ago(plant: LockstepPlant) -> tuple[str, int] | None:
    """A pump that switched on two steps (30 min) before now, and the step it started in."""
    rows, k = plant.traj.pump_on, plant.k
    if k < 3:
        return None
    for j, pid in enumerate(plant.twin.ids):
        if rows[k - 1][j] and rows[k - 2][j] and not rows[k - 3][j]:
            return pid, k - 2
    return None


async def test_kill_9_keeps_the_minimum_on_time(tmp_path: Path, site: Site) -> None:
    """A field gateway serves no time-in-state: after kill -9 the daemon takes it from its own record."""
    tags_file = tmp_path / "field-with-step.toml"
    tags_file.write_text((CONFIG_DIR / "tags-opcua-field.toml").read_text() + STEP)
    setup = load_scenario("dry-week", site, None, None, None)
    url = f"opc.tcp://127.0.0.1:{free_port()}/tunneltwin/"
    plant = LockstepPlant(setup)
    sim = HoldingSimulator(plant, load_tagmap(tags_file), url)
    await sim.start()
    config = tmp_path / "daemon.toml"
    config.write_text(f'[daemon]\nplant = "opcua"\ncontroller = "baseline"\nduration_h = 0\n'
                      f'[opcua]\nendpoint = "{url}"\ntags = "{tags_file}"\ntimeout_s = 30\n'
                      f'[audit]\ndb = "{tmp_path / "audit.sqlite"}"\n')

    async def daemon() -> asyncio.subprocess.Process:
        return await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tunneltwin.cli", "run", "--config", str(config),
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)

    try:
        first = await daemon()
        while (started := _started_30_min_ago(plant)) is None:
            await asyncio.sleep(0.005)
            assert plant.k < 200, "no pump start seen"
        sim.gate.clear()  # the plant waits; the daemon is mid-run
        first.kill()  # SIGKILL: no shutdown, no goodbye
        await first.wait()
        second = await daemon()
        sim.gate.set()
        while plant.k < started[1] + 8 + 4:
            await asyncio.sleep(0.01)
        second.terminate()
        assert await second.wait() == 0
    finally:
        await sim.stop()
    pid, start = started
    column = [row[plant.twin.ids.index(pid)] for row in plant.traj.pump_on]
    assert all(column[start:start + 8]), f"pump {pid} started at step {start} was stopped within 2 h"
    runs: dict[str, list[dict[str, object]]] = {}
    for r in read_ticks(tmp_path / "audit.sqlite"):
        runs.setdefault(str(r["run_id"]), []).append(r)
    assert len(runs) == 2
    before, after = (rows[-1] if i == 0 else rows[0] for i, rows in enumerate(runs.values()))
    def kinds(row: dict[str, object]) -> list[str]:
        return [a["kind"] for a in row["alarms"]]  # type: ignore[attr-defined]

    assert kinds(after) == ["daemon_restarted"]  # the restart is alarmed, once, by the run that resumed
    assert not any("daemon_restarted" in kinds(r) for r in next(iter(runs.values())))

    def in_state(row: dict[str, object]) -> float:
        pumps = row["telemetry"]["pumps"]  # type: ignore[index]
        return float(next(p for p in pumps if p["id"] == pid)["time_in_state_s"])

    gap = (datetime.fromisoformat(str(after["plant_time"])) - datetime.fromisoformat(str(before["plant_time"])))
    assert gap.total_seconds() > 0 and in_state(after) > 0  # a fresh clock would say 0 here
    assert in_state(after) == pytest.approx(in_state(before) + gap.total_seconds())  # carried over

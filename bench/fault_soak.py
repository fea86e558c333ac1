"""Fault soak (issue 27): plant days against the OPC UA simulator, with the daemon as its own
process, and every kind of fault injected in rotation.

Usage: python bench/fault_soak.py [--days 30] [--every-h 4] [--keep DIR]
       (--every-h 0: the same run with no faults, to tell the daemon's own breaches apart)

The twin is served by a real asyncua simulator in this process; `tunneltwin run` connects to
it in lockstep as a separate process, with its audit log and its own OPC UA operator server.
Every ``--every-h`` plant hours one fault, in turn:
- sensor faults on what the simulator serves, for level, inflow and one running pump's flow:
  a bias, a spike, a sign error, a frozen value;
- the plant clock jumping back 15 h (and running on from there);
- ``kill -9`` of the daemon, which is started again on the same audit log;
- a simulator restart;
- an anonymous client writing the daemon's operator nodes.
Reported: hard breaches on the true plant (each with the last fault before it), audit
completeness per run, daemon crashes (exits the bench did not cause), and for each injected
fault whether an alarm naming it was audited within 2 ticks.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from adapters.served.opcua import OpcuaSimulator
from bench.soak import SCENARIO, serve
from kernel.contracts import Observation, PumpStatus, Telemetry
from kernel.settings import CONFIG_DIR
from scenarios.rules import check
from scenarios.scenario import load_scenario
from tests.plants import daemon_nodes, free_port
from tunneltwin.daemon.audit import read_ticks
from tunneltwin.daemon.audit_export import summary
from tunneltwin.settings import Settings
from twin.lockstep import LockstepPlant

Edit = Callable[[Telemetry, int], Telemetry]  # (served telemetry, ticks since the fault began)
CLOCK_BACK = timedelta(hours=15)
WITHIN_TICKS = 2


def _pump(tel: Telemetry, fn: Callable[[float], float], pid: str) -> Telemetry:
    return tel.model_copy(update={"pumps": tuple(p.model_copy(update={"flow_m3h": fn(p.flow_m3h)}) if p.id == pid
                                                 else p for p in tel.pumps)})


@dataclass
class Fault:
    name: str
    ticks: int  # how long a sensor fault is served
    field: str  # what an alarm must name: a telemetry field, or an alarm kind for the others
    edit: Callable[[Telemetry, dict[str, Any]], Edit] | None = None  # given the telemetry at its start
    # readings at its start that are still the truth: a frozen value's first is the true one, so
    # the 2 ticks to an alarm count from the second
    true_readings: int = 0


def sensor_faults() -> list[Fault]:
    def level(fn: Callable[[float, float], float]) -> Callable[[Telemetry, dict[str, Any]], Edit]:
        def make(at: Telemetry, _: dict[str, Any]) -> Edit:
            return lambda tel, i: tel.model_copy(update={"level_m": fn(tel.level_m, at.level_m)})
        return make

    def inflow(fn: Callable[[float, float], float]) -> Callable[[Telemetry, dict[str, Any]], Edit]:
        def make(at: Telemetry, _: dict[str, Any]) -> Edit:
            return lambda tel, i: tel.model_copy(update={"inflow_m3h": fn(tel.inflow_m3h, at.inflow_m3h)})
        return make

    def flow(fn: Callable[[float, float], float]) -> Callable[[Telemetry, dict[str, Any]], Edit]:
        def make(at: Telemetry, info: dict[str, Any]) -> Edit:
            running = [p for p in at.pumps if p.status is PumpStatus.RUNNING]
            pid = running[0].id if running else at.pumps[0].id
            first = at.pump(pid).flow_m3h
            info["pump"] = pid
            return lambda tel, i: _pump(tel, lambda q: fn(q, first), pid)
        return make

    return [
        Fault("level bias +1.5 m", 4, "level_m", level(lambda v, _: v + 1.5)),
        Fault("level spike +5 m", 1, "level_m", level(lambda v, _: v + 5.0)),
        Fault("level sign error", 2, "level_m", level(lambda v, _: -v)),
        Fault("level frozen 3 h", 12, "level_m", level(lambda _, first: first), true_readings=1),
        Fault("inflow bias x4", 4, "inflow_m3h", inflow(lambda v, _: 4 * v)),
        Fault("inflow spike 50,000", 1, "inflow_m3h", inflow(lambda v, _: 50_000.0)),
        Fault("inflow sign error", 4, "inflow_m3h", inflow(lambda v, _: -v)),
        Fault("inflow frozen 2 h", 8, "inflow_m3h", inflow(lambda _, first: first), true_readings=1),
        Fault("pump flow bias x2.5", 4, "flow_m3h", flow(lambda q, _: 2.5 * q)),
        Fault("pump flow spike x10", 1, "flow_m3h", flow(lambda q, _: 10 * q)),
        Fault("pump flow sign error", 4, "flow_m3h", flow(lambda q, _: -q)),
        Fault("pump flow frozen 2 h", 8, "flow_m3h", flow(lambda _, first: first), true_readings=1),
    ]


OTHER_FAULTS = [Fault("plant clock back 15 h", 0, "telemetry_backwards"),
                Fault("daemon kill -9", 0, "daemon_restarted"), Fault("simulator restart", 0, "plant_link_lost"),
                Fault("anonymous operator write", 0, "operator_write_refused")]


class Served:
    """What the simulator serves: the true plant, with the faults in force. A fault handed in
    starts with the next step's reading, which the simulator publishes as it steps, so the
    daemon's next tick is the first to see it."""

    def __init__(self, plant: LockstepPlant, last_seq: Callable[[], int]) -> None:
        self.plant, self.true_observe, self.last_seq = plant, plant.observe, last_seq
        self.edits: list[tuple[int, int, Edit]] = []  # (first step, end step, edit)
        self.clock_back = timedelta(0)
        self.pending: tuple[Fault, dict[str, Any]] | None = None
        plant.observe = self.observe  # type: ignore[method-assign]

    def observe(self) -> Observation:
        obs = self.true_observe()
        tel = obs.telemetry
        k = self.plant.k
        if self.pending is not None and k > self.pending[1]["step"]:
            fault, info = self.pending
            self.pending = None
            info["step"], info["seq"] = k, self.last_seq()  # the daemon has audited the tick before
            if fault.edit is not None:
                self.edits.append((k, k + fault.ticks, fault.edit(tel, info)))
            else:
                self.clock_back += CLOCK_BACK
        for first, end, edit in self.edits:
            if first <= k < end:
                tel = edit(tel, k - first)
        if self.clock_back:
            tel = tel.model_copy(update={"time": tel.time - self.clock_back})
        return obs.model_copy(update={"telemetry": tel})


@dataclass
class Bench:
    plant: LockstepPlant
    served: Served
    url: str
    config: Path
    audit: Path
    operator_url: str
    sim: OpcuaSimulator | None = None
    daemon: asyncio.subprocess.Process | None = None
    injected: list[dict[str, Any]] = field(default_factory=list)
    crashes: list[str] = field(default_factory=list)
    kills: int = 0
    starts: int = 0
    stderr: Path = Path("/dev/null")

    async def start_sim(self) -> None:
        self.sim = await serve(self.plant, self.url)

    async def start_daemon(self) -> None:
        self.starts += 1
        self.stderr = self.config.parent / f"daemon-{self.starts}.err"
        with self.stderr.open("w") as err:  # a file, not a pipe: nobody must read it for the daemon to go on
            self.daemon = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "tunneltwin.cli", "--log-level", "error", "run", "--config", str(self.config),
                stdout=asyncio.subprocess.DEVNULL, stderr=err)

    async def watch(self) -> None:
        """A daemon that exits without being killed is a crash: note it, start another."""
        while True:
            assert self.daemon is not None
            code = await self.daemon.wait()
            if code != -9:
                self.crashes.append(f"step {self.plant.k}: exit {code}: {self.stderr.read_text()[-800:].strip()}")
                if self.plant.done:
                    return
            await self.start_daemon()

    def last_seq(self) -> int:
        if not self.audit.exists():
            return 0
        db = sqlite3.connect(f"file:{self.audit}?mode=ro", uri=True)
        try:
            return int(db.execute("SELECT COALESCE(MAX(seq), 0) FROM ticks").fetchone()[0])
        except sqlite3.OperationalError:
            return 0
        finally:
            db.close()

    async def inject(self, fault: Fault) -> None:
        k = self.plant.k
        info: dict[str, Any] = {"fault": fault.name, "step": k, "seq": self.last_seq(), "field": fault.field,
                                "true_readings": fault.true_readings}
        if fault.edit is not None or fault.name.startswith("plant clock"):
            self.served.pending = (fault, info)
        elif fault.name.startswith("daemon kill"):
            assert self.daemon is not None
            self.daemon.kill()  # SIGKILL; watch() starts the next one
            self.kills += 1
        elif fault.name.startswith("simulator restart"):
            assert self.sim is not None
            await self.sim.stop()
            await asyncio.sleep(1.0)
            await self.start_sim()
        else:
            info["refused"] = await self.anonymous_write()
        self.injected.append(info)

    async def anonymous_write(self) -> str:
        from asyncua import Client, ua

        try:
            async with Client(self.operator_url, timeout=5) as client:
                node = await daemon_nodes(client)("Operator/OptimiserOn")
                await node.write_value(ua.DataValue(ua.Variant(False, ua.VariantType.Boolean)))
            return "ACCEPTED"
        except Exception as exc:  # the bench reports whatever the server said
            return type(exc).__name__


def alarmed(rows: list[dict[str, Any]], info: dict[str, Any], skip: int = 0) -> bool:
    """An alarm naming the fault within WITHIN_TICKS audited ticks after its injection, the first
    ``skip`` of them not counted: its kind, or a telemetry alarm on its field (a pump's flow, or
    F2 against the pumps' sum)."""
    first = alarm_tick(rows, info)
    return first is not None and first < skip + WITHIN_TICKS


def alarm_tick(rows: list[dict[str, Any]], info: dict[str, Any], within: int = 24) -> int | None:
    """How many audited ticks after the injection the first alarm naming the fault came (0: at the
    first faulty reading), looking ``within`` ticks; None if none came."""
    names = {f"pump {info['pump']} flow_m3h", f"pump {info['pump']}", "outflow_m3h"} if "pump" in info \
        else {info["field"]}
    for n, row in enumerate([r for r in rows if r["seq"] > info["seq"]][:within]):
        for a in row["alarms"] or []:
            kind, said = a.get("kind", ""), str(a.get("message", "")).split(":")[0]
            if kind == info["field"] or (kind.startswith("telemetry_") and said in names):
                return n
    return None


async def main(days: float, every_h: float, keep: Path | None) -> None:
    site = Settings.build().site()
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = keep or Path(tmp_dir)
        tmp.mkdir(parents=True, exist_ok=True)
        (tmp / "soak.toml").write_text(SCENARIO.format(days=days, rain="true"))
        setup = load_scenario(str(tmp / "soak.toml"), site, None, None, None)
        plant = LockstepPlant(setup)
        url = f"opc.tcp://127.0.0.1:{free_port()}/tunneltwin/"
        operator_url = f"opc.tcp://127.0.0.1:{free_port()}/tunneltwin-daemon/"
        audit = tmp / "audit.sqlite"
        audit.unlink(missing_ok=True)
        config = tmp / "daemon.toml"
        config.write_text(f'[daemon]\nplant = "opcua"\ncontroller = "mpc"\nduration_h = 0\n'
                          f'[opcua]\nendpoint = "{url}"\ntags = "{CONFIG_DIR / "tags-opcua.toml"}"\ntimeout_s = 10\n'
                          f'[audit]\ndb = "{audit}"\n[publish]\nopcua_endpoint = "{operator_url}"\n')
        bench = Bench(plant, Served(plant, lambda: 0), url, config, audit, operator_url)
        bench.served.last_seq = bench.last_seq
        await bench.start_sim()
        await bench.start_daemon()
        watcher = asyncio.ensure_future(bench.watch())
        faults = sensor_faults() + OTHER_FAULTS
        every = round(every_h * 3600 / setup.step_s)  # 0: no faults, the control run
        t0, n = time.perf_counter(), 0
        next_at = every
        while not plant.done:
            await asyncio.sleep(0.02)
            if every and plant.k >= next_at and not plant.done:
                await bench.inject(faults[n % len(faults)])
                n, next_at = n + 1, plant.k + every
        watcher.cancel()
        assert bench.daemon is not None
        if bench.daemon.returncode is None:
            bench.daemon.terminate()
            await bench.daemon.wait()
        assert bench.sim is not None
        await bench.sim.stop()
        wall = time.perf_counter() - t0
        report = check(plant.traj, site.rules)
        rows = list(read_ticks(audit))
    print(f"fault soak: {days:g} days ({plant.k} steps), daemon (mpc) as its own process over OPC UA, "
          f"wall {wall:.0f} s, {len(bench.injected)} faults ({len(faults)} kinds, every {every_h:g} h)")
    print(f"hard breaches on the true plant: {report.hard_violations}")
    for b in report.breaches:
        before = [i for i in bench.injected if plant.traj.timestamps[min(i["step"], len(plant.traj) - 1)] <= b.time]
        print(f"  {b.time} {b.rule}: {b.detail}; last fault before it: "
              f"{before[-1]['fault'] + ' at step ' + str(before[-1]['step']) if before else 'none'}")
    print(f"audit: {len(rows)} rows; {' / '.join(line.strip() for line in summary(rows).splitlines()[1:])}")
    print(f"daemon crashes (exits not caused by the bench): {len(bench.crashes)}; kill -9: {bench.kills}")
    for c in bench.crashes:
        print(f"  {c}")
    by_kind: dict[str, list[tuple[bool, bool]]] = {}
    for info in bench.injected:
        by_kind.setdefault(info["fault"], []).append((alarmed(rows, info, info["true_readings"]), alarmed(rows, info)))
    print(f"alarmed within {WITHIN_TICKS} ticks of the first reading that differs from the truth (of the "
          "injection, where that is earlier), by fault:")
    for name, hits in by_kind.items():
        wrong, injected = sum(h[0] for h in hits), sum(h[1] for h in hits)
        late = sorted(t for i in bench.injected if i["fault"] == name and (t := alarm_tick(rows, i)) is not None
                      and t >= i["true_readings"] + WITHIN_TICKS)
        never = sum(1 for i in bench.injected if i["fault"] == name and alarm_tick(rows, i) is None)
        print(f"  {name:28s} {wrong} of {len(hits)}" + (f" ({injected})" if injected != wrong else "")
              + (f"; later: at {', '.join(map(str, late))} ticks" if late else "")
              + (f"; not within 24 ticks: {never}" if never else ""))
    refused = [i["refused"] for i in bench.injected if "refused" in i]
    print(f"anonymous operator writes: {len(refused)}, answered {sorted(set(refused))}")


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--days", type=float, default=30.0)
    p.add_argument("--every-h", type=float, default=4.0, help="plant hours between faults; 0: none")
    p.add_argument("--keep", type=Path, help="keep the audit log and config here")
    a = p.parse_args()
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    asyncio.run(main(a.days, a.every_h, a.keep))

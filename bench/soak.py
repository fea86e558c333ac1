"""Soak benchmark: 30 simulated days through OPC UA in lockstep, with a fault every few plant hours.

Usage: python bench/soak.py [--days 30] [--every-h 6] [--controller mpc|baseline] [--dry] [--keep DIR]

The plant is our twin behind a real asyncua server, reached through a TCP proxy the bench
can cut; the daemon reports over a real mosquitto broker and keeps an SQLite audit log.
Faults rotate through the README's table: OPC UA server restart, broker restart, network
drop, solver timeout (a decision held past the watchdog deadline), no plan (HiGHS given
no time), pump trip mid-interval, setpoint writes refused, a full disk for the audit log.
Prints violations by rule, audit completeness, RSS at start and end, and the health at the end;
each breach with the audited ticks of the hour before it. --keep DIR keeps the audit log and
the trajectory for tracing.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import shutil
import sys
import tempfile
import time
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

import structlog

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from adapters.client.opcua import OpcuaPort
from adapters.mqtt_link import MqttLink
from adapters.served.opcua import OpcuaSimulator
from adapters.surface.mqtt import MqttSurface
from controller.baseline import BaselineController
from controller.mpc import MpcController
from kernel.contracts import Observation, Setpoints
from scenarios.report import write_trajectory
from scenarios.rules import check
from scenarios.scenario import load_scenario
from tests.plants import OPCUA_TAGS, Broker, Proxy, free_port, mosquitto
from tunneltwin.daemon.audit import AuditLog, read_ticks
from tunneltwin.daemon.audit_export import summary
from tunneltwin.daemon.loop import Service
from tunneltwin.daemon.wiring import LOG_LIMIT
from tunneltwin.settings import Settings
from twin.lockstep import LockstepPlant

SCENARIO = """name = "soak"
description = "Synthetic days with rain, for the soak benchmark."
[source]
kind = "synthetic"
start = 2025-03-03T00:00:00
days = {days}
seed = 23
rain = {rain}
[initial]
level_m = 2.0
running = {{ "1.4" = 49.0, "2.2" = 49.0 }}
"""
DEADLINE_S = 8.0
BREACH_CONTEXT_S = 3600.0  # audited ticks printed before each breach


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def serve(plant: LockstepPlant, url: str) -> OpcuaSimulator:
    """The twin on an OPC UA server, retried while the last one still holds the port."""
    for attempt in range(40):
        sim = OpcuaSimulator(plant, OPCUA_TAGS, url)
        try:
            await sim.start()
            return sim
        except OSError:
            await asyncio.sleep(0.25 * (attempt + 1))
    raise RuntimeError("OPC UA server did not come back")


class Controlled:
    """A switch the bench flips on the daemon's own controller: its next decision is held past
    the deadline. The daemon is handed the controller itself, not a wrapper, so what it reports
    and audits (plan, inflow forecast) is what a plant's daemon records."""

    def __init__(self, inner: MpcController | BaselineController) -> None:
        self.inner, self.hold_s = inner, 0.0
        decide = inner.decide

        def held(obs: Observation) -> Setpoints:
            if self.hold_s:
                hold, self.hold_s = self.hold_s, 0.0
                time.sleep(hold)
            return decide(obs)

        setattr(inner, "decide", held)  # noqa: B010 (an instance attribute shadows the method)


class Soak:
    def __init__(self, plant: LockstepPlant, url: str, broker: Broker, proxy: Proxy, audit: AuditLog,
                 ctl: Controlled) -> None:
        self.plant, self.url, self.broker, self.proxy, self.audit, self.ctl = plant, url, broker, proxy, audit, ctl
        self.sim: OpcuaSimulator | None = None
        self.done: list[tuple[int, str]] = []  # (plant step, fault)
        self.rss: dict[int, float] = {}  # plant day -> MB

    async def start_server(self) -> None:
        self.sim = await serve(self.plant, self.url)

    async def server_restart(self) -> None:
        assert self.sim
        await self.sim.stop()
        await asyncio.sleep(1.0)
        await self.start_server()

    async def broker_restart(self) -> None:
        self.broker.stop()
        await asyncio.sleep(1.0)
        self.broker.start()

    async def network_drop(self) -> None:
        await self.proxy.cut()
        await asyncio.sleep(2.0)
        await self.proxy.start()

    async def solver_timeout(self) -> None:
        self.ctl.hold_s = DEADLINE_S + 2

    async def no_plan(self) -> None:
        mpc = self.ctl.inner
        if isinstance(mpc, MpcController):
            saved = mpc.cfg
            mpc.cfg = saved.with_solver(time_limit_s=1e-6, choose_time_limit_s=1e-6, step_budget_s=1e-6)
            await self.wait_steps(1)
            mpc.cfg = saved

    async def pump_trip(self) -> None:
        twin = self.plant.twin
        on = [pid for k, pid in enumerate(twin.ids) if twin.state.status[k] != 0 and twin.state.available[k]]
        if on:
            now = float(twin.env.now)
            twin.schedule_outage(on[0], now + 0.5 * self.plant.setup.step_s, now + 4 * 3600)

    async def writes_refused(self) -> None:
        assert self.sim
        nodes = [n for k, n in self.sim.nodes.items() if k[0] == "setpoint"]
        for n in nodes:
            await n.set_writable(False)
        await self.wait_steps(2)
        for n in nodes:
            await n.set_writable(True)

    async def disk_full(self) -> None:
        pages = self.audit.db.execute("PRAGMA page_count").fetchone()[0]
        self.audit.db.execute(f"PRAGMA max_page_count = {pages}")
        await self.wait_steps(2)
        self.audit.db.execute("PRAGMA max_page_count = 1073741823")

    async def wait_steps(self, n: int) -> None:
        target = self.plant.k + n
        while self.plant.k < target and not self.plant.done:
            await asyncio.sleep(0.01)

    async def inject(self, every_steps: int) -> None:
        faults = [self.server_restart, self.broker_restart, self.network_drop, self.solver_timeout, self.no_plan,
                  self.pump_trip, self.writes_refused, self.disk_full]
        k = 0
        while not self.plant.done:
            await self.wait_steps(every_steps)
            if self.plant.done:
                break
            fault = faults[k % len(faults)]
            self.done.append((self.plant.k, fault.__name__))
            await fault()
            k += 1


async def main(days: float, every_h: float, controller: str, rain: bool, keep: Path | None) -> None:
    settings = Settings.build()
    site = settings.site()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "soak.toml"
        path.write_text(SCENARIO.format(days=days, rain=str(rain).lower()))
        setup = load_scenario(str(path), site, None, None, None)
        with mosquitto("allow_anonymous true\n") as broker:
            plant = LockstepPlant(setup)
            server_port = free_port()
            url = f"opc.tcp://127.0.0.1:{server_port}/tunneltwin/"
            proxy = Proxy(server_port)
            await proxy.start()
            audit = AuditLog(Path(tmp) / "audit.sqlite")
            inner = (MpcController(site, settings.mpc(), log_limit=LOG_LIMIT) if controller == "mpc"
                     else BaselineController(site))
            ctl = Controlled(inner)
            soak = Soak(plant, url, broker, proxy, audit, ctl)
            await soak.start_server()
            port = OpcuaPort(f"opc.tcp://127.0.0.1:{proxy.port}/tunneltwin/", OPCUA_TAGS, site, timeout_s=5)
            surface = MqttSurface(MqttLink("127.0.0.1", broker.port, "soak-daemon"), commands=True)
            service = Service(port, inner, BaselineController(site), site, reconnect_max_s=2.0, surfaces=[surface],
                              audit=audit, deadline_s=DEADLINE_S, stale_after_s=60)
            rss0, t0 = rss_mb(), time.perf_counter()
            run = asyncio.ensure_future(service.run())
            injector = asyncio.ensure_future(soak.inject(round(every_h * 3600 / setup.step_s)))
            while not plant.done and not run.done():
                await asyncio.sleep(0.05)
                soak.rss.setdefault(plant.k // 96, rss_mb())
            healthy, ready = service.health.healthy(), service.health.ready()
            service.stop()
            stats = await run
            injector.cancel()
            rss1 = rss_mb()
            assert soak.sim
            await soak.sim.stop()
            await proxy.cut()
            audit.close()
            report = check(plant.traj, site.rules)
            rows = list(read_ticks(Path(tmp) / "audit.sqlite"))
            if keep is not None:  # the evidence for tracing a breach outlives the run
                keep.mkdir(parents=True, exist_ok=True)
                shutil.copy(Path(tmp) / "audit.sqlite", keep / "audit.sqlite")
                write_trajectory(plant.traj, keep / "trajectory.csv")
    by_rule: dict[str, int] = {}
    for b in report.breaches:
        by_rule[b.rule] = by_rule.get(b.rule, 0) + 1
    weather = "rain" if rain else "dry"
    print(f"{setup.name} ({weather}): {days:g} days ({plant.k} steps) through OPC UA in lockstep, {controller}, "
          f"wall {time.perf_counter() - t0:.0f} s")
    print(f"faults injected: {len(soak.done)} ({', '.join(sorted({n for _, n in soak.done}))})")
    print(f"hard-rule violations: {report.hard_violations} {by_rule}; "
          f"alarms (level above {site.rules.alarm_level_m} m): {len(report.alarms)}; "
          f"runs cut by a pump trip: {len(report.trips)}; pumps stopped by their stop level: "
          f"{int(plant.twin.state.level_stops.sum())}, lowest level {float(plant.traj.col('level_m').min()):.3f} m")
    print(f"daemon ticks {stats.ticks}, audit rows {len(rows)}; {summary(rows).splitlines()[1].strip()}; "
          f"with a plan {sum(r['plan'] is not None for r in rows)}, with an inflow forecast "
          f"{sum(bool((r['forecast'] or {}).get('inflow_m3h_next')) for r in rows)}")
    print(f"comms errors {stats.comms_errors}, reconnects {stats.reconnects}, write rejections "
          f"{stats.write_rejections}, fallbacks {stats.fallbacks}, alerts {len(service.alerts)} (last 50 kept)")
    # the MPC's own no-plan fallback is audited under the MPC, with its status
    deciders = Counter("mpc, no plan" if "no plan" in (row["solver_status"] or "") else row["controller"]
                       for row in rows)
    print("ticks decided by: " + ", ".join(f"{k} {v}" for k, v in sorted(deciders.items())))
    days_seen = sorted(soak.rss)
    marks = [d for d in (1, 3, 10, 20) if d in soak.rss]
    points = [f"start {rss0:.0f} MB", *(f"day {d} {soak.rss[d]:.0f} MB" for d in marks),
              f"end (day {days_seen[-1] if days_seen else 0}) {rss1:.0f} MB"]
    print(f"RSS {', '.join(points)}; healthy={healthy}, ready={ready}")
    step_s = setup.step_s
    for b in report.breaches:
        k = round((b.time - setup.start).total_seconds() / step_s)
        context: list[dict[str, Any]] = []
        if b.rule == "daily_emptying":  # stamped at the day's start: the faults of that day, no single hour
            near = [f"{n} at step {fk}" for fk, n in soak.done if 0 <= fk - k < round(86400 / step_s)]
            where = "that day"
        else:
            near = [f"{n} at step {fk}" for fk, n in soak.done if 0 <= k - fk <= 12]
            where = "the 3 h before"
            context = [r for r in rows
                       if 0 <= (b.time - datetime.fromisoformat(r["plant_time"])).total_seconds() <= BREACH_CONTEXT_S]
        print(f"  breach {b.rule} at {b.time} (step {k}): {b.detail}; faults {where}: {near or 'none'}")
        for row in context:
            print("    " + tick_line(row))


def tick_line(row: dict[str, Any]) -> str:
    """One audited tick: what the daemon saw, wrote, read back and why it deviated."""
    tel = row["telemetry"] or {}
    written = {p["id"]: p["freq_hz"] for p in (row["setpoints"] or {}).get("pumps", []) if p.get("on")}
    read = {p["id"]: p["freq_hz"] for p in (row["readback"] or {}).get("pumps", []) if p.get("on")} \
        if row["readback"] else None
    overrides = [o.get("detail", o) if isinstance(o, dict) else o for o in row["overrides"] or []]
    alarms = [a.get("kind", a) if isinstance(a, dict) else a for a in row["alarms"] or []]
    nan = float("nan")
    status = f"/{row['solver_status']}" if row["solver_status"] else ""
    return (f"{row['plant_time']} {row['controller']}{status}: "
            f"level {tel.get('level_m', nan):.3f} m, inflow {tel.get('inflow_m3h', nan):.0f} m3/h; "
            f"wrote {written}; read back {read}; "
            f"overrides {overrides or '-'}; alarms {alarms or '-'}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--days", type=float, default=30.0)
    ap.add_argument("--every-h", type=float, default=6.0)
    ap.add_argument("--controller", choices=("mpc", "baseline"), default="mpc")
    ap.add_argument("--dry", action="store_true", help="no rain events (default: the fitted rain rate)")
    ap.add_argument("--keep", type=Path, help="keep the audit log and trajectory.csv in this directory")
    args = ap.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))
    logging.disable(logging.WARNING)
    asyncio.run(main(args.days, args.every_h, args.controller, not args.dry, args.keep))

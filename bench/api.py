"""Benchmark: the daemon's tick with the HTTP API serving event-stream clients.

Usage: python bench/api.py [--clients 50] [--stalled 0] [--ticks 300]

The rule-based baseline on the bundled dry-week at 15 plant minutes per 50 ms (no solver, so the tick is mostly
the daemon's own work and the API's share shows), the API on a free loopback port, and
``--clients`` readers plus ``--stalled`` clients that open /events and never read, all in a
child process. Only ticks after every client is connected count. Prints the median and p95
tick time (read, decide, write, audit, report) and the events the stalled clients lost.
Pair runs with farm-bench, e.g. --clients 50 --vs '--clients 0'.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import structlog

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from adapters.client.sim import SimPort
from controller.baseline import BaselineController
from kernel.site import load_site
from scenarios.scenario import load_scenario
from tunneltwin.daemon.api import HttpApi
from tunneltwin.daemon.loop import Service
from twin.lockstep import LockstepPlant

CLIENTS = '''
import asyncio, sys, httpx
url, reading, stalled = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
async def read(client):
    async with client.stream("GET", "/events") as r:
        async for _ in r.aiter_bytes():
            pass
async def stall(client):
    async with client.stream("GET", "/events"):
        await asyncio.sleep(3600)
async def main():
    limits = httpx.Limits(max_connections=reading + stalled + 1)
    async with httpx.AsyncClient(base_url=url, timeout=None, limits=limits) as client:
        tasks = [read(client) for _ in range(reading)] + [stall(client) for _ in range(stalled)]
        await asyncio.gather(*tasks, return_exceptions=True)
asyncio.run(main())
'''


async def run(clients: int, stalled: int, ticks: int) -> tuple[list[float], int]:
    site = load_site()
    setup = load_scenario("dry-week", site, None, None, None)
    api = HttpApi("127.0.0.1:0", None)
    baseline = BaselineController(site)
    service = Service(SimPort(LockstepPlant(setup), speed=900 * 20), baseline, baseline, site, surfaces=[api])
    times: list[float] = []
    tick = service.tick

    async def timed() -> None:
        t0 = time.perf_counter()
        await tick()
        if len(api.clients) >= clients + stalled:
            times.append(time.perf_counter() - t0)
            if len(times) >= ticks:
                service.stop()

    service.tick = timed  # type: ignore[method-assign]
    task = asyncio.ensure_future(service.run())
    while api.port == 0:  # set once uvicorn listens
        await asyncio.sleep(0.01)
    child = None
    if clients + stalled:
        child = subprocess.Popen([sys.executable, "-c", CLIENTS, f"http://127.0.0.1:{api.port}", str(clients),
                                  str(stalled)])
    await task
    if child is not None:
        child.kill()
        child.wait()
    return times, api.dropped


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--stalled", type=int, default=0)
    ap.add_argument("--ticks", type=int, default=300)
    args = ap.parse_args()
    logging.disable(logging.WARNING)
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))
    times, dropped = asyncio.run(run(args.clients, args.stalled, args.ticks))
    ms = np.array(times) * 1000
    print(f"clients {args.clients} reading + {args.stalled} stalled: {len(times)} ticks, tick median "
          f"{statistics.median(ms):.2f} ms, p95 {np.percentile(ms, 95):.2f} ms; events lost by stalled clients "
          f"{dropped}")


if __name__ == "__main__":
    main()

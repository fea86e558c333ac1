"""The daemon's live page in headless chromium, loaded from the running daemon: it draws the
last ticks and the plan, gains points as ticks come, and shows an alert when one is raised."""

from __future__ import annotations

import asyncio
import dataclasses
import html
import json
import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from adapters.client.sim import SimPort
from controller.baseline import BaselineController
from controller.mpc import MpcController
from kernel.site import Site
from scenarios.replay import ReplaySetup
from scenarios.scenario import load_scenario
from tests.test_report import _chromium
from tunneltwin.daemon.api import HttpApi
from tunneltwin.daemon.loop import Service
from twin.lockstep import LockstepPlant

TOKEN = "live-read-secret"


@pytest.fixture(scope="module")
def day(site: Site) -> ReplaySetup:
    setup = load_scenario("dry-week", site, None, None, None)
    return dataclasses.replace(setup, inflow_m3h=setup.inflow_m3h[:192],
                               price_eur_per_kwh=setup.price_eur_per_kwh[:192])


async def test_live_page_follows_the_ticks_and_shows_a_raised_alert(day: ReplaySetup, tmp_path: Path) -> None:
    api = HttpApi("127.0.0.1:0", TOKEN, None, day.site)
    service = Service(SimPort(LockstepPlant(day), speed=1500), MpcController(day.site), BaselineController(day.site),
                      day.site, max_ticks=190, surfaces=[api])
    run = asyncio.ensure_future(service.run())
    while service.stats.ticks < 3:
        await asyncio.sleep(0.02)
    url = f"http://127.0.0.1:{api.port}/live?token={TOKEN}#selftest"

    async def raise_once_watched() -> None:
        while not api.clients:  # the page's event stream is open
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)
        service.alert("test_alert", "raised while the page watched")

    raiser = asyncio.ensure_future(raise_once_watched())
    dom = await asyncio.to_thread(_chromium, "--window-size=1100,1600", "--dump-dom", url, budget_ms=30_000)
    raiser.cancel()
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{api.port}") as client:
        page = (await client.get("/live")).text  # the page needs no token: it holds no plant data
        refused = (await client.get("/system/history")).status_code
    service.stop()
    await run
    found = re.search(r'<pre id="selftest">(.*?)</pre>', dom, re.S)
    assert found, "the live page's self-test wrote nothing:\n" + dom[-2000:]
    got: dict[str, Any] = json.loads(html.unescape(found.group(1)))
    assert got["why"] == "ok", got
    assert got["points_now"] >= got["points_at_start"] + 2  # the level chart gained the new ticks
    assert got["plan_points"] > 0 and got["band_points"] > 0  # and the plan ahead, and the inflow's P10..P90
    assert all(px > 2000 for px in got["painted_px"]), got["painted_px"]
    assert any(re.match(r"^\d{2}:\d{2}$", x) for x in got["x_labels"])
    assert any("test_alert: raised while the page watched" in a for a in got["alerts_shown"]), got["alerts_shown"]
    assert got["pumps_rows"] == len(day.site.pumps)
    assert got["operator"].startswith("optimiser on")
    assert "mpc deciding" in got["status"]
    assert "<script src" not in page and "http://" not in page and "https://" not in page.split("<!--")[0]
    assert refused == 401

"""The run report in a real headless browser (Debian's chromium): the charts draw their data
on a date-time axis in the site's zone, and a click on a legend entry hides and shows a run.

The page has a self-test (``report.html#selftest``): after drawing, it clicks the first
run's legend entry, measures what the canvas holds with and without that run, and writes
what it found into the DOM, which ``chromium --dump-dom`` prints."""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import EXCERPT
from tunneltwin import cli

BROWSERS = ("chromium", "chromium-browser", "google-chrome")
DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
CLOCK = re.compile(r"^\d{2}:\d{2}$")


def _browser() -> str:
    found = next((b for b in map(shutil.which, BROWSERS) if b), None)
    if found is None:
        if os.environ.get("TUNNELTWIN_REQUIRE_CHROMIUM"):
            pytest.fail("chromium is not installed, and the test command said it would be (scripts/test.sh)")
        pytest.skip("no headless browser: apt-get install chromium (scripts/test.sh does so)")
    return found


def _chromium(*args: str, budget_ms: int = 10_000) -> str:
    """Runs a headless chromium; ``budget_ms`` of the page's (virtual) time pass before it
    dumps or shoots, while network requests still in flight hold the clock."""
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", f"--virtual-time-budget={budget_ms}"]
    out = subprocess.run([_browser(), *flags, *args], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("report")
    assert cli.main(["compare", str(EXCERPT), "--controllers", "historical,baseline", "--out", str(out)]) == 0
    return out


def _selftest(page: Path) -> dict[str, Any]:
    dom = _chromium("--window-size=1100,1800", "--dump-dom", page.as_uri() + "#selftest")
    found = re.search(r'<pre id="selftest">(.*?)</pre>', dom, re.S)
    assert found, "the page's self-test wrote nothing: its script failed in the browser"
    result: dict[str, Any] = json.loads(html.unescape(found.group(1)))
    return result


def test_report_charts_draw_every_run_on_a_date_time_axis_and_the_legend_toggles(report: Path) -> None:
    page = report / "report.html"
    steps = len((report / "baseline" / "trajectory.csv").read_text().splitlines()) - 1
    got = _selftest(page)
    assert [c["title"] for c in got["charts"]] == ["Tunnel level", "Inflow and pumped flow F2", "Price",
                                                   "Pumping power", "Pumps running", "Cumulative cost"]
    for chart in got["charts"]:
        assert chart["time_axis"], chart["title"]
        assert chart["painted_px"] > 2000, chart  # drawn on, not an empty frame
        assert all(s["points"] == steps for s in chart["series"]), chart  # every step of every series
        labels = chart["x_labels"]
        assert any(DATE.match(x) for x in labels) and any(CLOCK.match(x) for x in labels), labels  # a date axis
    level = got["charts"][0]
    assert [s["label"] for s in level["series"]][:2] == ["historical", "baseline"]  # both runs, overlaid
    assert got["kpi_table_px"] <= got["page_px"]  # the KPI table fits a 1,100 px window
    assert got["legend_toggle"] == [True, False, True]  # shown, hidden by a click, shown again
    assert got["level_painted_without_first"] < level["painted_px"]  # hiding a run takes its line away
    first = (report / "baseline" / "trajectory.csv").read_text().splitlines()[1].split(",")[0]
    assert got["first"] == (_as_helsinki(first)).strftime("%Y-%m-%d %H:%M")  # shown in the site's zone


def _as_helsinki(stamp: str) -> Any:
    from datetime import datetime
    from zoneinfo import ZoneInfo

    return datetime.fromisoformat(stamp).astimezone(ZoneInfo("Europe/Helsinki"))


def test_report_is_one_offline_file_with_a_kpi_table_that_fits(report: Path, tmp_path: Path) -> None:
    page = (report / "report.html").read_text()
    assert "<script src" not in page and "<link" not in page and "http" not in page.split("<!--")[0]  # offline
    assert "The MIT License" in page  # the vendored library's licence travels with it
    assert len(page.encode()) < 150_000  # two runs of two days: 82 KB, of which uPlot is 51 KB
    shot = tmp_path / "report.png"
    _chromium("--window-size=1100,1800", f"--screenshot={shot}", (report / "report.html").as_uri())
    png = shot.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 50_000  # a page with charts, not a blank one

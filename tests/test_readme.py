"""The README's first command gives the output the README shows.

The daemon's day on the embedded twin solves to the clock, so its cost moves a little with the
machine's load; the ticks and the rule record do not. Tolerance: the cost within 15 % (on this
2-core machine two idle runs gave the same 858.69 EUR, and two beside a sweep using both cores
782.27 and 766.08 EUR, -8.9 % and -10.8 %: solves cut by their time limit take another path), the level range within
0.3 m, the same ticks and the same hard-violation count.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tunneltwin.cli import main

README = Path(__file__).resolve().parents[1] / "README.md"
COST_TOLERANCE = 0.15
LEVEL_TOLERANCE_M = 0.3


def _figures(text: str) -> dict[str, float]:
    ticks = re.search(r"mpc on sim, (\d+) ticks", text)
    level = re.search(r"level ([\d.]+)\.\.([\d.]+) m", text)
    cost = re.search(r"twin's record \(dry-week\): cost ([\d.]+) EUR", text)
    hard = re.search(r"hard violations (\d+)", text)
    assert ticks and level and cost and hard, f"no daemon summary in:\n{text}"
    return {"ticks": float(ticks[1]), "level_min": float(level[1]), "level_max": float(level[2]),
            "cost": float(cost[1]), "hard": float(hard[1])}


def _sample() -> str:
    text = README.read_text(encoding="utf-8")
    at = text.index("tunneltwin run: mpc on sim")
    return text[at:text.index("```", at)]


def test_the_readmes_daemon_sample_matches_a_fresh_run(capsys: pytest.CaptureFixture[str]) -> None:
    shown = _figures(_sample())
    assert main(["run"]) == 0
    got = _figures(capsys.readouterr().out)
    assert got["ticks"] == shown["ticks"] and got["hard"] == shown["hard"]
    assert got["cost"] == pytest.approx(shown["cost"], rel=COST_TOLERANCE)
    assert got["level_min"] == pytest.approx(shown["level_min"], abs=LEVEL_TOLERANCE_M)
    assert got["level_max"] == pytest.approx(shown["level_max"], abs=LEVEL_TOLERANCE_M)


def test_every_marked_figure_is_the_one_the_results_script_wrote() -> None:
    """bench/results.py measures each figure the README marks and writes docs/results.md with
    the date, commit and package versions of the run; the README's block must be that one."""
    import json

    results_md = README.parent / "docs" / "results.md"
    found = re.search(r"```json\n(.*?)\n```", results_md.read_text(encoding="utf-8"), re.S)
    assert found, f"{results_md}: no data block; run python bench/results.py"
    results = json.loads(found[1])
    blocks = re.findall(r"<!-- results:([\w-]+) -->(.*?)<!-- /results -->", README.read_text(encoding="utf-8"), re.S)
    assert {key for key, _ in blocks} >= {"daemon-sample", "daemon-wall", "suite", "shadow-mode", "report-size"}
    for key, body in blocks:
        assert key in results, f"README figure {key!r} has no measured value in docs/results.md"
        assert body == results[key]["value"], f"README figure {key!r} differs from docs/results.md"
        assert "highspy" in results[key]["stamp"] and "commit" in results[key]["stamp"]

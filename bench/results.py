"""Every figure the README quotes, measured afresh: docs/results.md, and the README's marked
blocks rewritten from it. Each run is stamped with the date, the commit and the package
versions, so nothing in either file is typed by hand.

    python bench/results.py            # the quick figures (about 2 min on 2 cores)
    python bench/results.py --suite    # and the test suite's count and run time (about 8 min)

The README marks each generated figure as ``<!-- results:KEY -->...<!-- /results -->``;
tests/test_readme.py checks that each block is the one in docs/results.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README, RESULTS = ROOT / "README.md", ROOT / "docs" / "results.md"
EXCERPT = ROOT / "tests" / "data" / "hsy_excerpt_2days.csv"
PACKAGES = ("tunneltwin", "numpy", "scipy", "highspy", "simpy", "pydantic", "asyncua", "paho-mqtt")
BLOCK = re.compile(r"<!-- results:(?P<key>[\w-]+) -->(?P<body>.*?)<!-- /results -->", re.S)


def tunneltwin(*args: str, cwd: Path) -> tuple[str, float]:
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "tunneltwin", *args], cwd=cwd, capture_output=True, text=True,
                         check=True)
    return out.stdout, time.perf_counter() - t0


def daemon_sample(work: Path) -> dict[str, str]:
    """The README's first command, as a user on a fresh machine would see it."""
    out, wall = tunneltwin("run", cwd=work)
    return {"daemon-sample": "\n```\n" + out.strip() + "\n```\n", "daemon-wall": f"{wall:.1f} s"}


def shadow_mode(work: Path) -> dict[str, str]:
    out, _ = tunneltwin("run", "--plant", "replay", "--recorded", str(EXCERPT), "--duration-h", "0", cwd=work)
    share = re.search(r"matched the recorded one on ([\d.]+) % of ticks", out)
    ticks = re.search(r", (\d+) ticks", out)
    assert share and ticks, out
    return {"shadow-mode": f"`mpc` matched on {share[1]} % of {ticks[1]} ticks"}


def report_size(work: Path) -> dict[str, str]:
    tunneltwin("compare", str(EXCERPT), "--controllers", "historical,baseline", "--out", str(work / "cmp"), cwd=work)
    size = (work / "cmp" / "report.html").stat().st_size
    uplot = (ROOT / "scenarios" / "data" / "vendor" / "uplot" / "uPlot.iife.min.js").stat().st_size
    return {"report-size": f"{size / 1000:.0f} KB", "uplot-size": f"{uplot / 1000:.0f} KB"}


def systemd_rating(work: Path) -> dict[str, str]:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        return {}
    ratings = []
    for unit in ("tunneltwin.service", "tunneltwin@.service"):
        copy = work / unit.replace("@.", "@station.")
        copy.write_text((ROOT / "deploy" / unit).read_text())
        out = subprocess.run([analyze, "security", "--offline=true", "--no-pager", str(copy)],
                             capture_output=True, text=True, check=False).stdout
        found = re.search(r"Overall exposure level for \S+: ([\d.]+ \w+)", out)
        ratings.append(found[1] if found else "?")
    return {"systemd-rating": " / ".join(dict.fromkeys(ratings))}


def suite(work: Path) -> dict[str, str]:
    """The README's test command on a fresh clone of the committed tree, without ../shared."""
    clone = work / "clone"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
    t0 = time.perf_counter()
    try:
        out = subprocess.run(["bash", "scripts/test.sh"], cwd=clone, capture_output=True, text=True, check=False)
        wall = time.perf_counter() - t0
    finally:  # scripts/test.sh installs the clone, editable, into the python3 it finds: point it back here
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-deps",
                        "-e", str(ROOT)], check=True)
    tail = out.stdout + out.stderr
    counts = re.findall(r"(\d+) (passed|skipped|failed)", tail)
    failures = [line for line in tail.splitlines() if re.match(r"(_{3,} \S.* _{3,}|FAILED |ERROR )", line)]
    assert out.returncode == 0 and counts, "\n".join(failures) + "\n" + tail[-3000:]
    n = {kind: int(k) for k, kind in counts}
    minutes, seconds = divmod(round(wall), 60)
    return {"suite": f"{n.get('passed', 0) + n.get('skipped', 0)} tests; on a fresh clone here (`scripts/test.sh`, "
                     f"without `../shared`) {n.get('passed', 0)} passed and {n.get('skipped', 0)} skipped in "
                     f"{minutes} min {seconds:02d} s, the wheel check included"}


def stamp() -> str:
    def ver(name: str) -> str:
        try:
            return version(name)
        except PackageNotFoundError:
            return "-"

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                            check=False).stdout.strip() or "-"
    return (f"{dt.date.today().isoformat()}, commit {commit}, Python {sys.version.split()[0]}, "
            + ", ".join(f"{p} {ver(p)}" for p in PACKAGES))


def read_results() -> dict[str, dict[str, str]]:
    """KEY -> {"value", "stamp"} from docs/results.md (its JSON block)."""
    if not RESULTS.exists():
        return {}
    found = re.search(r"```json\n(.*?)\n```", RESULTS.read_text(), re.S)
    return json.loads(found[1]) if found else {}


def write_results(results: dict[str, dict[str, str]]) -> None:
    lines = ["# Measured figures", "",
             "Written by `python bench/results.py` (add `--suite` for the test run); do not edit by hand.",
             "Each figure carries the run it came from: date, commit, Python and package versions.", ""]
    for key, entry in sorted(results.items()):
        lines += [f"## {key}", "", entry["value"].strip(), "", f"*{entry['stamp']}*", ""]
    lines += ["## The data behind this page", "", "```json", json.dumps(results, indent=1, sort_keys=True), "```", ""]
    RESULTS.write_text("\n".join(lines))


def fill_readme(results: dict[str, dict[str, str]]) -> list[str]:
    text = README.read_text()
    missing = []

    def put(m: re.Match[str]) -> str:
        key = m["key"]
        if key not in results:
            missing.append(key)
            return m[0]
        return f"<!-- results:{key} -->{results[key]['value']}<!-- /results -->"

    README.write_text(BLOCK.sub(put, text))
    return missing


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suite", action="store_true", help="also run the test command on a fresh clone")
    args = parser.parse_args()
    results = read_results()
    when = stamp()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        steps = [daemon_sample, shadow_mode, report_size, systemd_rating] + ([suite] if args.suite else [])
        for step in steps:
            print(f"results: {step.__name__} ...", file=sys.stderr, flush=True)
            for key, value in step(work).items():
                results[key] = {"value": value, "stamp": when}
    write_results(results)
    missing = fill_readme(results)
    print(f"-> {RESULTS.relative_to(ROOT)}, README blocks filled" +
          (f"; no figure yet for {', '.join(missing)}" if missing else ""))


if __name__ == "__main__":
    main()

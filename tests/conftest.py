"""Shared fixtures: the bundled site, the recorded excerpt, and the full data when present."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from kernel.recorded import DataRepairWarning, RecordedData
from kernel.site import Site, load_site
from scenarios.loaders import load_recorded
from tests.plants import Broker, mosquitto

DATA = Path(__file__).parent / "data"
EXCERPT = DATA / "hsy_excerpt_2days.csv"
SHARED = Path(__file__).resolve().parents[2] / "shared" / "hsy-data"
SHARED_TIDY = SHARED / "derived" / "hsy_timeseries_tidy.csv"
SHARED_WORKBOOK = SHARED / "Hackathon_HSY_data.xlsx"

needs_shared = pytest.mark.skipif(not SHARED_TIDY.exists(),
                                  reason=f"full recorded data not present at {SHARED} (only in the workplace)")


def load_quietly(path: Path) -> RecordedData:
    """Load recorded data, accepting the documented repairs (their warnings are tested elsewhere)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataRepairWarning)
        return load_recorded(path)


@pytest.fixture(scope="session")
def site() -> Site:
    return load_site()


@pytest.fixture(scope="session")
def excerpt() -> RecordedData:
    return load_quietly(EXCERPT)


@pytest.fixture(scope="session")
def recorded() -> RecordedData:
    if not SHARED_TIDY.exists():
        pytest.skip(f"full recorded data not present at {SHARED}")
    return load_quietly(SHARED_TIDY)


@pytest.fixture(scope="module")
def broker() -> Iterator[Broker]:
    """A real mosquitto on a free loopback port, anonymous clients allowed, one per test module."""
    with mosquitto("allow_anonymous true\n") as b:
        yield b

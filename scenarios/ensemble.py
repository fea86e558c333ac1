"""An ensemble: many scenarios judged together (``tunneltwin sweep``).

An ensemble file names scenarios to include (bundled names or paths) and defines more inline,
each an ordinary scenario table (README, "Scenario files"). The bundled ``storm-ensemble``
spans rain rates, storms of 1.5-4x for 4-16 h at different hours and weekdays, 0-3 large
pumps out of service and starting levels of 1-6 m.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import Field

from kernel.errors import ConfigError
from kernel.settings import read_toml, validated
from kernel.site import Site
from scenarios.replay import ReplaySetup
from scenarios.scenario import BUNDLED_DIR, ScenarioFile, _Strict, bundled_names, from_spec, load_scenario

ENSEMBLE_DIR = BUNDLED_DIR / "ensembles"


class EnsembleFile(_Strict):
    name: str
    description: str = ""
    include: list[str] = Field(default_factory=list)  # bundled scenario names or scenario/data file paths
    scenario: list[ScenarioFile] = Field(default_factory=list)


@dataclass(frozen=True)
class Member:
    """One scenario of a sweep, in a form a worker process can receive: a reference to load, or
    an inline definition with the file it came from."""

    name: str
    ref: str = ""  # bundled name or path (include), or ""
    inline: dict[str, Any] | None = None  # an inline scenario table
    source: str = ""  # the ensemble file, for errors and relative paths

    def load(self, site: Site) -> ReplaySetup:
        if self.inline is None:
            return load_scenario(self.ref, site)
        path = Path(self.source)
        return from_spec(validated(ScenarioFile, self.inline, path), path, site)


def bundled_ensembles() -> list[str]:
    return sorted(p.stem for p in ENSEMBLE_DIR.glob("*.toml"))


def members(refs: list[str]) -> list[Member]:
    """Each reference is an ensemble (bundled name or a file with [[scenario]] or include) or a
    single scenario. Names must be unique: the sweep's table is keyed by them."""
    out: list[Member] = []
    for ref in refs:
        out += _members(ref)
    seen: set[str] = set()
    for m in out:
        if m.name in seen:
            raise ConfigError(f"scenario name {m.name!r} appears twice in the sweep")
        seen.add(m.name)
    return out


def _members(ref: str) -> list[Member]:
    path = ENSEMBLE_DIR / f"{ref}.toml" if ref in bundled_ensembles() else Path(ref)
    if ref in bundled_names() or path.suffix.lower() in (".xlsx", ".xlsm", ".csv"):
        return [Member(Path(ref).stem, ref=ref)]
    if not path.is_file():
        raise ConfigError(f"{ref}: not a bundled ensemble ({', '.join(bundled_ensembles())}), "
                          f"not a bundled scenario ({', '.join(bundled_names())}), and no such file")
    data = read_toml(path)
    if "scenario" not in data and "include" not in data:
        return [Member(Path(ref).stem, ref=str(path))]
    spec = validated(EnsembleFile, data, path)
    included = [Member(Path(r).stem, ref=r if r in bundled_names() else str(path.parent / r))
                for r in spec.include]
    raw = data.get("scenario", [])
    return included + [Member(s.name, inline=raw[i], source=str(path)) for i, s in enumerate(spec.scenario)]

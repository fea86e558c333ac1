"""The MPC's settings from TOML (`config/mpc.toml`): every key checked against the settings it
sets, so a typo or a wrong type is an error naming the file, key and value, never ignored."""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from controller.forecast import ForecastSettings
from controller.milp import Weights
from controller.settings import MpcSettings
from kernel.errors import ConfigError
from kernel.settings import CONFIG_DIR, read_toml

DEFAULT_MPC = CONFIG_DIR / "mpc.toml"
SECTIONS: dict[str, type[Any]] = {"weights": Weights, "forecast": ForecastSettings}
NOT_SETTINGS = {"mpc.solver": "the solver's tuning is measured and changed in code (controller/settings.py, "
                              "SolverSettings)",
                "mpc.weights.terminal_eur_per_m3": "the value of stored water is the horizon's mean price "
                                                   "(controller/problem.py)",
                "mpc.weights.reserve_eur_per_m3": "the storm reserve is priced by its expected overflow since "
                                                  "0.2.0: weights.overflow_eur_per_m3h"}


def load_mpc(path: Path, overrides: Mapping[str, Any] | None = None) -> MpcSettings:
    """``overrides``: dotted keys under [mpc] (``weights.switch_eur``) and their values, checked
    like the file's own (a sweep varies settings this way)."""
    data = read_toml(path)
    for key, value in (overrides or {}).items():
        table = data.setdefault("mpc", {})
        *parents, leaf = key.split(".")
        for name in parents:
            table = table.setdefault(name, {})
            if not isinstance(table, dict):
                raise ConfigError(f"{path}: override {key}: mpc.{name} is not a table")
        table[leaf] = value
    unknown = set(data) - {"mpc"}
    if unknown:
        raise ConfigError(f"{path}: unknown table(s) {', '.join(sorted(unknown))}; expected [mpc]")
    settings: MpcSettings = _build(MpcSettings, data.get("mpc", {}), path, "mpc")
    return settings


def _build(cls: type[Any], table: dict[str, Any], path: Path, where: str) -> Any:
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    values: dict[str, Any] = {}
    for key, value in table.items():
        if f"{where}.{key}" in NOT_SETTINGS:
            raise ConfigError(f"{path}: [{where}] {key}: not a setting; {NOT_SETTINGS[f'{where}.{key}']}")
        if key not in fields:
            known = ", ".join(sorted(k for k in fields if f"{where}.{k}" not in NOT_SETTINGS))
            raise ConfigError(f"{path}: [{where}] unknown key {key!r}; known: {known}")
        if key in SECTIONS and where == "mpc":
            if not isinstance(value, dict):
                raise ConfigError(f"{path}: [{where}] {key} must be a table")
            values[key] = _build(SECTIONS[key], value, path, f"mpc.{key}")
            continue
        values[key] = _check(hints[key], value, path, f"{where}.{key}")
    try:
        return cls(**values)
    except ValueError as exc:  # a bound the settings check themselves
        raise ConfigError(f"{path}: {where}.{exc}") from exc


def _check(hint: Any, value: Any, path: Path, name: str) -> Any:
    allowed = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
    if type(None) in allowed and (value is None or value == "none"):
        return None
    if typing.get_origin(hint) is tuple:
        if not isinstance(value, list) or not all(isinstance(x, int | float) and not isinstance(x, bool)
                                                  and math.isfinite(x) and x >= 0 for x in value):
            raise ConfigError(f"{path}: {name} = {value!r}: expected a list of finite numbers >= 0")
        return tuple(float(x) for x in value)
    if bool in allowed and isinstance(value, bool):
        return value
    if int in allowed and isinstance(value, int) and not isinstance(value, bool):
        return _non_negative(value, path, name)
    if float in allowed and isinstance(value, int | float) and not isinstance(value, bool):
        if not math.isfinite(float(value)):
            raise ConfigError(f"{path}: {name} = {value}: must be finite")
        return float(_non_negative(value, path, name))
    raise ConfigError(f"{path}: {name} = {value!r}: expected {hint}")


def _non_negative(value: int | float, path: Path, name: str) -> int | float:
    """Every number in [mpc] is a time, a margin, a share, a weight or a count: a negative one
    is a typo that would silently turn a rule off (a negative margin moves a limit the wrong way)."""
    if value < 0:
        raise ConfigError(f"{path}: {name} = {value}: must be >= 0")
    return value

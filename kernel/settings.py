"""The one way a settings file is read: TOML, then a strict model, every failure a ConfigError
(or the caller's subclass) naming the file, the dotted key, the value and why. The site, the
daemon, the tag maps and scenario files are pydantic models read through ``validated``; the
MPC's settings are frozen dataclasses read by ``controller.config`` in the same line format."""

from __future__ import annotations

import importlib.util
import tomllib
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from kernel.errors import ConfigError

M = TypeVar("M", bound=BaseModel)


def _config_dir() -> Path:
    """The default configuration: the package ``kernel.config`` of an installed wheel (the
    checkout's config/, mapped by pyproject.toml), else config/ beside the sources."""
    try:
        spec = importlib.util.find_spec("kernel.config")
    except ModuleNotFoundError:
        spec = None
    for location in (spec.submodule_search_locations or []) if spec else []:
        if (Path(location) / "site.toml").is_file():
            return Path(location)
    return Path(__file__).resolve().parent.parent / "config"


CONFIG_DIR = _config_dir()


def validated(model: type[M], data: dict[str, Any], path: Path, error: type[ConfigError] = ConfigError) -> M:
    """``data`` (read from ``path``) as ``model``; a bad value raises ``error``, one line per field."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise error(format_validation(path, exc)) from exc


def read_toml(path: Path) -> dict[str, Any]:
    """Read a TOML file, turning every failure into a ConfigError naming the file."""
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: file not found") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start}): not a TOML file") from exc
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from exc


def format_validation(path: Path, exc: ValidationError) -> str:
    """One line per bad field: file, dotted field path, offending value and why."""
    lines = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "(top level)"
        value = err.get("input")
        shown = repr(value) if not isinstance(value, (dict, list)) else type(value).__name__
        lines.append(f"{path}: {where} = {shown}: {err['msg']}")
    return "\n".join(lines)

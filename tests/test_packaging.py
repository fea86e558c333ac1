"""The Dockerfile, checked where no Docker engine exists: non-root, and its command is ours."""

from __future__ import annotations

import json
from pathlib import Path

from tunneltwin import cli

DOCKERFILE = Path(__file__).resolve().parents[1] / "Dockerfile"


def instructions() -> dict[str, str]:
    out: dict[str, str] = {}
    for line in DOCKERFILE.read_text().splitlines():
        if line and not line.startswith((" ", "#")):
            key, _, rest = line.partition(" ")
            out[key] = rest
    return out


def test_image_runs_as_a_non_root_user_from_slim_python() -> None:
    ins = instructions()
    assert ins["FROM"] == "python:3.11-slim"
    assert ins["USER"] not in ("root", "0")


def test_image_command_is_a_valid_tunneltwin_command() -> None:
    ins = instructions()
    assert json.loads(ins["ENTRYPOINT"]) == ["tunneltwin"]
    args = cli._parser().parse_args(json.loads(ins["CMD"]))
    assert args.command == "run" and args.config is None  # the daemon, on TUNNELTWIN_DAEMON


def test_image_points_at_its_bundled_config() -> None:
    env = instructions()["ENV"]
    assert "TUNNELTWIN_SITE=/app/config/site.toml" in DOCKERFILE.read_text()
    assert "TUNNELTWIN_MPC=/app/config/mpc.toml" in DOCKERFILE.read_text()
    assert "TUNNELTWIN_DAEMON=/app/config/daemon.toml" in DOCKERFILE.read_text()
    assert env

"""Writing site and parameter TOML files without losing what was there on failure."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import tomli_w

from kernel.site import Site


def write_toml(data: dict[str, Any], path: Path, header: list[str]) -> None:
    """Write atomically: a temp file renamed over the target, so a crash leaves the old file."""
    text = "".join(f"# {line}\n" for line in header) + tomli_w.dumps(data)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_site(site: Site, path: Path, header: list[str]) -> None:
    write_toml(site.model_dump(mode="json"), path, header)

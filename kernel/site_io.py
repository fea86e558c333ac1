"""Writing site and parameter TOML files, and reports, without losing what was there on failure."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import tomli_w

from kernel.site import Site


def write_toml(data: dict[str, Any], path: Path, header: list[str]) -> None:
    write_text(path, "".join(f"# {line}\n" for line in header) + tomli_w.dumps(data))


def write_text(path: Path, text: str) -> None:
    """Write atomically: a temp file renamed over the target, so a crash leaves the old file.
    The file gets the permissions a plain write would (read for others under the usual umask),
    not the temp file's 0600: a site file or a report is read by other users and services."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:  # the text as given
            fh.write(text)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_site(site: Site, path: Path, header: list[str]) -> None:
    write_toml(site.model_dump(mode="json"), path, header)

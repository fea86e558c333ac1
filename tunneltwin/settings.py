"""The one settings object, built in one place: defaults, then environment, then CLI flags."""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from tunneltwin.site import DEFAULT_SITE, Site, load_site

if TYPE_CHECKING:
    from controller.mpc import MpcSettings

ENV_SITE = "TUNNELTWIN_SITE"
ENV_MPC = "TUNNELTWIN_MPC"
DEFAULT_MPC = Path(__file__).resolve().parents[1] / "config" / "mpc.toml"


@dataclass(frozen=True)
class Settings:
    site_path: Path = DEFAULT_SITE
    mpc_path: Path = DEFAULT_MPC

    @classmethod
    def build(cls, site_flag: str | None = None, mpc_flag: str | None = None) -> Settings:
        settings = cls()
        if env := os.environ.get(ENV_SITE):
            settings = replace(settings, site_path=Path(env))
        if env := os.environ.get(ENV_MPC):
            settings = replace(settings, mpc_path=Path(env))
        if site_flag:
            settings = replace(settings, site_path=Path(site_flag))
        if mpc_flag:
            settings = replace(settings, mpc_path=Path(mpc_flag))
        return settings

    def site(self) -> Site:
        return load_site(self.site_path)

    def mpc(self) -> MpcSettings:
        from tunneltwin.controller_config import load_mpc

        return load_mpc(self.mpc_path)

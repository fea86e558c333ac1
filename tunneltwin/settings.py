"""The one settings object, built in one place. Each file is looked up in this order: the
CLI flag, the environment (TUNNELTWIN_SITE, TUNNELTWIN_MPC, TUNNELTWIN_DAEMON), a file of
the same name in /etc/tunneltwin/, then the default packaged with tunneltwin."""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from controller.config import DEFAULT_MPC
from kernel.settings import CONFIG_DIR
from kernel.site import DEFAULT_SITE, Site, load_site

if TYPE_CHECKING:
    from controller.settings import MpcSettings
    from tunneltwin.daemon.config import DaemonConfig

ENV_SITE = "TUNNELTWIN_SITE"
ENV_MPC = "TUNNELTWIN_MPC"
ENV_DAEMON = "TUNNELTWIN_DAEMON"
DEFAULT_DAEMON = CONFIG_DIR / "daemon.toml"
ETC_DIR = Path("/etc/tunneltwin")  # a plant's own configuration, where packages put it


@dataclass(frozen=True)
class Settings:
    site_path: Path = DEFAULT_SITE
    mpc_path: Path = DEFAULT_MPC
    daemon_path: Path = DEFAULT_DAEMON

    @classmethod
    def build(cls, site_flag: str | None = None, mpc_flag: str | None = None,
              daemon_flag: str | None = None) -> Settings:
        settings = cls()
        for name, env, flag in (("site_path", ENV_SITE, site_flag), ("mpc_path", ENV_MPC, mpc_flag),
                                ("daemon_path", ENV_DAEMON, daemon_flag)):
            etc = ETC_DIR / getattr(settings, name).name
            if value := flag or os.environ.get(env):
                settings = replace(settings, **{name: Path(value)})
            elif etc.is_file():
                settings = replace(settings, **{name: etc})
        return settings

    def site(self) -> Site:
        return load_site(self.site_path)

    def daemon(self, **overrides: dict[str, object]) -> DaemonConfig:
        """The daemon TOML with CLI flags laid over it, per section (``daemon={"plant": "opcua"}``)."""
        from tunneltwin.daemon.config import load_daemon, with_overrides

        return with_overrides(load_daemon(self.daemon_path), overrides)

    def mpc(self) -> MpcSettings:
        from controller.config import load_mpc

        return load_mpc(self.mpc_path)

"""The one settings object, built in one place: defaults, then environment, then CLI flags."""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

from tunneltwin.site import DEFAULT_SITE, Site, load_site

ENV_SITE = "TUNNELTWIN_SITE"


@dataclass(frozen=True)
class Settings:
    site_path: Path = DEFAULT_SITE

    @classmethod
    def build(cls, site_flag: str | None = None) -> Settings:
        settings = cls()
        if env := os.environ.get(ENV_SITE):
            settings = replace(settings, site_path=Path(env))
        if site_flag:
            settings = replace(settings, site_path=Path(site_flag))
        return settings

    def site(self) -> Site:
        return load_site(self.site_path)

"""Where ktstr keeps things on the host.

The cache root is ``$KTSTR_CACHE_DIR``, else ``$XDG_CACHE_HOME/ktstr``, else
``~/.cache/ktstr``; kernels, scheduler builds, images and the private apt state live in
subdirectories of it. Configuration (preferences) lives under ``$XDG_CONFIG_HOME/ktstr``.
"""

from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    env = os.environ.get("KTSTR_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "ktstr"


def kernels_dir() -> Path:
    return cache_root() / "kernels"


def schedulers_dir() -> Path:
    return cache_root() / "schedulers"


def images_dir() -> Path:
    return cache_root() / "images"


def apt_dir() -> Path:
    return cache_root() / "apt"


def config_dir() -> Path:
    xdg = os.environ.get("XDG_CONFIG_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".config"
    return base / "ktstr"

"""Headless Chromium for the dashboard tests: the DOM it renders, and a screenshot. Each
call is one Chromium process that ends with its output (bounded by a timeout).

Screenshots are test artifacts: written to the test's directory and, when
``KTSTR_TEST_ARTIFACTS`` names a directory, copied there (pytest prunes its old
temporary directories; CI keeps that one)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

CHROMIUM = shutil.which("chromium")


def _base(profile: Path) -> list[str]:
    assert CHROMIUM
    return [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
            "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
            "--hide-scrollbars", f"--user-data-dir={profile}"]


def dump_dom(url: str, profile: Path) -> str:
    """The DOM Chromium renders for ``url``."""
    proc = subprocess.run([*_base(profile), "--dump-dom", url], capture_output=True,
                          text=True, timeout=90, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def screenshot(url: str, out: Path, profile: Path, size: str = "1280,2000") -> Path:
    """``url`` as Chromium draws it, saved to ``out`` (PNG)."""
    proc = subprocess.run([*_base(profile), f"--window-size={size}", f"--screenshot={out}",
                           url], capture_output=True, text=True, timeout=90, check=False)
    assert proc.returncode == 0 and out.is_file() and out.stat().st_size > 0, \
        proc.stderr[-2000:]
    keep = os.environ.get("KTSTR_TEST_ARTIFACTS")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        return Path(shutil.copy2(out, Path(keep) / out.name))
    return out

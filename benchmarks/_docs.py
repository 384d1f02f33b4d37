"""Write one section of docs/performance.md, leaving the others alone."""

from __future__ import annotations

import datetime
import os
import platform
from pathlib import Path

DOCS = Path(__file__).resolve().parents[1] / "docs" / "performance.md"


def machine_line() -> str:
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (f"Measured {datetime.date.today().isoformat()} on {cpu}, "
            f"{len(os.sched_getaffinity(0))} CPUs, Linux {platform.release()}, "
            f"Python {platform.python_version()}.")


def replace_section(heading: str, body: str, path: Path = DOCS) -> None:
    """Replace ``heading``'s section (up to the next ``## ``) or append it."""
    text = path.read_text() if path.exists() else "# Performance\n"
    lines = text.splitlines()
    start = next((i for i, ln in enumerate(lines) if ln.strip() == heading), None)
    new = [heading, "", *body.strip("\n").splitlines(), ""]
    if start is None:
        lines += ["", *new]
    else:
        end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")),
                   len(lines))
        lines[start:end] = new
    path.write_text("\n".join(lines).rstrip("\n") + "\n")

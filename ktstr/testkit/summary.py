"""The ``ktstr summary`` table at the end of a pytest session.

It reads the sidecar files as plain JSON: the pytest-xdist controller prints this table
and runs no test, and validating the sidecars' models (``ktstr.testkit.sidecar``) would
import pydantic and every result model into it only for this (~0.1 s at its end).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ktstr.testkit.sidecar import Sidecar

#: the sidecar files' suffix (``ktstr.testkit.sidecar`` writes them)
SIDECAR_SUFFIX = ".ktstr.json"

#: widest TEST column; longer ids are shortened in the middle, never from the left
TEST_WIDTH = 60
ELLIPSIS = "…"


def _middle(text: str, width: int) -> str:
    """``text`` cut to ``width`` characters by dropping its middle."""
    if len(text) <= width:
        return text
    if width <= 1:
        return ELLIPSIS[:width]
    head = width // 2
    tail = width - 1 - head
    return text[:head] + ELLIPSIS + (text[-tail:] if tail else "")


def shorten_test_id(name: str, width: int) -> str:
    """A test id that fits ``width``: the test function's name stays whole and the
    variant in brackets is shortened in its middle (``test_x[gauntlet-sm…-7.2.13]``);
    only a function name that alone does not fit is itself cut in the middle."""
    if len(name) <= width:
        return name
    base, bracket, params = name.partition("[")
    inner = params[:-1] if params.endswith("]") else params
    if bracket and len(base) + 3 <= width:  # "[", one character, "]"
        return f"{base}[{_middle(inner, width - len(base) - 2)}]"
    return _middle(name, width)


def read_sidecar_json(results_dir: Path, since: float = 0.0) -> list[dict[str, Any]]:
    """The sidecar files written since ``since``, as JSON objects (a file that is not
    one is left out)."""
    out: list[dict[str, Any]] = []
    if not results_dir.is_dir():
        return out
    for path in sorted(results_dir.glob("*" + SIDECAR_SUFFIX)):
        try:
            if path.stat().st_mtime < since:
                continue
            data = json.loads(path.read_bytes())
        except (OSError, ValueError):
            continue
        if isinstance(data, dict) and isinstance(data.get("test"), str):
            out.append(data)
    return out


def summary_lines(rows: Iterable[Sidecar | Mapping[str, Any]]) -> list[str]:
    """One line per sidecar: test, outcome, verdict, scheduler, kernel, topology and
    the first reason. A flaky FAIL (its traced rerun did not fail the same way) is
    ``FAIL~``. A mapping is read as a sidecar file's JSON."""
    sidecars = [r if isinstance(r, Mapping) else r.model_dump(mode="json") for r in rows]
    if not sidecars:
        return []
    names = [str(s["test"]).split("::", 1)[-1] for s in sidecars]
    width = min(TEST_WIDTH, max(len(n) for n in names))
    out = [f"{'TEST':<{width}}  {'OUTCOME':<8} {'VERDICT':<7} {'SCHEDULER':<12} "
           f"{'KERNEL':<10} {'TOPOLOGY':<10} REASON"]
    for name, s in sorted(zip(names, sidecars, strict=True), key=lambda ns: ns[0]):
        flaky = bool(s.get("flaky"))
        verdict = str(s.get("verdict") or "-").upper() + ("~" if flaky else "")
        kernel = s.get("kernel") or {}
        k = kernel.get("version") or kernel.get("spec") or "-"
        why = " ".join(s.get("reasons") or []) or str(s.get("message") or "")
        if s.get("outcome") == "passed" and verdict == "FAIL":
            why = "expected: " + why
        if flaky:
            why = "flaky (did not recur in the traced rerun): " + why
        outcome = s.get("outcome") or "?"
        out.append(f"{shorten_test_id(name, width):<{width}}  {outcome:<8} "
                   f"{verdict:<7} {s.get('scheduler') or '-':<12} {k:<10} "
                   f"{s.get('topology_requested') or '-':<10} "
                   f"{why.splitlines()[0][:70] if why else ''}")
    return out

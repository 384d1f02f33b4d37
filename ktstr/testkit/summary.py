"""The ``ktstr summary`` table at the end of a pytest session (pure)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ktstr.testkit.sidecar import PytestOutcome, Sidecar

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


def summary_lines(rows: Iterable[Sidecar | Mapping[str, Any]]) -> list[str]:
    """One line per sidecar: test, outcome, verdict, scheduler, kernel, topology and
    the first reason. A flaky FAIL (its traced rerun did not fail the same way) is
    ``FAIL~``. A mapping is read as a sidecar file's JSON."""
    sidecars = [r if isinstance(r, Sidecar) else Sidecar.model_validate(r) for r in rows]
    if not sidecars:
        return []
    names = [s.test.split("::", 1)[-1] for s in sidecars]
    width = min(TEST_WIDTH, max(len(n) for n in names))
    out = [f"{'TEST':<{width}}  {'OUTCOME':<8} {'VERDICT':<7} {'SCHEDULER':<12} "
           f"{'KERNEL':<10} {'TOPOLOGY':<10} REASON"]
    for name, s in sorted(zip(names, sidecars, strict=True), key=lambda ns: ns[0]):
        verdict = (s.verdict.value if s.verdict else "-").upper() + ("~" if s.flaky else "")
        k = s.kernel.version or s.kernel.spec or "-"
        why = " ".join(s.reasons) or s.message
        if s.outcome is PytestOutcome.PASSED and verdict == "FAIL":
            why = "expected: " + why
        if s.flaky:
            why = "flaky (did not recur in the traced rerun): " + why
        outcome = s.outcome.value if s.outcome else "?"
        out.append(f"{shorten_test_id(name, width):<{width}}  {outcome:<8} "
                   f"{verdict:<7} {s.scheduler or '-':<12} {k:<10} "
                   f"{s.topology_requested or '-':<10} "
                   f"{why.splitlines()[0][:70] if why else ''}")
    return out

"""Running one ``@ktstr_test`` variant under pytest and turning results into outcomes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from ktstr.declare.topology import host_fits
from ktstr.results.model import RunResult, Verdict
from ktstr.results.report import result_lines
from ktstr.testkit.context import Ctx
from ktstr.testkit.session import KtstrSession
from ktstr.testkit.sidecar import PytestOutcome, Sidecar, write_sidecar
from ktstr.testkit.spec import KtstrTestSpec
from ktstr.testkit.variants import Variant


def _details(r: RunResult) -> str:
    lines = result_lines(r)
    if r.sched_log and r.verdict is not Verdict.PASS:
        lines += ["--- scheduler log (tail) ---", *r.sched_log.splitlines()[-20:]]
    if r.panic_text:
        lines += ["--- kernel panic ---", *r.panic_text.splitlines()[:30]]
    lines += [f"run dir: {r.run_dir or '-'}", f"reproduce: {r.reproducer}"]
    return "\n".join(lines)


def judge(results: list[RunResult], spec: KtstrTestSpec) -> tuple[PytestOutcome, str]:
    """(pytest outcome, message): ``passed``, ``failed`` or ``skipped``."""
    if not results:
        return PytestOutcome.FAILED, ("the test body never ran anything: call ctx.run(...) "
                                      "or ctx.payload(P).run()")
    for r in results:
        if r.verdict is Verdict.SKIP:
            return PytestOutcome.SKIPPED, "; ".join(r.reasons)
        if r.verdict is Verdict.ERROR:
            return PytestOutcome.FAILED, (f"ERROR (harness/infrastructure): "
                                          f"{'; '.join(r.reasons)}\n" + _details(r))
    failed = [r for r in results if r.verdict is Verdict.FAIL]
    if spec.expect_err:
        if failed:
            return PytestOutcome.PASSED, ("expected failure seen: "
                                          + "; ".join(failed[0].reasons))
        return PytestOutcome.FAILED, ("expect_err=True but every run passed\n"
                                      + _details(results[-1]))
    if failed:
        r = failed[0]
        flaky = " (flaky: did not recur in the traced rerun)" if r.flaky else ""
        return PytestOutcome.FAILED, f"FAIL{flaky}: {'; '.join(r.reasons)}\n" + _details(r)
    return PytestOutcome.PASSED, "PASS"


def run_test(fn: Callable[[Ctx], Any], spec: KtstrTestSpec, variant: Variant,
             session: KtstrSession, request: Any) -> None:
    nodeid = request.node.nodeid
    fits = host_fits(variant.topology, session.host)
    if not fits:
        write_sidecar(session.results_dir, Sidecar.of(nodeid, variant, [],
                                                       PytestOutcome.SKIPPED, fits.reason))
        pytest.skip(fits.reason)
    ctx = Ctx(spec, variant, session)
    outcome, message = PytestOutcome.FAILED, "the test body raised"
    try:
        fn(ctx)
        outcome, message = judge(ctx.results, spec)
    finally:
        last = ctx.results[-1] if ctx.results else None
        request.node.user_properties.append(
            ("ktstr_verdict", last.verdict.value if last else "none"))
        request.node.user_properties.append(("ktstr_reason", message.splitlines()[0]))
        write_sidecar(session.results_dir, Sidecar.of(nodeid, variant, ctx.results,
                                                       outcome, message))
    if outcome is PytestOutcome.SKIPPED:
        pytest.skip(message)
    if outcome is PytestOutcome.FAILED:
        pytest.fail(message, pytrace=False)

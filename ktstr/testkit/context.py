"""``ctx``: what a ``@ktstr_test`` body gets. Every ``run`` boots one VM."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ktstr.declare.payload import MetricCheck, Payload
from ktstr.declare.scheduler import Scheduler
from ktstr.declare.topology import Topology
from ktstr.errors import UserError
from ktstr.results.model import RunResult
from ktstr.run.request import RunRequest, Workload
from ktstr.testkit.session import KtstrSession
from ktstr.testkit.spec import KtstrTestSpec
from ktstr.testkit.variants import Variant


class Ctx:
    """The test's view: its scheduler, topology and kernel, and ways to run them."""

    def __init__(self, spec: KtstrTestSpec, variant: Variant, session: KtstrSession) -> None:
        self.spec = spec
        self.variant = variant
        self.session = session
        self.results: list[RunResult] = []

    @property
    def scheduler(self) -> Scheduler:
        return self.spec.scheduler

    @property
    def topology(self) -> Topology:
        """The topology requested for this variant (``result.topology_seen`` is what the
        guest reported; a mismatch makes the run an ERROR)."""
        return self.variant.topology

    @property
    def result(self) -> RunResult:
        if not self.results:
            raise RuntimeError("nothing has run yet: call ctx.run(...) first")
        return self.results[-1]

    def request(self, **overrides: Any) -> RunRequest:
        s = self.spec
        fields: dict[str, Any] = {
            "scheduler": s.scheduler, "kernel": self.variant.kernel.spec,
            "topology": self.variant.topology, "duration_s": s.duration_s,
            "extra_sched_args": s.extra_sched_args, "flag_profile": self.variant.flags,
            "inline_config": s.config, "memory_mb": s.memory_mb,
            "accel": self.session.accel, "keep": self.session.keep,
            "cold_boot": self.session.cold_boot, "cpu_budget": self.session.cpu_budget,
            "checks": s.checks, "watchdog_timeout_s": s.watchdog_timeout_s,
            # an expected failure needs no evidence
            "repro": self.session.repro and not s.expect_err,
        }
        if s.workers_per_cgroup is not None:
            fields["workers"] = s.workers_per_cgroup
        fields.update(overrides)
        return RunRequest(**fields)

    def _run(self, request: RunRequest) -> RunResult:
        from ktstr.run.execute import run_scheduler

        result = run_scheduler(request)  # boot() holds the VM's CPU tokens
        self.results.append(result)
        return result

    def run(self, defs_or_steps: Sequence[Any] | None = None, *,
            workload: Workload | str = Workload.SPIN, duration_s: float | None = None,
            **overrides: Any) -> RunResult:
        """Boot the VM, start the scheduler and run the cgroup definitions or steps (or,
        with none, the default workload) for the test's duration; returns the result."""
        if duration_s is not None:
            overrides["duration_s"] = duration_s
        if defs_or_steps:
            from ktstr.testkit.scenarios import scenario_request_fields

            overrides.update(scenario_request_fields(defs_or_steps, self.spec))
        else:
            overrides.setdefault("workload", Workload(workload))
        return self._run(self.request(**overrides))

    def payload(self, payload: Payload | None = None) -> PayloadRun:
        """Build a run of ``payload``: ``ctx.payload(P).args("--cpu", "2").run()``;
        ``ctx.payload()`` is the test's primary ``payload=``. A test that declares
        ``payload=``/``workloads=`` may run only those."""
        declared = self.spec.declared_payloads
        if payload is None:
            if self.spec.payload is None:
                raise UserError("ctx.payload() without a payload needs @ktstr_test(payload=P)")
            payload = self.spec.payload
        elif declared and payload.name not in {p.name for p in declared}:
            raise UserError(
                f"payload {payload.name!r} is not declared by this test: its payload=/"
                f"workloads= are {', '.join(p.name for p in declared)}; add it there")
        return PayloadRun(self, payload)


class PayloadRun:
    def __init__(self, ctx: Ctx, payload: Payload) -> None:
        self._ctx = ctx
        self._payload = payload
        self._args: list[str] = []
        self._checks: list[MetricCheck] = []

    def args(self, *args: str) -> PayloadRun:
        self._args.extend(args)
        return self

    def checks(self, *checks: MetricCheck) -> PayloadRun:
        self._checks.extend(checks)
        return self

    def run(self) -> RunResult:
        return self._ctx._run(self._ctx.request(
            payload=self._payload, payload_args=tuple(self._args),
            payload_checks=tuple(self._checks)))

"""Guard: every declared field is consumed by a code path (issue 13, item 6).

Each field of ``Scheduler``, ``Payload``, ``Assert``, ``CgroupDef`` and ``@ktstr_test``
(``KtstrTestSpec``) names the function that gives it its effect; the test fails when a
field has no entry (a new field nobody reads) or when the named function no longer
mentions it. A field that is deliberately informational is listed with the reason and
the code that shows it to people.
"""

from __future__ import annotations

import importlib
import inspect
import re
from collections.abc import Callable

import pytest
from pydantic import BaseModel

from ktstr.declare.checks import Assert
from ktstr.declare.payload import Payload
from ktstr.declare.scheduler import Scheduler
from ktstr.scenario.cgroup import CgroupDef
from ktstr.testkit.spec import KtstrTestSpec

#: model -> field -> "module:qualname" of the code that consumes it
CONSUMERS: dict[type[BaseModel], dict[str, str]] = {
    Scheduler: {
        "name": "ktstr.run.execute:run_once",
        "binary": "ktstr.run.execute:scheduler_binary",
        "sysctls": "ktstr.run.params:setup_plan",
        "kargs": "ktstr.run.execute:run_once",
        "assert_": "ktstr.scenario.runner:checks_for",
        "cgroup_parent": "ktstr.run.params:setup_plan",
        "sched_args": "ktstr.declare.scheduler:merge_sched_args",
        "topology": "ktstr.declare.scheduler:Scheduler.resolve_topology",
        "constraints": "ktstr.sweep.cells:expand_verifier_cells",
        "config_file": "ktstr.run.image:scheduler_files",
        "config_file_def": "ktstr.run.params:scheduler_segment",
        "kernels": "ktstr.sweep.cells:expand_verifier_cells",
        "flags": "ktstr.declare.scheduler:Scheduler.flag_profiles",
        "verbose_args": "ktstr.run.repro:repro_request",
    },
    Payload: {
        "name": "ktstr.run.execute:run_once",
        "kind": "ktstr.declare.payload:Payload.executable",
        "output": "ktstr.run.execute:payload_results",
        "default_args": "ktstr.declare.payload:Payload.args_with",
        "default_checks": "ktstr.declare.payload:Payload.checks_with",
        "metrics": "ktstr.run.execute:payload_results",
        "include_files": "ktstr.run.image:payload_files",
        "uses_parent_pgrp": "ktstr.run.execute:guest_plan",
        "known_flags": "ktstr.declare.payload:Payload.unknown_flags",
    },
    Assert: {
        "not_starved": "ktstr.results.checks:run_checks",
        "max_spread_pct": "ktstr.results.checks:run_checks",
        "max_gap_ms": "ktstr.results.checks:run_checks",
        "isolation": "ktstr.results.checks:run_checks",
        "max_imbalance_ratio": "ktstr.results.checks:run_checks",
        "max_throughput_cv": "ktstr.results.checks:run_checks",
        "min_work_rate": "ktstr.results.checks:run_checks",
        "max_p99_wake_latency_us": "ktstr.results.checks:run_checks",
        "max_migration_ratio": "ktstr.results.checks:run_checks",
        "scheduler_alive": "ktstr.run.execute:judge_run",
    },
    CgroupDef: {
        "name": "ktstr.scenario.plan:_Planner.add",
        "num_workers": "ktstr.scenario.cgroup:CgroupDef.worker_count",
        "work_kind": "ktstr.scenario.plan:_Planner.add",
        "cpuset_spec": "ktstr.scenario.plan:_Planner.add",
        "policy": "ktstr.scenario.plan:_Planner.add",
        "priority": "ktstr.scenario.plan:_Planner.add",
        "nice_value": "ktstr.scenario.plan:_Planner.add",
        "affinity_spec": "ktstr.scenario.plan:_Planner.add",
        "subgroups": "ktstr.scenario.plan:_Planner.add",
    },
    KtstrTestSpec: {
        "scheduler": "ktstr.testkit.context:Ctx.request",
        "payload": "ktstr.testkit.context:Ctx.payload",
        "workloads": "ktstr.testkit.spec:KtstrTestSpec.declared_payloads",
        "numa_nodes": "ktstr.testkit.spec:KtstrTestSpec.topology",
        "llcs": "ktstr.testkit.spec:KtstrTestSpec.topology",
        "cores": "ktstr.testkit.spec:KtstrTestSpec.topology",
        "threads": "ktstr.testkit.spec:KtstrTestSpec.topology",
        "memory_mb": "ktstr.testkit.context:Ctx.request",
        "duration_s": "ktstr.testkit.context:Ctx.request",
        "workers_per_cgroup": "ktstr.testkit.context:Ctx.request",
        "watchdog_timeout_s": "ktstr.testkit.context:Ctx.request",
        "extra_sched_args": "ktstr.testkit.context:Ctx.request",
        "required_flags": "ktstr.testkit.variants:eligible_profiles",
        "excluded_flags": "ktstr.testkit.variants:eligible_profiles",
        "constraint_overrides": "ktstr.testkit.spec:KtstrTestSpec.constraints",
        "checks": "ktstr.testkit.context:Ctx.request",
        "expect_err": "ktstr.testkit.execute:judge",
        "config": "ktstr.testkit.context:Ctx.request",
    },
}

#: informational fields: (model, field) -> (why, the code that shows it)
INFORMATIONAL: dict[tuple[type[BaseModel], str], tuple[str, str]] = {
    (Scheduler, "description"): ("one line for listings", "ktstr.cli.listing:list_schedulers"),
    (Payload, "description"): ("one line for listings", "ktstr.cli.listing:list_payloads"),
}


def _resolve(target: str) -> Callable[..., object]:
    module_name, _, qualname = target.partition(":")
    obj: object = importlib.import_module(module_name)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    if isinstance(obj, property):
        assert obj.fget is not None
        return obj.fget
    callback = getattr(obj, "callback", None)  # a click command: its function
    if callback is not None:
        return callback  # type: ignore[no-any-return]
    assert callable(obj), target
    return obj


def _source(target: str) -> str:
    return inspect.getsource(_resolve(target))


@pytest.mark.parametrize("model", list(CONSUMERS), ids=lambda m: m.__name__)
def test_every_field_has_a_consumer(model: type[BaseModel]) -> None:
    listed = set(CONSUMERS[model]) | {f for (m, f) in INFORMATIONAL if m is model}
    missing = sorted(set(model.model_fields) - listed)
    assert not missing, (
        f"{model.__name__} field(s) {missing} have no consumer: give each an effect and name "
        "the function in CONSUMERS, or list it in INFORMATIONAL with the reason")
    stale = sorted(listed - set(model.model_fields))
    assert not stale, f"{model.__name__} has no field(s) {stale} any more"


@pytest.mark.parametrize(("model", "field", "target"), [
    (m, f, t) for m, fields in CONSUMERS.items() for f, t in fields.items()
] + [(m, f, t) for (m, f), (_, t) in INFORMATIONAL.items()],
    ids=lambda x: x.__name__ if isinstance(x, type) else str(x))
def test_consumer_reads_the_field(model: type[BaseModel], field: str, target: str) -> None:
    src = _source(target)
    assert re.search(rf"\b{re.escape(field)}\b", src), (
        f"{target} no longer mentions {model.__name__}.{field}: update CONSUMERS to the "
        "function that gives it its effect")

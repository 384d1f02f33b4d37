"""Real cells through the service: a pull worker process with the real KtstrRunner boots
kernel 7.2 in QEMU for a plan of two cells, scx_simple (passes) and scx_qmap with
``-e 100`` (its BPF code calls scx_bpf_error: the kernel ejects it and it prints a debug
dump, so the run fails). Both verdicts reach the result store, and the dashboard shows
them in headless Chromium: the plan page with its matrix of cells by verdict, and the
failing job's page with its verdict, reasons, timeline, logs and debug dump.

The plan runs once per pytest run (two short VMs; ``oncerun``); the tests read what it
left, the dashboard test from a service started again on its files.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from chromium import CHROMIUM, dump_dom, screenshot
from conftest import write_sutclasses
from procs import KTSTR, Proc
from svchelpers import admin, wait_until

from ktstr.results.model import Verdict
from ktstr.service.resultstore import ResultQuery, ResultStore
from ktstr.service.schemas import JobOut
from ktstr.service.settings import Settings
from ktstr.service.states import JobState, PlanState
from ktstr.service.storage import kept_results
from ktstr.testing import ServiceThread
from tests.integration.oncerun import run_once
from tests.realcache import use_real_cache

pytestmark = pytest.mark.vm

#: a declaration module the worker's ``ktstr run`` loads (KTSTR_DECLARATIONS)
DECLARATIONS = """\
from ktstr import declare_scheduler

SCX_QMAP_ERROR = declare_scheduler(
    name="scx_qmap_error", binary="scx_qmap", sched_args=["-e", "100"],
    description="scx_qmap calling scx_bpf_error after 100 enqueues")
"""


@dataclass(frozen=True)
class Published:
    """What the plan left: its files (the service's database, storage and the result
    store, which a test can serve again) and what the service said."""

    settings: Settings
    store: str
    plan_id: int
    jobs: dict[str, JobOut]  # by scheduler
    logs: dict[int, str]  # job id -> its log
    viewer: str  # a query-only user's token
    root: Path

    def serve(self) -> ServiceThread:
        return ServiceThread(self.settings)


def _run_plan(root: Path) -> dict[str, Any]:
    """The plan through a service and a real worker; leaves the files under ``root``."""
    decl = root / "qmap_error_decl.py"
    decl.write_text(DECLARATIONS)
    write_sutclasses(root / "sutclasses.yaml")
    plan_doc = {"sut": {"sutclass": "demo"}, "name": "real-cells",
                "runs": [{"kernels": ["7.2"], "schedulers": ["scx_simple", "scx_qmap_error"],
                          "topologies": ["1,2,2,1"]}],
                "defaults": {"timeout": "5m", "duration": "5s"}}
    with pytest.MonkeyPatch.context() as mp:  # the tier's isolation, for the module
        home = root / "home"
        for var, where in (("HOME", home), ("XDG_CACHE_HOME", home / ".cache"),
                           ("XDG_CONFIG_HOME", home / ".config"),
                           ("XDG_DATA_HOME", home / ".local" / "share")):
            mp.setenv(var, str(where))
        mp.delenv("KTSTR_DECLARATIONS", raising=False)
        use_real_cache(mp)
        with ServiceThread(_settings(root)) as svc, admin(svc) as a:
            assert svc.admin_token
            plan = a.submit_plan(plan_doc)
            with Proc([*KTSTR, "-v", "sched", "worker", "--sutclass", "demo", "--name",
                       "demo-01", "--url", svc.url, "--token", svc.admin_token,
                       "--runner", "ktstr", "--max-jobs", "2", "--claim-wait", "1",
                       "--state-dir", str(root / "worker")], root / "worker.log",
                      env={"KTSTR_DECLARATIONS": str(decl)}) as w:
                done = wait_until(lambda: a.plan(plan.id).state is PlanState.COMPLETED
                                  or not w.alive(), 600, "the real cells to finish",
                                  interval=1)
                assert done, w.output()
            jobs = a.jobs(plan.id)
            return {"plan_id": plan.id, "jobs": [j.model_dump(mode="json") for j in jobs],
                    "logs": {str(j.id): a.job_log(j.id) for j in jobs},
                    "viewer": a.create_user("viewer", ["query"]).token}


def _settings(root: Path) -> Settings:
    """The service's settings over the plan's files (_run_plan writes sutclasses.yaml)."""
    return Settings(database_url=f"sqlite:///{root / 'scheduler.db'}",
                    storage=root / "storage", sutclasses=root / "sutclasses.yaml",
                    resultstore=f"sqlite:///{root / 'results.db'}", timeout_slack_s=60)


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory) -> Published:
    """The plan, run once per pytest run even when xdist splits this module's tests."""
    root, answer = run_once(tmp_path_factory, "service-real-cells", _run_plan)
    jobs = [JobOut.model_validate(j) for j in answer["jobs"]]
    settings = _settings(root)
    return Published(settings=settings, store=str(settings.resultstore),
                     plan_id=answer["plan_id"], jobs={j.cell.scheduler: j for j in jobs},
                     logs={int(k): v for k, v in answer["logs"].items()},
                     viewer=answer["viewer"], root=root)


def test_real_cells_complete_and_are_published(published: Published) -> None:
    jobs, logs = published.jobs, published.logs
    ok, bad = jobs["scx_simple"], jobs["scx_qmap_error"]
    log = logs[ok.id]
    assert ok.state is JobState.COMPLETED, (ok, log[-3000:])
    assert ok.outcome is Verdict.PASS, (ok.reasons, log[-3000:])
    assert "ktstr run --kernel 7.2 --scheduler scx_simple --topology 1,2,2,1 " \
           "--duration 5s --json" in log
    assert bad.state is JobState.COMPLETED and bad.outcome is Verdict.FAIL, \
        (bad, logs[bad.id][-3000:])
    assert any("scx_bpf_error" in r for r in bad.reasons), bad.reasons
    with ResultStore(published.store) as rs:
        rows = rs.query(ResultQuery(plan_id=published.plan_id))
    assert sorted((r.job_id, r.outcome, r.kernel, r.scheduler, r.topology) for r in rows) == [
        (ok.id, Verdict.PASS, "7.2", "scx_simple", "1,2,2,1"),
        (bad.id, Verdict.FAIL, "7.2", "scx_qmap_error", "1,2,2,1")]
    by_job = {r.job_id: r for r in rows}
    assert by_job[ok.id].details["report"]["verdict"].lower() == "pass"
    assert "DEBUG DUMP" in by_job[bad.id].details["report"]["debug_dump"]
    kept = {r["job_id"]: log for r, log in kept_results(published.settings.results_dir)}
    assert kept.get(ok.id)


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (scripts/setup.sh)")
def test_dashboard_shows_the_published_results_in_headless_chromium(
        published: Published, tmp_path: Path) -> None:
    """A service on the plan's files (the cells are not run again) in Chromium."""
    with published.serve() as svc:
        check_dashboard(published, svc.url, tmp_path)


def check_dashboard(published: Published, base: str, tmp: Path) -> None:
    ok, bad = published.jobs["scx_simple"], published.jobs["scx_qmap_error"]
    token, profile = published.viewer, tmp / "profile"

    front = dump_dom(f"{base}/dashboard?token={token}", profile)
    row = re.search(rf'<tr id="plan-{published.plan_id}".*?</tr>', front, re.S)
    assert row and f'href="/dashboard/plans/{published.plan_id}"' in row.group(0)
    assert 'class="pill v-pass">pass 1</span>' in row.group(0)
    assert 'class="pill v-fail">fail 1</span>' in row.group(0)

    plan_url = f"{base}/dashboard/plans/{published.plan_id}?token={token}"
    plan = dump_dom(plan_url, profile)
    assert "real-cells" in plan and "2/2 job(s) in the result store" in plan
    assert f"Plan {published.plan_id}: cells by verdict" in plan
    matrix = re.search(r'<table class="matrix">.*?</table>', plan, re.S)
    assert matrix, plan[-3000:]
    assert "scheduler \\ kernel · topology" in matrix.group(0)
    assert "<th>7.2 · 1,2,2,1</th>" in matrix.group(0)
    assert re.search(rf'<th class="row">scx_simple</th><td><a class="pill v-pass" '
                     rf'href="/dashboard/jobs/{ok.id}"[^>]*>pass</a>', matrix.group(0))
    assert re.search(rf'<th class="row">scx_qmap_error</th><td><a class="pill v-fail" '
                     rf'href="/dashboard/jobs/{bad.id}"[^>]*>fail</a>', matrix.group(0))
    assert re.search(rf'<tr id="job-{bad.id}">.*?scx_bpf_error.*?</tr>', plan, re.S)

    job = dump_dom(f"{base}/dashboard/jobs/{bad.id}?token={token}", profile)
    assert "published to the result store" in job
    assert re.search(r'<p class="headline verdict"><span class="pill v-fail">fail</span> '
                     r"FAIL scx_qmap_error on 7\.2", job), job[:3000]
    reasons = re.search(r'<ul class="reasons">.*?</ul>', job, re.S)
    assert reasons and "scx_bpf_error" in reasons.group(0)
    timeline = re.search(r'<table class="metrics timeline">.*?</table>', job, re.S)
    assert timeline and "<td>sched_attached</td>" in timeline.group(0) \
        and "<td>sched_detached</td>" in timeline.group(0)
    dump = re.search(r'<div class="logblock debug-dump">.*?</div>', job, re.S)
    assert dump and "DEBUG DUMP" in dump.group(0) and "scx_bpf_error" in dump.group(0)
    for block, text in (("sched-log", "DEBUG DUMP"),
                        ("kernel-log", 'disabled (scx_bpf_error)'),
                        ("job-log", "--scheduler scx_qmap_error")):
        found = re.search(rf'<div class="logblock {block}">.*?</div>', job, re.S)
        assert found and text in found.group(0).replace("&quot;", '"'), block
    assert "http://" not in job.replace(base, "") and "https://" not in job
    assert "<script" not in job and "<link" not in job

    passed = dump_dom(f"{base}/dashboard/jobs/{ok.id}?token={token}", profile)
    assert 'class="pill v-pass">pass</span> PASS scx_simple on 7.2' in passed
    assert "the scheduler printed no debug dump" in passed

    for name, url in (("plan", plan_url),
                      ("job", f"{base}/dashboard/jobs/{bad.id}?token={token}")):
        shot = screenshot(url, tmp / f"dashboard-{name}.png", profile)
        print(f"screenshot of the {name} page: {shot}")

"""Uploads (content-addressed, size-limited, names sanitised), results kept and
published, resubmit and paged history, over real HTTP."""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from svchelpers import FakeWorker, admin, plan_doc, user, wait_until

from ktstr.cli.root import cli
from ktstr.contract import Assignment, JobResult
from ktstr.results.model import Verdict
from ktstr.service.client import RequestRejected, ServiceClient
from ktstr.service.resultstore import ResultQuery, ResultStore
from ktstr.service.states import JobState, PlanState
from ktstr.service.storage import kept_results
from ktstr.service.uploads import local_uploads
from ktstr.testing import ServiceThread
from ktstr.worker.agent import Worker


def _upload(svc: ServiceThread, files: list[tuple[str, bytes]], doc: dict[str, Any] | None
            = None) -> httpx.Response:
    import json

    assert svc.admin_token
    body = json.dumps({"plan": doc or plan_doc()})
    with httpx.Client(base_url=svc.url + "/api/v1", timeout=30,
                      headers={"Authorization": f"Bearer {svc.admin_token}"}) as http:
        return http.post("/plans/upload", data={"submission": body},
                         files=[("files", (n, c, "application/octet-stream"))
                                for n, c in files])


class FileReadingRunner:
    """Records the cell it was given and the uploaded files it found."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, dict[str, bytes]]] = []

    def run(self, job: Assignment, workdir: Path, cancel_event: threading.Event
            ) -> JobResult:
        files = {p.name: p.read_bytes() for p in (workdir / "files").glob("*")}
        self.seen.append((job.cell.kernel, files))
        return JobResult(outcome=Verdict.PASS, duration_s=0.1, log="ran\n",
                         details={"kernel": job.cell.kernel})


def test_plan_exec_uploads_files_and_the_worker_gets_them(
        make_service: Any, tmp_path: Path) -> None:
    kernel = tmp_path / "plans" / "bzImage"
    kernel.parent.mkdir()
    kernel.write_bytes(b"kernel image bytes")
    conf = tmp_path / "plans" / "sched.conf"
    conf.write_text("slice_us=500\n")
    doc = plan_doc()
    doc["runs"][0]["kernels"] = ["./bzImage"]
    doc["files"] = ["sched.conf"]
    local, uploads = local_uploads(doc, kernel.parent)
    assert local["runs"][0]["kernels"] == ["upload:bzImage"]
    assert local["files"] == ["upload:sched.conf"]
    with make_service(resultstore=f"sqlite:///{tmp_path / 'results.db'}") as svc, \
            admin(svc) as a:
        plan = a.submit_plan_files(local, uploads)
        files = {f.name: f for f in a.plan_files(plan.id)}
        sha = hashlib.sha256(b"kernel image bytes").hexdigest()
        assert files["bzImage"].sha256 == sha and files["bzImage"].size == 18
        stored = svc.settings.files_dir / sha[:2] / sha
        assert stored.read_bytes() == b"kernel image bytes"
        runner = FileReadingRunner()
        worker = Worker(a, name="demo-01", sutclass="demo", runner=runner,
                        state_dir=tmp_path / "w", claim_wait_s=1)
        assert worker.run(max_jobs=1) == 1
        kernel_path, got = runner.seen[0]
        assert kernel_path.endswith("/files/bzImage") and kernel_path.startswith("/")
        assert got == {"bzImage": b"kernel image bytes", "sched.conf": b"slice_us=500\n"}
        done = wait_until(lambda: a.plan(plan.id).state is PlanState.COMPLETED and
                          a.plan(plan.id), 10, "the plan to complete")
        assert done.outcomes == {Verdict.PASS: 1}
        job = a.jobs(plan.id)[0]
        kept = {(r["job_id"], r["attempt"]): (r, log)
                for r, log in kept_results(svc.settings.results_dir)}
        record, log = kept[(job.id, 1)]
        assert log == "ran\n" and record["outcome"] == "pass"
    with ResultStore(f"sqlite:///{tmp_path / 'results.db'}") as store:
        rows = store.query(ResultQuery(plan_id=plan.id))
    assert [(r.job_id, r.outcome, r.kernel) for r in rows] == [
        (job.id, Verdict.PASS, "upload:bzImage")]


def test_upload_over_the_limit_is_413_naming_file_and_limit(make_service: Any) -> None:
    with make_service(max_upload_bytes=1000) as svc:
        doc = plan_doc()
        doc["files"] = ["upload:big.bin"]
        resp = _upload(svc, [("big.bin", b"x" * 1001)], doc)
        assert resp.status_code == 413
        assert "'big.bin'" in resp.json()["detail"] and "1000 bytes" in resp.json()["detail"]
        assert _upload(svc, [("big.bin", b"x" * 1000)], doc).status_code == 201
        assert not list(svc.settings.files_dir.glob(".upload-*"))  # no partial leftovers


@pytest.mark.parametrize("name", ["../evil", "../../etc/passwd", "/etc/passwd", "a/b",
                                  "a\\b", "..", ".hidden", "nul\x00byte", "C:evil",
                                  "sp ace", "x" * 201])
def test_upload_names_are_sanitised(service: ServiceThread, name: str) -> None:
    resp = _upload(service, [(name, b"data")])
    assert 400 <= resp.status_code < 500, resp.text
    assert "Traceback" not in resp.text
    assert not (service.settings.storage.parent / "evil").exists()
    assert not list(service.settings.storage.rglob("passwd"))


def test_plan_referring_to_a_missing_upload_names_the_field(service: ServiceThread) -> None:
    doc = plan_doc()
    doc["runs"][0]["kernels"] = ["upload:bzImage"]
    resp = _upload(service, [], doc)
    assert resp.status_code == 422
    assert "runs[0].kernels[0]: refers to upload:bzImage" in resp.json()["detail"]


def test_file_download_needs_a_known_sha(service: ServiceThread) -> None:
    with admin(service) as a:
        with pytest.raises(RequestRejected, match="HTTP 400: 'not-a-sha' is not a SHA-256"):
            a.download("not-a-sha", service.settings.storage / "x")
        with pytest.raises(RequestRejected, match="HTTP 4"):
            a.download("..%2F..%2Fetc%2Fpasswd", service.settings.storage / "x")
        with pytest.raises(RequestRejected, match="HTTP 404"):
            a.download("0" * 64, service.settings.storage / "x")


def test_no_publish_keeps_results_out_of_the_store(make_service: Any, tmp_path: Path
                                                   ) -> None:
    url = f"sqlite:///{tmp_path / 'results.db'}"
    with make_service(resultstore=url) as svc, admin(svc) as a:
        quiet = a.submit_plan(plan_doc(), publish=False)
        loud = a.submit_plan(plan_doc())
        w = FakeWorker(a, "demo-01")
        for _ in range(2):
            job = w.claim()
            assert job is not None
            w.run(job, outcome=Verdict.FAIL, reasons=["starvation: cpu 1"])
        kept = {r["job_id"] for r, _log in kept_results(svc.settings.results_dir)}
        for p in (quiet, loud):
            assert a.jobs(p.id)[0].id in kept
    result = CliRunner().invoke(cli, ["result", "list", "--resultstore", url])
    assert result.exit_code == 0, result.output
    assert f"\n1   {loud.id}" in result.output and "fail" in result.output
    assert f"   {quiet.id}    " not in result.output
    shown = CliRunner().invoke(cli, ["result", "show", "1", "--resultstore", url])
    assert shown.exit_code == 0 and "reason: starvation: cpu 1" in shown.output
    js = CliRunner().invoke(cli, ["result", "list", "--resultstore", url, "--plan",
                                  str(quiet.id), "--json"])
    assert js.exit_code == 0 and js.output.strip() == "[]"


def test_resubmit_failed_only_and_paged_history(service: ServiceThread) -> None:
    with user(service, "alice", "exec,query,lease") as alice:
        plan = alice.submit_plan(plan_doc(schedulers=3))
        w = FakeWorker(alice, "demo-01")
        outcomes = [Verdict.PASS, Verdict.FAIL, Verdict.ERROR]
        for outcome in outcomes:
            job = w.claim()
            assert job is not None
            w.run(job, outcome=outcome)
        again = alice.resubmit_plan(plan.id, failed_only=True)
        assert again.total_jobs == 2 and again.state is PlanState.QUEUED
        assert {j.cell.scheduler for j in alice.jobs(again.id)} == {"scx_1", "scx_2"}
        full = alice.resubmit_plan(plan.id, priority=9)
        assert full.total_jobs == 3 and full.priority == 9
        pages = [alice.plans(all_states=True, page=n, page_size=2) for n in (1, 2, 3)]
        assert [[p.id for p in page] for page in pages] == [
            [plan.id, again.id], [full.id], []]
        with user(service, "bob", "exec,query") as bob, \
                pytest.raises(RequestRejected, match="HTTP 403"):
            bob.resubmit_plan(plan.id)
        done = alice.submit_plan(plan_doc())
        job = w.claim()
        assert job is not None and job.plan_id != done.id  # older plans first
        with pytest.raises(RequestRejected, match="no failed jobs"):
            alice.resubmit_plan(full.id, failed_only=True)
    assert JobState.QUEUED  # keeps the import honest for readers of the states


def test_client_only_talks_to_its_service(service: ServiceThread) -> None:
    with ServiceClient(service.url, "wrong-token") as c, \
            pytest.raises(RequestRejected, match="HTTP 401"):
        c.plan_files(1)

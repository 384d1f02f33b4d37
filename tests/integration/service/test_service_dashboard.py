"""The web dashboard, rendered by a real headless Chromium against a real service."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from chromium import CHROMIUM, dump_dom
from svchelpers import FakeWorker, admin, plan_doc, user

from ktstr.results.model import Verdict
from ktstr.service.plan import format_duration
from ktstr.testing import ServiceThread


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (scripts/setup.sh)")
def test_dashboard_in_headless_chromium(service: ServiceThread, tmp_path: Path) -> None:
    with admin(service) as a, user(service, "alice", "exec,query") as alice:
        failing = alice.submit_plan(plan_doc(schedulers=2, name="nightly"))
        queued = alice.submit_plan(plan_doc(topologies=3), priority=0)
        w1, w2 = FakeWorker(a, "demo-01"), FakeWorker(a, "demo-02")
        bad = w1.claim()
        assert bad is not None and bad.plan_id == failing.id
        w1.run(bad, outcome=Verdict.FAIL, reasons=["starvation: cpu 3 idle 2.5s"])
        running = w2.claim()
        assert running is not None
        w2.start(running)
        assert service.admin_token
        dom = dump_dom(f"{service.url}/dashboard?token={viewer_token(a)}",
                       tmp_path / "profile")
        eta = alice.plan(queued.id).eta_s  # a queued plan's ETA does not move with time
    assert eta is not None and eta > 0
    assert "Logged in as" in dom and ">alice<" in dom
    row = re.search(rf'<tr id="plan-{failing.id}".*?</tr>', dom, re.S)
    assert row and "nightly" in row.group(0) and ">running<" in row.group(0)
    assert "1/2" in row.group(0)
    qrow = re.search(rf'<tr id="plan-{queued.id}".*?</tr>', dom, re.S)
    assert qrow and ">queued<" in qrow.group(0)
    assert f'<td class="eta">ETA {format_duration(eta)}</td>' in qrow.group(0)
    assert re.search(rf'<tr id="job-{running.job_id}">.*demo-02.*running', dom, re.S)
    fail = re.search(rf'<tr id="failure-{bad.job_id}".*?</tr>', dom, re.S)
    assert fail and "starvation: cpu 3 idle 2.5s" in fail.group(0) and ">fail<" in fail.group(0)
    assert re.search(r"<span id=\"queued-jobs\">3</span>", dom)  # the second plan
    assert 'http-equiv="refresh"' in dom
    assert re.search(r"<td>demo</td>\s*<td>yes</td>\s*<td>1/4</td>", dom)  # demo-02 busy


def viewer_token(a: object) -> str:
    """A fresh query-only user's token (a read-only dashboard viewer)."""
    from ktstr.service.client import ServiceClient

    assert isinstance(a, ServiceClient)
    return a.create_user("viewer", ["query"]).token


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (scripts/setup.sh)")
def test_dashboard_without_token_shows_the_login_form(service: ServiceThread,
                                                      tmp_path: Path) -> None:
    dom = dump_dom(f"{service.url}/dashboard", tmp_path / "profile")
    assert '<form method="post" action="/dashboard/login">' in dom
    assert 'name="token"' in dom and "Logged in as" not in dom


def test_login_sets_a_cookie_and_bad_tokens_are_refused(service: ServiceThread) -> None:
    with admin(service) as a:
        token = a.create_user("viewer", ["query"]).token
        lease_only = a.create_user("worker", ["lease"]).token
    with httpx.Client(base_url=service.url) as http:
        assert http.get("/dashboard").status_code == 401
        refused = http.post("/dashboard/login", data={"token": lease_only})
        assert refused.status_code == 401 and "lacks the query capability" in refused.text
        ok = http.post("/dashboard/login", data={"token": token})
        assert ok.status_code == 303 and ok.headers["location"] == "/dashboard"
        assert "httponly" in ok.headers["set-cookie"].lower()
        page = http.get("/dashboard")  # the cookie now authenticates
        assert page.status_code == 200 and ">viewer<" in page.text
        http.get("/dashboard/logout")
        assert http.get("/dashboard").status_code == 401
        assert http.get("/", follow_redirects=False).headers["location"] == "/dashboard"


REAL_RUN = Path(__file__).parents[2] / "unit" / "data" / "run-scx_qmap-error.json"


def test_plan_and_job_pages_over_http(make_service: Any) -> None:
    """Without a result store the pages show the service's own record and say so; an
    unknown plan or job is a page saying so (404); a page needs a viewer."""
    report = json.loads(REAL_RUN.read_text())
    with make_service() as service, admin(service) as a, \
            user(service, "alice", "exec,query") as alice:
        plan = alice.submit_plan(plan_doc(schedulers=2, name="nightly"))
        w = FakeWorker(a, "demo-01")
        job = w.claim()
        assert job is not None
        w.run(job, outcome=Verdict.FAIL, reasons=report["reasons"],
              details={"exit_code": 1, "report": report})
        token = viewer_token(a)
        check_pages(service.url, token, plan.id, job.job_id)


def check_pages(url: str, token: str, plan_id: int, job_id: int) -> None:
    with httpx.Client(base_url=url, params={"token": token}) as http:
        page = http.get(f"/dashboard/plans/{plan_id}")
        assert page.status_code == 200, page.text
        assert "0/2 job(s) in the result store (the service has no --resultstore)" in page.text
        assert f'<a class="pill v-fail" href="/dashboard/jobs/{job_id}"' in page.text
        assert '<a class="pill v-none"' in page.text and ">queued</a>" in page.text
        got = http.get(f"/dashboard/jobs/{job_id}")
        assert got.status_code == 200
        assert "from the service's own record (not published)" in got.text
        assert '<div class="logblock debug-dump">' in got.text and "DEBUG DUMP" in got.text
        assert f"log of {job_id}" in got.text  # the job's log, kept by the service
        missing = http.get("/dashboard/plans/999")
        assert missing.status_code == 404 and "no plan 999" in missing.text
        assert http.get("/dashboard/jobs/999").status_code == 404
    with httpx.Client(base_url=url) as anonymous:
        assert anonymous.get(f"/dashboard/plans/{plan_id}").status_code == 401


def test_an_unreadable_result_store_is_said_not_a_server_error(make_service: Any,
                                                               tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path / 'no-such-dir' / 'results.db'}"
    with make_service(resultstore=store) as service, admin(service) as a:
        plan = a.submit_plan(plan_doc())
        w = FakeWorker(a, "demo-01")
        job = w.claim()
        assert job is not None
        w.run(job, outcome=Verdict.PASS)
        token = viewer_token(a)
        with httpx.Client(base_url=service.url, params={"token": token}) as http:
            for path in (f"/dashboard/plans/{plan.id}", f"/dashboard/jobs/{job.job_id}"):
                page = http.get(path)
                assert page.status_code == 200, page.text
                assert 'id="store-error">the result store cannot be read' in page.text

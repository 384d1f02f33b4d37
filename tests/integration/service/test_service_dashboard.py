"""The web dashboard, rendered by a real headless Chromium against a real service."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest
from svchelpers import FakeWorker, admin, plan_doc, user

from ktstr.service.plan import format_duration
from ktstr.service.states import Outcome
from ktstr.testing import ServiceThread

CHROMIUM = shutil.which("chromium")


def dump_dom(url: str, profile: Path) -> str:
    """The DOM Chromium renders for ``url`` (its process ends with the dump)."""
    assert CHROMIUM
    proc = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--no-first-run", "--disable-dev-shm-usage", f"--user-data-dir={profile}",
         "--dump-dom", url],
        capture_output=True, text=True, timeout=90, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (scripts/setup.sh)")
def test_dashboard_in_headless_chromium(service: ServiceThread, tmp_path: Path) -> None:
    with admin(service) as a, user(service, "alice", "exec,query") as alice:
        failing = alice.submit_plan(plan_doc(schedulers=2, name="nightly"))
        queued = alice.submit_plan(plan_doc(topologies=3), priority=0)
        w1, w2 = FakeWorker(a, "demo-01"), FakeWorker(a, "demo-02")
        bad = w1.claim()
        assert bad is not None and bad.plan_id == failing.id
        w1.run(bad, outcome=Outcome.FAIL, reasons=["starvation: cpu 3 idle 2.5s"])
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

"""The hot path (claim and result served in front of FastAPI) answers exactly as the
FastAPI routes do: the same bodies for the common case, the same problems otherwise."""

from __future__ import annotations

from typing import Any

import httpx
from svchelpers import FakeWorker, admin, plan_doc

from ktstr.testing import ServiceThread


def _post(svc: ServiceThread, token: str, path: str, body: Any) -> tuple[int, Any]:
    r = httpx.post(f"{svc.url}/api/v1{path}", json=body, timeout=30,
                   headers={"Authorization": f"Bearer {token}"})
    return r.status_code, r.json()


def test_claim_and_result_take_the_hot_path_once_the_token_is_known(
        service: ServiceThread) -> None:
    assert service.admin_token
    token = service.admin_token
    with admin(service) as a:
        a.submit_plan(plan_doc(topologies=2))
        w = FakeWorker(a, "demo-01")  # the register request authenticates the token
        before = service.ctx.hot_served
        code, claimed = _post(service, token, "/workers/demo-01/claim",
                              {"session": w.session.session})
        assert code == 200 and claimed["job"]["attempt"] == 1
        job = claimed["job"]
        code, done = _post(service, token, f"/jobs/{job['job_id']}/result",
                           {"worker": "demo-01", "attempt": 1, "outcome": "pass",
                            "duration_s": 1.0, "log": "ok\n"})
        assert (code, done) == (200, {"state": "completed"})
        assert service.ctx.hot_served == before + 2
        # the same answers as the routes give: the job and its result are recorded
        (mine,) = [j for j in a.jobs(job["plan_id"]) if j.id == job["job_id"]]
        assert mine.state.value == "completed" and mine.worker == "demo-01"
        assert a.job_log(job["job_id"]) == "ok\n"


def test_the_hot_path_answers_problems_as_the_routes_do(service: ServiceThread) -> None:
    assert service.admin_token
    token = service.admin_token
    with admin(service) as a:
        a.submit_plan(plan_doc())
        w = FakeWorker(a, "demo-01")
        session = w.session.session
        # served here: errors raised by the claim and the result
        before = service.ctx.hot_served
        code, body = _post(service, token, "/workers/demo-01/claim", {"session": session + 1})
        assert code == 409 and "was replaced by session" in body["detail"], body
        code, body = _post(service, token, "/workers/nobody/claim", {"session": 1})
        assert code == 404 and body["detail"].startswith("no worker 'nobody'"), body
        code, body = _post(service, token, "/jobs/999999/result",
                           {"worker": "demo-01", "attempt": 1, "duration_s": 0})
        assert code == 404 and body == {"detail": "no job 999999", "problems": []}
        assert service.ctx.hot_served == before + 3
        # passed on to FastAPI: an invalid body, an unknown token, a missing capability
        code, body = _post(service, token, "/workers/demo-01/claim", {"wait_s": -1})
        assert code == 422 and body["problems"] == [
            "session: is required", "wait_s: Input should be greater than or equal to 0"]
        code, body = _post(service, "no-such-token", "/workers/demo-01/claim",
                           {"session": session})
        assert code == 401, body
        reader = a.create_user("reader", ["query"]).token
        code, _ = _post(service, reader, "/workers/demo-01/claim", {"session": session})
        assert code == 403  # FastAPI authenticated it: its token is now cached
        code, body = _post(service, reader, "/workers/demo-01/claim", {"session": session})
        assert code == 403 and "lacks the 'lease' capability" in body["detail"], body
        assert service.ctx.hot_served == before + 3

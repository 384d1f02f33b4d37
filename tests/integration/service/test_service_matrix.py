"""Every endpoint x every capability, and ownership: non-admins act only on their own
plans and workers; admin bypasses ownership; a missing or unknown token gets 401."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import write_sutclasses
from svchelpers import FakeWorker, admin, plan_doc

from ktstr.service.client import RequestRejected, ServiceClient
from ktstr.service.settings import PROTOCOL_VERSION
from ktstr.testing import ServiceThread

CAPS = ["exec", "query", "lease", "admin"]

Call = Callable[[ServiceClient, dict[str, Any]], Any]

#: endpoint -> (capability needed or None for any valid token, call)
ENDPOINTS: dict[str, tuple[str | None, Call]] = {
    "version": (None, lambda c, f: c.version()),
    "whoami": (None, lambda c, f: c.whoami()),
    "user-create": ("admin", lambda c, f: c.create_user(f"user{f['n']}", ["query"])),
    "sutclass-list": ("query", lambda c, f: c.sutclasses()),
    "plan-exec": ("exec", lambda c, f: c.submit_plan(plan_doc())),
    "plan-list": ("query", lambda c, f: c.plans(all_users=True)),
    "plan-get": ("query", lambda c, f: c.plan(f["plan"])),
    "plan-jobs": ("query", lambda c, f: c.jobs(f["plan"])),
    "plan-update": ("exec", lambda c, f: c.update_plan(f["plan"], 3)),
    "plan-cancel": ("exec", lambda c, f: c.cancel_plan(f["plan"])),
    "job-log": ("query", lambda c, f: c.job_log(f["job"])),
    "worker-list": ("query", lambda c, f: c.workers()),
    "worker-register": ("lease", lambda c, f: c.call("POST", "/workers/register", json={
        "name": f"demo-{10 + f['n']:02d}", "sutclass": "demo", "version": "0.1.0",
        "protocol": PROTOCOL_VERSION})),
    "worker-heartbeat": ("lease", lambda c, f: c.heartbeat("demo-01", f["session"], None,
                                                           None)),
    "worker-claim": ("lease", lambda c, f: c.claim("demo-01", f["session"], 0)),
    "job-start": ("lease", lambda c, f: c.start_job(f["job2"], "demo-01", 1)),
    "job-result": ("lease", lambda c, f: c.call("POST", f"/jobs/{f['job2']}/result", json={
        "worker": "demo-01", "attempt": 1, "outcome": "pass", "duration_s": 1})),
    "user-list": ("admin", lambda c, f: c.users()),
    "user-disable": ("admin", lambda c, f: c.disable_user(f["victim"])),
    "token-rotate-self": (None, lambda c, f: _rotate_self(c)),
    "token-rotate-other": ("admin", lambda c, f: c.rotate_token(f["victim"])),
}


def _rotate_self(c: ServiceClient) -> None:
    """Rotate the caller's own token and keep using the new one."""
    fresh = c.rotate_token(c.whoami().name)
    c._http.headers["Authorization"] = f"Bearer {fresh.token}"

#: endpoints acting on an owned plan or worker: others than the owner get 403
OWNED = {"plan-update", "plan-cancel", "worker-heartbeat", "worker-claim", "job-start",
         "job-result"}


@pytest.fixture
def sutclasses_file(tmp_path: Path) -> Path:
    return write_sutclasses(tmp_path / "sutclasses.yaml", demo_suts=20)


def _fixtures(owner: ServiceClient, n: int) -> dict[str, Any]:
    """A plan of the owner's with one finished job (with a log) and one assigned job."""
    with admin_of(owner) as a:
        for p in a.plans(all_users=True):
            a.cancel_plan(p.id)
    plan = owner.submit_plan(plan_doc(topologies=2))
    w = FakeWorker(owner, "demo-01")
    first = w.claim()
    assert first is not None
    w.run(first)
    second = w.claim()
    assert second is not None
    with admin_of(owner) as a:
        victim = a.create_user(f"victim{n}", ["query"]).name
    return {"plan": plan.id, "job": first.job_id, "job2": second.job_id,
            "session": w.session.session, "n": n, "victim": victim}


_ADMIN: dict[str, str] = {}


def admin_of(client: ServiceClient) -> ServiceClient:
    return ServiceClient(client.url, _ADMIN[client.url])


@pytest.mark.parametrize("endpoint", sorted(ENDPOINTS))
def test_capability_and_ownership(service: ServiceThread, endpoint: str) -> None:
    needed, call = ENDPOINTS[endpoint]
    assert service.admin_token
    _ADMIN[service.url] = service.admin_token
    clients: dict[str, ServiceClient] = {}
    with admin(service) as a:
        for name, caps in [("owner", ["exec", "query", "lease"])] + [
                (f"only-{c}", [c]) for c in CAPS]:
            clients[name] = ServiceClient(service.url, a.create_user(name, caps).token)
    clients["bad-token"] = ServiceClient(service.url, "not-a-token")
    try:
        for n, (name, caller) in enumerate(clients.items()):
            fx = _fixtures(clients["owner"], n)
            caps = {"owner": {"exec", "query", "lease"}, "bad-token": set()}.get(
                name, {name.removeprefix("only-")})
            is_admin = "admin" in caps
            allowed = bool(caps) and (needed is None or needed in caps or is_admin) and (
                endpoint not in OWNED or name == "owner" or is_admin)
            if allowed:
                call(caller, fx)
                continue
            with pytest.raises(RequestRejected) as err:
                call(caller, fx)
            if name == "bad-token":
                assert err.value.status == 401, name
                assert "unknown token" in err.value.detail
            else:
                assert err.value.status == 403, (endpoint, name, err.value.detail)
                assert ("lacks the" in err.value.detail or
                        "belongs to another user" in err.value.detail), err.value.detail
    finally:
        for c in clients.values():
            c.close()


def test_missing_authorization_header(service: ServiceThread) -> None:
    import httpx

    resp = httpx.get(f"{service.url}/api/v1/version")
    assert resp.status_code == 401
    assert "missing Authorization: Bearer" in resp.json()["detail"]

"""Revocable credentials over real HTTP on SQLite and PostgreSQL: user-list,
user-disable (history kept, queued work cancelled, leases ended), token-rotate (admin or
self) and token expiry; the CLI verbs print what they did."""

from __future__ import annotations

import pytest
from svchelpers import FakeWorker, admin, plan_doc, user, wait_until

from ktstr.cli import main
from ktstr.service.client import RequestRejected, ServiceClient
from ktstr.service.states import JobState, LeaseState, PlanState
from ktstr.testing import ServiceThread


def _token(c: ServiceClient) -> str:
    return c._http.headers["Authorization"].removeprefix("Bearer ")


def test_user_list_shows_users_never_tokens(service: ServiceThread) -> None:
    with admin(service) as a, user(service, "alice", "exec,query") as alice:
        users = {u.name: u for u in a.users()}
        assert set(users) == {"admin", "alice"}
        assert users["alice"].disabled_at is None and users["alice"].token_expires_at is None
        assert "token" not in users["alice"].model_dump()
        with pytest.raises(RequestRejected, match=r"HTTP 403.*lacks the 'admin'"):
            alice.users()


def test_disable_keeps_history_and_ends_queued_work(service: ServiceThread) -> None:
    with admin(service) as a, user(service, "alice", "exec,query,lease") as alice, \
            user(service, "bob", "lease,query") as bob:
        w = FakeWorker(a, "demo-01")
        running_plan = alice.submit_plan(plan_doc(topologies=3))
        running = w.claim()
        assert running is not None and running.plan_id == running_plan.id
        w.start(running)
        queued_plan = alice.submit_plan(plan_doc(sutclass="other"))
        held = alice.acquire_lease("other")
        assert held.state is LeaseState.ACQUIRED
        waiting = alice.acquire_lease("other")
        bobs = bob.acquire_lease("other")
        assert bobs.state is LeaseState.QUEUED

        out = a.disable_user("alice")
        assert sorted(out.cancelled_plans) == sorted([running_plan.id, queued_plan.id])
        assert sorted(out.ended_leases) == sorted([held.id, waiting.id])
        assert out.user.disabled_at is not None

        with pytest.raises(RequestRejected) as err:
            alice.whoami()
        assert err.value.status == 401 and "user 'alice' was disabled" in err.value.detail
        # history stays: plans, jobs and leases are all still listed
        plans = {p.id: p for p in a.plans(users=["alice"], all_states=True)}
        assert plans[queued_plan.id].state is PlanState.CANCELLED
        assert plans[running_plan.id].state is PlanState.CANCELLED
        states = [j.state for j in a.jobs(running_plan.id)]
        assert sorted(states) == sorted([JobState.RUNNING, JobState.CANCELLED,
                                         JobState.CANCELLED])
        leases = {x.id: x for x in a.leases(users=["alice"], all_states=True)}
        assert leases[held.id].state is LeaseState.RELEASED
        assert leases[waiting.id].state is LeaseState.CANCELLED
        assert "disabled by admin" in (leases[held.id].reason or "")
        # the running job finishes and is kept; bob's queued lease got the freed SUT
        assert w.finish(running) == "completed"
        assert bob.lease(bobs.id, wait_s=10).state is LeaseState.ACQUIRED
        assert {u.name: u.disabled_at is not None for u in a.users()}["alice"] is True
        with pytest.raises(RequestRejected, match="HTTP 409: user 'alice' is already disabled"):
            a.disable_user("alice")
        with pytest.raises(RequestRejected, match="HTTP 404: no user 'carol'"):
            a.disable_user("carol")


def test_last_admin_cannot_be_disabled(service: ServiceThread) -> None:
    with admin(service) as a:
        with pytest.raises(RequestRejected, match="HTTP 409: user 'admin' is the last "
                                                  "enabled admin"):
            a.disable_user("admin")
        second = a.create_user("root2", ["admin"])
        a.disable_user("admin")
        with ServiceClient(service.url, second.token) as b:
            assert b.whoami().name == "root2"


def test_token_rotate_self_and_by_admin(service: ServiceThread) -> None:
    with admin(service) as a, user(service, "alice", "query") as alice, \
            user(service, "bob", "lease") as bob:
        old = _token(alice)
        fresh = alice.rotate_token("alice")
        assert fresh.token != old
        with ServiceClient(service.url, old) as stale, pytest.raises(RequestRejected) as err:
            stale.whoami()
        assert err.value.status == 401 and "unknown token" in err.value.detail
        with ServiceClient(service.url, fresh.token) as now:
            assert now.whoami().name == "alice"
            with pytest.raises(RequestRejected, match=r"HTTP 403.*lacks the 'admin'"):
                now.rotate_token("bob")
        by_admin = a.rotate_token("bob")
        with pytest.raises(RequestRejected, match="HTTP 401"):
            bob.whoami()
        with ServiceClient(service.url, by_admin.token) as b:
            assert b.whoami().name == "bob"


def test_token_ttl_expires(service: ServiceThread) -> None:
    with admin(service) as a:
        short = a.create_user("temp", ["query"], token_ttl_s=0.5)
        assert short.token_expires_at is not None
        with ServiceClient(service.url, short.token) as t:
            def refused() -> str | None:
                try:
                    t.whoami()
                except RequestRejected as exc:
                    return exc.detail
                return None

            detail = wait_until(refused, 20, "the token to expire")
        assert "expired at" in detail and "token-rotate temp" in detail
        renewed = a.rotate_token("temp", token_ttl_s=3600)
        with ServiceClient(service.url, renewed.token) as t:
            assert t.whoami().token_expires_at is not None


def test_cli_user_verbs(service: ServiceThread, capsys: pytest.CaptureFixture[str]) -> None:
    assert service.admin_token
    common = ["--url", service.url, "--token", service.admin_token]

    def run(*argv: str) -> str:
        with pytest.raises(SystemExit) as exc:
            main(["sched", *argv, *common])
        out = capsys.readouterr()
        assert exc.value.code == 0, out.err
        return out.out

    created = run("user-create", "alice", "--capabilities", "exec,query",
                  "--token-ttl", "30d")
    assert "Created user 'alice'" in created and "The token expires" in created
    listing = run("user-list")
    assert "alice" in listing and "exec,query" in listing and "never" in listing
    rotated = run("token-rotate", "alice", "--token-ttl", "12h")
    assert "New token for user 'alice'" in rotated and "Token: " in rotated
    disabled = run("user-disable", "alice")
    assert "User 'alice' disabled" in disabled

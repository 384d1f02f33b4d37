"""``ServiceClient``: the HTTP client the CLI and the worker use.

Failures become one-line errors: a refused connection names the URL and how to start
the service; an HTTP error names the method, the path, the status and the service's
explanation.
"""

from __future__ import annotations

import contextlib
import json as json_module
import logging
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from ktstr.contract import Assignment
from ktstr.errors import InfraError, UserError
from ktstr.service.auth import Capability
from ktstr.service.leases import LeaseOut
from ktstr.service.schemas import (
    ClaimReply,
    HeartbeatReply,
    JobOut,
    JobResultIn,
    PlanFileOut,
    PlanOut,
    SutClassOut,
    UserCreated,
    UserDisabled,
    UserOut,
    VersionOut,
    WorkerOut,
    WorkerSession,
)
from ktstr.service.settings import PROTOCOL_VERSION
from ktstr.service.usage import UsageRow

log = logging.getLogger(__name__)

def unreachable_hint(url: str) -> str:
    """How to check the service at ``url`` (the URL actually used, not a default)."""
    return (f"check that `ktstr sched run` serves there (`curl {url}/api/v1/version` "
            "answers 401 without a token), and that --url, KTSTR_SCHED_URL or the "
            "preference sched.url (`ktstr preference get --category sched --name url`) "
            "names it")


class ServiceUnreachable(InfraError):
    def __init__(self, url: str, reason: str, tried: str | None = None) -> None:
        self.url = url
        what = f"; tried {tried}" if tried else ""
        super().__init__(f"cannot reach the ktstr scheduler at {url} ({reason}{what}); "
                         f"{unreachable_hint(url)}")


class RequestRejected(UserError):
    """The service answered 4xx."""

    def __init__(self, method: str, path: str, status: int, detail: str) -> None:
        self.status = status
        self.detail = detail
        super().__init__(f"{method} {path}: HTTP {status}: {detail}")


class ServiceFailed(InfraError):
    """The service answered 5xx."""

    def __init__(self, method: str, path: str, status: int, detail: str) -> None:
        self.status = status
        super().__init__(f"{method} {path}: HTTP {status}: {detail}")


def _detail(resp: httpx.Response) -> str:
    try:
        body = resp.json()
    except ValueError:
        return resp.text.strip().splitlines()[0] if resp.text.strip() else resp.reason_phrase
    if isinstance(body, dict) and isinstance(body.get("detail"), str):
        return str(body["detail"])
    return str(body)


class ServiceClient:
    """Close it (or use ``with``) to release its connections."""

    def __init__(self, url: str, token: str, *, timeout: float = 30.0,
                 transport: httpx.BaseTransport | None = None) -> None:
        self.url = url.rstrip("/")
        self._http = httpx.Client(base_url=self.url + "/api/v1", timeout=timeout,
                                  headers={"Authorization": f"Bearer {token}"},
                                  transport=transport)

    def __enter__(self) -> ServiceClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def call(self, method: str, path: str, *, json: Any = None,
             params: dict[str, Any] | None = None, timeout: float | None = None) -> Any:
        extra: dict[str, Any] = {} if timeout is None else {"timeout": timeout}
        tried = f"{method} {self.url}/api/v1{path}"
        try:
            resp = self._http.request(method, path, json=json, params=params, **extra)
        except httpx.ConnectError as exc:
            raise ServiceUnreachable(self.url, str(exc) or "connection refused",
                                     tried) from exc
        except httpx.TimeoutException as exc:
            raise ServiceUnreachable(self.url, f"no answer: {type(exc).__name__}",
                                     tried) from exc
        except httpx.TransportError as exc:
            raise ServiceUnreachable(self.url, f"{type(exc).__name__}: {exc}", tried) from exc
        if resp.status_code >= 500:
            raise ServiceFailed(method, path, resp.status_code, _detail(resp))
        if resp.status_code >= 400:
            raise RequestRejected(method, path, resp.status_code, _detail(resp))
        if resp.status_code == 204 or not resp.content:
            return None
        if resp.headers.get("content-type", "").startswith("text/plain"):
            return resp.text
        return resp.json()

    # --- users and classes -------------------------------------------------------
    def version(self) -> VersionOut:
        return VersionOut.model_validate(self.call("GET", "/version"))

    def whoami(self) -> UserOut:
        return UserOut.model_validate(self.call("GET", "/whoami"))

    def create_user(self, name: str, caps: list[Capability] | list[str],
                    token_ttl_s: float | None = None) -> UserCreated:
        return UserCreated.model_validate(self.call(
            "POST", "/users", json={"name": name, "capabilities": [str(c) for c in caps],
                                    "token_ttl_s": token_ttl_s}))

    def users(self) -> list[UserOut]:
        return [UserOut.model_validate(x) for x in self.call("GET", "/users")]

    def disable_user(self, name: str) -> UserDisabled:
        return UserDisabled.model_validate(self.call("POST", f"/users/{name}/disable"))

    def rotate_token(self, name: str, token_ttl_s: float | None = None) -> UserCreated:
        return UserCreated.model_validate(self.call(
            "POST", f"/users/{name}/token", json={"token_ttl_s": token_ttl_s}))

    def sutclasses(self, start: datetime | None = None, end: datetime | None = None
                   ) -> list[SutClassOut]:
        params = {k: v.isoformat() for k, v in (("from", start), ("to", end)) if v}
        return [SutClassOut.model_validate(x)
                for x in self.call("GET", "/sutclasses", params=params)]

    # --- plans ---------------------------------------------------------------------
    def submit_plan(self, document: Any, *, priority: int | None = None,
                    publish: bool = True) -> PlanOut:
        body = {"plan": document, "priority": priority, "publish": publish}
        return PlanOut.model_validate(self.call("POST", "/plans", json=body))

    def plans(self, *, states: list[str] | None = None, users: list[str] | None = None,
              all_users: bool = False, all_states: bool = False, page: int | None = None,
              page_size: int | None = None) -> list[PlanOut]:
        params: dict[str, Any] = {"all_users": all_users, "all_states": all_states}
        if page is not None:
            params["page"] = page
        if page_size is not None:
            params["page_size"] = page_size
        if states:
            params["states"] = states
        if users:
            params["users"] = users
        return [PlanOut.model_validate(x) for x in self.call("GET", "/plans", params=params)]

    def plan(self, plan_id: int) -> PlanOut:
        return PlanOut.model_validate(self.call("GET", f"/plans/{plan_id}"))

    def jobs(self, plan_id: int) -> list[JobOut]:
        return [JobOut.model_validate(x) for x in self.call("GET", f"/plans/{plan_id}/jobs")]

    def update_plan(self, plan_id: int, priority: int) -> PlanOut:
        return PlanOut.model_validate(self.call("PATCH", f"/plans/{plan_id}",
                                                json={"priority": priority}))

    def cancel_plan(self, plan_id: int) -> PlanOut:
        return PlanOut.model_validate(self.call("POST", f"/plans/{plan_id}/cancel"))

    def job_log(self, job_id: int) -> str:
        return str(self.call("GET", f"/jobs/{job_id}/log"))

    # --- workers -------------------------------------------------------------------
    def workers(self) -> list[WorkerOut]:
        return [WorkerOut.model_validate(x) for x in self.call("GET", "/workers")]

    def register(self, name: str, sutclass: str, version: str) -> WorkerSession:
        body = {"name": name, "sutclass": sutclass, "version": version,
                "protocol": PROTOCOL_VERSION}
        return WorkerSession.model_validate(self.call("POST", "/workers/register", json=body))

    def heartbeat(self, name: str, session: int, job_id: int | None,
                  attempt: int | None) -> HeartbeatReply:
        body = {"session": session, "job_id": job_id, "attempt": attempt}
        return HeartbeatReply.model_validate(
            self.call("POST", f"/workers/{name}/heartbeat", json=body, timeout=10))

    def goodbye(self, name: str, session: int) -> WorkerOut:
        return WorkerOut.model_validate(self.call(
            "POST", f"/workers/{name}/offline", json={"session": session}, timeout=10))

    def claim(self, name: str, session: int, wait_s: float) -> Assignment | None:
        data = self.call("POST", f"/workers/{name}/claim",
                         json={"session": session, "wait_s": wait_s}, timeout=wait_s + 30)
        return ClaimReply.model_validate(data).job

    def start_job(self, job_id: int, worker: str, attempt: int) -> None:
        self.call("POST", f"/jobs/{job_id}/start", json={"worker": worker, "attempt": attempt})

    def report(self, job_id: int, result: JobResultIn) -> str:
        data = self.call("POST", f"/jobs/{job_id}/result", json=result.model_dump(mode="json"))
        return str(data["state"])

    # --- leases --------------------------------------------------------------------
    def acquire_lease(self, sutclass: str, priority: int = 0) -> LeaseOut:
        return LeaseOut.model_validate(self.call(
            "POST", "/leases", json={"sutclass": sutclass, "priority": priority}))

    def lease(self, lease_id: int, wait_s: float = 0.0) -> LeaseOut:
        return LeaseOut.model_validate(self.call(
            "GET", f"/leases/{lease_id}", params={"wait_s": wait_s}, timeout=wait_s + 30))

    def leases(self, *, states: list[str] | None = None, users: list[str] | None = None,
               all_users: bool = False, all_states: bool = False) -> list[LeaseOut]:
        params: dict[str, Any] = {"all_users": all_users, "all_states": all_states}
        if states:
            params["states"] = states
        if users:
            params["users"] = users
        return [LeaseOut.model_validate(x) for x in self.call("GET", "/leases", params=params)]

    def renew_lease(self, lease_id: int) -> LeaseOut:
        return LeaseOut.model_validate(self.call("POST", f"/leases/{lease_id}/renew"))

    def release_lease(self, lease_id: int) -> LeaseOut:
        return LeaseOut.model_validate(self.call("POST", f"/leases/{lease_id}/release"))

    # --- uploads, files, resubmit ----------------------------------------------------
    def submit_plan_files(self, document: Any, files: dict[str, Path], *,
                          priority: int | None = None, publish: bool = True) -> PlanOut:
        """Submit a plan with local files (multipart): ``files`` maps each upload name
        (the plan says ``upload:NAME``) to a local path."""
        body = json_module.dumps({"plan": document, "priority": priority,
                                  "publish": publish})
        with contextlib.ExitStack() as stack:
            parts = [("files", (name, stack.enter_context(open(path, "rb")),
                                "application/octet-stream"))
                     for name, path in sorted(files.items())]
            try:
                resp = self._http.post("/plans/upload", data={"submission": body},
                                       files=parts, timeout=max(self._http.timeout.read or 30,
                                                                600))
            except httpx.TransportError as exc:
                raise ServiceUnreachable(self.url, f"{type(exc).__name__}: {exc}") from exc
        if resp.status_code >= 500:
            raise ServiceFailed("POST", "/plans/upload", resp.status_code, _detail(resp))
        if resp.status_code >= 400:
            raise RequestRejected("POST", "/plans/upload", resp.status_code, _detail(resp))
        return PlanOut.model_validate(resp.json())

    def plan_files(self, plan_id: int) -> list[PlanFileOut]:
        return [PlanFileOut.model_validate(x)
                for x in self.call("GET", f"/plans/{plan_id}/files")]

    def download(self, sha256: str, dest: Path) -> Path:
        """Fetch an uploaded file into ``dest`` (written atomically)."""
        tmp = dest.with_name(dest.name + ".part")
        try:
            with self._http.stream("GET", f"/files/{sha256}", timeout=600) as resp:
                if resp.status_code >= 400:
                    resp.read()
                    cls = ServiceFailed if resp.status_code >= 500 else RequestRejected
                    raise cls("GET", f"/files/{sha256}", resp.status_code, _detail(resp))
                with open(tmp, "wb") as out:
                    for chunk in resp.iter_bytes(1 << 20):
                        out.write(chunk)
        except httpx.TransportError as exc:
            tmp.unlink(missing_ok=True)
            raise ServiceUnreachable(self.url, f"{type(exc).__name__}: {exc}") from exc
        tmp.replace(dest)
        return dest

    def resubmit_plan(self, plan_id: int, *, failed_only: bool = False,
                      priority: int | None = None) -> PlanOut:
        return PlanOut.model_validate(self.call(
            "POST", f"/plans/{plan_id}/resubmit",
            json={"failed_only": failed_only, "priority": priority}))

    # --- usage ---------------------------------------------------------------------
    def usage(self, by: str = "sut", start: datetime | None = None,
              end: datetime | None = None) -> list[UsageRow]:
        params: dict[str, Any] = {"by": by}
        params.update({k: v.isoformat() for k, v in (("from", start), ("to", end)) if v})
        return [UsageRow.model_validate(x) for x in self.call("GET", "/usage", params=params)]

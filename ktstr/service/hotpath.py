"""The worker protocol's two hottest requests without the framework.

Every job costs a pull worker two requests, ``POST /api/v1/workers/{name}/claim`` and
``POST /api/v1/jobs/{id}/result``. Through FastAPI each one pays for the middleware
stack, matching against every route, dependency solving and response validation: more
CPU than the claim's own database statement. ``HotPath`` sits in front of the app and
serves exactly those two requests itself when they are the common case: a token the
service authenticated within the last seconds (``cached_principal``) that holds the
``lease`` capability, and a body that validates against the same pydantic model. The
handlers are the routes' own (``claim_reply``, ``record_result``) and errors are
answered by the same mapping (``problem_of``). Anything else (an unknown or uncached
token, a missing capability, an invalid body, a path that is not a plain name or id) is
passed on to FastAPI unchanged, body included, so it answers exactly as before.
"""

from __future__ import annotations

import re

from pydantic import ValidationError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ktstr.service.auth import Capability, Principal
from ktstr.service.context import ServiceContext, cached_principal
from ktstr.service.problems import problem_of
from ktstr.service.routes.workers import claim_reply, record_result
from ktstr.service.schemas import ClaimRequest, JobResultIn

_CLAIM = re.compile(r"/api/v1/workers/([A-Za-z0-9._-]{1,200})/claim")
_RESULT = re.compile(r"/api/v1/jobs/([0-9]{1,18})/result")
_JSON_HEADERS = [(b"content-type", b"application/json")]


class HotPath:
    """ASGI middleware: serves the common case of claim and result (see the module)."""

    def __init__(self, app: ASGIApp, ctx: ServiceContext) -> None:
        self.app = app
        self.ctx = ctx

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            return await self.app(scope, receive, send)
        path = scope["path"]
        claim = _CLAIM.fullmatch(path)
        result = None if claim else _RESULT.fullmatch(path)
        who = self._caller(scope) if claim or result else None
        if who is None:
            return await self.app(scope, receive, send)
        body = await _read_body(receive)
        try:
            if claim is not None:
                req = ClaimRequest.model_validate_json(body)
            else:
                res = JobResultIn.model_validate_json(body)
        except ValidationError:  # FastAPI words the problems
            return await self.app(scope, _replay(body, receive), send)
        self.ctx.hot_served += 1
        try:
            if claim is not None:
                reply = await claim_reply(self.ctx, who, claim.group(1), req)
            else:
                assert result is not None
                state = await record_result(self.ctx, who, int(result.group(1)), res)
                reply = b'{"state":"%s"}' % state.value.encode()
        except Exception as exc:
            answer = problem_of(exc)
            if answer is None:
                raise
            return await answer(scope, receive, send)
        await send({"type": "http.response.start", "status": 200,
                    "headers": [*_JSON_HEADERS, (b"content-length", b"%d" % len(reply))]})
        await send({"type": "http.response.body", "body": reply})

    def _caller(self, scope: Scope) -> Principal | None:
        """The cached caller if it may use the worker protocol, else None."""
        for name, value in scope["headers"]:
            if name == b"authorization":
                scheme, _, token = value.decode("latin-1").partition(" ")
                if scheme.lower() != "bearer" or not token:
                    return None
                who = cached_principal(self.ctx, token)
                if who is None or not (who.is_admin or
                                       Capability.LEASE in who.capabilities):
                    return None
                return who
        return None


async def _read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":  # the client went away
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """``receive`` that first hands back the body already read."""
    sent = False

    async def again() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return again

"""The read-only web dashboard: queue, running jobs, plans with ETA, SUT usage and recent
failures, server-rendered and refreshing itself.

Authentication: ``/dashboard/login`` takes a token (a small form) and keeps it in an
HTTP-only cookie; ``/dashboard?token=...`` works too (e.g. for a wall display). The
token's user needs the ``query`` capability.
"""

from __future__ import annotations

import functools
from typing import Annotated

import jinja2
from fastapi import APIRouter, Cookie, Form, Request
from fastapi import Query as Param
from fastapi.responses import HTMLResponse, RedirectResponse

from ktstr.service.auth import Capability, Principal
from ktstr.service.context import Ctx
from ktstr.service.db.dashboard import queued_count, recent_failures, running_jobs
from ktstr.service.db.plans import PlanFilter, list_plans
from ktstr.service.db.sutclasses import list_sutclasses
from ktstr.service.db.users import authenticate
from ktstr.service.errors import ServiceError
from ktstr.service.plan import format_duration
from ktstr.service.render import when
from ktstr.service.states import PlanState

router = APIRouter(include_in_schema=False)

COOKIE = "ktstr_token"
#: seconds between the page's own refreshes
REFRESH_S = 10


@functools.cache
def _env() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("ktstr.service", "templates"),
        autoescape=True, undefined=jinja2.StrictUndefined,
        trim_blocks=True, lstrip_blocks=True)


def _who(ctx: Ctx, token: str | None) -> Principal | None:
    if not token:
        return None
    try:
        who = authenticate(ctx.db, token)
    except ServiceError:
        return None
    return who if who.is_admin or Capability.QUERY in who.capabilities else None


def _login(message: str, status: int = 401) -> HTMLResponse:
    html = _env().get_template("login.html.j2").render(message=message)
    return HTMLResponse(html, status_code=status)


@router.get("/")
def root() -> RedirectResponse:
    return RedirectResponse("/dashboard", status_code=307)


@router.post("/dashboard/login")
def login(ctx: Ctx, token: Annotated[str, Form(max_length=200)]) -> HTMLResponse:
    if _who(ctx, token) is None:
        return _login("That token is unknown or lacks the query capability.")
    resp = HTMLResponse(status_code=303, headers={"Location": "/dashboard"})
    resp.set_cookie(COOKIE, token, httponly=True, samesite="strict")
    return resp


@router.get("/dashboard/logout")
def logout() -> RedirectResponse:
    resp = RedirectResponse("/dashboard", status_code=303)
    resp.delete_cookie(COOKIE)
    return resp


@router.get("/dashboard", response_class=HTMLResponse)
def dashboard(request: Request, ctx: Ctx,
              token: Annotated[str | None, Param(max_length=200)] = None,
              ktstr_token: Annotated[str | None, Cookie()] = None) -> HTMLResponse:
    who = _who(ctx, token or ktstr_token)
    if who is None:
        return _login("Log in with a token that has the query capability."
                      if not (token or ktstr_token) else
                      "That token is unknown or lacks the query capability.")
    now = ctx.clock()
    active = list_plans(ctx.db, PlanFilter(states=[PlanState.QUEUED, PlanState.RUNNING]),
                        now)
    recent = list_plans(ctx.db, PlanFilter(
        states=[PlanState.COMPLETED, PlanState.CANCELLED]), now)[-10:][::-1]
    html = _env().get_template("dashboard.html.j2").render(
        who=who, refresh_s=REFRESH_S, queued=queued_count(ctx.db),
        active=active, recent=recent, running=running_jobs(ctx.db, now),
        failures=recent_failures(ctx.db, now),
        sutclasses=list_sutclasses(ctx.db, now, None, None),
        when=when, duration=lambda s: "-" if s is None else format_duration(s) if s >= 1
        else f"{s:.1f}s")
    resp = HTMLResponse(html)
    if token and token != ktstr_token:
        resp.set_cookie(COOKIE, token, httponly=True, samesite="strict")
    return resp

"""The read-only web dashboard: queue, running jobs, plans with ETA, SUT usage and recent
failures, server-rendered and refreshing itself; a page per plan (its jobs and the matrix
of its cells by verdict) and per job (its run's verdict, reasons, timeline, logs and
debug dump), drawn with the views of ``ktstr report`` (``ktstr.service.pages``).

Authentication: ``/dashboard/login`` takes a token (a small form) and keeps it in an
HTTP-only cookie; ``?token=...`` works on every page too (e.g. for a wall display). The
token's user needs the ``query`` capability.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

import jinja2
from fastapi import APIRouter, Cookie, Form, Request
from fastapi import Query as Param
from fastapi.responses import HTMLResponse, RedirectResponse

from ktstr.results.views import environment
from ktstr.service.auth import Capability, Principal
from ktstr.service.context import Ctx
from ktstr.service.db.dashboard import queued_count, recent_failures, running_jobs
from ktstr.service.db.plans import PlanFilter, list_plans
from ktstr.service.db.sutclasses import list_sutclasses
from ktstr.service.db.users import authenticate
from ktstr.service.errors import NotFound, ServiceError
from ktstr.service.pages import load_job_page, load_plan_page
from ktstr.service.plan import format_duration
from ktstr.service.render import when
from ktstr.service.states import PlanState

router = APIRouter(include_in_schema=False)

COOKIE = "ktstr_token"
#: seconds between the page's own refreshes
REFRESH_S = 10


def _env() -> jinja2.Environment:
    """The service's templates over the shared page, style and result views."""
    return environment("ktstr.service")


def _who(ctx: Ctx, token: str | None) -> Principal | None:
    if not token:
        return None
    try:
        who = authenticate(ctx.db, token, ctx.clock())
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


def _page(ctx: Ctx, token: str | None, cookie: str | None,
          render: Callable[[Principal], str]) -> HTMLResponse:
    """``render``'s page for a viewer with the query capability, else the login form;
    a token given in the URL is kept in the cookie."""
    who = _who(ctx, token or cookie)
    if who is None:
        return _login("Log in with a token that has the query capability."
                      if not (token or cookie) else
                      "That token is unknown or lacks the query capability.")
    try:
        resp = HTMLResponse(render(who))
    except NotFound as exc:
        resp = HTMLResponse(_env().get_template("missing.html.j2").render(
            who=who, message=str(exc)), status_code=404)
    if token and token != cookie:
        resp.set_cookie(COOKIE, token, httponly=True, samesite="strict")
    return resp


def _duration(s: float | None) -> str:
    return "-" if s is None else format_duration(s) if s >= 1 else f"{s:.1f}s"


TokenParam = Annotated[str | None, Param(max_length=200)]
TokenCookie = Annotated[str | None, Cookie()]


@router.get("/dashboard", response_class=HTMLResponse)
def dashboard(request: Request, ctx: Ctx, token: TokenParam = None,
              ktstr_token: TokenCookie = None) -> HTMLResponse:
    def render(who: Principal) -> str:
        now = ctx.clock()
        active = list_plans(ctx.db, PlanFilter(states=[PlanState.QUEUED,
                                                       PlanState.RUNNING]), now)
        recent = list_plans(ctx.db, PlanFilter(
            states=[PlanState.COMPLETED, PlanState.CANCELLED]), now)[-10:][::-1]
        return _env().get_template("dashboard.html.j2").render(
            who=who, refresh_s=REFRESH_S, queued=queued_count(ctx.db),
            active=active, recent=recent, running=running_jobs(ctx.db, now),
            failures=recent_failures(ctx.db, now),
            sutclasses=list_sutclasses(ctx.db, now, None, None),
            when=when, duration=_duration)

    return _page(ctx, token, ktstr_token, render)


@router.get("/dashboard/plans/{plan_id}", response_class=HTMLResponse)
def plan_view(plan_id: int, ctx: Ctx, token: TokenParam = None,
              ktstr_token: TokenCookie = None) -> HTMLResponse:
    def render(who: Principal) -> str:
        page = load_plan_page(ctx, plan_id)
        return _env().get_template("plan.html.j2").render(
            who=who, page=page, refresh_s=REFRESH_S if page.plan.state in (
                PlanState.QUEUED, PlanState.RUNNING) else None,
            when=when, duration=_duration)

    return _page(ctx, token, ktstr_token, render)


@router.get("/dashboard/jobs/{job_id}", response_class=HTMLResponse)
def job_view(job_id: int, ctx: Ctx, token: TokenParam = None,
             ktstr_token: TokenCookie = None) -> HTMLResponse:
    def render(who: Principal) -> str:
        page = load_job_page(ctx, job_id)
        return _env().get_template("job.html.j2").render(
            who=who, page=page, when=when, duration=_duration)

    return _page(ctx, token, ktstr_token, render)

"""The FastAPI application factory and the reaper that runs beside it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

import anyio.to_thread
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError

from ktstr import __version__
from ktstr.errors import UserError
from ktstr.service.context import ServiceContext
from ktstr.service.db.jobs import reap
from ktstr.service.dispatch import Dispatcher, dispatched, run_dispatcher
from ktstr.service.errors import ServiceError
from ktstr.service.planner import PlanError
from ktstr.service.routes import admin, dashboard, files, leases, plans, usage, workers
from ktstr.service.states import InvalidTransition
from ktstr.service.sutclasses import load_sutclasses

log = logging.getLogger(__name__)

API_PREFIX = "/api/v1"


async def _reaper(ctx: ServiceContext, stop: asyncio.Event) -> None:
    """Sweep every ``reaper_interval_s`` until ``stop``; a sweep in progress always
    finishes (its thread holds a database connection)."""
    while True:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), ctx.settings.reaper_interval_s)
        if stop.is_set():
            return
        try:
            report = await anyio.to_thread.run_sync(reap, ctx.db, ctx.settings, ctx.clock())
        except Exception:  # keep reaping; one bad sweep must not stop the service
            log.exception("reaper sweep failed", extra={"action": "reap"})
            continue
        if report.lost_workers:
            log.warning("workers lost: %s (requeued %s, failed %s)",
                        ", ".join(report.lost_workers), report.requeued, report.failed,
                        extra={"action": "reap"})
        if report.timed_out:
            log.warning("jobs timed out: %s", report.timed_out, extra={"action": "reap"})
        if report.requeued or report.expired_leases:
            ctx.wakeup.notify(None)
        if report.acquired_leases:
            ctx.lease_events.notify(None)


def _problem(status: int, detail: str, problems: list[str] | None = None) -> JSONResponse:
    return JSONResponse(status_code=status,
                        content={"detail": detail, "problems": problems or []})


def create_app(ctx: ServiceContext) -> FastAPI:
    """An app serving ``ctx``'s database; the caller has prepared it (migrations, admin,
    SUT classes: ``ktstr.service.server.prepare``)."""

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        ctx.wakeup.bind(asyncio.get_running_loop())
        ctx.lease_events.bind(asyncio.get_running_loop())
        stop = asyncio.Event()
        tasks = [asyncio.create_task(_reaper(ctx, stop))]
        classes = load_sutclasses(ctx.settings.sutclasses)
        if dispatched(classes):  # SSH / Slurm classes: the service runs their jobs
            tasks.append(asyncio.create_task(run_dispatcher(Dispatcher(ctx, classes), stop)))
        try:
            yield
        finally:
            stop.set()
            await asyncio.gather(*tasks)
            if ctx.resultstore is not None:
                ctx.resultstore.close()

    app = FastAPI(title="ktstr scheduler", version=__version__, lifespan=lifespan,
                  description="Queued-plan scheduler for ktstr cells. Every endpoint needs "
                              "`Authorization: Bearer <token>`.")
    app.state.ctx = ctx
    for module in (admin, files, leases, plans, usage, workers):
        app.include_router(module.router, prefix=API_PREFIX)
    app.include_router(dashboard.router)

    @app.exception_handler(PlanError)
    async def _plan_error(_r: Request, exc: PlanError) -> JSONResponse:
        return _problem(422, str(exc), exc.problems)

    @app.exception_handler(InvalidTransition)
    async def _transition(_r: Request, exc: InvalidTransition) -> JSONResponse:
        return _problem(409, str(exc))

    @app.exception_handler(ServiceError)
    async def _service_error(_r: Request, exc: ServiceError) -> JSONResponse:
        return _problem(exc.status_code, str(exc))

    @app.exception_handler(UserError)
    async def _user_error(_r: Request, exc: UserError) -> JSONResponse:
        return _problem(400, str(exc))

    @app.exception_handler(OverflowError)
    @app.exception_handler(DataError)
    async def _out_of_range(_r: Request, exc: Exception) -> JSONResponse:
        # a number the database cannot hold (e.g. an id beyond 64 bits) names no row
        return _problem(422, "invalid request: a number is out of the database's range")

    @app.exception_handler(RequestValidationError)
    async def _invalid(_r: Request, exc: RequestValidationError) -> JSONResponse:
        problems = _request_problems(exc)
        return _problem(422, "invalid request: " + "; ".join(problems), problems)

    return app


def _request_problems(exc: RequestValidationError) -> list[str]:
    """``field.path: problem`` per error, the body prefix dropped (``plan.runs[0]...``)."""
    lines: list[str] = []
    for err in exc.errors():
        parts: list[str] = []
        for item in err.get("loc", ()):
            if item == "body" and not parts:
                continue
            if isinstance(item, int):
                parts.append(f"[{item}]")
            elif not str(item).startswith("function-"):
                parts.append(("." if parts else "") + str(item))
        path = "".join(parts) or "(body)"
        kind = err.get("type")
        if kind == "missing":
            lines.append(f"{path}: is required")
        elif kind == "extra_forbidden":
            lines.append(f"{path}: unknown field")
        else:
            msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
            lines.append(f"{path}: {msg}")
    return lines

"""The FastAPI application factory and the reaper that runs beside it."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import anyio.to_thread
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from ktstr import __version__
from ktstr.errors import InfraError, UserError
from ktstr.service.context import ServiceContext, forget_cached_tokens
from ktstr.service.db.jobs import mark_alive, reap
from ktstr.service.dispatch import Dispatcher, dispatched, run_dispatcher
from ktstr.service.problems import ANSWERED, problem, problem_of
from ktstr.service.routes import admin, dashboard, files, leases, plans, usage, workers
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
        for lease_id in (*report.acquired_leases, *report.cancelled_leases):
            ctx.lease_events.notify_all(lease_id)


async def _start_relay(ctx: ServiceContext, stop: asyncio.Event) -> asyncio.Task[None]:
    """Start relaying wake-ups to and from the other service processes; returns once this
    process LISTENs (so a started service misses no wake-up)."""
    from ktstr.service.relay import CONNECT_TIMEOUT_S, Channel, PgRelay

    if ctx.db.is_sqlite:
        raise UserError("cross-process wake-ups need PostgreSQL: a SQLite service is one "
                        "process")
    relay = PgRelay(ctx.db.url, {Channel.JOBS: ctx.wakeup, Channel.LEASES: ctx.lease_events},
                    forget_tokens=lambda: forget_cached_tokens(ctx))
    relay.attach()
    ctx.relay = relay
    task = asyncio.create_task(relay.run(stop))
    try:
        await asyncio.wait_for(relay.ready.wait(), CONNECT_TIMEOUT_S)
    except TimeoutError as exc:
        stop.set()
        await task
        raise InfraError(f"cannot LISTEN for wake-ups on {ctx.db.describe} within "
                         f"{CONNECT_TIMEOUT_S:g}s (see the warnings above)") from exc
    return task


def create_app(ctx: ServiceContext) -> FastAPI:
    """An app serving ``ctx``'s database; the caller has prepared it (migrations, admin,
    SUT classes: ``ktstr.service.server.prepare``)."""

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        ctx.wakeup.bind(asyncio.get_running_loop())
        ctx.lease_events.bind(asyncio.get_running_loop())
        stop = asyncio.Event()
        tasks: list[asyncio.Task[None]] = []
        try:
            if ctx.relay_wakeups:
                tasks.append(await _start_relay(ctx, stop))
            if ctx.primary:
                tasks.append(asyncio.create_task(_reaper(ctx, stop)))
                classes = load_sutclasses(ctx.settings.sutclasses)
                if dispatched(classes):  # SSH / Slurm classes: the service runs their jobs
                    tasks.append(asyncio.create_task(
                        run_dispatcher(Dispatcher(ctx, classes), stop)))
            if ctx.freeze_heap:
                # everything allocated so far lives as long as the process: out of the
                # cyclic collector's sight, whose full passes over it were 5-10 % of
                # the service's time under load (150,000 tracked objects)
                gc.collect()
                gc.freeze()
            yield
        finally:
            stop.set()
            await asyncio.gather(*tasks)
            if ctx.relay is not None:
                ctx.relay.detach()
            await ctx.db.aclose_hot()
            try:  # the outage the next start forgives workers begins now
                await anyio.to_thread.run_sync(mark_alive, ctx.db, ctx.clock())
            except Exception:
                log.exception("cannot record the service's stop", extra={"action": "stop"})
            if ctx.resultstore is not None:
                ctx.resultstore.close()

    app = FastAPI(title="ktstr scheduler", version=__version__, lifespan=lifespan,
                  description="Queued-plan scheduler for ktstr cells. Every endpoint needs "
                              "`Authorization: Bearer <token>`.")
    app.state.ctx = ctx
    for module in (admin, files, leases, plans, usage, workers):
        app.include_router(module.router, prefix=API_PREFIX)
    app.include_router(dashboard.router)

    async def _answer(_r: Request, exc: Exception) -> JSONResponse:
        answer = problem_of(exc)
        if answer is None:  # pragma: no cover - only ANSWERED types are registered
            raise exc
        return answer

    for kind in ANSWERED:
        app.add_exception_handler(kind, _answer)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        bad_json = next((e for e in exc.errors() if e.get("type") == "json_invalid"), None)
        if bad_json is not None:
            what = _json_problem(await request.body(), bad_json)
            return problem(422, f"invalid request: {what}", [what])
        problems = _request_problems(exc)
        return problem(422, "invalid request: " + "; ".join(problems), problems)

    return app


def _json_problem(body: bytes, err: Any) -> str:
    """Where a body that is not JSON breaks: line, column and what the parser expected
    (``json.loads`` says it; pydantic's error gives only the character offset)."""
    text = body.decode(errors="replace")
    try:
        json.loads(text)
    except json.JSONDecodeError as exc:
        return (f"the body is not valid JSON: {exc.msg} at line {exc.lineno}, column "
                f"{exc.colno}")
    except ValueError as exc:
        return f"the body is not valid JSON: {exc}"
    ctx = err.get("ctx") or {}
    return f"the body is not valid JSON: {ctx.get('error', 'cannot decode it')}"


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

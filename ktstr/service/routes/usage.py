"""The usage report: busy share, jobs run and failure rate per SUT, user or SUT class."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import anyio.to_thread
from fastapi import APIRouter
from fastapi import Query as Param

from ktstr.service.context import Ctx, Query
from ktstr.service.db.usage import usage
from ktstr.service.errors import ServiceError
from ktstr.service.usage import By, UsageRow

router = APIRouter()

#: window of a report without ``from``
DEFAULT_WINDOW_S = 7 * 24 * 3600.0


def _epoch(value: datetime) -> float:
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()


@router.get("/usage")
async def usage_report(who: Query, ctx: Ctx,
                       from_: Annotated[datetime | None, Param(alias="from")] = None,
                       to: datetime | None = None, by: By = By.SUT) -> list[UsageRow]:
    """Usage within [from, to) (default: the last 7 days), busiest first."""
    now = ctx.clock()
    hi = _epoch(to) if to is not None else now
    lo = _epoch(from_) if from_ is not None else hi - DEFAULT_WINDOW_S
    if hi <= lo:
        raise ServiceError(f"empty usage window: from ({from_}) must be before to ({to})")
    return await anyio.to_thread.run_sync(usage, ctx.db, by, lo, hi, now)

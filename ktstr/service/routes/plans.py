"""Plans and their jobs: submit, list, change priority, cancel, logs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, status
from fastapi import Query as Param
from fastapi.responses import PlainTextResponse

from ktstr.service.context import Ctx, Exec, Query
from ktstr.service.db.jobs import job_log
from ktstr.service.db.plans import (
    PlanFilter,
    cancel_plan,
    list_jobs,
    list_plans,
    plan_owner,
    submit_plan,
    update_priority,
)
from ktstr.service.db.sutclasses import sutclass_ids
from ktstr.service.db.users import users_by_name
from ktstr.service.errors import NotFound
from ktstr.service.planner import PlanError, expand
from ktstr.service.schemas import JobOut, PlanOut, PlanSubmit, PlanUpdate
from ktstr.service.states import JobState, PlanState
from ktstr.service.storage import missing_uploads, plan_upload_refs
from ktstr.service.wakeup import DISPATCH_KEY

router = APIRouter()

DEFAULT_STATES = [PlanState.QUEUED, PlanState.RUNNING]


@router.post("/plans", status_code=status.HTTP_201_CREATED)
def plan_create(body: PlanSubmit, who: Exec, ctx: Ctx) -> PlanOut:
    """Expand the plan into jobs and queue them. A plan that names ``upload:NAME`` files
    must come through ``/plans/upload`` with them (422 here)."""
    refs = plan_upload_refs(body.plan.model_dump(mode="json"))
    if refs:
        raise PlanError(missing_uploads(refs, ()))
    classes = sutclass_ids(ctx.db)
    cells = expand(body.plan, classes)
    priority = body.priority if body.priority is not None else (body.plan.priority or 0)
    sutclass_id = classes[body.plan.sut.sutclass]
    plan_id = submit_plan(ctx.db, who, body.plan, cells, sutclass_id, priority,
                          body.publish, ctx.clock())
    ctx.wakeup.notify(sutclass_id, len(cells))
    return list_plans(ctx.db, PlanFilter(plan_id=plan_id), ctx.clock())[0]


@router.get("/plans")
def plan_list(who: Query, ctx: Ctx,
              states: Annotated[list[PlanState] | None, Param()] = None,
              users: Annotated[list[str] | None, Param()] = None,
              all_users: bool = False, all_states: bool = False,
              page: Annotated[int | None, Param(ge=1, le=1_000_000)] = None,
              page_size: Annotated[int, Param(ge=1, le=1000)] = 50) -> list[PlanOut]:
    """Plans; by default the caller's own, queued or running. ``page`` (1-based) with
    ``page_size`` pages through them (job history: ``all_states=true&page=2``)."""
    if users:
        known = users_by_name(ctx.db, users)
        missing = sorted(set(users) - set(known))
        if missing:
            raise NotFound(f"unknown user(s): {', '.join(missing)}")
        owners: list[int] | None = list(known.values())
    else:
        owners = None if all_users else [who.id]
    chosen = None if all_states else (states or DEFAULT_STATES)
    return list_plans(ctx.db, PlanFilter(owner_ids=owners, states=chosen, page=page,
                                         page_size=page_size), ctx.clock())


@router.get("/plans/{plan_id}")
def plan_get(plan_id: int, who: Query, ctx: Ctx) -> PlanOut:
    return list_plans(ctx.db, PlanFilter(plan_id=plan_id), ctx.clock())[0]


@router.get("/plans/{plan_id}/jobs")
def plan_jobs(plan_id: int, who: Query, ctx: Ctx,
              states: Annotated[list[JobState] | None, Param()] = None) -> list[JobOut]:
    return list_jobs(ctx.db, plan_id, states)


@router.patch("/plans/{plan_id}")
def plan_update(plan_id: int, body: PlanUpdate, who: Exec, ctx: Ctx) -> PlanOut:
    """Change the priority of a queued or running plan (its queued jobs follow)."""
    who.require_owner(plan_owner(ctx.db, plan_id), f"plan {plan_id}")
    update_priority(ctx.db, plan_id, body.priority)
    return list_plans(ctx.db, PlanFilter(plan_id=plan_id), ctx.clock())[0]


@router.post("/plans/{plan_id}/cancel")
def plan_cancel(plan_id: int, who: Exec, ctx: Ctx) -> PlanOut:
    """Cancel queued jobs now; running pulled jobs finish on their own, running
    dispatched (SSH, Slurm) jobs are cancelled through their provider."""
    who.require_owner(plan_owner(ctx.db, plan_id), f"plan {plan_id}")
    cancel_plan(ctx.db, plan_id, ctx.clock())
    ctx.wakeup.notify(DISPATCH_KEY)  # dispatched running jobs are cancelled at once
    return list_plans(ctx.db, PlanFilter(plan_id=plan_id), ctx.clock())[0]


@router.get("/jobs/{job_id}/log", response_class=PlainTextResponse)
def job_log_get(job_id: int, who: Query, ctx: Ctx) -> str:
    _owner, path = job_log(ctx.db, job_id)
    if path is None:
        raise NotFound(f"job {job_id} has no log yet")
    try:
        return Path(path).read_text(errors="replace")
    except FileNotFoundError:
        raise NotFound(f"the log of job {job_id} is missing from storage ({path})") from None

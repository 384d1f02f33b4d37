"""Plans with uploaded files, the files themselves, and resubmitting a plan."""

from __future__ import annotations

import json
from typing import Annotated

from fastapi import APIRouter, File, Form, UploadFile, status
from fastapi.responses import FileResponse
from pydantic import ValidationError

from ktstr._problems import problem_lines
from ktstr.service.auth import Capability, Principal
from ktstr.service.context import Ctx, Exec, Who
from ktstr.service.db.files import file_known, plan_files, resubmission
from ktstr.service.db.plans import PlanFilter, list_plans, plan_owner, submit_plan
from ktstr.service.db.sutclasses import sutclass_ids
from ktstr.service.errors import Forbidden, NotFound
from ktstr.service.planner import PlanError, expand
from ktstr.service.schemas import PlanFileOut, PlanOut, PlanResubmit, PlanSubmit
from ktstr.service.storage import (
    BadUploadName,
    FileStore,
    check_upload_name,
    missing_uploads,
    plan_upload_refs,
)

router = APIRouter()


def _reader(who: Principal) -> None:
    """Files are read by users (query) and by workers (lease)."""
    if not who.capabilities & {Capability.QUERY, Capability.LEASE, Capability.ADMIN}:
        raise Forbidden(f"user {who.name!r} needs the 'query' or 'lease' capability")


@router.post("/plans/upload", status_code=status.HTTP_201_CREATED)
def plan_create_with_files(
    who: Exec, ctx: Ctx,
    submission: Annotated[str, Form(description="the PlanSubmit body as JSON")],
    files: Annotated[list[UploadFile] | None, File(
        description="files the plan refers to as upload:NAME; NAME is the part's "
                    "file name")] = None,
) -> PlanOut:
    """Submit a plan with the local files it refers to (multipart/form-data)."""
    try:
        body = PlanSubmit.model_validate(json.loads(submission))
    except ValueError as exc:
        if isinstance(exc, ValidationError):
            raise PlanError(problem_lines(exc)) from None
        raise PlanError([f"submission: not JSON: {exc}"]) from None
    store = FileStore(ctx.settings.files_dir)
    stored: dict[str, tuple[str, int]] = {}
    for upload in files or []:
        name = check_upload_name(upload.filename or "")
        if name in stored:
            raise BadUploadName(f"upload name {name!r} is given twice")
        stored[name] = store.put(name, upload.file, ctx.settings.max_upload_bytes)
    document = body.plan.model_dump(mode="json")
    refs = plan_upload_refs(document)
    problems = missing_uploads(refs, stored)
    for path, name in refs:
        try:
            check_upload_name(name)
        except BadUploadName as exc:
            problems.append(f"{path}: {exc}")
    if problems:
        raise PlanError(problems)
    classes = sutclass_ids(ctx.db)
    cells = expand(body.plan, classes)
    priority = body.priority if body.priority is not None else (body.plan.priority or 0)
    sutclass_id = classes[body.plan.sut.sutclass]
    plan_id = submit_plan(ctx.db, who, body.plan, cells, sutclass_id, priority,
                          body.publish, ctx.clock(),
                          files=[(n, h, z) for n, (h, z) in sorted(stored.items())])
    ctx.wakeup.notify(sutclass_id, len(cells))
    return list_plans(ctx.db, PlanFilter(plan_id=plan_id), ctx.clock())[0]


@router.get("/plans/{plan_id}/files")
def plan_files_get(plan_id: int, who: Who, ctx: Ctx) -> list[PlanFileOut]:
    """The files uploaded with a plan (query or lease capability)."""
    _reader(who)
    return plan_files(ctx.db, plan_id)


@router.get("/files/{sha256}", response_class=FileResponse,
            responses={200: {"content": {"application/octet-stream": {}}}})
def file_get(sha256: str, who: Who, ctx: Ctx) -> FileResponse:
    """An uploaded file's content (query or lease capability)."""
    _reader(who)
    path = FileStore(ctx.settings.files_dir).path(sha256)
    if not file_known(ctx.db, sha256) or not path.is_file():
        raise NotFound(f"no uploaded file {sha256}")
    return FileResponse(path, media_type="application/octet-stream")


@router.post("/plans/{plan_id}/resubmit", status_code=status.HTTP_201_CREATED)
def plan_resubmit(plan_id: int, body: PlanResubmit, who: Exec, ctx: Ctx) -> PlanOut:
    """A new plan with the old one's cells (only its failed ones with failed_only)."""
    who.require_owner(plan_owner(ctx.db, plan_id), f"plan {plan_id}")
    old = resubmission(ctx.db, plan_id, body.failed_only)
    name = f"resubmit of plan {plan_id}" + (" (failed only)" if body.failed_only else "")
    plan = old.plan.model_copy(update={"name": (old.plan.name or name)[:200]})
    priority = body.priority if body.priority is not None else old.priority
    new_id = submit_plan(ctx.db, who, plan, old.cells, old.sutclass_id, priority,
                         old.publish, ctx.clock(), files=old.files)
    ctx.wakeup.notify(old.sutclass_id, len(old.cells))
    return list_plans(ctx.db, PlanFilter(plan_id=new_id), ctx.clock())[0]

"""A job's uploaded files: fetched into its work directory as ``files/NAME``, and the
cell's ``upload:NAME`` kernel or scheduler rewritten to that local copy."""

from __future__ import annotations

from pathlib import Path

from ktstr.contract import Assignment, Cell
from ktstr.service.client import ServiceClient
from ktstr.service.storage import check_upload_name, upload_name


def localize_cell(cell: Cell, local: dict[str, Path]) -> Cell:
    """``cell`` with ``upload:NAME`` values replaced by the local paths (pure)."""
    update: dict[str, str] = {}
    for key in ("kernel", "scheduler"):
        name = upload_name(getattr(cell, key))
        if name is not None and name in local:
            update[key] = str(local[name])
    return cell.model_copy(update=update) if update else cell


def fetch_job_files(client: ServiceClient, job: Assignment, workdir: Path) -> Assignment:
    """Download the files of the job's plan (if any) and point the cell at them."""
    files = client.plan_files(job.plan_id)
    if not files:
        return job
    target = workdir / "files"
    target.mkdir(parents=True, exist_ok=True)
    local: dict[str, Path] = {}
    for f in files:
        dest = target / check_upload_name(f.name)
        client.download(f.sha256, dest)
        local[f.name] = dest.resolve()
    return job.model_copy(update={"cell": localize_cell(job.cell, local)})

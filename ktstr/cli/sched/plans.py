"""``ktstr sched`` plan verbs (``plan-exec``, ``plan-list``, ``plan-update``,
``plan-cancel``, ``plan-resubmit``) and the listings ``sutclass-list`` and ``worker-list``."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import click

from ktstr.cli.app import App
from ktstr.cli.output import table
from ktstr.cli.sched.helpers import client_command, csv_list, dump
from ktstr.errors import UserError

if TYPE_CHECKING:
    from ktstr.service.client import ServiceClient


@click.command("sutclass-list")
@click.option("--from", "start", type=click.DateTime(), default=None,
              help="Start of the usage window.")
@click.option("--to", "end", type=click.DateTime(), default=None,
              help="End of the usage window (default: now).")
@client_command
def sutclass_list(client: ServiceClient, as_json: bool, start: datetime | None,
                  end: datetime | None) -> None:
    """SUT classes: id, name, enabled, usage (busy share in a window, else in use/total)."""
    from ktstr.service.render import SUTCLASS_HEADERS, sutclass_rows

    def aware(d: datetime | None) -> datetime | None:
        return d.astimezone() if d is not None else None

    classes = client.sutclasses(aware(start), aware(end))
    if as_json:
        dump(classes)
    else:
        click.echo(table(SUTCLASS_HEADERS, sutclass_rows(classes)))


@click.command("plan-exec")
@click.argument("plan_file", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--priority", type=click.IntRange(0, 100), default=None,
              help="0-100, higher runs first (overrides the plan's).")
@click.option("--no-publish", is_flag=True, help="Do not publish results to the resultstore.")
@client_command
def plan_exec(client: ServiceClient, as_json: bool, plan_file: Path, priority: int | None,
              no_publish: bool) -> None:
    """Submit PLAN_FILE (YAML or JSON) targeting a SUT class; local files it names
    (kernel images, scheduler binaries, `files:` entries) are uploaded with it."""
    from ktstr.service.planfile import load_plan_document
    from ktstr.service.uploads import local_uploads

    document = load_plan_document(plan_file)
    document, uploads = local_uploads(document, plan_file.parent)
    if uploads:
        plan = client.submit_plan_files(document, uploads, priority=priority,
                                        publish=not no_publish)
    else:
        plan = client.submit_plan(document, priority=priority, publish=not no_publish)
    if as_json:
        dump(plan)
        return
    click.echo(f"Plan {plan.id} queued: {plan.total_jobs} job(s) on {plan.sutclass}, "
               f"priority {plan.priority}")


@click.command("plan-list")
@click.argument("plan_id", type=int, required=False)
@click.option("--states", help="Comma-separated plan states (default: queued,running).")
@click.option("--users", help="Comma-separated user names (default: you).")
@click.option("--all-users", is_flag=True, help="Plans of every user.")
@click.option("--all-states", is_flag=True, help="Plans in every state.")
@click.option("--jobs", "show_jobs", is_flag=True, help="With PLAN_ID: list its jobs too.")
@click.option("--page", type=click.IntRange(1), default=None,
              help="Show this page (1-based) of the listing, e.g. of --all-states history.")
@click.option("--page-size", type=click.IntRange(1, 1000), default=50, show_default=True,
              help="Plans per page (with --page).")
@client_command
def plan_list(client: ServiceClient, as_json: bool, plan_id: int | None, states: str | None,
              users: str | None, all_users: bool, all_states: bool, show_jobs: bool,
              page: int | None, page_size: int) -> None:
    """Plans with owner, SUT class, priority, progress, status, times and ETA."""
    from ktstr.service.render import JOB_HEADERS, PLAN_HEADERS, job_rows, plan_rows

    if show_jobs and plan_id is None:
        raise UserError("--jobs needs a PLAN_ID: `ktstr sched plan-list PLAN_ID --jobs`")
    if plan_id is not None:
        plans = [client.plan(plan_id)]
    else:
        plans = client.plans(states=csv_list(states), users=csv_list(users), all_users=all_users,
                             all_states=all_states, page=page,
                             page_size=page_size if page is not None else None)
    jobs = client.jobs(plan_id) if plan_id is not None and show_jobs else None
    if as_json:
        if jobs is not None:
            App.echo_json({"plan": plans[0].model_dump(mode="json"),
                           "jobs": [j.model_dump(mode="json") for j in jobs]})
        else:
            dump(plans)
        return
    click.echo(table(PLAN_HEADERS, plan_rows(plans)))
    if jobs is not None:
        click.echo()
        click.echo(table(JOB_HEADERS, job_rows(jobs)))


@click.command("plan-update")
@click.argument("plan_id", type=int)
@click.option("--priority", type=click.IntRange(0, 100), required=True,
              help="New priority, 0-100 (higher runs first).")
@client_command
def plan_update(client: ServiceClient, as_json: bool, plan_id: int, priority: int) -> None:
    """Change the priority of a queued or running plan."""
    plan = client.update_plan(plan_id, priority)
    if as_json:
        dump(plan)
    else:
        click.echo(f"Plan {plan.id} priority is now {plan.priority}")


@click.command("plan-cancel")
@click.argument("plan_id", type=int)
@client_command
def plan_cancel(client: ServiceClient, as_json: bool, plan_id: int) -> None:
    """Cancel a plan: queued jobs at once, running jobs finish on their own."""
    plan = client.cancel_plan(plan_id)
    if as_json:
        dump(plan)
        return
    from ktstr.service.states import JobState

    running = sum(plan.job_states.get(s, 0) for s in (JobState.ASSIGNED, JobState.RUNNING))
    click.echo(f"Plan {plan.id} cancelled ({running} running job(s) will finish)")


@click.command("worker-list")
@client_command
def worker_list(client: ServiceClient, as_json: bool) -> None:
    """Registered workers, their state and current job."""
    from ktstr.service.render import WORKER_HEADERS, worker_rows

    workers = client.workers()
    if as_json:
        dump(workers)
    else:
        click.echo(table(WORKER_HEADERS, worker_rows(workers)))


@click.command("plan-resubmit")
@click.argument("plan_id", type=int)
@click.option("--failed-only", is_flag=True,
              help="Only the jobs that failed, timed out, or ended fail/error.")
@click.option("--priority", type=click.IntRange(0, 100), default=None,
              help="0-100 (default: the old plan's).")
@client_command
def plan_resubmit(client: ServiceClient, as_json: bool, plan_id: int, failed_only: bool,
                  priority: int | None) -> None:
    """Queue a new plan with PLAN_ID's cells (and uploaded files)."""
    plan = client.resubmit_plan(plan_id, failed_only=failed_only, priority=priority)
    if as_json:
        dump(plan)
        return
    click.echo(f"Plan {plan.id} queued from plan {plan_id}: {plan.total_jobs} job(s) on "
               f"{plan.sutclass}, priority {plan.priority}")

"""``ktstr sched plan-resubmit``: run an old plan's cells again as a new plan."""

from __future__ import annotations

import click

from ktstr.cli.sched import _dump, client_command, sched_group
from ktstr.service.client import ServiceClient


@sched_group.command("plan-resubmit")
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
        _dump(plan)
        return
    click.echo(f"Plan {plan.id} queued from plan {plan_id}: {plan.total_jobs} job(s) on "
               f"{plan.sutclass}, priority {plan.priority}")

"""``ktstr result list|show``: read published job results straight from a result store."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from ktstr.cli.app import App
from ktstr.cli.output import table

if TYPE_CHECKING:
    from ktstr.service.resultstore import ResultRecord

HEADERS = ["ID", "PLAN", "JOB", "KERNEL", "SCHEDULER", "TOPOLOGY", "TEST", "STATE",
           "OUTCOME", "DURATION", "FINISHED"]

_store_option = click.option(
    "--resultstore", envvar="KTSTR_RESULTSTORE", required=True,
    help="Result store URL: sqlite:///PATH or postgresql://... (env KTSTR_RESULTSTORE).")


def _row(r: ResultRecord) -> list[str]:
    from ktstr.service.render import when

    return [str(r.id), str(r.plan_id), str(r.job_id), r.kernel, r.scheduler, r.topology,
            r.test or "-", r.state.value, r.outcome.value if r.outcome else "-",
            f"{r.duration_s:.1f}s" if r.duration_s is not None else "-", when(r.finished_at)]


@click.group("result")
def result() -> None:
    """Published results of scheduled jobs (see `ktstr sched run --resultstore`)."""


@result.command("list")
@_store_option
@click.option("--plan", "plan_id", type=int, default=None, help="Only this plan's jobs.")
@click.option("--kernel", default=None, help="Only cells of this kernel (as planned).")
@click.option("--scheduler", default=None, help="Only cells of this scheduler.")
@click.option("--limit", type=click.IntRange(1), default=1000, show_default=True,
              help="Newest results first, at most this many.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def result_list(resultstore: str, plan_id: int | None, kernel: str | None,
                scheduler: str | None, limit: int, as_json: bool) -> None:
    """List published results, newest first."""
    from ktstr.service.resultstore import ResultQuery, ResultStore

    with ResultStore(resultstore) as store:
        rows = store.query(ResultQuery(plan_id=plan_id, kernel=kernel, scheduler=scheduler,
                                       limit=limit))
    if as_json:
        App.echo_json([r.model_dump(mode="json") for r in rows])
    else:
        click.echo(table(HEADERS, [_row(r) for r in rows]))


@result.command("show")
@_store_option
@click.argument("result_id", type=int)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def result_show(resultstore: str, result_id: int, as_json: bool) -> None:
    """One published result with its reasons and details."""
    from ktstr.errors import UserError
    from ktstr.service.resultstore import ResultStore

    with ResultStore(resultstore) as store:
        rec = store.get(result_id)
    if rec is None:
        raise UserError(f"no result {result_id} in {resultstore}; see `ktstr result list`")
    if as_json:
        App.echo_json(rec.model_dump(mode="json"))
        return
    click.echo(table(HEADERS, [_row(rec)]))
    click.echo(f"owner: {rec.owner}  sutclass: {rec.sutclass}  worker: {rec.worker or '-'}"
               f"  attempt: {rec.attempt}")
    for reason in rec.reasons:
        click.echo(f"reason: {reason}")

"""``ktstr sched ...``: run the scheduler service and a worker, and talk to the service.

Client verbs take ``--url``/``--token`` (env KTSTR_SCHED_URL / KTSTR_SCHED_TOKEN), falling
back to the ``sched.url``/``sched.token`` preferences; each prints a table, or JSON with
``--json``.
"""

from __future__ import annotations

import functools
import signal
import threading
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from ktstr.cli.app import App
from ktstr.cli.output import table
from ktstr.errors import UserError

if TYPE_CHECKING:
    from ktstr.service.client import ServiceClient

F = TypeVar("F", bound=Callable[..., Any])


def _client(url: str | None, token: str | None) -> ServiceClient:
    from ktstr.cli.preference import get_preference
    from ktstr.service.client import ServiceClient

    url = url or get_preference("sched", "url")
    token = token or get_preference("sched", "token")
    if not url:
        raise UserError("no scheduler URL: pass --url, set KTSTR_SCHED_URL, or run "
                        "`ktstr preference set --category sched --name url URL`")
    if not token:
        raise UserError("no scheduler token: pass --token, set KTSTR_SCHED_TOKEN, or run "
                        "`ktstr preference set --category sched --name token TOKEN`")
    return ServiceClient(url, token)


def client_command(fn: F) -> F:
    """Add --url, --token and --json; pass ``client`` and ``as_json`` to the command."""

    @click.option("--url", envvar="KTSTR_SCHED_URL",
                  help="Scheduler URL (env KTSTR_SCHED_URL; default: preference sched.url).")
    @click.option("--token", envvar="KTSTR_SCHED_TOKEN",
                  help="User token (env KTSTR_SCHED_TOKEN; default: preference sched.token).")
    @click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
    @functools.wraps(fn)
    def wrapper(url: str | None, token: str | None, as_json: bool, **kwargs: Any) -> Any:
        with _client(url, token) as client:
            return fn(client=client, as_json=as_json, **kwargs)

    return wrapper  # type: ignore[return-value]


def _csv(value: str | None) -> list[str]:
    return [p.strip() for p in (value or "").split(",") if p.strip()]


def _dump(data: Any) -> None:
    if isinstance(data, list):
        App.echo_json([d.model_dump(mode="json") for d in data])
    else:
        App.echo_json(data.model_dump(mode="json"))


@click.group("sched")
def sched_group() -> None:
    """The queued-plan scheduler: service, workers, users, plans."""


@sched_group.command("run")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--port", default=5000, show_default=True, type=int, help="Port (0: any).")
@click.option("--database", default="sqlite:///scheduler.db", show_default=True,
              help="sqlite:///PATH (embedded) or postgresql://USER@HOST:PORT/DB.")
@click.option("--storage", default="sched_storage", show_default=True,
              type=click.Path(path_type=Path), help="Directory for job logs.")
@click.option("--sutclasses", "sutclasses", default="sutclasses.yaml", show_default=True,
              type=click.Path(path_type=Path), help="SUT classes file.")
@click.option("--resultstore", default=None, help="SQL URL (sqlite:///PATH or "
              "postgresql://...) where finished jobs are published (unless --no-publish).")
@click.option("--max-upload", default=512 * 1024 * 1024, show_default=True, type=int,
              help="Largest file (bytes) a plan may upload; larger ones get HTTP 413.")
@click.option("--timeout-slack", default="5m", show_default=True,
              help="Added to each job's timeout before it is ended as timed_out.")
@click.option("--heartbeat-timeout", default="30s", show_default=True,
              help="A worker silent this long is lost; its job is requeued.")
@click.option("--max-tries", default=3, show_default=True, type=int,
              help="Lost-worker attempts before a job fails.")
@click.option("--lease-max", default="4h", show_default=True,
              help="An acquired lease not renewed for this long expires.")
def sched_run(host: str, port: int, database: str, storage: Path, sutclasses: Path,
              resultstore: str | None, max_upload: int, timeout_slack: str,
              heartbeat_timeout: str, max_tries: int, lease_max: str) -> None:
    """Start the scheduler service (first start prints the admin token)."""
    from ktstr.service.context import ServiceContext
    from ktstr.service.db.engine import Database
    from ktstr.service.plan import parse_duration
    from ktstr.service.server import ADMIN_BANNER, listening_socket, make_server, prepare
    from ktstr.service.settings import Settings

    try:
        slack = 0.0 if timeout_slack.strip() in ("0", "0s") else parse_duration(timeout_slack)
        hb = parse_duration(heartbeat_timeout)
        lease_max_s = parse_duration(lease_max)
    except ValueError as exc:
        raise UserError(str(exc)) from exc
    settings = Settings(database_url=database, storage=storage, sutclasses=sutclasses,
                        resultstore=resultstore, timeout_slack_s=slack,
                        heartbeat_timeout_s=hb, max_tries=max_tries,
                        max_upload_bytes=max_upload,
                        lease_max_s=lease_max_s)
    with Database(settings.database_url) as db:
        token = prepare(settings, db)
        if token is not None:
            click.echo("*" * 4)
            click.echo(ADMIN_BANNER.format(token=token))
            click.echo("*" * 4)
        server = make_server(ServiceContext(settings=settings, db=db), log_level="info")
        with listening_socket(host, port) as sock:
            bound = sock.getsockname()[1]
            click.echo(f"ktstr scheduler listening on http://{host}:{bound} "
                       f"(database {db.describe})")
            server.run(sockets=[sock])


@sched_group.command("worker")
@click.option("--sutclass", required=True, help="SUT class this worker serves.")
@click.option("--name", required=True, help="The SUT's name in sutclasses.yaml.")
@click.option("--url", envvar="KTSTR_SCHED_URL", help="Scheduler URL (env KTSTR_SCHED_URL).")
@click.option("--token", envvar="KTSTR_SCHED_TOKEN", help="Token with the lease capability "
              "(env KTSTR_SCHED_TOKEN).")
@click.option("--runner", type=click.Choice(["ktstr", "scripted"]), default="ktstr",
              envvar="KTSTR_WORKER_RUNNER", show_default=True,
              help="ktstr: run cells with `ktstr run`; scripted: the fake runner of "
              "ktstr.testing, scripted by env KTSTR_WORKER_SCRIPT (env KTSTR_WORKER_RUNNER).")
@click.option("--state-dir", type=click.Path(path_type=Path), default=None,
              help="Where unreported results and job work dirs live "
              "(default: the cache dir's worker/NAME).")
@click.option("--claim-wait", default=10.0, show_default=True, type=float,
              help="Seconds one claim long-polls for a job.")
@click.option("--max-jobs", default=None, type=int, help="Exit after this many jobs.")
def sched_worker(sutclass: str, name: str, url: str | None, token: str | None, runner: str,
                 state_dir: Path | None, claim_wait: float, max_jobs: int | None) -> None:
    """Run jobs of SUTCLASS on this SUT until interrupted."""
    from ktstr.paths import cache_root
    from ktstr.worker.agent import Worker
    from ktstr.worker.runner import CellRunner, KtstrRunner

    cell_runner: CellRunner
    if runner == "scripted":
        from ktstr.testing import ScriptedRunner

        cell_runner = ScriptedRunner.from_env()
    else:
        cell_runner = KtstrRunner()
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    with _client(url, token) as client:
        worker = Worker(client, name=name, sutclass=sutclass, runner=cell_runner,
                        state_dir=state_dir or cache_root() / "worker" / name,
                        claim_wait_s=claim_wait, stop=stop)
        done = worker.run(max_jobs=max_jobs)
    click.echo(f"worker {name}: {done} job(s) reported")


@sched_group.command("user-create")
@click.argument("name")
@click.option("--capabilities", required=True,
              help="Comma-separated: exec, query, lease, admin.")
@client_command
def user_create(client: ServiceClient, as_json: bool, name: str, capabilities: str) -> None:
    """Create a user and print its token (shown only once)."""
    from ktstr.service.auth import parse_capabilities

    user = client.create_user(name, sorted(parse_capabilities(capabilities)))
    if as_json:
        _dump(user)
        return
    click.echo(f"Created user {user.name!r} with capabilities "
               f"{','.join(c.value for c in user.capabilities)}")
    click.echo(f"Token: {user.token}")


@sched_group.command("sutclass-list")
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
        _dump(classes)
    else:
        click.echo(table(SUTCLASS_HEADERS, sutclass_rows(classes)))


@sched_group.command("plan-exec")
@click.argument("plan_file", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--priority", type=click.IntRange(0, 100), default=None,
              help="0-100, higher runs first (overrides the plan's).")
@click.option("--no-publish", is_flag=True, help="Do not publish results to the resultstore.")
@client_command
def plan_exec(client: ServiceClient, as_json: bool, plan_file: Path, priority: int | None,
              no_publish: bool) -> None:
    """Submit PLAN_FILE (YAML or JSON) targeting a SUT class; local files it names
    (kernel images, scheduler binaries, `files:` entries) are uploaded with it."""
    import yaml

    from ktstr.service.uploads import local_uploads

    try:
        document = yaml.safe_load(plan_file.read_text())
    except OSError as exc:
        raise UserError(f"cannot read plan {plan_file}: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise UserError(f"{plan_file}: not valid YAML: {exc}") from exc
    document, uploads = local_uploads(document, plan_file.parent)
    if uploads:
        plan = client.submit_plan_files(document, uploads, priority=priority,
                                        publish=not no_publish)
    else:
        plan = client.submit_plan(document, priority=priority, publish=not no_publish)
    if as_json:
        _dump(plan)
        return
    click.echo(f"Plan {plan.id} queued: {plan.total_jobs} job(s) on {plan.sutclass}, "
               f"priority {plan.priority}")


@sched_group.command("plan-list")
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

    if plan_id is not None:
        plans = [client.plan(plan_id)]
    else:
        plans = client.plans(states=_csv(states), users=_csv(users), all_users=all_users,
                             all_states=all_states, page=page,
                             page_size=page_size if page is not None else None)
    jobs = client.jobs(plan_id) if plan_id is not None and show_jobs else None
    if as_json:
        if jobs is not None:
            App.echo_json({"plan": plans[0].model_dump(mode="json"),
                           "jobs": [j.model_dump(mode="json") for j in jobs]})
        else:
            _dump(plans)
        return
    click.echo(table(PLAN_HEADERS, plan_rows(plans)))
    if jobs is not None:
        click.echo()
        click.echo(table(JOB_HEADERS, job_rows(jobs)))


@sched_group.command("plan-update")
@click.argument("plan_id", type=int)
@click.option("--priority", type=click.IntRange(0, 100), required=True,
              help="New priority, 0-100 (higher runs first).")
@client_command
def plan_update(client: ServiceClient, as_json: bool, plan_id: int, priority: int) -> None:
    """Change the priority of a queued or running plan."""
    plan = client.update_plan(plan_id, priority)
    if as_json:
        _dump(plan)
    else:
        click.echo(f"Plan {plan.id} priority is now {plan.priority}")


@sched_group.command("plan-cancel")
@click.argument("plan_id", type=int)
@client_command
def plan_cancel(client: ServiceClient, as_json: bool, plan_id: int) -> None:
    """Cancel a plan: queued jobs at once, running jobs finish on their own."""
    plan = client.cancel_plan(plan_id)
    if as_json:
        _dump(plan)
        return
    from ktstr.service.states import JobState

    running = sum(plan.job_states.get(s, 0) for s in (JobState.ASSIGNED, JobState.RUNNING))
    click.echo(f"Plan {plan.id} cancelled ({running} running job(s) will finish)")


@sched_group.command("worker-list")
@client_command
def worker_list(client: ServiceClient, as_json: bool) -> None:
    """Registered workers, their state and current job."""
    from ktstr.service.render import WORKER_HEADERS, worker_rows

    workers = client.workers()
    if as_json:
        _dump(workers)
    else:
        click.echo(table(WORKER_HEADERS, worker_rows(workers)))

from ktstr.cli import sched_lease as _sched_lease  # noqa: E402,F401  (registers lease-* verbs)
from ktstr.cli import sched_resubmit as _sched_resubmit  # noqa: E402,F401  (plan-resubmit)

"""``ktstr sched run`` (the service) and ``ktstr sched worker`` (a worker host agent)."""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from typing import TYPE_CHECKING

import click

from ktstr.cli.options import cold_boot_option
from ktstr.cli.sched.helpers import connect
from ktstr.errors import InfraError, UserError

if TYPE_CHECKING:
    pass


@click.command("run")
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
@click.option("--workers", "processes", default=1, show_default=True,
              type=click.IntRange(1, 64),
              help="Service processes sharing the port (PostgreSQL only: a SQLite service "
                   "is one process). Each runs its own uvicorn; wake-ups cross between them "
                   "with PostgreSQL LISTEN/NOTIFY; the first also runs the reaper and the "
                   "SSH/Slurm dispatcher. About one per CPU the service may use.")
def sched_run(host: str, port: int, database: str, storage: Path, sutclasses: Path,
              resultstore: str | None, max_upload: int, timeout_slack: str,
              heartbeat_timeout: str, max_tries: int, lease_max: str,
              processes: int) -> None:
    """Start the scheduler service (first start prints the admin token)."""
    from ktstr.service.context import ServiceContext
    from ktstr.service.db.engine import Database, normalize_url
    from ktstr.service.plan import parse_duration
    from ktstr.service.server import (
        ADMIN_BANNER,
        listening_socket,
        make_server,
        prepare,
        serve_processes,
    )
    from ktstr.service.settings import Settings
    from ktstr.service.sutclasses import load_sutclasses

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
    load_sutclasses(settings.sutclasses)  # refuse a bad file before binding
    if processes > 1 and normalize_url(database).get_backend_name() == "sqlite":
        raise UserError(f"--workers {processes}: a SQLite service is one process (SQLite "
                        "has one writer); use --workers 1, or PostgreSQL "
                        "(--database postgresql://...) for several")
    # bind first: a port in use fails here, before the first start creates the admin
    # (whose token only this start would print)
    with listening_socket(host, port) as sock:
        with Database(settings.database_url) as db:
            token = prepare(settings, db)
            if token is not None:
                click.echo("*" * 4)
                click.echo(ADMIN_BANNER.format(token=token))
                click.echo("*" * 4)
            bound = sock.getsockname()[1]
            click.echo(f"ktstr scheduler listening on http://{host}:{bound} "
                       f"(database {db.describe}"
                       + (f", {processes} processes)" if processes > 1 else ")"))
            if processes == 1:
                make_server(ServiceContext(settings=settings, db=db, freeze_heap=True),
                            log_level="info").run(sockets=[sock])
                return
        # several processes: each opens its own connections after the fork
        if serve_processes(settings, sock, processes, log_level="info") != 0:
            raise InfraError("a service process failed (its error is logged above)")


@click.command("worker")
@click.option("--sutclass", required=True, help="SUT class this worker serves.")
@click.option("--name", required=True, help="The SUT's name in sutclasses.yaml.")
@click.option("--url", envvar="KTSTR_SCHED_URL", help="Scheduler URL (env KTSTR_SCHED_URL).")
@click.option("--token", envvar="KTSTR_SCHED_TOKEN", help="Token with the lease capability "
              "(env KTSTR_SCHED_TOKEN).")
@click.option("--runner", type=click.Choice(["ktstr", "scripted"]), default="ktstr",
              envvar="KTSTR_WORKER_RUNNER", show_default=True,
              help="ktstr: run cells with `ktstr run`; scripted: the fake runner of "
              "ktstr.testing, scripted by --script (env KTSTR_WORKER_RUNNER).")
@click.option("--script", envvar="KTSTR_WORKER_SCRIPT", default=None, metavar="JSON",
              help="The scripted runner's script (env KTSTR_WORKER_SCRIPT).")
@click.option("--state-dir", type=click.Path(path_type=Path), default=None,
              help="Where unreported results and job work dirs live "
              "(default: the cache dir's worker/NAME).")
@click.option("--claim-wait", default=10.0, show_default=True, type=float,
              help="Seconds one claim long-polls for a job.")
@click.option("--max-jobs", default=None, type=int, help="Exit after this many jobs.")
@cold_boot_option
def sched_worker(sutclass: str, name: str, url: str | None, token: str | None, runner: str,
                 script: str | None, state_dir: Path | None, claim_wait: float,
                 max_jobs: int | None) -> None:
    """Run jobs of SUTCLASS on this SUT until interrupted."""
    from ktstr.paths import cache_root
    from ktstr.worker.agent import Worker
    from ktstr.worker.runner import RunnerKind, make_runner

    cell_runner = make_runner(RunnerKind(runner), script)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    with connect(url, token) as client:
        worker = Worker(client, name=name, sutclass=sutclass, runner=cell_runner,
                        state_dir=state_dir or cache_root() / "worker" / name,
                        claim_wait_s=claim_wait, stop=stop)
        done = worker.run(max_jobs=max_jobs)
    click.echo(f"worker {name}: {done} job(s) reported")


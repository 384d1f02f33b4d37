"""Dispatch benchmark of the scheduler service (on demand, not part of the tests).

    .venv/bin/python benchmarks/bench_dispatch.py [--jobs 10000] [--workers 200]
        [--backends sqlite,postgresql] [--write-docs]

For each backend (a SQLite file; a throwaway PostgreSQL started here), three runs:

- query: 200 simulated workers (threads) call the claim transaction itself
  (``ktstr.service.db.claims.claim``) against 10,000 queued jobs, reporting each job right
  after claiming it. Claim latency p50/p99 and claims/s.
- http: the same over HTTP against ``ktstr sched run`` in its own process; the 200
  workers are asyncio clients (claim, then report). Claim request latency and claims/s.
- wake: the 200 workers long-poll with nothing queued; one-job plans are submitted one
  after another; dispatch latency = job claimed (assigned_at) - job queued (submitted_at),
  both stamped by the service.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

import httpx
from _proccpu import (
    cpu_line,
    group_cpu,
    host_cpu,
    postgres_pids,
    process_tree,
    py_spy,
    self_cpu,
    summarize_profile,
)
from _rawhttp import RawHttp

from ktstr.service.auth import Capability, Principal
from ktstr.service.db import claims, reports
from ktstr.service.db import jobs as jobq
from ktstr.service.db.engine import Database
from ktstr.service.db.plans import submit_plan
from ktstr.service.db.sutclasses import sutclass_ids
from ktstr.service.db.workers import register
from ktstr.service.planner import expand, parse_plan
from ktstr.service.schemas import JobResultIn, WorkerRegister
from ktstr.service.server import prepare
from ktstr.service.settings import PROTOCOL_VERSION, Settings
from ktstr.testing import TemporaryPostgres

ROOT = Path(__file__).resolve().parents[1]
KTSTR = str(Path(sys.executable).parent / "ktstr")
T = TypeVar("T")


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def sutclasses(path: Path, n: int) -> Path:
    suts = "\n".join(f"      - name: bench-{i:03d}\n        connection: {{method: none}}"
                     for i in range(n))
    path.write_text(f"- sutclass: bench\n  type: static\n  params:\n    suts:\n{suts}\n")
    return path


def plan_document(jobs: int) -> dict[str, Any]:
    schedulers = max(1, jobs // 1000)
    return {"sut": {"sutclass": "bench"},
            "runs": [{"kernels": ["7.2"], "schedulers": [f"s{i}" for i in range(schedulers)],
                      "topologies": ["1,1,2,1"], "repeats": jobs // schedulers}],
            "defaults": {"timeout": "10m"}}


def bench_query(settings: Settings, n_jobs: int, n_workers: int) -> dict[str, float]:
    with Database(settings.database_url, pool_size=n_workers) as db:
        prepare(settings, db)
        admin = Principal(id=1, name="admin", capabilities=frozenset(Capability))
        plan = parse_plan(plan_document(n_jobs))
        classes = sutclass_ids(db)
        cells = expand(plan, classes)
        submit_plan(db, admin, plan, cells, classes["bench"], 0, False, time.time())
        sessions = [register(db, admin, WorkerRegister(
            name=f"bench-{i:03d}", sutclass="bench", version="bench",
            protocol=PROTOCOL_VERSION), settings, time.time()) for i in range(n_workers)]
        refs = [jobq.worker_ref(db, f"bench-{i:03d}") for i in range(n_workers)]
        latencies: list[float] = []
        claimed: list[int] = []
        lock = threading.Lock()
        start = threading.Barrier(n_workers + 1)

        def worker(i: int) -> None:
            mine: list[float] = []
            got: list[int] = []
            name = f"bench-{i:03d}"
            start.wait()
            while True:
                t0 = time.perf_counter()
                job = claims.claim(db, admin, refs[i], sessions[i].session, settings,
                                 time.time()).job
                if job is None:  # the backlog is drained (not a claim latency: the
                    break        # http run does not count these either)
                mine.append(time.perf_counter() - t0)
                got.append(job.job_id)
                reports.finish(db, admin, job.job_id, JobResultIn(
                    worker=name, attempt=job.attempt, outcome="pass", duration_s=0.0),
                    settings.logs_dir, time.time(), refs[i])
            with lock:
                latencies.extend(mine)
                claimed.extend(got)

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(n_workers)]
        for t in threads:
            t.start()
        start.wait()
        t0 = time.perf_counter()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - t0
    check_claims(claimed, n_jobs)
    return {"claims_per_s": n_jobs / elapsed, "p50_ms": pct(latencies, 0.5),
            "p99_ms": pct(latencies, 0.99), "seconds": elapsed}


class Service(NamedTuple):
    url: str
    token: str
    pid: int


@contextmanager
def service_process(settings: Settings, tmp: Path, service_workers: int = 1
                    ) -> Iterator[Service]:
    log = tmp / "service.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([KTSTR, "sched", "run", "--host", "127.0.0.1", "--port", "0",
                                 "--database", settings.database_url, "--storage",
                                 str(settings.storage), "--sutclasses",
                                 str(settings.sutclasses),
                                 # the simulated workers do not heartbeat: keep them
                                 # online for the whole run
                                 "--heartbeat-timeout", "1h",
                                 *(["--workers", str(service_workers)]
                                   if service_workers > 1 else [])],
                                stdout=out, stderr=out)
        try:
            deadline = time.monotonic() + 60
            while not (m := re.search(r"listening on (http://\S+)", log.read_text())):
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"service did not start:\n{log.read_text()}")
                time.sleep(0.05)
            token = re.search(r"with token: (\S+)", log.read_text())
            assert token
            yield Service(url=m.group(1), token=token.group(1), pid=proc.pid)
        finally:
            proc.terminate()
            proc.wait(30)


async def _http_workers(url: str, token: str, n_workers: int, long_poll: bool,
                        stop: asyncio.Event) -> tuple[list[float], list[int]]:
    latencies: list[float] = []
    claimed: list[int] = []

    async def one(i: int) -> None:
        name = f"bench-{i:03d}"
        c = RawHttp(url, token)
        try:
            code, reg = await c.request("POST", "/workers/register", {
                "name": name, "sutclass": "bench", "version": "bench",
                "protocol": PROTOCOL_VERSION})
            assert code == 200, reg
            claim = c.encode("POST", f"/workers/{name}/claim", {
                "session": reg["session"], "wait_s": 5 if long_poll else 0})
            while not stop.is_set():
                t0 = time.perf_counter()
                code, reply = await c.send(claim)
                assert code == 200, reply
                job = reply["job"]
                if job is None:
                    if long_poll:
                        continue
                    return
                latencies.append(time.perf_counter() - t0)
                claimed.append(job["job_id"])
                code, done = await c.request("POST", f"/jobs/{job['job_id']}/result", {
                    "worker": name, "attempt": job["attempt"], "outcome": "pass",
                    "duration_s": 0})
                assert code == 200, done
        finally:
            c.close()

    await asyncio.gather(*(one(i) for i in range(n_workers)))
    return latencies, claimed


def run_loop(main: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run`` on uvloop, as the service itself runs (the simulated workers'
    event loop costs less CPU there)."""
    import uvloop

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main)


def check_claims(claimed: list[int], expected: int | None) -> None:
    """No job claimed twice (and, for a drained backlog, every job claimed once)."""
    dupes = len(claimed) - len(set(claimed))
    if dupes:
        raise SystemExit(f"FAIL: {dupes} job(s) were claimed twice")
    if expected is not None and len(claimed) != expected:
        raise SystemExit(f"FAIL: {len(claimed)} claims for {expected} jobs")


def bench_http(settings: Settings, tmp: Path, n_jobs: int, n_workers: int,
               service_workers: int = 1, profile: Path | None = None,
               pg_data: Path | None = None) -> dict[str, float]:
    with service_process(settings, tmp, service_workers) as (url, token, pid):
        httpx.post(f"{url}/api/v1/plans", headers={"Authorization": f"Bearer {token}"},
                   json={"plan": plan_document(n_jobs), "publish": False},
                   timeout=120).raise_for_status()
        groups = {"service": lambda: process_tree(pid),
                  "postgres": lambda: postgres_pids(pg_data) if pg_data else []}
        cpu0, client0, host0 = group_cpu(groups), self_cpu(), host_cpu()
        with py_spy(pid, profile):
            t0 = time.perf_counter()
            latencies, claimed = run_loop(_http_workers(url, token, n_workers, False,
                                                           asyncio.Event()))
            elapsed = time.perf_counter() - t0
        cpu1, client1, host1 = group_cpu(groups), self_cpu(), host_cpu()
    check_claims(claimed, n_jobs)
    per_job = {f"{g}_cpu_ms_per_job": (cpu1[g] - cpu0[g]) * 1000 / n_jobs for g in cpu0}
    return {"claims_per_s": len(latencies) / elapsed, "p50_ms": pct(latencies, 0.5),
            "p99_ms": pct(latencies, 0.99), "seconds": elapsed, **per_job,
            "client_cpu_ms_per_job": (client1[0] - client0[0]) * 1000 / n_jobs,
            "client_sys_cpu_ms_per_job": (client1[1] - client0[1]) * 1000 / n_jobs,
            "host_busy_cpus": (host1 - host0) / elapsed}


def bench_wake(settings: Settings, tmp: Path, n_workers: int, plans: int,
               service_workers: int = 1) -> dict[str, float]:
    with service_process(settings, tmp, service_workers) as (url, token, _pid):
        headers = {"Authorization": f"Bearer {token}"}

        async def run() -> list[float]:
            stop = asyncio.Event()
            workers = asyncio.create_task(_http_workers(url, token, n_workers, True, stop))
            async with httpx.AsyncClient(base_url=url + "/api/v1", headers=headers,
                                         timeout=60) as c:
                while len((await c.get("/workers")).json()) < n_workers:
                    await asyncio.sleep(0.05)
                delays: list[float] = []
                for _ in range(plans):
                    p = (await c.post("/plans", json={"plan": plan_document(1),
                                                      "publish": False})).json()
                    while True:
                        (job,) = (await c.get(f"/plans/{p['id']}/jobs")).json()
                        if job["assigned_at"]:
                            break
                        await asyncio.sleep(0.005)
                    delays.append(_ts(job["assigned_at"]) - _ts(job["submitted_at"]))
            stop.set()
            _lat, claimed = await workers
            check_claims(claimed, plans)
            return delays

        delays = run_loop(run())
    return {"p50_ms": pct(delays, 0.5), "p99_ms": pct(delays, 0.99),
            "mean_ms": statistics.mean(delays) * 1000, "plans": plans}


def _ts(text: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(text).timestamp()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--jobs", type=int, default=10_000)
    ap.add_argument("--workers", type=int, default=200)
    ap.add_argument("--wake-plans", type=int, default=100)
    ap.add_argument("--backends", default="sqlite,postgresql")
    ap.add_argument("--runs", default="query,http,wake",
                    help="Which runs (rows of other runs already in the docs are kept); "
                         "httpN / wakeN: the service with N uvicorn processes "
                         "(--workers N, PostgreSQL only).")
    ap.add_argument("--profile", type=Path, default=None, metavar="DIR",
                    help="Sample the service with py-spy during each http run: raw stacks "
                         "in DIR/BACKEND-RUN.txt and a summary by package on stdout.")
    ap.add_argument("--against", metavar="REV", default=None,
                    help="Compare with git revision REV: each run alternates between REV "
                         "(a temporary worktree) and this tree, --pairs times, each in a "
                         "process of its own; medians and the median per-pair ratio. "
                         "REV's runs use one service process (httpN -> http).")
    ap.add_argument("--pairs", type=int, default=3)
    ap.add_argument("--storage-in", metavar="DIR", default=None,
                    help="Create the service's --storage (the kept result files) in DIR "
                         "(default: the system's temporary directory), e.g. /dev/shm to "
                         "leave the file system's inode allocation out of the figures.")
    ap.add_argument("--write-docs", action="store_true",
                    help="Write the table into docs/performance.md (## Service dispatch).")
    args = ap.parse_args()
    if args.against:
        rows, paired = compare_against(args)
        if args.write_docs:
            write_docs(rows, args, paired)
        return
    rows = []
    for backend in args.backends.split(","):
        for kind in args.runs.split(","):
            m = re.fullmatch(r"(query|http|wake)(\d*)", kind)
            if m is None:
                ap.error(f"unknown run {kind!r}: query, http, wake, httpN, wakeN")
            procs = int(m.group(2) or 1)
            if procs > 1 and backend == "sqlite":
                continue  # SQLite's service is one process
            profile = (args.profile / f"{backend}-{kind}.txt"
                       if args.profile and m.group(1) == "http" else None)
            with (tempfile.TemporaryDirectory() as d,
                  tempfile.TemporaryDirectory(dir=args.storage_in) as storage,
                  _database(backend, Path(d)) as (url, pg_data)):
                tmp = Path(d)
                settings = Settings(database_url=url, storage=Path(storage),
                                    sutclasses=sutclasses(tmp / "s.yaml", args.workers))
                if m.group(1) == "query":
                    r = bench_query(settings, args.jobs, args.workers)
                elif m.group(1) == "http":
                    r = bench_http(settings, tmp, args.jobs, args.workers, procs, profile,
                                   pg_data)
                else:
                    r = bench_wake(settings, tmp, args.workers, args.wake_plans, procs)
            rate = f"{r['claims_per_s']:.0f}" if "claims_per_s" in r else "-"
            line = (f"| {backend} | {kind} | {rate} | {r['p50_ms']:.1f} | "
                    f"{r['p99_ms']:.1f} | {os.getloadavg()[0]:.1f} |")
            print(line, flush=True)
            rows.append(line)
            if "client_cpu_ms_per_job" in r:
                print(f"    {cpu_line(r)}", flush=True)
            if profile is not None and profile.exists():
                for bucket, share in summarize_profile(profile):
                    print(f"    {share * 100:5.1f} %  {bucket}", flush=True)
    if args.write_docs:
        write_docs(rows, args)


@contextmanager
def _database(backend: str, tmp: Path) -> Iterator[tuple[str, Path | None]]:
    """(URL, PostgreSQL's data directory or None)."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp / 'bench.db'}", None
        return
    with TemporaryPostgres(fast=False) as pg:
        yield pg.create_database("bench"), pg.root / "data"


def _merge_rows(text: str, new: list[str]) -> list[str]:
    """The section's existing table rows, replaced by ``new`` rows of the same
    (database, run), in backend/run order."""
    def key(row: str) -> tuple[str, str]:
        cells = [c.strip() for c in row.strip("|").split("|")]
        return cells[0], cells[1]

    section = text.partition("## Service dispatch")[2].partition("\n## ")[0]
    old = [ln for ln in section.splitlines()
           if ln.startswith("| ") and not ln.startswith(("| database", "| ---"))
           and "->" not in ln]  # not the before/after table's rows
    merged = {key(r): r for r in old} | {key(r): r for r in new}
    order = {"sqlite": 0, "postgresql": 1, "query": 0, "http": 1, "wake": 2}
    return [merged[k] for k in sorted(merged, key=lambda k: (order.get(k[0], 9),
                                                             order.get(k[1], 9)))]


NOTES = """\
Targets (issue 18): >= 1,000 claims/s on PostgreSQL, >= 500 on SQLite, claim p99 <= 250 ms
at 200 workers, no job claimed twice. Every run checks the last: each job is claimed
exactly once (and every request of the http run answered 200). The http rows are the
targets' measure (workers stay on HTTP); query rows time the claim and result functions
called from 200 threads in the benchmark's own process, without HTTP.

Against the targets (the paired runs above, 2026-12-01 05:04-05:15 UTC, load average
0.7-6.4 on 2 CPUs from other sessions while they ran): **all met**.
- SQLite over HTTP: 3,418 claims/s (runs 3,077-3,753), p99 104 ms; 5.3x main in the
  same pairs (main: 456-1,174 claims/s). The simulated workers report no log; a real
  worker's log is still a file of its own (see the next levers).
- PostgreSQL over HTTP: 2,726 claims/s with one service process (8.5x main), p99 80 ms;
  2,963 with `--workers 2` (6.0x main's one process), p99 67 ms. The second process adds
  little here because the host is then 1.9 of 2 CPUs busy (service, PostgreSQL, the
  simulated workers and the other sessions' work).
- No job claimed twice, and every job claimed once, in every run.
- Wake-ups (wake, wake2) did not change: a job submitted to an idle pool is claimed in
  1.7-2.9 ms (p50). SQLite's wake p99 of 59 ms on main came from one slow wake-up in
  two of its three runs; nothing here aimed at it.
- CPU per job (from /proc, in the pairs): the service 0.27-0.36 ms (main: 1.4-2.6 ms),
  of it system time 0.05-0.07 ms (main: 0.8-1.7 ms); PostgreSQL's backends 0.12-0.15 ms
  (main: 0.76-0.82); the simulated workers 0.05 ms (0.10-0.17 with main's service: the
  two segments per response woke them twice).

What changed, by what it saved (measured while making each change; the machine's load
moved between 1 and 12 during them, so these are the CPU figures, not claims/s):
- **Kept result files** (by far the largest): the service kept each result as
  `results/job-N/attempt-M/{result.json,console.log}`, four inodes per job. On this
  machine's ext4 (a file system whose inode bitmaps other sessions' test runs, and this
  benchmark's own clean-up, fill with recently deleted inodes) `perf record -e cpu-clock`
  put 65-75 % of the service's CPU in `ext4_mkdir`/`ext4_create` scanning past them
  (`find_inode_bit`, `recently_deleted`): 1.5-2.1 ms of system time per job, most of
  the 1.2-2.3 ms the previous measurement found for the service. py-spy, sampling the
  GIL holder, had shown it as 23 % "result files". Results are now one JSON line
  appended to the day's `results/YYYY-MM-DD.jsonl` (docs/service.md, Results):
  0.25-0.35 ms of service CPU per job on ext4, the same as with `--storage-in /dev/shm`
  (tmpfs).
- **Batches** (`ktstr.service.batch.Batcher`): claims, and results, that arrive while
  the database is busy with a batch go together in the next one: one transaction; on
  PostgreSQL one statement per kind (`UPDATE ... FROM unnest(...)` pairing SKIP LOCKED
  rows with the waiting workers in order), on SQLite the same statements in one
  `BEGIN IMMEDIATE`. A lone request does not wait. Batches averaged ~30 requests at 200
  workers (load 7.7). PostgreSQL's own CPU per job fell from 0.54 to 0.08-0.15 ms, and
  psycopg's Python is paid per batch.
- A hot claim whose common case holds but finds no queued job answers "no job" from
  the batch (a guard check), instead of repeating the claim on the ORM path in a thread:
  every worker's last claim, and every fallback re-poll of an idle long-polling worker,
  took that path (7.6 % of samples).
- The claim reply splices the cell's stored JSON; a result's kept record is built from
  tuples without validation.
- One `send` per response (`CorkedTransport`: uvicorn wrote headers and body in two,
  two loopback segments that each woke the client; 13-18 % of samples); no X-Forwarded-*
  rewriting per request.
- `ktstr sched run` freezes its start-up heap out of the cyclic garbage collector
  (`gc.freeze`): full collections over ~150,000 long-lived objects took 0.87 s of a
  10,000-job run, 0.38 s after.
- A worker's registration caches what its claims need: every worker's first claim had
  waited ~200 ms for a thread and a read behind the other registrations, which was the
  claim p99 (230 -> 99 ms on SQLite, 210 -> 43 ms on PostgreSQL).
- The load generator: a `Protocol` on uvloop, each worker's claim encoded once, and the
  same load generator on both sides of a pair (`--against`).

Where the remaining time goes (`--profile`, quiet host at load 1.1-1.7: SQLite 3,266
claims/s, PostgreSQL 2,675 and 3,076 with `--workers 2`; py-spy samples holding the GIL,
grouped by what they were doing; the service's CPU is now 85 % user time):
- uvicorn's own request handling (httptools callbacks, the scope, a task and a
  keep-alive timer per request): 19-23 %.
- Sending the responses (one `send` each; loopback TCP delivers to the client inside
  that call): 13-19 %.
- The hot path in front of FastAPI (reading the body, the cached token, pydantic
  validation of the request): 10-12 %.
- The batched statements: SQLite 10 % (claims 4.4, results 5.9), PostgreSQL 15-19 %
  (psycopg's execute, array dumping; results 12.5-13.2).
- Appending the kept result line: 7-8 %.
- Claim and result handlers around the batches: 7-12 %.
- Once per run, not per job: the 200 registrations through FastAPI and SQLAlchemy
  (7-14 %), the reaper (under 1 %).
- Next levers: serving the two hot requests in uvicorn's protocol itself (no scope,
  task and ASGI messages per request: the largest block left); a log sent with a result
  is still a file of its own under `logs/` (one inode per job; the benchmark's workers
  send none, real workers always do), so the database or the day's results file could
  hold it instead.
- The machine was shared throughout (other sessions' QEMU guests and test suites): the
  load average column is the host's 1-minute load when each run ended; compare within a
  pair.""".splitlines()


_ROW = re.compile(r"^\| (\S+) \| (\S+) \| (\S+) \| ([\d.]+) \| ([\d.]+) \| ([\d.]+) \|$",
                  re.MULTILINE)


def _one_run(tree: Path, backend: str, run: str, args: argparse.Namespace
             ) -> tuple[float | None, float, float, float]:
    """(claims/s, p50 ms, p99 ms, load) of one run against ``tree``'s service, in a
    process of its own importing ``tree``'s ktstr. The load generator is this tree's on
    both sides of a pair, so a pair differs in the service only."""
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_dispatch.py"),
                          "--backends", backend, "--runs", run, "--jobs", str(args.jobs),
                          "--workers", str(args.workers), "--wake-plans",
                          str(args.wake_plans),
                          *(["--storage-in", args.storage_in] if args.storage_in else [])],
                         cwd=tree, capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(tree)}, check=False)
    m = _ROW.search(out.stdout)
    if out.returncode != 0 or m is None:
        raise SystemExit(f"FAIL: {tree} {backend} {run}:\n{out.stdout}\n{out.stderr}")
    cpu = re.search(r"CPU ms per job: .*", out.stdout)
    if cpu:
        print(f"    {tree.name}: {cpu.group(0)}", flush=True)
    rate = None if m.group(3) == "-" else float(m.group(3))
    return rate, float(m.group(4)), float(m.group(5)), float(m.group(6))


def _median(values: list[float | None]) -> float | None:
    """The median of the values measured (None: none was)."""
    known = [v for v in values if v is not None]
    return statistics.median(known) if known else None


def compare_against(args: argparse.Namespace) -> tuple[list[str], list[str]]:
    """Interleaved pairs (REV, this tree), the order alternating from pair to pair.
    Returns this tree's median rows and the before/after table rows."""
    base = Path(tempfile.mkdtemp(prefix="ktstr-bench-base-"))
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(base / "t"),
                    args.against], check=True, capture_output=True)
    tree = base / "t"
    rows: list[str] = []
    paired: list[str] = []
    try:
        for backend in args.backends.split(","):
            for run in args.runs.split(","):
                if run[-1].isdigit() and backend == "sqlite":
                    continue
                before_run = run.rstrip("0123456789")
                got: dict[str, list[tuple[float | None, float, float, float]]] = {
                    "before": [], "after": []}
                for i in range(args.pairs):
                    order = [("before", tree, before_run), ("after", ROOT, run)]
                    for side, where, kind in (order if i % 2 == 0 else order[::-1]):
                        r = _one_run(where, backend, kind, args)
                        got[side].append(r)
                        print(f"  pair {i + 1} {side:6} {backend} {kind}: {r}", flush=True)
                med = {side: [_median([x[k] for x in v]) for k in range(4)]
                       for side, v in got.items()}
                a = med["after"]
                rate = f"{a[0]:.0f}" if a[0] is not None else "-"
                rows.append(f"| {backend} | {run} | {rate} | {a[1]:.1f} | {a[2]:.1f} | "
                            f"{a[3]:.1f} |")
                b = med["before"]
                col = 0 if b[0] is not None else 1  # rate, or p50 for wake runs
                ratios = [y / x for x, y in zip((r[col] for r in got["before"]),
                                                (r[col] for r in got["after"]), strict=True)
                          if x and y]
                paired.append(
                    f"| {backend} | {before_run} -> {run} | "
                    + (f"{b[0]:.0f} -> {a[0]:.0f}" if col == 0 else "-")
                    + f" | {b[1]:.1f} -> {a[1]:.1f} | {b[2]:.1f} -> {a[2]:.1f} | "
                    f"{statistics.median(ratios):.2f} ({'claims/s' if col == 0 else 'p50'}) "
                    f"| {b[3]:.1f} / {a[3]:.1f} |")
                print(paired[-1], flush=True)
    finally:
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force",
                        str(tree)], check=False, capture_output=True)
    return rows, paired


def write_docs(rows: list[str], args: argparse.Namespace,
               paired: list[str] | None = None) -> None:
    import platform

    path = ROOT / "docs" / "performance.md"
    text = path.read_text() if path.exists() else "# Performance\n"
    rows = _merge_rows(text, rows)
    section = "\n".join([
        "## Service dispatch",
        "",
        f"`benchmarks/bench_dispatch.py --jobs {args.jobs} --workers {args.workers}` on "
        f"{os.cpu_count()} CPUs ({platform.machine()}, Python {platform.python_version()}); "
        "PostgreSQL 15 with default durability settings, SQLite in WAL mode. "
        "claims/s is jobs dispatched per second of wall time (each simulated worker "
        "reports its job before claiming the next); latencies are per claim (query, http) "
        "or job queued -> claimed as stamped by the service (wake, long-polling idle "
        "workers).",
        "",
        "| database | run | claims/s | p50 ms | p99 ms | load after |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
        *rows,
        "",
        *([f"Before and after, `--against {args.against} --pairs {args.pairs}`: each "
           f"row is {args.pairs} runs of {args.against} and {args.pairs} of this tree, "
           "interleaved (the order alternating), each in a process of its own; medians, "
           "and the median of the per-pair ratios after/before. `httpN`: this tree "
           "with `--workers N` against one service process before.",
           "",
           "| database | run | claims/s | p50 ms | p99 ms | ratio | load before / after |",
           "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
           *paired, ""] if paired else []),
        *NOTES,
        "",
    ])
    pattern = re.compile(r"^## Service dispatch\n.*?(?=^## |\Z)", re.MULTILINE | re.DOTALL)
    text = pattern.sub(section + "\n", text) if pattern.search(text) else \
        text.rstrip("\n") + "\n\n" + section
    path.write_text(text)


if __name__ == "__main__":
    main()

"""Dispatch benchmark of the scheduler service (on demand, not part of the tests).

    .venv/bin/python benchmarks/bench_dispatch.py [--jobs 10000] [--workers 200]
        [--backends sqlite,postgresql] [--write-docs]

For each backend (a SQLite file; a throwaway PostgreSQL started here), three runs:

- query: 200 simulated workers (threads) call the claim transaction itself
  (``ktstr.service.db.jobs.claim``) against 10,000 queued jobs, reporting each job right
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
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from ktstr.service.auth import Capability, Principal
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
        latencies: list[float] = []
        lock = threading.Lock()
        start = threading.Barrier(n_workers + 1)

        def worker(i: int) -> None:
            mine: list[float] = []
            name = f"bench-{i:03d}"
            start.wait()
            while True:
                t0 = time.perf_counter()
                job = jobq.claim(db, admin, name, sessions[i].session, settings, time.time())
                mine.append(time.perf_counter() - t0)
                if job is None:
                    break
                jobq.finish(db, admin, job.job_id, JobResultIn(
                    worker=name, attempt=job.attempt, outcome="pass", duration_s=0.0),
                    settings.logs_dir, time.time())
            with lock:
                latencies.extend(mine)

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(n_workers)]
        for t in threads:
            t.start()
        start.wait()
        t0 = time.perf_counter()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - t0
    return {"claims_per_s": n_jobs / elapsed, "p50_ms": pct(latencies, 0.5),
            "p99_ms": pct(latencies, 0.99), "seconds": elapsed}


@contextmanager
def service_process(settings: Settings, tmp: Path) -> Iterator[tuple[str, str]]:
    log = tmp / "service.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([KTSTR, "sched", "run", "--host", "127.0.0.1", "--port", "0",
                                 "--database", settings.database_url, "--storage",
                                 str(settings.storage), "--sutclasses",
                                 str(settings.sutclasses)], stdout=out, stderr=out)
        try:
            deadline = time.monotonic() + 60
            while not (m := re.search(r"listening on (http://\S+)", log.read_text())):
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"service did not start:\n{log.read_text()}")
                time.sleep(0.05)
            token = re.search(r"with token: (\S+)", log.read_text())
            assert token
            yield m.group(1), token.group(1)
        finally:
            proc.terminate()
            proc.wait(30)


async def _http_workers(url: str, token: str, n_workers: int, long_poll: bool,
                        stop: asyncio.Event) -> list[float]:
    latencies: list[float] = []
    limits = httpx.Limits(max_connections=n_workers + 10)
    async with httpx.AsyncClient(base_url=url + "/api/v1", timeout=120, limits=limits,
                                 headers={"Authorization": f"Bearer {token}"}) as c:
        async def one(i: int) -> None:
            name = f"bench-{i:03d}"
            r = await c.post("/workers/register", json={
                "name": name, "sutclass": "bench", "version": "bench",
                "protocol": PROTOCOL_VERSION})
            session = r.json()["session"]
            while not stop.is_set():
                t0 = time.perf_counter()
                r = await c.post(f"/workers/{name}/claim", json={
                    "session": session, "wait_s": 5 if long_poll else 0})
                job = r.json()["job"]
                if job is None:
                    if long_poll:
                        continue
                    return
                latencies.append(time.perf_counter() - t0)
                await c.post(f"/jobs/{job['job_id']}/result", json={
                    "worker": name, "attempt": job["attempt"], "outcome": "pass",
                    "duration_s": 0})

        await asyncio.gather(*(one(i) for i in range(n_workers)))
    return latencies


def bench_http(settings: Settings, tmp: Path, n_jobs: int, n_workers: int
               ) -> dict[str, float]:
    with service_process(settings, tmp) as (url, token):
        httpx.post(f"{url}/api/v1/plans", headers={"Authorization": f"Bearer {token}"},
                   json={"plan": plan_document(n_jobs), "publish": False},
                   timeout=120).raise_for_status()
        t0 = time.perf_counter()
        latencies = asyncio.run(_http_workers(url, token, n_workers, False, asyncio.Event()))
        elapsed = time.perf_counter() - t0
    return {"claims_per_s": len(latencies) / elapsed, "p50_ms": pct(latencies, 0.5),
            "p99_ms": pct(latencies, 0.99), "seconds": elapsed}


def bench_wake(settings: Settings, tmp: Path, n_workers: int, plans: int
               ) -> dict[str, float]:
    with service_process(settings, tmp) as (url, token):
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
            await workers
            return delays

        delays = asyncio.run(run())
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
                    help="Which runs (rows of other runs already in the docs are kept).")
    ap.add_argument("--write-docs", action="store_true",
                    help="Write the table into docs/performance.md (## Service dispatch).")
    args = ap.parse_args()
    rows: list[str] = []
    for backend in args.backends.split(","):
        for kind in args.runs.split(","):
            with tempfile.TemporaryDirectory() as d, _database(backend, Path(d)) as url:
                tmp = Path(d)
                settings = Settings(database_url=url, storage=tmp / "storage",
                                    sutclasses=sutclasses(tmp / "s.yaml", args.workers))
                if kind == "query":
                    r = bench_query(settings, args.jobs, args.workers)
                elif kind == "http":
                    r = bench_http(settings, tmp, args.jobs, args.workers)
                else:
                    r = bench_wake(settings, tmp, args.workers, args.wake_plans)
            rate = f"{r['claims_per_s']:.0f}" if "claims_per_s" in r else "-"
            line = (f"| {backend} | {kind} | {rate} | {r['p50_ms']:.1f} | "
                    f"{r['p99_ms']:.1f} | {os.getloadavg()[0]:.1f} |")
            print(line, flush=True)
            rows.append(line)
    if args.write_docs:
        write_docs(rows, args)


@contextmanager
def _database(backend: str, tmp: Path) -> Iterator[str]:
    if backend == "sqlite":
        yield f"sqlite:///{tmp / 'bench.db'}"
        return
    with TemporaryPostgres(fast=False) as pg:
        yield pg.create_database("bench")


def _merge_rows(text: str, new: list[str]) -> list[str]:
    """The section's existing table rows, replaced by ``new`` rows of the same
    (database, run), in backend/run order."""
    def key(row: str) -> tuple[str, str]:
        cells = [c.strip() for c in row.strip("|").split("|")]
        return cells[0], cells[1]

    section = text.partition("## Service dispatch")[2].partition("\n## ")[0]
    old = [ln for ln in section.splitlines()
           if ln.startswith("| ") and not ln.startswith(("| database", "| ---"))]
    merged = {key(r): r for r in old} | {key(r): r for r in new}
    order = {"sqlite": 0, "postgresql": 1, "query": 0, "http": 1, "wake": 2}
    return [merged[k] for k in sorted(merged, key=lambda k: (order.get(k[0], 9),
                                                             order.get(k[1], 9)))]


NOTES = """\
Reading these numbers:
- *wake* is the dispatch latency the service adds: a submit wakes the longest-waiting
  idle worker's long poll directly, so a free worker has its job within milliseconds.
- *query* and *http* keep 200 workers claiming back to back against a 10,000-job
  backlog, so their latencies are mostly queueing behind the other 199 workers:
  latency ~ workers / (claims/s). Throughput is bound by one Python process per side:
  each claim is a handful of short statements through SQLAlchemy (about 3 ms of CPU per
  claim plus 2 ms per result on these shared cores), and over HTTP each job adds two
  FastAPI requests. SQLite serializes writers (FIFO in-process queue, then
  `BEGIN IMMEDIATE`); PostgreSQL's `SKIP LOCKED` lets claims proceed in parallel, which
  only pays with more CPU than one process on 2 shared cores.
- The load average column is the host's 1-minute load when the run ended; other
  sessions' QEMU tests shared the 2 CPUs, so rows move a lot between runs.""".splitlines()


def write_docs(rows: list[str], args: argparse.Namespace) -> None:
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
        *NOTES,
        "",
    ])
    pattern = re.compile(r"^## Service dispatch\n.*?(?=^## |\Z)", re.MULTILINE | re.DOTALL)
    text = pattern.sub(section + "\n", text) if pattern.search(text) else \
        text.rstrip("\n") + "\n\n" + section
    path.write_text(text)


if __name__ == "__main__":
    main()

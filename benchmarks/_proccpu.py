"""Where the dispatch benchmark's CPU goes: per-process CPU time from /proc, the host's
busy time, and py-spy profiles of the service summarised by library."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


@contextmanager
def py_spy(pid: int, out: Path | None) -> Iterator[None]:
    """Sample the service process (and its children: ``--workers``) with py-spy while
    the body runs, into ``out`` (raw collapsed stacks, GIL holders only); no-op without
    ``out``."""
    if out is None:
        yield
        return
    spy = subprocess.Popen([str(Path(sys.executable).parent / "py-spy"), "record", "-p",
                            str(pid), "-s", "-g", "--nonblocking", "-r", "200", "-f", "raw",
                            "-o", str(out)], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    try:
        yield
    finally:
        spy.send_signal(signal.SIGINT)
        spy.wait(60)


#: leaf-frame file path fragment -> bucket, first match wins
PROFILE_BUCKETS = [
    ("fastapi/", "FastAPI (routing, dependencies, validation, serialisation)"),
    ("starlette/", "Starlette"),
    ("httptools_impl.py:524", "uvicorn: socket writes (headers)"),
    ("httptools_impl.py:551", "uvicorn: socket writes (body)"),
    ("uvicorn/", "uvicorn + httptools (other)"), ("httptools", "uvicorn + httptools (other)"),
    ("anyio/", "anyio (thread hand-offs)"), ("threading.py", "threads, locks"),
    ("concurrent/", "threads, locks"), ("queue.py", "threads, locks"),
    ("asyncio/", "event loop (uvloop: epoll, socket reads, callbacks)"),
    ("selectors.py", "event loop (uvloop: epoll, socket reads, callbacks)"),
    ("sqlalchemy/", "SQLAlchemy (auth, reaper, general paths)"), ("psycopg", "psycopg"),
    ("db/engine.py", "hot statements: DBAPI calls (sqlite3 in C; commit)"),
    ("pydantic", "pydantic"), ("json/", "json"),
    ("storage.py", "result files under --storage"), ("pathlib.py", "result files under --storage"),
    ("<frozen os>", "result files under --storage"),
    ("<frozen genericpath>", "result files under --storage"),
    ("service/server.py", "socket writes (one per response, CorkedTransport)"),
    ("ktstr/", "ktstr's own Python (hot path, routes, batches, records)"),
    ("process ", "native code outside any Python frame"),
]


def summarize_profile(path: Path) -> list[tuple[str, float]]:
    """(bucket, share of samples) from py-spy's raw output, by the leaf frame's file:
    where the CPU holding the GIL was spent (self time), largest first."""
    counts: dict[str, int] = {}
    for line in path.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if not stack:
            continue
        leaf = stack.rsplit(";", 1)[-1]
        bucket = next((b for frag, b in PROFILE_BUCKETS if frag in leaf), "other")
        counts[bucket] = counts.get(bucket, 0) + int(n)
    total = sum(counts.values()) or 1
    return sorted(((b, c / total) for b, c in counts.items()), key=lambda x: -x[1])


_TICK = os.sysconf("SC_CLK_TCK")


def cpu_line(r: dict[str, float]) -> str:
    """``CPU ms per job: service 0.80 (sys 0.30), ...; host busy CPUs 1.9 of 2``."""
    parts = []
    for k, v in r.items():
        name = k.removesuffix("_cpu_ms_per_job")
        if k.endswith("_cpu_ms_per_job") and not name.endswith("_sys"):
            system = r.get(f"{name}_sys_cpu_ms_per_job")
            parts.append(f"{name} {v:.2f}" + (f" (sys {system:.2f})" if system else ""))
    return (f"CPU ms per job: {', '.join(parts)}; host busy CPUs "
            f"{r['host_busy_cpus']:.2f} of {os.cpu_count()}")


def _stat(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2:].split()  # fields from the state (3rd) on


def process_tree(pid: int) -> list[int]:
    """``pid`` and its children (the service's --workers processes)."""
    kids = [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()
            and (st := _stat(int(p.name))) is not None and int(st[1]) == pid]
    return [pid, *kids]


def postgres_pids(data: Path) -> list[int]:
    """The postmaster of ``data`` and its children (backends, WAL writer, ...)."""
    try:
        postmaster = int((data / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return []
    return process_tree(postmaster)


def group_cpu(groups: dict[str, Any]) -> dict[str, float]:
    """CPU seconds used so far by each group's live processes: ``NAME`` user + system,
    ``NAME_sys`` system alone."""
    out: dict[str, float] = {}
    for name, pids in groups.items():
        user = system = 0
        for pid in pids():
            st = _stat(pid)
            if st is not None:
                user, system = user + int(st[11]), system + int(st[12])
        out[name] = (user + system) / _TICK
        out[f"{name}_sys"] = system / _TICK
    return out


def self_cpu() -> tuple[float, float]:
    """This process's CPU seconds so far: (user + system, system)."""
    import resource

    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime, ru.ru_stime


def host_cpu() -> float:
    """CPU seconds every CPU of the host spent busy (not idle or iowait) so far."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(fields) - fields[3] - fields[4]) / _TICK

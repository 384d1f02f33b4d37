"""``TemporaryPostgres``: a throwaway PostgreSQL cluster for tests and benchmarks.

The server's programs (``initdb``, ``pg_ctl``, ``postgres``) are searched for, not
assumed at one version's path: first on ``PATH``, then in the newest
``/usr/lib/postgresql/<version>/bin`` (Debian's layout; ``scripts/setup.sh`` installs
the ``postgresql`` package).
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Sequence
from pathlib import Path

from ktstr.errors import InfraError

#: the programs a cluster needs, all from one installation
SERVER_TOOLS = ("initdb", "pg_ctl", "postgres")
#: Debian's versioned installations (``postgresql-15`` puts its programs in 15/bin)
DEBIAN_ROOT = Path("/usr/lib/postgresql")


def _version_key(bin_dir: Path) -> tuple[int, ...]:
    """``/usr/lib/postgresql/15/bin`` -> (15,); ``9.6`` -> (9, 6); unparsable -> ()."""
    return tuple(int(n) for n in re.findall(r"\d+", bin_dir.parent.name))


def _has_tools(d: Path) -> bool:
    return all(os.access(d / tool, os.X_OK) for tool in SERVER_TOOLS)


def candidate_bin_dirs(path: str | None = None,
                       debian_root: Path = DEBIAN_ROOT) -> list[Path]:
    """Where to look, in order: ``PATH``'s directories, then Debian's versioned
    installations, newest version first."""
    search = os.environ.get("PATH", os.defpath) if path is None else path
    dirs = [Path(p) for p in search.split(os.pathsep) if p]
    dirs += sorted(debian_root.glob("*/bin"), key=_version_key, reverse=True)
    return dirs


def find_server_bin_dir(candidates: Sequence[Path] | None = None) -> Path:
    """The first directory holding every one of ``SERVER_TOOLS``; an ``InfraError``
    naming what was searched and how to install PostgreSQL when there is none."""
    dirs = candidate_bin_dirs() if candidates is None else list(candidates)
    for d in dirs:
        if _has_tools(d):
            return d
    searched = ", ".join(str(d) for d in dirs) or "(nothing)"
    raise InfraError(
        f"PostgreSQL server programs ({', '.join(SERVER_TOOLS)}) not found; searched PATH "
        f"and {DEBIAN_ROOT}/*/bin: {searched}. Install them with scripts/setup.sh (the "
        "postgresql package), or pass TemporaryPostgres(bin_dir=...).")


class TemporaryPostgres:
    """A throwaway PostgreSQL cluster on 127.0.0.1 (``initdb`` into a temporary directory,
    run as the ``postgres`` user when we are root), stopped and removed on exit.
    ``url(db)`` gives a ``postgresql://`` URL; ``create_database``/``drop_database``.

    ``bin_dir``: the directory of ``initdb`` and ``pg_ctl``; by default the first of
    ``candidate_bin_dirs()`` that has them (searched when the cluster starts)."""

    def __init__(self, bin_dir: Path | None = None, fast: bool = True) -> None:
        self.bin_dir = bin_dir
        self.fast = fast
        self.port = 0

    def _argv(self, tool: str, *args: str) -> list[str]:
        assert self.bin_dir is not None, "the cluster has not started"
        argv = [str(self.bin_dir / tool), *args]
        return ["runuser", "-u", "postgres", "--", *argv] if os.geteuid() == 0 else argv

    def __enter__(self) -> TemporaryPostgres:
        import socket
        import subprocess
        import tempfile

        if self.bin_dir is None:
            self.bin_dir = find_server_bin_dir()
        elif not _has_tools(self.bin_dir):
            raise InfraError(f"PostgreSQL's server programs ({', '.join(SERVER_TOOLS)}) are "
                             f"not all in {self.bin_dir}; install them with scripts/setup.sh")
        self.root = Path(tempfile.mkdtemp(prefix="ktstr-pg-"))
        self.root.chmod(0o755)
        data, sock = self.root / "data", self.root / "sock"
        sock.mkdir()
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres")
            shutil.chown(sock, "postgres")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = int(s.getsockname()[1])
        opts = (f"-c listen_addresses=127.0.0.1 -p {self.port} -k {sock} "
                "-c max_connections=400")
        if self.fast:
            opts += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        try:
            subprocess.run(self._argv("initdb", "-D", str(data), "-A", "trust", "-U",
                                      "postgres", "-E", "UTF8", "--no-sync"),
                           check=True, capture_output=True)
            subprocess.run(self._argv("pg_ctl", "-D", str(data), "-l",
                                      str(self.root / "server.log"), "-w", "-t", "60",
                                      "-o", opts, "start"), check=True, capture_output=True)
        except subprocess.CalledProcessError as exc:
            shutil.rmtree(self.root, ignore_errors=True)
            raise InfraError(f"cannot start PostgreSQL: {exc.stderr.decode(errors='replace')}"
                             ) from exc
        return self

    def __exit__(self, *exc: object) -> None:
        import subprocess

        subprocess.run(self._argv("pg_ctl", "-D", str(self.root / "data"), "-m", "fast",
                                  "-w", "-t", "60", "stop"), capture_output=True, check=False)
        shutil.rmtree(self.root, ignore_errors=True)

    def url(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def _admin(self, sql: str) -> None:
        import psycopg

        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            conn.execute(sql.encode())

    def create_database(self, name: str) -> str:
        self._admin(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def drop_database(self, name: str) -> None:
        self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

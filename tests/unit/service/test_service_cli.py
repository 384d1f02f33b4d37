"""CLI pieces that need no service: preferences, fallbacks, error lines, migrations."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from ktstr.cli import main


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    out = capsys.readouterr()
    return int(exc.value.code or 0), out.out, out.err


def test_preferences_roundtrip(capsys: pytest.CaptureFixture[str], _isolated_home: Path) -> None:
    code, out, _ = run(["preference", "set", "--category", "sched", "--name", "url",
                        "http://127.0.0.1:5000"], capsys)
    assert code == 0 and "sched.url saved" in out
    code, out, _ = run(["preference", "get", "--category", "sched", "--name", "url"], capsys)
    assert (code, out) == (0, "http://127.0.0.1:5000\n")
    path = _isolated_home / ".config" / "ktstr" / "preferences.yaml"
    assert path.stat().st_mode & 0o777 == 0o600
    code, _, err = run(["preference", "get", "--category", "sched", "--name", "token"], capsys)
    assert code == 2 and "sched.token is not set" in err
    code, _, err = run(["preference", "set", "--category", "sched", "--name", "colour", "x"],
                       capsys)
    assert code == 2 and "known names in 'sched': url, token" in err


def test_client_verbs_need_url_and_token(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["sched", "plan-list"], capsys)
    assert code == 2 and "no scheduler URL: pass --url" in err


def test_connection_refused_names_url_and_how_to_start(
        capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    code, _, err = run(["sched", "plan-list", "--url", f"http://127.0.0.1:{port}",
                        "--token", "t"], capsys)
    assert code == 3
    assert err.count("\n") == 1
    assert f"cannot reach the ktstr scheduler at http://127.0.0.1:{port}" in err
    assert "ktstr sched run" in err


def test_bad_plan_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "p.yaml"
    bad.write_text("sut: [")
    code, _, err = run(["sched", "plan-exec", str(bad), "--url", "http://127.0.0.1:1",
                        "--token", "t"], capsys)
    assert code == 2 and f"{bad}: not valid YAML" in err


def test_bad_capability(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["sched", "user-create", "x", "--capabilities", "exec,root",
                        "--url", "http://127.0.0.1:1", "--token", "t"], capsys)
    assert code == 2 and "unknown capability 'root'; known capabilities: exec, query, " \
                         "lease, admin" in err


def test_models_match_migrations(tmp_path: Path) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from ktstr.service.db.engine import Database
    from ktstr.service.db.tables import Base

    with Database(f"sqlite:///{tmp_path / 'm.db'}") as db:
        db.migrate()
        db.migrate()  # idempotent
        with db.engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []


def test_service_refuses_bad_sutclasses(tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    sc = tmp_path / "sutclasses.yaml"
    sc.write_text("- sutclass: demo\n  type: static\n  params: {suts: [{name: a}]}\n")
    code, _, err = run(["sched", "run", "--port", "0", "--database",
                        f"sqlite:///{tmp_path / 'x.db'}", "--sutclasses", str(sc)], capsys)
    assert code == 2
    assert f"{sc}: entry 0 (demo): params.suts[0].connection: is required" in err

"""Worker states: every change, of one row or of many, passes ``WORKER_TRANSITIONS``.

One row: ``WorkerRow`` checks each assignment of its state against the table. Many rows:
the reaper's UPDATE takes its allowed source states from the table, so a worker in a
state the table does not let move is left alone, and changing the table changes what
the reaper does.
"""

from __future__ import annotations

import ast
import itertools
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

import ktstr
from ktstr.service.auth import Capability, Principal
from ktstr.service.db import jobs, workers
from ktstr.service.db.engine import Database
from ktstr.service.db.tables import SutClassRow, SutRow, User, WorkerRow
from ktstr.service.schemas import WorkerGoodbye, WorkerRegister
from ktstr.service.settings import PROTOCOL_VERSION, Settings
from ktstr.service.states import (
    WORKER_INITIAL,
    WORKER_TRANSITIONS,
    InvalidTransition,
    WorkerState,
)

SETTINGS = Settings(heartbeat_timeout_s=30.0)
ADMIN = Principal(id=1, name="admin", capabilities=frozenset({Capability.ADMIN}))
SUTS = ("demo-01", "demo-02")


def row_in(state: WorkerState, name: str = "demo-01") -> WorkerRow:
    """A worker row brought to ``state`` along allowed edges only."""
    w = WorkerRow(name=name, state=WORKER_INITIAL.value)
    if state is not WORKER_INITIAL:
        w.state = state.value
    return w


def test_worker_row_refuses_a_state_the_table_does_not_allow() -> None:
    w = row_in(WorkerState.OFFLINE)
    with pytest.raises(InvalidTransition) as err:
        w.state = WorkerState.LOST.value
    assert str(err.value) == ("worker demo-01 is offline; moving to lost needs it to be one "
                              "of: online")
    assert (err.value.actual, err.value.wanted) == (WorkerState.OFFLINE, WorkerState.LOST)
    assert w.state == WorkerState.OFFLINE.value  # not applied
    with pytest.raises(ValueError, match="worker demo-02 is new: it starts online, not lost"):
        WorkerRow(name="demo-02", state=WorkerState.LOST.value)


@pytest.mark.parametrize(("actual", "wanted"),
                         list(itertools.product(WorkerState, WorkerState)))
def test_worker_row_moves_exactly_along_the_table(actual: WorkerState,
                                                  wanted: WorkerState) -> None:
    w = row_in(actual)
    if wanted in WORKER_TRANSITIONS[actual]:
        jobs.move_worker(w, wanted)
        assert w.state == wanted.value
    else:
        with pytest.raises(InvalidTransition):
            jobs.move_worker(w, wanted)
        assert w.state == actual.value


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    with Database(f"sqlite:///{tmp_path / 'workers.db'}") as database:
        database.migrate()
        with database.write() as s:
            s.add(User(id=ADMIN.id, name=ADMIN.name, token_hash="0" * 64,
                       capabilities="admin", created_at=0.0))
            s.add(SutClassRow(id=1, name="demo", enabled=True, created_at=0.0))
            s.add_all(SutRow(sutclass_id=1, name=name, connection={}, present=True,
                             created_at=0.0) for name in SUTS)
        yield database


def register(db: Database, name: str, now: float) -> int:
    return workers.register(db, ADMIN, WorkerRegister(
        name=name, sutclass="demo", version=ktstr.__version__, protocol=PROTOCOL_VERSION),
        SETTINGS, now).session


def states(db: Database) -> dict[str, WorkerState]:
    with db.read() as s:
        return {w.name: WorkerState(w.state) for w in s.scalars(select(WorkerRow))}


def test_goodbye_twice_is_an_invalid_transition(db: Database) -> None:
    session = register(db, "demo-01", now=0.0)
    workers.goodbye(db, ADMIN, "demo-01", WorkerGoodbye(session=session), SETTINGS, 1.0)
    with pytest.raises(InvalidTransition, match="worker demo-01 is offline; moving to "
                                                "offline needs it to be one of: lost, online"):
        workers.goodbye(db, ADMIN, "demo-01", WorkerGoodbye(session=session), SETTINGS, 2.0)
    assert states(db) == {"demo-01": WorkerState.OFFLINE}


def test_reaper_marks_lost_only_the_states_the_table_allows(db: Database) -> None:
    register(db, "demo-01", now=0.0)
    session = register(db, "demo-02", now=0.0)
    workers.goodbye(db, ADMIN, "demo-02", WorkerGoodbye(session=session), SETTINGS, 0.0)
    report = jobs.reap(db, SETTINGS, now=100.0)  # both silent for longer than the timeout
    assert report.lost_workers == ["demo-01"]
    assert states(db) == {"demo-01": WorkerState.LOST, "demo-02": WorkerState.OFFLINE}
    assert jobs.reap(db, SETTINGS, now=200.0).lost_workers == []  # lost -> lost: no edge


def test_reaper_takes_its_source_states_from_the_table(
        db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    register(db, "demo-01", now=0.0)
    session = register(db, "demo-02", now=0.0)
    workers.goodbye(db, ADMIN, "demo-02", WorkerGoodbye(session=session), SETTINGS, 0.0)
    # a table where only an offline worker may become lost: the reaper follows it
    monkeypatch.setitem(WORKER_TRANSITIONS, WorkerState.ONLINE,
                        frozenset({WorkerState.ONLINE, WorkerState.OFFLINE}))
    monkeypatch.setitem(WORKER_TRANSITIONS, WorkerState.OFFLINE,
                        frozenset({WorkerState.ONLINE, WorkerState.LOST}))
    assert jobs.reap(db, SETTINGS, now=100.0).lost_workers == ["demo-02"]
    assert states(db) == {"demo-01": WorkerState.ONLINE, "demo-02": WorkerState.LOST}


def _updates_worker_state(call: ast.Call) -> bool:
    """``update(WorkerRow)....values(state=...)`` (or ``values({"state": ...})``)."""
    if not (isinstance(call.func, ast.Attribute) and call.func.attr == "values"):
        return False
    sets_state = any(k.arg == "state" for k in call.keywords) or any(
        isinstance(a, ast.Dict) and any(isinstance(k, ast.Constant) and k.value == "state"
                                        for k in a.keys) for a in call.args)
    on_workers = any(
        isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == "update"
        and any(isinstance(a, ast.Name) and a.id == "WorkerRow" for a in n.args)
        for n in ast.walk(call.func.value))
    return sets_state and on_workers


_RAW_UPDATE = re.compile(r"\bupdate\s+workers\b.*\bset\b.*\bstate\b", re.I | re.S)


def _enclosing_functions(tree: ast.AST) -> dict[ast.AST, str]:
    """Each node -> the name of the innermost function around it (``<module>``)."""
    names: dict[ast.AST, str] = {}

    def visit(node: ast.AST, name: str) -> None:
        for child in ast.iter_child_nodes(node):
            inner = child.name if isinstance(
                child, ast.FunctionDef | ast.AsyncFunctionDef) else name
            names[child] = inner
            visit(child, inner)

    visit(tree, "<module>")
    return names


def test_no_bulk_update_sets_a_worker_state_outside_move_workers() -> None:
    """An UPDATE of many rows skips ``WorkerRow``'s check; the one that may set a
    worker's state is ``jobs.move_workers``, whose WHERE comes from the table."""
    package = Path(ktstr.__file__).parent
    offenders = []
    for path in sorted(package.rglob("*.py")):
        where = str(path.relative_to(package))
        tree = ast.parse(path.read_text(), where)
        for node, func in _enclosing_functions(tree).items():
            if isinstance(node, ast.Call) and _updates_worker_state(node) and \
                    (where, func) != ("service/db/jobs.py", "move_workers"):
                offenders.append(f"{where}:{node.lineno} in {func}")
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and \
                    _RAW_UPDATE.search(node.value):
                offenders.append(f"{where}:{node.lineno}: SQL text")
    assert not offenders, "\n".join(offenders)

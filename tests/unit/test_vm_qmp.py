"""``QmpChannel`` against a scripted QMP peer on a socketpair (QEMU's side of the
protocol: greeting, capabilities negotiation, commands, events)."""

from __future__ import annotations

import gc
import json
import socket
import threading
import warnings
from collections.abc import Callable, Iterator

import pytest
from qemu.qmp import ExecuteError

from ktstr.vm.qmp import QmpChannel

GREETING: dict[str, object] = {"QMP": {"version": {"qemu": {"major": 10, "minor": 0, "micro": 2},
                                "package": ""}, "capabilities": []}}


def _peer(sock: socket.socket, script: dict[str, Callable[[dict[str, object]], object]]
          ) -> None:
    """Answer like QEMU: greet, then reply to each command by ``script``; a reply that
    is an ``("event", NAME)`` pair is sent as that event before an empty return.
    Requests are a JSON stream with no separator (QEMU's parser is a streaming one)."""

    def send(msg: dict[str, object]) -> None:
        sock.sendall(json.dumps(msg).encode() + b"\n")

    def reply(request: dict[str, object], body: dict[str, object]) -> None:
        if "id" in request:  # QMP echoes an id only when the request carried one
            body["id"] = request["id"]
        send(body)

    send(GREETING)
    for msg in _requests(sock):
        name = str(msg["execute"])
        if name == "qmp_capabilities":
            reply(msg, {"return": {}})
            continue
        answer = script.get(name)
        if answer is None:
            reply(msg, {"error": {"class": "CommandNotFound", "desc": f"no {name}"}})
            continue
        args = msg.get("arguments")
        got = answer(args if isinstance(args, dict) else {})
        if isinstance(got, tuple):
            send({"event": got[1], "data": {"status": "completed"},
                  "timestamp": {"seconds": 1, "microseconds": 0}})
            got = {}
        reply(msg, {"return": got})
        if name == "quit":
            break
    sock.close()


def _requests(sock: socket.socket) -> Iterator[dict[str, object]]:
    """Decode JSON objects from ``sock`` as they complete, until it closes."""
    decoder = json.JSONDecoder()
    buf = ""
    while chunk := sock.recv(4096):
        buf += chunk.decode()
        while buf.strip():
            try:
                msg, end = decoder.raw_decode(buf.lstrip())
            except json.JSONDecodeError:
                break  # incomplete: wait for more
            yield msg
            buf = buf.lstrip()[end:]


@pytest.fixture
def channel() -> Iterator[QmpChannel]:
    ours, theirs = socket.socketpair()
    script: dict[str, Callable[[dict[str, object]], object]] = {
        "query-status": lambda _a: {"status": "running", "running": True},
        "echo": lambda a: a,
        "migrate": lambda _a: ("event", "MIGRATION"),
        "quit": lambda _a: {},
    }
    peer = threading.Thread(target=_peer, args=(theirs, script), daemon=True)
    peer.start()
    qmp = QmpChannel(ours, "test")
    try:
        yield qmp
    finally:
        qmp.close()
        ours.close()
        peer.join(5)


def test_commands_events_and_errors(channel: QmpChannel) -> None:
    channel.connect()
    assert channel.cmd("query-status") == {"status": "running", "running": True}
    assert channel.cmd("echo", uri="file:/x", n=3) == {"uri": "file:/x", "n": 3}
    channel.cmd("migrate")
    event = channel.pull_event(5.0)
    assert event["event"] == "MIGRATION"
    with pytest.raises(TimeoutError):
        channel.pull_event(0.05)
    with pytest.raises(ExecuteError, match="no bogus"):
        channel.cmd("bogus")


def test_close_is_idempotent_and_refuses_later_use(channel: QmpChannel) -> None:
    channel.connect()
    channel.cmd("quit")
    channel.close()
    channel.close()
    assert channel.closed
    with pytest.raises(RuntimeError, match="closed"):
        channel.cmd("query-status")


def test_a_session_leaves_no_event_loop_behind() -> None:
    """The defect: ``qemu.qmp.legacy`` registered a loop with the calling thread and
    never closed it; once that thread's loop was replaced (``asyncio.run`` in the same
    pytest worker) or the thread ended, the collector reported an unclosed event loop,
    which ``filterwarnings = error`` turns into an error in whatever test is running."""
    def session() -> None:
        ours, theirs = socket.socketpair()
        peer = threading.Thread(target=_peer, args=(theirs, {"quit": lambda _a: {}}),
                                daemon=True)
        peer.start()
        qmp = QmpChannel(ours)
        qmp.connect()
        qmp.cmd("quit")
        qmp.close()
        ours.close()
        peer.join(5)

    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        worker = threading.Thread(target=session)
        worker.start()
        worker.join(10)
        assert not worker.is_alive()
        gc.collect()
    leaks = [w for w in seen if issubclass(w.category, ResourceWarning)]
    assert leaks == []

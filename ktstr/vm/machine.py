"""``Vm``: one QEMU process as a context manager with a state enum.

Streams: QEMU's stdout is the guest console (logged to ``console.log`` and fed to the
console parser), its stderr is kept for launch-failure reports, QMP runs over a
socketpair (no ports shared between parallel VMs) and guest messages arrive as JSON
lines on a virtio-serial port. Every stream feeds one event queue, so callers wait on
*one* thing with *one* bound.
"""

from __future__ import annotations

import contextlib
import enum
import logging
import queue
import select
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from types import TracebackType
from typing import IO, Self, TypeVar

from ktstr.declare.base import Frozen
from ktstr.errors import InfraError
from ktstr.guest.console import ConsoleEvent, ConsoleEventKind, ConsoleParser
from ktstr.guest.protocol import BadMessage, GuestMessage, parse_message
from ktstr.vm.argv import Accel, VmConfig, qemu_argv
from ktstr.vm.outcome import VmOutcome
from ktstr.vm.process import pdeathsig_preexec, stop_process
from ktstr.vm.qmp import QmpChannel

log = logging.getLogger(__name__)

M = TypeVar("M")


class VmState(enum.StrEnum):
    CREATED = "created"
    RUNNING = "running"
    STOPPED = "stopped"


class QemuExited(Frozen):
    returncode: int


VmEvent = GuestMessage | BadMessage | ConsoleEvent | QemuExited


class VmStateError(InfraError):
    def __init__(self, actual: VmState, required: VmState, action: str) -> None:
        super().__init__(f"cannot {action}: VM is {actual.value}, needs {required.value}")


class QemuLaunchError(InfraError):
    """QEMU exited before the guest could start: carries exit code, argv and stderr."""

    def __init__(self, returncode: int | None, argv: list[str], stderr: str) -> None:
        self.returncode = returncode
        self.argv = argv
        self.stderr = stderr
        super().__init__(
            f"QEMU failed to start (exit code {returncode}): {self.error_text or '-'}\n"
            f"argv: {' '.join(argv)}"
        )

    @property
    def error_text(self) -> str:
        """QEMU's stderr without its informational lines (last 5 lines)."""
        lines = [ln for ln in self.stderr.splitlines() if ln.strip() and ": info: " not in ln]
        return "\n".join(lines[-5:])


#: default bound on one send to the guest (the caller passes one scaled for TCG)
SEND_TIMEOUT_S = 300.0


class GuestGone(Exception):
    """The guest can no longer answer: panic, emulator fault, QEMU exit, or time out."""

    def __init__(self, kind: VmOutcome, detail: str) -> None:
        self.kind = kind
        self.detail = detail
        super().__init__(f"{kind}: {detail}")


# signals QEMU raises on itself when it fails (assert, abort, memory fault): an emulator
# fault, infrastructure, not the guest's doing; SIGKILL comes from outside (OOM killer)
_CRASH_SIGNALS = frozenset({signal.SIGABRT, signal.SIGSEGV, signal.SIGBUS, signal.SIGILL,
                            signal.SIGFPE, signal.SIGTRAP})


def qemu_exit_gone(returncode: int, stderr: str, waiting_for: str) -> GuestGone:
    """What QEMU's unrequested exit means: a crash on a fatal signal of its own is an
    emulator fault (retried like one); any other exit says so. Both carry the tail of
    QEMU's stderr, which names the failed assertion or the error."""
    tail = " | ".join(ln.strip() for ln in stderr.splitlines()
                      if ln.strip() and ": info: " not in ln)[-300:]
    said = f": {tail}" if tail else " (nothing on stderr)"
    if returncode < 0:
        try:
            sig = signal.Signals(-returncode)
        except ValueError:
            sig = None
        name = sig.name if sig is not None else f"signal {-returncode}"
        if sig in _CRASH_SIGNALS:
            return GuestGone(VmOutcome.EMULATOR_FAULT,
                             f"QEMU crashed with {name} while waiting for {waiting_for}{said}")
        return GuestGone(VmOutcome.EXITED, f"QEMU was killed by {name} while waiting for "
                         f"{waiting_for} (the host's OOM killer?){said}")
    return GuestGone(VmOutcome.EXITED,
                     f"QEMU exited with code {returncode} while waiting for {waiting_for}{said}")


class Vm:
    """Run one VM. ``with Vm(cfg, run_dir) as vm: vm.expect(Hello, 60)``."""

    def __init__(self, cfg: VmConfig, run_dir: Path, *, name: str = "vm") -> None:
        self.cfg = cfg
        self.run_dir = run_dir
        self.name = name
        self.state = VmState.CREATED
        self.log = logging.getLogger(f"{__name__}.{name}")
        self.argv: list[str] = []
        self.console = ConsoleParser(tcg=cfg.accel is Accel.TCG)
        self.messages: list[GuestMessage | BadMessage] = []
        self.console_events: list[ConsoleEvent] = []
        self.events: queue.Queue[VmEvent] = queue.Queue()
        self.returncode: int | None = None
        self.started_at = 0.0
        self._proc: subprocess.Popen[bytes] | None = None
        self._qmp: QmpChannel | None = None
        self._qmp_sock: socket.socket | None = None
        self._results: socket.socket | None = None
        self._threads: list[threading.Thread] = []
        self._stderr: list[str] = []
        self._console_file: IO[str] | None = None

    # -- lifecycle -----------------------------------------------------------------

    def _require(self, state: VmState, action: str) -> None:
        if self.state is not state:
            raise VmStateError(self.state, state, action)

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    @property
    def console_path(self) -> Path:
        return self.run_dir / "console.log"

    def start(self, connect_timeout_s: float = 30.0) -> None:
        self._require(VmState.CREATED, "start")
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        results_path = self.run_dir / "r.sock"
        cfg = self.cfg.model_copy(
            update={"qmp_fd": theirs.fileno(), "results_socket": str(results_path)}
        )
        self.argv = qemu_argv(cfg)
        (self.run_dir / "qemu.argv").write_text(
            "\n".join(self.argv) + "\n", encoding="utf-8"
        )
        self.log.info("starting QEMU: %s", " ".join(self.argv))
        interactive = self.cfg.interactive
        self.started_at = time.monotonic()
        try:
            self._proc = subprocess.Popen(
                self.argv,
                stdin=None if interactive else subprocess.DEVNULL,
                stdout=None if interactive else subprocess.PIPE,
                stderr=subprocess.PIPE,
                pass_fds=(theirs.fileno(),),
                # needed for pdeathsig; under TCG no THP (snapshots load faster)
                preexec_fn=pdeathsig_preexec(  # noqa: PLW1509
                    huge_pages=self.cfg.accel is not Accel.TCG),
            )
        except OSError as exc:
            ours.close()
            theirs.close()
            raise InfraError(f"cannot execute {self.argv[0]}: {exc}") from exc
        theirs.close()
        self.log.info("QEMU started (pid %d), run dir %s", self._proc.pid, self.run_dir)
        self._qmp_sock = ours
        self.state = VmState.RUNNING
        proc = self._proc
        assert proc.stderr is not None
        self._spawn("stderr", self._read_stderr, proc.stderr)
        if not interactive:
            assert proc.stdout is not None
            self._console_file = open(self.console_path, "w", encoding="utf-8")  # noqa: SIM115
            self._spawn("console", self._read_console, proc.stdout)
        self._spawn("exit", self._wait_exit)
        try:
            self._results = self._connect_results(results_path, connect_timeout_s)
        except InfraError:
            self.shutdown()
            raise
        self._spawn("results", self._read_results, self._results)
        self._qmp = QmpChannel(ours, self.name)
        try:
            self._qmp.connect(negotiate=True)
        except Exception as exc:
            self.shutdown()
            raise QemuLaunchError(proc.poll(), self.argv, self.stderr_text) from exc

    def _connect_results(self, path: Path, timeout_s: float) -> socket.socket:
        """QEMU creates the socket and then blocks (``wait=on``) until we connect."""
        assert self._proc is not None
        deadline = time.monotonic() + timeout_s
        while True:
            if self._proc.poll() is not None:
                self._join_readers(2.0)
                raise QemuLaunchError(self._proc.returncode, self.argv, self.stderr_text)
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.connect(str(path))
                return sock
            except (FileNotFoundError, ConnectionRefusedError):
                sock.close()
            if time.monotonic() > deadline:
                raise QemuLaunchError(None, self.argv, "results socket never appeared")
            # bounded poll for the socket file: QEMU gives no other signal before it
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._proc.wait(timeout=0.01)

    def _spawn(self, what: str, target: Callable[..., None], *args: object) -> None:
        t = threading.Thread(target=target, args=args, name=f"{self.name}-{what}", daemon=True)
        t.start()
        self._threads.append(t)

    # -- readers (threads) -----------------------------------------------------------

    def _read_console(self, stream: IO[bytes]) -> None:
        fh = self._console_file
        for raw in iter(stream.readline, b""):
            line = raw.decode("utf-8", errors="replace")
            if fh is not None:
                fh.write(line)
                fh.flush()
            for ev in self.console.feed(line):
                self.events.put(ev)

    def _read_stderr(self, stream: IO[bytes]) -> None:
        for raw in iter(stream.readline, b""):
            self._stderr.append(raw.decode("utf-8", errors="replace"))

    def _read_results(self, sock: socket.socket) -> None:
        with sock.makefile("rb") as fh, contextlib.suppress(ConnectionError):
            # a reset when QEMU goes away is the end of the channel, like EOF
            for raw in fh:
                text = raw.decode("utf-8", errors="replace").strip()
                if text:
                    self.events.put(parse_message(text))

    def send(self, line: str | bytes, timeout_s: float = SEND_TIMEOUT_S) -> None:
        """To the guest agent on the results port: a line (the run plan), or raw bytes
        announced by a header line before them (``FilesHeader``). Bounded: a guest that
        stops reading (paused, hung) is a timeout, not a host blocked for ever."""
        self._send_chunks([line.encode("utf-8") if isinstance(line, str) else line],
                          timeout_s)

    def send_file(self, path: Path, timeout_s: float = SEND_TIMEOUT_S) -> None:
        """Raw file contents on the channel (after their header line), in chunks."""
        with open(path, "rb") as fh:
            self._send_chunks(iter(lambda: fh.read(1 << 20), b""), timeout_s)

    def _send_chunks(self, chunks: Iterable[bytes], timeout_s: float) -> None:
        self._require(VmState.RUNNING, "send")
        sock = self._results
        if sock is None:
            raise InfraError("the guest channel is not connected")
        deadline = time.monotonic() + timeout_s
        poller = select.poll()
        poller.register(sock, select.POLLOUT)
        try:
            for chunk in chunks:
                view = memoryview(chunk)
                while view:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        raise GuestGone(VmOutcome.TIMEOUT, "the guest did not read its "
                                        f"channel within {timeout_s:.0f} s")
                    if not poller.poll(left * 1000):
                        continue
                    try:
                        view = view[sock.send(view, socket.MSG_DONTWAIT):]
                    except BlockingIOError:
                        continue
        except OSError as exc:
            raise GuestGone(VmOutcome.EXITED, f"the guest channel closed: {exc}") from exc

    def _wait_exit(self) -> None:
        assert self._proc is not None
        code = self._proc.wait()
        self.events.put(QemuExited(returncode=code))

    def _join_readers(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        for t in self._threads:
            if t is not threading.current_thread():
                t.join(max(0.0, deadline - time.monotonic()))

    @property
    def stderr_text(self) -> str:
        return "".join(self._stderr)

    # -- waiting ---------------------------------------------------------------------

    def next_event(self, timeout_s: float) -> VmEvent | None:
        try:
            ev = self.events.get(timeout=max(0.0, timeout_s))
        except queue.Empty:
            return None
        if isinstance(ev, ConsoleEvent):
            self.console_events.append(ev)
        elif isinstance(ev, QemuExited):
            self.returncode = ev.returncode
        else:
            self.messages.append(ev)
        return ev

    def expect(self, kind: type[M], timeout_s: float, *, what: str = "") -> M:
        """Wait for the next guest message of type ``kind``; other messages are kept.

        Raises ``GuestGone`` on panic, emulator fault, QEMU exit or timeout.
        """
        deadline = time.monotonic() + timeout_s
        label = what or kind.__name__
        while True:
            remaining = deadline - time.monotonic()
            ev = self.next_event(remaining)
            if ev is None:
                raise GuestGone(VmOutcome.TIMEOUT,
                                f"no {label} from the guest within {timeout_s:.0f} s")
            if isinstance(ev, kind):
                return ev
            if isinstance(ev, ConsoleEvent):
                if ev.kind is ConsoleEventKind.PANIC:
                    self._drain_console(5.0)
                    raise GuestGone(VmOutcome.CRASHED, ev.detail or ev.line)
                if ev.kind is ConsoleEventKind.EMULATOR_FAULT:
                    raise GuestGone(VmOutcome.EMULATOR_FAULT, ev.line)
            if isinstance(ev, QemuExited):
                self._join_readers(2.0)  # QEMU's last words on stderr
                raise qemu_exit_gone(ev.returncode, self.stderr_text, label)

    def _drain_console(self, timeout_s: float) -> None:
        """After a panic, let the rest of the panic text reach the log (bounded)."""
        if self._proc is None:
            return
        try:
            self._proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            return
        self._join_readers(2.0)

    def wait_exit(self, timeout_s: float) -> int | None:
        """Wait for QEMU to exit on its own (the guest powered off)."""
        if self._proc is None:
            return None
        try:
            code = self._proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            return None
        self._join_readers(5.0)
        while self.next_event(0) is not None:
            pass
        self.returncode = code
        return code

    # -- QMP -------------------------------------------------------------------------

    def qmp(self, command: str, **args: object) -> object:
        self._require(VmState.RUNNING, f"run QMP {command}")
        assert self._qmp is not None
        return self._qmp.cmd(command, **args)

    def qmp_event(self, name: str, timeout_s: float,
                  accept: Callable[[dict[str, object]], bool] = lambda _d: True,
                  ) -> dict[str, object] | None:
        """Wait (bounded) for the next QMP event ``name`` whose data ``accept`` takes;
        other events are dropped. None when none came in time."""
        self._require(VmState.RUNNING, f"wait for QMP event {name}")
        assert self._qmp is not None
        deadline = time.monotonic() + timeout_s
        while (left := deadline - time.monotonic()) > 0:
            try:
                ev = self._qmp.pull_event(wait=left)
            except TimeoutError:
                return None
            data = ev.get("data")
            data = data if isinstance(data, dict) else {}
            if ev.get("event") == name and accept(data):
                return data
        return None

    # -- teardown --------------------------------------------------------------------

    def _qmp_quit(self) -> None:
        if self._qmp is not None:
            self._qmp.cmd("quit")

    def shutdown(self) -> int | None:
        """Stop QEMU (QMP quit -> SIGTERM -> SIGKILL) and release everything."""
        if self.state is VmState.STOPPED:
            return self.returncode
        proc = self._proc
        if proc is not None:
            self.returncode = stop_process(proc, graceful=self._qmp_quit)
        for closer in (self._qmp, self._results, self._qmp_sock):
            try:
                if closer is not None:
                    closer.close()
            except (OSError, EOFError, RuntimeError) as exc:
                self.log.debug("close: %s", exc)
        self._join_readers(5.0)
        if proc is not None:
            for stream in (proc.stdout, proc.stderr):
                if stream is not None:
                    stream.close()
        if self._console_file is not None:
            self._console_file.close()
        self.state = VmState.STOPPED
        self.log.info("QEMU stopped (exit code %s)", self.returncode)
        return self.returncode

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.shutdown()

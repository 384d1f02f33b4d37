"""A real ``sshd`` on 127.0.0.1 (free port, generated host and user keys in tmp), for the
SSH provider tests; stopped by PID."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
from pathlib import Path

from svchelpers import wait_until

from ktstr.service.providers.ssh import SshTarget

SSHD = Path("/usr/sbin/sshd")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Sshd:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.port = free_port()

    def __enter__(self) -> Sshd:
        self.root.mkdir(parents=True, exist_ok=True)
        self.root.chmod(0o700)
        host_key, user_key = self.root / "host_ed25519", self.root / "user_ed25519"
        for key in (host_key, user_key):
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)],
                           check=True)
        auth = self.root / "authorized_keys"
        shutil.copy(user_key.with_suffix(".pub"), auth)
        auth.chmod(0o600)
        self.known_hosts = self.root / "known_hosts"
        pub = host_key.with_suffix(".pub").read_text().split()
        self.known_hosts.write_text(f"[127.0.0.1]:{self.port} {pub[0]} {pub[1]}\n")
        config = self.root / "sshd_config"
        config.write_text(
            f"ListenAddress 127.0.0.1\nHostKey {host_key}\nAuthorizedKeysFile {auth}\n"
            "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n"
            "PermitRootLogin prohibit-password\nStrictModes no\n"
            f"PidFile {self.root / 'sshd.pid'}\n")
        Path("/run/sshd").mkdir(exist_ok=True)  # privilege separation directory
        self.log = open(self.root / "sshd.log", "wb")
        self.proc = subprocess.Popen([str(SSHD), "-D", "-e", "-f", str(config), "-p",
                                      str(self.port)], stdout=self.log,
                                     stderr=subprocess.STDOUT)
        self.target = SshTarget(name="ssh-01", host="127.0.0.1", port=self.port,
                                user=os.environ.get("USER") or "root", keyfile=user_key,
                                options={"UserKnownHostsFile": str(self.known_hosts),
                                         "StrictHostKeyChecking": "yes"})

        def listening() -> bool:
            if self.proc.poll() is not None:
                raise AssertionError("sshd exited: " +
                                     (self.root / "sshd.log").read_text(errors="replace"))
            with socket.socket() as s:
                return s.connect_ex(("127.0.0.1", self.port)) == 0

        wait_until(listening, 20, "sshd to listen")
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
        self.proc.wait(15)
        self.log.close()

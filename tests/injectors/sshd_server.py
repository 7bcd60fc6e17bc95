"""A real OpenSSH server for tests, on a free loopback port: its own host key, client keys, config and known_hosts.

Debian's `openssh-server` comes from scripts/debian-packages-test.txt (`bash scripts/setup.sh test`);
without it the tests are skipped — and fail under CI=true, where setup must have installed it.
"""

from __future__ import annotations

import getpass
import os
import shutil
import signal
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from stackspec.targets import SshHost
from tests.support.helpers import free_port, popen_alive, wait_ready

SSHD = "/usr/sbin/sshd"  # sshd must be started by its absolute path (it re-executes itself)


def _unavailable(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)


def require_sshd() -> None:
    """Skip (fail under CI) when openssh-server is missing: `bash scripts/setup.sh test` installs it."""
    if not Path(SSHD).is_file() or shutil.which("ssh-keygen") is None:
        _unavailable(
            "openssh-server is not installed; bash scripts/setup.sh test installs it (scripts/debian-packages-test.txt)"
        )
    # sshd refuses to start without its privilege separation directory.
    if not Path("/run/sshd").is_dir():
        if os.geteuid() != 0:
            _unavailable("/run/sshd is missing and only root can create it")
        Path("/run/sshd").mkdir(mode=0o755, parents=True)


def keygen(path: Path, passphrase: str = "") -> str:
    """A new ed25519 key pair at `path` (+ .pub); returns the public key line."""
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", passphrase, "-C", "chaos-test", "-f", str(path)],
        check=True,
        capture_output=True,
        timeout=30,
    )
    return Path(f"{path}.pub").read_text().strip()


@dataclass
class Sshd:
    """One running sshd and the files a client needs to reach it."""

    port: int
    user: str
    dir: Path
    client_key: Path
    known_hosts: Path
    log: Path
    proc: subprocess.Popen[bytes]

    def host(self, **changes: Any) -> SshHost:
        """The SshHost a stack description names to reach this server (with `changes` applied)."""
        fields: dict[str, Any] = {
            "address": "127.0.0.1",
            "port": self.port,
            "user": self.user,
            "key_file": str(self.client_key),
            "known_hosts": str(self.known_hosts),
            "connect_timeout_s": 5.0,
            "command_timeout_s": 5.0,
        }
        return SshHost(**{**fields, **changes})

    def authorize(self, public_key: str) -> None:
        with open(self.dir / "authorized_keys", "a") as keys:
            keys.write(public_key + "\n")

    def known_hosts_line(self) -> str:
        return self.known_hosts.read_text().strip()

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=5)


def _banner(port: int) -> str | None:
    """None once sshd greets with its SSH-2.0 banner, else why not."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
            sock.settimeout(2)
            greeting = sock.recv(64)
    except OSError as exc:
        return f"{type(exc).__name__}: {exc}"
    return None if greeting.startswith(b"SSH-2.0-") else f"greeted with {greeting[:40]!r}"


def start_sshd(directory: Path) -> Sshd:
    """Start `sshd -D -e` on a free loopback port, with keys and config under `directory`."""
    require_sshd()
    directory.mkdir(parents=True, exist_ok=True)
    host_public = keygen(directory / "host_ed25519")
    client_key = directory / "client_ed25519"
    client_public = keygen(client_key)
    (directory / "authorized_keys").write_text(client_public + "\n")
    port, user = free_port(), getpass.getuser()
    config = directory / "sshd_config"
    config.write_text(
        "\n".join(
            [
                "ListenAddress 127.0.0.1",
                f"Port {port}",
                f"HostKey {directory / 'host_ed25519'}",
                f"AuthorizedKeysFile {directory / 'authorized_keys'}",
                f"PidFile {directory / 'sshd.pid'}",
                f"AllowUsers {user}",
                "PubkeyAuthentication yes",
                "PasswordAuthentication no",
                "KbdInteractiveAuthentication no",
                "PermitRootLogin prohibit-password",
                "UsePAM no",
                "StrictModes no",  # the keys live in a pytest tmp dir, not a 0700 ~/.ssh
                "LogLevel VERBOSE",
                "",
            ]
        )
    )
    known_hosts = directory / "known_hosts"
    known_hosts.write_text(f"[127.0.0.1]:{port} {host_public}\n")
    log = directory / "sshd.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(config)], stdout=out, stderr=subprocess.STDOUT)
    server = Sshd(port, user, directory, client_key, known_hosts, log, proc)
    try:
        wait_ready(f"sshd on 127.0.0.1:{port}", lambda: _banner(port), alive=popen_alive(proc), log=log)
    except BaseException:
        server.stop()
        raise
    return server

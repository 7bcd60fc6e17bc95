"""A real OpenSSH server for tests, on a free loopback port: its own host key, client keys, config and known_hosts.

Debian's `openssh-server` is installed when missing (as root, with apt-get); otherwise the tests are
skipped — and fail under CI=true, where setup must have installed it.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from injectors.targets import SshHost
from tests.helpers import free_port

SSHD = "/usr/sbin/sshd"  # sshd must be started by its absolute path (it re-executes itself)


def _unavailable(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)


def require_sshd() -> None:
    """Install openssh-server if missing and possible, else skip (fail under CI)."""
    if not Path(SSHD).is_file():
        if os.geteuid() != 0 or shutil.which("apt-get") is None:
            _unavailable("openssh-server is not installed and cannot be installed here (needs root and apt-get)")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        install = ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "openssh-server"]
        done = subprocess.run(install, capture_output=True, text=True, env=env, timeout=300, check=False)
        if done.returncode != 0:
            subprocess.run(["apt-get", "update", "-qq"], capture_output=True, timeout=300, check=False)
            done = subprocess.run(install, capture_output=True, text=True, env=env, timeout=300, check=False)
        if done.returncode != 0 or not Path(SSHD).is_file():
            _unavailable(f"installing openssh-server failed: {done.stderr[-500:]}")
    if shutil.which("ssh-keygen") is None:
        _unavailable("ssh-keygen is not installed")
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


def _wait_banner(port: int, proc: subprocess.Popen[bytes], log: Path, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"sshd exited with {proc.returncode}: {log.read_text()[-2000:]}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
            if sock.recv(64).startswith(b"SSH-2.0-"):
                return
        time.sleep(0.05)
    raise RuntimeError(f"sshd did not answer on 127.0.0.1:{port} within {timeout_s}s: {log.read_text()[-2000:]}")


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
        _wait_banner(port, proc, log)
    except BaseException:
        server.stop()
        raise
    return server

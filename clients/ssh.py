"""The one adapter to SSH (paramiko): key-based login, host keys checked against known_hosts, timeouts everywhere.

Commands are argv lists joined with `shlex.join` for the remote shell, so no value is ever spliced
into a command string unquoted. Input a command needs that must not show in the remote process list
(a restart script carrying secrets from `env`) goes over the channel's stdin. paramiko's exceptions
are translated here, at the edge, into `SshError` messages that name the host and the fix.
"""

from __future__ import annotations

import os
import shlex
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import Any

import paramiko

from clients.errors import ClientError
from stackspec.targets import SshHost

_READ_CHUNK = 65536


class SshError(ClientError):
    """A remote host could not be reached, refused us, or a command on it did not finish in time."""


class _UnknownHostKeyError(paramiko.SSHException):  # type: ignore[misc]
    def __init__(self, key_type: str, fingerprint: str) -> None:
        super().__init__(f"{key_type} {fingerprint}")
        self.key_type = key_type
        self.fingerprint = fingerprint


class _RejectUnknown(paramiko.RejectPolicy):  # type: ignore[misc]
    """paramiko's RejectPolicy, raising an exception that carries the offered key's fingerprint."""

    def missing_host_key(self, client: Any, hostname: str, key: Any) -> None:
        raise _UnknownHostKeyError(key.get_name(), key.fingerprint)


class SshSession:
    """One lazily opened SSH connection to `host`; `run` reconnects if the connection was lost."""

    def __init__(self, host: SshHost) -> None:
        self.host = host
        self._client: Any = None
        self._lock = threading.Lock()

    @property
    def label(self) -> str:
        return self.host.label

    @property
    def _where(self) -> str:
        # How OpenSSH names a host in known_hosts: [address]:port unless the port is 22.
        return self.host.address if self.host.port == 22 else f"[{self.host.address}]:{self.host.port}"

    def _connect(self) -> Any:
        if self._client is not None:
            transport = self._client.get_transport()
            if transport is not None and transport.is_active():
                return transport
            self.close()
        host = self.host
        known_hosts = Path(host.known_hosts).expanduser()
        client = paramiko.SSHClient()
        try:
            client.load_host_keys(str(known_hosts))
        except OSError as exc:
            raise SshError(
                f"cannot read known_hosts file {known_hosts} for {host.label}: {exc.strerror}; "
                f"add the host key there (`ssh-keyscan -p {host.port} {host.address}`, after checking its fingerprint)"
            ) from None
        client.set_missing_host_key_policy(_RejectUnknown())
        key_file, passphrase = self._credentials()
        try:
            self._login(client, key_file, passphrase, known_hosts)
        except BaseException:
            client.close()
            raise
        self._client = client
        return client.get_transport()

    def _credentials(self) -> tuple[str | None, str | None]:
        """The key file (None: the ssh-agent's keys) and its passphrase from the environment, if it has one."""
        host = self.host
        key_file = str(Path(host.key_file).expanduser()) if host.key_file else None
        if key_file is not None and not Path(key_file).is_file():
            raise SshError(f"key file {key_file} for {host.label} does not exist")
        if not host.key_passphrase_env:
            return key_file, None
        passphrase = os.environ.get(host.key_passphrase_env)
        if passphrase is None:
            raise SshError(
                f"environment variable {host.key_passphrase_env} (passphrase of {key_file}) is not set for {host.label}"
            )
        return key_file, passphrase

    def _login(self, client: Any, key_file: str | None, passphrase: str | None, known_hosts: Path) -> None:
        """Connect and log in; paramiko's refusals become SshError messages that name the fix."""
        host = self.host
        try:
            client.connect(
                hostname=host.address,
                port=host.port,
                username=host.user,
                key_filename=key_file,
                passphrase=passphrase,
                allow_agent=key_file is None,
                look_for_keys=False,
                timeout=host.connect_timeout_s,
                banner_timeout=host.connect_timeout_s,
                auth_timeout=host.connect_timeout_s,
                channel_timeout=host.connect_timeout_s,
            )
        except _UnknownHostKeyError as exc:
            raise SshError(
                f"host key for {self._where} not in known_hosts {known_hosts}: refusing to connect to {host.label} "
                f"(it offered {exc.key_type} {exc.fingerprint}); add the key after checking that fingerprint"
            ) from None
        except paramiko.BadHostKeyException as exc:
            raise SshError(
                f"host key for {self._where} does not match known_hosts {known_hosts}: refusing to connect to "
                f"{host.label} (it offered {exc.key.get_name()} {exc.key.fingerprint}); if the host was re-keyed, "
                f"check the new key and replace its line"
            ) from None
        except paramiko.PasswordRequiredException:
            raise SshError(
                f"key file {key_file} for {host.label} is encrypted: set `key_passphrase_env` to the name of an "
                f"environment variable holding its passphrase"
            ) from None
        except paramiko.AuthenticationException:
            used = key_file or "the ssh-agent's keys"
            raise SshError(
                f"{host.label} refused key-based login with {used}: is its public key in the remote user's "
                f"authorized_keys?"
            ) from None
        except (paramiko.SSHException, OSError, EOFError) as exc:
            raise SshError(f"cannot connect to {host.label}: {type(exc).__name__}: {exc}") from None

    def connect(self) -> None:
        """Open the connection now (it is otherwise opened by the first `run`); raises SshError."""
        with self._lock:
            self._connect()

    def run(self, argv: list[str], *, stdin: str | None = None, timeout_s: float | None = None) -> tuple[int, str, str]:
        """Run `argv` on the host (each part quoted); returns (exit code, stdout, stderr). Raises SshError."""
        command = shlex.join(argv)
        timeout = timeout_s if timeout_s is not None else self.host.command_timeout_s
        deadline = time.monotonic() + timeout
        with self._lock:
            transport = self._connect()
            try:
                channel = transport.open_session(timeout=timeout)
            except (paramiko.SSHException, OSError, EOFError) as exc:
                self.close()
                raise SshError(f"{self.host.label}: cannot open a session: {exc}") from None
        try:
            channel.settimeout(timeout)
            channel.exec_command(command)
            if stdin is not None:
                channel.sendall(stdin.encode())
            channel.shutdown_write()
            out = bytearray()
            while chunk := channel.recv(_READ_CHUNK):
                out += chunk
                channel.settimeout(max(deadline - time.monotonic(), 0.001))
            # stdout's EOF is the channel's EOF: all of stderr has arrived and is buffered by now.
            err = bytearray()
            while channel.recv_stderr_ready():
                err += channel.recv_stderr(_READ_CHUNK)
            if not channel.status_event.wait(max(deadline - time.monotonic(), 0.001)):
                raise TimeoutError
            code = int(channel.exit_status)
        except TimeoutError:
            raise SshError(f"{self.host.label}: `{command}` did not finish within {timeout:g}s") from None
        except (paramiko.SSHException, OSError, EOFError) as exc:
            raise SshError(f"{self.host.label}: `{command}` failed: {type(exc).__name__}: {exc}") from None
        finally:
            channel.close()
        return code, out.decode(errors="replace"), err.decode(errors="replace")

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def __enter__(self) -> SshSession:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

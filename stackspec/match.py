"""Rules that find a process instance on its host when it runs, instead of a PID written down in advance."""

from __future__ import annotations

import re
from typing import Self

from pydantic import BaseModel, ConfigDict, Field, model_validator


class ProcessMatch(BaseModel):
    """Which process on the instance's host is this instance: every rule given must hold, and exactly one
    live process may satisfy them all. Looked up when a fault resolves its targets (and so at `--dry-run`
    and preflight), on the instance's host: this one, or the `host` reached over SSH."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    cmdline: str | None = Field(
        default=None,
        description="Regular expression searched in the command line, its arguments joined by single spaces "
        "(as `pgrep -f` sees it; a program that rewrites its title, as nginx and redis-server do, is seen "
        "with the title it wrote).",
    )
    exe: str | None = Field(
        default=None,
        description="Absolute path of the running executable (the target of /proc/PID/exe), e.g. /usr/sbin/nginx.",
    )
    pidfile: str | None = Field(
        default=None, description="File holding the PID (a service's own pid file, e.g. /run/nginx.pid)."
    )
    listen_port: int | None = Field(
        default=None, ge=1, le=65535, description="A TCP port the process listens on (any address, IPv4 or IPv6)."
    )

    @model_validator(mode="after")
    def _one_rule_at_least(self) -> Self:
        if not any(v is not None for v in (self.cmdline, self.exe, self.pidfile, self.listen_port)):
            raise ValueError("`match` needs at least one of cmdline, exe, pidfile, listen_port")
        if self.cmdline is not None:
            try:
                re.compile(self.cmdline)
            except re.error as exc:
                raise ValueError(f"`match.cmdline` is not a regular expression: {exc}") from None
        if self.exe is not None and not self.exe.startswith("/"):
            raise ValueError(f"`match.exe` must be an absolute path, not {self.exe!r}")
        return self

    @property
    def label(self) -> str:
        """The rules, as messages name them: cmdline ~ 'nginx: master', listen_port 80."""
        parts = [f"cmdline ~ {self.cmdline!r}"] if self.cmdline is not None else []
        parts += [f"exe {self.exe}"] if self.exe is not None else []
        parts += [f"pidfile {self.pidfile}"] if self.pidfile is not None else []
        parts += [f"listen_port {self.listen_port}"] if self.listen_port is not None else []
        return ", ".join(parts)

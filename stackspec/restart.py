"""How a killed process instance comes back: from its argv, by a restart command, or by its own supervisor."""

from __future__ import annotations

from typing import Literal, Self

from pydantic import Field, field_validator, model_validator

from stackspec.strict import Strict


class Restart(Strict):
    """How a rollback brings a process back after a fault left it dead (`process.kill`, a Redis or ZooKeeper kill).

    `argv`: start the instance's `argv` detached, as the framework has always done. `command`: run a
    restart command on the instance's host (a service manager's, e.g. `[systemctl, restart, nginx]`) and
    check its exit status. `supervisor`: do nothing but wait, the service's own supervisor restarts it.
    With `command` and `supervisor`, the new process is then found by the instance's `match` rules (else
    by its exact `argv`) and must pass its health check.
    """

    by: Literal["argv", "command", "supervisor"] = Field(
        default="argv",
        description="`argv`: start the instance's argv; `command`: run `command` on its host; "
        "`supervisor`: wait for the service's supervisor to bring it back.",
    )
    command: list[str] = Field(
        default_factory=list,
        description="With `by: command`: the restart command as a list of arguments, run without a shell "
        "on the instance's host, e.g. [systemctl, restart, nginx]. Its output goes to a temporary file there.",
    )
    timeout_s: float = Field(
        default=30.0,
        gt=0,
        description="How long the command may run, and then how long a new process may take to appear, "
        "before the rollback fails.",
    )

    @field_validator("command", mode="before")
    @classmethod
    def _a_list(cls, value: object) -> object:
        if isinstance(value, str):
            hint = f" such as {value.split()!r}" if " " in value.strip() else f" such as [{value!r}]"
            raise ValueError(
                f"`restart.command` is a list of arguments, never a shell string: write it as a list{hint}"
            )
        return value

    @model_validator(mode="after")
    def _command_iff_by_command(self) -> Self:
        if self.by == "command" and not self.command:
            raise ValueError("`restart: {by: command}` needs `command` (a list of arguments)")
        if self.by != "command" and self.command:
            raise ValueError(f"`restart.command` goes with `by: command`, not `by: {self.by}`")
        if self.command and not self.command[0]:
            raise ValueError("`restart.command` starts with an empty program name")
        if len(self.command) == 1 and len(self.command[0].split()) > 1:
            raise ValueError(
                f"`restart.command` {self.command!r} is one string with spaces, a shell command line; "
                f"give each argument as its own list item, e.g. {self.command[0].split()!r}"
            )
        return self

    @property
    def program(self) -> str | None:
        """The program the restart command runs, or None when there is no command."""
        return self.command[0] if self.command else None

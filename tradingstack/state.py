"""The reference stack's state file (DIR/state.json, a StackDescription kept current) and the launcher's errors."""

from __future__ import annotations

import os
from pathlib import Path

from stackspec.targets import ProcessTarget, StackDescription

STATE_FILE = "state.json"


class LaunchError(Exception):
    """The reference stack could not be started or stopped as asked (engine.errors.StackError is the engine's)."""


class StackRunningError(LaunchError):
    """DIR already holds a stack with live processes."""


class StackStartError(LaunchError):
    """A component did not come up; carries its name and the tail of its log."""

    def __init__(self, component: str, reason: str, log_tail: str = "") -> None:
        super().__init__(f"{component}: {reason}")
        self.component = component
        self.reason = reason
        self.log_tail = log_tail


def process_targets(state: StackDescription) -> dict[str, ProcessTarget]:
    return {name: t for name, t in state.targets.items() if isinstance(t, ProcessTarget)}


def read_state(directory: Path) -> StackDescription | None:
    path = Path(directory) / STATE_FILE
    if not path.exists():
        return None
    return StackDescription.model_validate_json(path.read_text())


def write_state(directory: Path, description: StackDescription) -> None:
    """Write state.json atomically (temp file + rename), so readers never see half a file."""
    path = Path(directory) / STATE_FILE
    temp = path.with_name(f".{STATE_FILE}.{os.getpid()}.tmp")
    temp.write_text(description.model_dump_json(indent=2) + "\n")
    os.replace(temp, path)


def log_tail(path: str | None, lines: int = 20) -> str:
    if path is None or not Path(path).exists():
        return ""
    return "\n".join(Path(path).read_text(errors="replace").splitlines()[-lines:])

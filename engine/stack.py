"""Finding the stack a run drills: the live reference stack's state file, or a user's description file.

The reference trading stack is a separate program (`python -m tradingstack`); the engine starts and
stops it as a subprocess and reads the state file it writes, never its code. What a reference stack
of a profile is made of, before one runs, it asks the same program (`describe`), once per profile.
"""

from __future__ import annotations

import contextlib
import difflib
import hashlib
import json
import os
import subprocess
import sys
import threading
from functools import cache
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from engine.errors import ChaosError, StackError
from engine.files import LIMITS
from engine.journal import write_atomic
from engine.loader import load_document, validate_model
from engine.model import StackRef
from injectors.errors import TargetNotFoundError
from stackspec.targets import (
    ContainerTarget,
    KubernetesTarget,
    ProcessInstance,
    ProcessTarget,
    StackDescription,
    Target,
)

STATE_FILE = "state.json"
DESCRIBE_TIMEOUT_S = 60.0


def default_stack_dir() -> Path:
    """Where `chaos.py stack up` keeps the reference stack: $CHAOS_STACK_DIR or ./runs/stack."""
    return Path(os.environ.get("CHAOS_STACK_DIR", "runs/stack"))


class LiveStack:
    """A stack description in use by a run; changes (restarted PIDs) are saved back when it has a file."""

    def __init__(self, description: StackDescription, path: Path | None, overlay: LiveOverlay | None = None) -> None:
        self._description = description
        self.path = path
        self._overlay = overlay
        self._lock = threading.Lock()

    @property
    def description(self) -> StackDescription:
        return self._description

    @property
    def overlay(self) -> LiveOverlay | None:
        return self._overlay

    def target(self, name: str) -> Target:
        targets = self._description.targets
        if name not in targets:
            close = difflib.get_close_matches(name, list(targets), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else f"; targets are: {', '.join(sorted(targets))}"
            raise TargetNotFoundError(f"stack {self._description.name!r} has no target {name!r}{hint}")
        return targets[name]

    def replace_instance(self, target: str, instance: ProcessInstance) -> None:
        with self._lock:
            group = self.target(target)
            if not isinstance(group, ProcessTarget):
                raise TargetNotFoundError(f"target {target!r} has no process instances")
            instances = [instance if i.name == instance.name else i for i in group.instances]
            targets = dict(self._description.targets)
            targets[target] = group.model_copy(update={"instances": instances})
            self._description = self._description.model_copy(update={"targets": targets})
            if self.path is not None:
                write_atomic(self.path, self._description.model_dump_json(indent=1) + "\n")
            elif self._overlay is not None:
                self._overlay.record(target, instance)

    def endpoint(self, name_or_url: str) -> str:
        if "://" in name_or_url:
            return name_or_url
        try:
            return self._description.endpoints[name_or_url]
        except KeyError:
            known = ", ".join(sorted(self._description.endpoints)) or "none"
            raise StackError(
                f"stack {self._description.name!r} has no endpoint {name_or_url!r} (known: {known})"
            ) from None

    def summary(self) -> dict[str, Any]:
        desc = self._description
        return {
            "name": desc.name,
            "profile": desc.profile,
            "production": desc.production,
            "trading": desc.trading,  # reports word themselves by it (engine.wording)
            "file": str(self.path) if self.path else None,
            "endpoints": desc.endpoints,
            "targets": {name: _instances_summary(group) for name, group in desc.targets.items()},
        }


def _instances_summary(group: Target) -> list[dict[str, Any]]:
    if isinstance(group, ProcessTarget):
        return [{"kind": "process", "name": i.name, "pid": i.pid} for i in group.instances]
    if isinstance(group, ContainerTarget):
        listed = [{"kind": "container", "name": i.name, "container": i.container or i.name} for i in group.containers]
        return listed + ([{"kind": "container", "labels": group.labels}] if group.labels else [])
    if isinstance(group, KubernetesTarget):  # its members (pods, nodes) are only known at resolve time
        return [group.model_dump(include={"kind", "resource", "namespace", "label_selector", "deployment"})]
    return [{"kind": "link", "name": i.name, "proxy": i.proxy, "client": i.client} for i in group.instances]


OVERLAY_FORMAT = 2


def instance_fingerprint(instance: ProcessInstance) -> str:
    """SHA-256 of an instance as written in its stack file (every field, its PID too): what "edited" is judged on."""
    written = json.dumps(instance.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(written.encode()).hexdigest()


def _fingerprints(description: StackDescription) -> dict[str, dict[str, str]]:
    return {
        name: {i.name: instance_fingerprint(i) for i in group.instances}
        for name, group in description.targets.items()
        if isinstance(group, ProcessTarget)
    }


class LiveOverlay:
    """What runs changed in a user's stack file, kept beside it: `<file>.live.json`.

    A user's hand-written stack file is never rewritten. When a rollback restarts a process (a new
    PID), the new PID and start time are recorded here, with a fingerprint of that instance as the file
    wrote it, and replace the file's PID on the next runs for as long as that instance is unchanged in
    the file: editing another instance, or anything else in the file, keeps it; once the user edits this
    instance (its PID included), what they wrote wins. An overlay that cannot be read is ignored; one of
    format 1 (a whole-file SHA-256) is kept only while the file is byte for byte the same.
    """

    def __init__(self, stack_file: Path) -> None:
        self.stack_file = stack_file
        self.path = stack_file.with_name(stack_file.name + ".live.json")
        self._written: dict[str, dict[str, str]] | None = None  # fingerprints of the file's instances

    def _written_now(self) -> dict[str, dict[str, str]]:
        if self._written is None:
            try:
                self._written = _fingerprints(read_description(self.stack_file))
            except ChaosError:
                self._written = {}  # an unreadable file: nothing recorded now will be applied later
        return self._written

    def _read(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """(live PIDs, fingerprints they were recorded against), by target and instance; ({}, {}) if unusable."""
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}, {}
        if not isinstance(data, dict) or not isinstance(data.get("instances"), dict):
            return {}, {}
        instances: dict[str, Any] = data["instances"]
        if "format" not in data:  # format 1: valid for the very file it was written against, per instance now
            try:
                same = data.get("stack_sha256") == hashlib.sha256(self.stack_file.read_bytes()).hexdigest()
            except OSError:
                return {}, {}
            return (instances, self._written_now()) if same else ({}, {})
        written = data.get("written")
        if data.get("format") != OVERLAY_FORMAT or not isinstance(written, dict):
            return {}, {}
        return instances, written

    def _current(self) -> dict[str, dict[str, Any]]:
        """The recorded live PIDs still valid for the file as it is now."""
        instances, written = self._read()
        now = self._written_now()
        kept: dict[str, dict[str, Any]] = {}
        for target, by_instance in instances.items():
            recorded_for = written.get(target)
            if not isinstance(by_instance, dict) or not isinstance(recorded_for, dict):
                continue
            for name, live in by_instance.items():
                fingerprint = now.get(target, {}).get(name)
                if fingerprint is not None and recorded_for.get(name) == fingerprint and _live_pid(live):
                    kept.setdefault(target, {})[name] = live
        return kept

    def apply(self, description: StackDescription) -> StackDescription:
        """The description with the recorded PID (and start time) of every instance unchanged since it was recorded."""
        self._written = _fingerprints(description)
        recorded = self._current()
        targets = dict(description.targets)
        for name, by_instance in recorded.items():
            group = targets.get(name)
            if not isinstance(group, ProcessTarget):
                continue
            instances = [_with_live(i, by_instance.get(i.name)) for i in group.instances]
            targets[name] = group.model_copy(update={"instances": instances})
        return description.model_copy(update={"targets": targets})

    def record(self, target: str, instance: ProcessInstance) -> None:
        """Keep what a run changed — the PID and its start time — and nothing else: no argv, env or URLs,
        so no secret of the stack file is copied here (and the file is the owner's alone)."""
        recorded = self._current()
        recorded.setdefault(target, {})[instance.name] = {"pid": instance.pid, "start_time": instance.start_time}
        now = self._written_now()
        written = {t: {n: now[t][n] for n in names if n in now.get(t, {})} for t, names in recorded.items()}
        document = {"format": OVERLAY_FORMAT, "instances": recorded, "written": written}
        write_atomic(self.path, json.dumps(document, indent=1) + "\n")
        with contextlib.suppress(OSError):
            os.chmod(self.path, 0o600)


def _live_pid(live: object) -> bool:
    """Whether an overlay entry is a PID and start time (each an int or null), as `record` writes them."""
    if not isinstance(live, dict) or not {"pid", "start_time"} <= set(live):
        return False
    values = (live["pid"], live["start_time"])
    return all(v is None or (isinstance(v, int) and not isinstance(v, bool)) for v in values)


def _with_live(instance: ProcessInstance, live: object) -> ProcessInstance:
    """`instance` with the live PID and start time recorded for it, if any."""
    if not _live_pid(live):
        return instance
    assert isinstance(live, dict)
    return instance.model_copy(update={"pid": live["pid"], "start_time": live["start_time"]})


def read_description(path: Path) -> StackDescription:
    """Read a stack description (JSON or YAML); problems come back with file:line."""
    doc = load_document(path, LIMITS["stack"])  # YAML is a superset of JSON: one loader, located errors for both
    return validate_model(StackDescription, doc)


def resolve_stack_file(ref: StackRef, experiment_dir: Path, stack_dir: Path) -> Path:
    if ref.file is not None:
        return (experiment_dir / ref.file).resolve()
    return stack_dir / STATE_FILE


def open_stack(ref: StackRef, experiment_dir: Path, stack_dir: Path) -> LiveStack:
    """The live stack for a run; for the reference stack, its state file must exist and match."""
    path = resolve_stack_file(ref, experiment_dir, stack_dir)
    if ref.reference is not None and not path.exists():
        raise StackError(
            f"no reference stack is running in {stack_dir} (no {STATE_FILE}); start one with "
            f"`chaos.py stack up --profile {ref.reference}` or run with --stack-up"
        )
    description = read_description(path)
    if ref.reference is not None and description.profile != ref.reference:
        raise StackError(
            f"the reference stack in {stack_dir} runs profile {description.profile!r}, "
            f"the experiment needs {ref.reference!r}"
        )
    if ref.reference is not None:
        return LiveStack(description, path)
    # A user's hand-written file is never rewritten: restarted instances go to <file>.live.json beside it.
    overlay = LiveOverlay(path)
    return LiveStack(overlay.apply(description), None, overlay)


def _tradingstack(args: list[str], log: Path | None, timeout_s: float) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
    try:
        result = subprocess.run(
            [sys.executable, "-m", "tradingstack", *args],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            env=env,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise StackError(f"`tradingstack {' '.join(args)}` did not finish in {timeout_s:.0f}s") from exc
    if log is not None:
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("a", encoding="utf-8") as handle:
            handle.write(f"$ tradingstack {' '.join(args)}\n{result.stdout}{result.stderr}\n")
    return result


def start_reference(profile: str, stack_dir: Path, log: Path | None = None, timeout_s: float = 120.0) -> None:
    """Start the reference trading stack in `stack_dir` (as its own processes) and wait until healthy."""
    result = _tradingstack(["up", "--dir", str(stack_dir), "--profile", profile], log, timeout_s)
    if result.returncode != 0:
        tail = (result.stdout + result.stderr).strip().splitlines()[-15:]
        raise StackError("the reference stack did not start:\n  " + "\n  ".join(tail))


def stop_reference(stack_dir: Path, log: Path | None = None, timeout_s: float = 60.0) -> None:
    result = _tradingstack(["down", "--dir", str(stack_dir)], log, timeout_s)
    if result.returncode != 0:
        raise StackError(f"the reference stack did not stop cleanly: {(result.stdout + result.stderr).strip()}")


@cache
def reference_description(profile: str) -> StackDescription:
    """The description a reference stack of `profile` would have (`python -m tradingstack describe`), asked once
    per profile; its target names, kinds and endpoint names are a started stack's, its ports placeholders."""
    result = _tradingstack(["describe", "--profile", profile], None, DESCRIBE_TIMEOUT_S)
    if result.returncode != 0:
        said = (result.stderr.strip() or result.stdout.strip()).splitlines()[-5:]
        raise StackError(f"the reference stack could not describe profile {profile!r}: " + " / ".join(said))
    try:
        return StackDescription.model_validate_json(result.stdout)
    except ValidationError as exc:
        raise StackError(f"`tradingstack describe --profile {profile}` printed no stack description: {exc}") from exc


def reference_targets(profile: str) -> dict[str, str]:
    """The targets (name → kind) of the reference stack of `profile`, for checking experiments before it runs."""
    return {name: target.kind for name, target in reference_description(profile).targets.items()}


def reference_endpoints(profile: str) -> set[str]:
    """The endpoint names of the reference stack of `profile`."""
    return set(reference_description(profile).endpoints)

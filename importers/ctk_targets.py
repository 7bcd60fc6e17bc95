"""The stack a converted experiment drills: its targets and endpoints, and the processes and Kubernetes objects
that Chaos Toolkit activities are matched against."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from engine.errors import InvalidInputError
from engine.model import REFERENCE_PROFILES
from engine.stack import read_description, reference_description
from importers.ctk_document import portable_path
from stackspec.targets import KubernetesTarget, ProcessTarget, StackDescription


@dataclass(frozen=True)
class ProcessCandidate:
    """A process of the stack as a pattern sees it: its command line and process name."""

    target: str
    instance: str
    argv: tuple[str, ...]
    pid: int | None = None

    @property
    def cmdline(self) -> str:
        return " ".join(self.argv)

    @property
    def comm(self) -> str:
        # What pkill (without -f) and killall match: the executable's name, cut to 15 characters by the kernel.
        return os.path.basename(self.argv[0])[:15]


@dataclass(frozen=True)
class KubeCandidate:
    """A `kubernetes` target of the stack description."""

    target: str
    resource: str
    namespace: str
    label_selector: str | None
    deployment: str | None


@dataclass
class StackInfo:
    """What the conversion knows of the stack before any run."""

    ref: dict[str, str]
    reference: str | None
    file: Path | None
    kinds: dict[str, str] = field(default_factory=dict)
    endpoints: set[str] = field(default_factory=set)
    processes: list[ProcessCandidate] = field(default_factory=list)
    kube: list[KubeCandidate] = field(default_factory=list)

    def instances(self, target: str) -> list[str]:
        return [p.instance for p in self.processes if p.target == target]

    @property
    def label(self) -> str:
        return f"the reference stack ({self.reference})" if self.reference else f"stack description {self.file}"


def parse_stack_option(value: str) -> tuple[str | None, Path | None]:
    """`reference:PROFILE` (or a bare profile name) → (profile, None); anything else is a stack file path."""
    if value.startswith("reference:"):
        return value.removeprefix("reference:"), None
    if value in REFERENCE_PROFILES and not Path(value).exists():
        return value, None
    return None, Path(value)


def load_stack(value: str, base_dir: Path) -> StackInfo:
    """The stack named by the `stack` option; raises InvalidInputError (exit 2) when it cannot be read."""
    profile, path = parse_stack_option(value)
    if profile is not None:
        if profile not in REFERENCE_PROFILES:
            raise ValueError(f"unknown reference profile {profile!r}; known: {', '.join(REFERENCE_PROFILES)}")
        # The reference stack's own description (what `tradingstack describe` prints), never a copy of it.
        return _known(StackInfo({"reference": profile}, profile, None), reference_description(profile))
    assert path is not None
    absolute = path.resolve()
    if not absolute.is_file():
        raise ValueError(f"stack description {value!r} not found")
    info = StackInfo({"file": portable_path(absolute, base_dir)}, None, absolute)
    return _known(info, read_description(absolute))


def _known(info: StackInfo, desc: StackDescription) -> StackInfo:
    """`info` with the targets, endpoints, processes and Kubernetes objects of `desc`."""
    info.kinds = {name: target.kind for name, target in desc.targets.items()}
    info.endpoints = set(desc.endpoints)
    for name, target in desc.targets.items():
        if isinstance(target, ProcessTarget):
            info.processes += [ProcessCandidate(name, i.name, tuple(i.argv), i.pid) for i in target.instances]
        elif isinstance(target, KubernetesTarget):
            info.kube.append(
                KubeCandidate(name, target.resource, target.namespace, target.label_selector, target.deployment)
            )
    return info


def try_load_stack(value: str, base_dir: Path) -> tuple[StackInfo | None, str | None, InvalidInputError | None]:
    """load_stack, with its refusal as a message (bad option) or the description's own problems."""
    try:
        return load_stack(value, base_dir), None, None
    except InvalidInputError as exc:
        return None, None, exc
    except ValueError as exc:
        return None, str(exc), None


def normalized_selector(selector: str | None) -> frozenset[str] | None:
    """A label selector as a set of its requirements, so 'a=1, b=2' and 'b=2,a=1' are one selector."""
    if selector is None:
        return None
    parts, depth, current = [], 0, ""
    for char in selector:
        depth += char == "("
        depth -= char == ")"
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    parts.append(current)
    return frozenset("".join(part.split()) for part in parts if part.strip())

"""A system's own audit: the command its stack description declares (`audit:`), run once, its JSON report read.

The report (docs/integrity.md, "The audit command") is one JSON object on stdout:

    {"checks": {"<invariant>": {"checked": 120, "violations": 1, "examples": [{...}]}, ...}, ...}

`checked` and `violations` are counts (integers ≥ 0), `examples` a list of JSON objects (the first few
violations); other keys, at the top or per invariant, are the system's own and are kept as they are.
Exit 0 means it audited — violations are in the report, not in the exit code; any other exit means it
could not, and stderr says why.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from typing import Any, NoReturn

from clients.errors import ClientError
from clients.procs import environment_with
from stackspec.targets import AuditCommand

MAX_ERROR_CHARS = 500


class AuditError(ClientError):
    """The audit could not run, failed, or printed something that is not a report."""


@dataclass(frozen=True)
class Invariant:
    """One invariant of a report: how many items were checked, how many broke it, the first few of those."""

    checked: int
    violations: int
    examples: list[dict[str, Any]]


def parse_report(text: str) -> dict[str, Any]:
    """The report printed by an audit, checked against the contract above; AuditError naming what is wrong."""
    try:
        report: dict[str, Any] = json.loads(text)
    except ValueError as exc:
        raise AuditError(f"the audit did not print JSON ({exc}): {text.strip()[:200]!r}") from exc
    checks = report.get("checks") if isinstance(report, dict) else None
    if not isinstance(checks, dict):
        raise AuditError('the audit\'s report has no "checks" object (see docs/integrity.md)')
    for name in checks:
        invariant(report, name)  # every result as agreed, or none is used
    return report


def invariant(report: dict[str, Any], name: str) -> Invariant:
    """The report's result for invariant `name`; AuditError when the audit does not report it, or not as agreed."""
    found = report["checks"].get(name)
    if found is None:
        known = ", ".join(sorted(report["checks"])) or "none"
        raise AuditError(f"the audit does not report {name!r} (it reports: {known})")
    if not isinstance(found, dict):
        _malformed(name, "is not an object")
    counts = [found.get("checked"), found.get("violations")]
    if not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in counts):
        _malformed(name, f"needs integer counts `checked` and `violations`, got {counts}")
    examples = found.get("examples", [])
    if not isinstance(examples, list) or not all(isinstance(e, dict) for e in examples):
        _malformed(name, "has `examples` that are not a list of objects")
    return Invariant(found["checked"], found["violations"], examples)


def _malformed(name: str, why: str) -> NoReturn:
    raise AuditError(f"the audit's result for {name!r} {why} (see docs/integrity.md)")


def run_audit(command: AuditCommand) -> dict[str, Any]:
    """Run the declared command (no shell; `${VAR}` in its env expanded now) and return its checked report."""
    env = environment_with(command.env)
    try:
        result = subprocess.run(
            command.argv,
            cwd=command.cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=command.timeout_s,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise AuditError(f"the audit `{command.argv[0]}` did not finish within {command.timeout_s:g}s") from exc
    except OSError as exc:
        raise AuditError(f"the audit `{command.argv[0]}` could not be started: {exc}") from exc
    if result.returncode != 0:
        said = (result.stderr.strip() or result.stdout.strip())[-MAX_ERROR_CHARS:]
        raise AuditError(f"the audit failed (exit code {result.returncode}): {said}")
    return parse_report(result.stdout)

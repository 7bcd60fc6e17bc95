"""Print the fault matrix (tests/faultmatrix/test_*.py's results) as the Markdown table of docs/reliability.md.

    python -m tests.faultmatrix.report [RESULTS_JSON...]

Each matrix test module writes its cells, one by one, to chaos-fault-matrix-<module>.json in
$CHAOS_FAULT_MATRIX_DIR (default: the temp directory); without arguments every such file there is
merged into one table.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

ENDINGS = ("normal", "exception", "sigint", "sigterm", "sigkill", "disk_full", "concurrent_recover")
HEADINGS = {
    "normal": "normal end",
    "exception": "exception in the run",
    "sigint": "SIGINT",
    "sigterm": "SIGTERM",
    "sigkill": "runner SIGKILL → `chaos.py recover`",
    "disk_full": "runs dir full",
    "concurrent_recover": "`chaos.py recover` during the run",
}


PREFIX = "chaos-fault-matrix-"


def results_dir() -> Path:
    return Path(os.environ.get("CHAOS_FAULT_MATRIX_DIR") or tempfile.gettempdir())


def results_path(module: str) -> Path:
    """Where one matrix test module writes its cells."""
    return results_dir() / f"{PREFIX}{module}.json"


def merged(paths: list[Path]) -> dict[str, Any]:
    """One result from several modules' files: their cells together, their times added up."""
    parts = [json.loads(p.read_text()) for p in paths]
    return {
        "started_at": min(part["started_at"] for part in parts),
        "cpus": parts[0]["cpus"],
        "stack_up_s": round(sum(part["stack_up_s"] for part in parts), 1),
        "matrix_s": round(sum(part["matrix_s"] for part in parts), 1),
        "cells": [cell for part in parts for cell in part["cells"]],
    }


def cell_text(cell: dict[str, Any] | None) -> str:
    if cell is None:
        return "—"
    if not cell["ok"]:
        return "✗"
    seconds = cell.get("seconds")
    if seconds is None:
        return "✓"
    if seconds >= 1:
        return f"✓ {seconds:.1f} s"
    return f"✓ {seconds * 1000:.0f} ms" if seconds >= 0.001 else "✓ <1 ms"


def render(results: dict[str, Any]) -> str:
    """The Markdown table: one row per kind, one column per ending; ✓ with the measured time, ✗, or — (not run)."""
    cells = {(c["kind"], c["ending"]): c for c in results["cells"]}
    kinds = sorted({kind for kind, _ in cells})
    lines = [
        "| kind | " + " | ".join(HEADINGS[e] for e in ENDINGS) + " |",
        "|---|" + "---|" * len(ENDINGS),
    ]
    for kind in kinds:
        lines.append(f"| `{kind}` | " + " | ".join(cell_text(cells.get((kind, e))) for e in ENDINGS) + " |")
    passed = sum(1 for c in results["cells"] if c["ok"])
    lines += [
        "",
        f"{passed} of {len(results['cells'])} cells passed; the matrix took {results['matrix_s']:.0f} s "
        f"(+ {results['stack_up_s']:.0f} s to start the stacks) on a {results['cpus']}-core machine, "
        f"{results['started_at'][:10]}.",
    ]
    failed = [c for c in results["cells"] if not c["ok"]]
    for cell in failed:
        lines.append(f"- ✗ `{cell['kind']}` / {cell['ending']}: {cell.get('error') or 'failed'}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    paths = [Path(a) for a in args] if args else sorted(results_dir().glob(f"{PREFIX}*.json"))
    missing = [str(p) for p in paths if not p.exists()]
    if not paths or missing:
        where = ", ".join(missing) or f"{results_dir()}/{PREFIX}*.json"
        print(f"no results at {where}: run `pytest tests/faultmatrix` first", file=sys.stderr)
        return 1
    sys.stdout.write(render(merged(paths)))
    return 0


if __name__ == "__main__":
    sys.exit(main())

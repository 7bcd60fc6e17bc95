"""Print the fault matrix (tests/test_fault_matrix.py's results) as the Markdown table of docs/reliability.md.

    python -m tests.matrix_report [RESULTS_JSON]

RESULTS_JSON defaults to $CHAOS_FAULT_MATRIX_JSON, else chaos-fault-matrix.json in the temp directory:
where the matrix test writes it, cell by cell.
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


def results_path() -> Path:
    return Path(os.environ.get("CHAOS_FAULT_MATRIX_JSON") or Path(tempfile.gettempdir()) / "chaos-fault-matrix.json")


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
    path = Path(args[0]) if args else results_path()
    if not path.exists():
        print(f"no results at {path}: run `pytest tests/test_fault_matrix.py` first", file=sys.stderr)
        return 1
    sys.stdout.write(render(json.loads(path.read_text())))
    return 0


if __name__ == "__main__":
    sys.exit(main())

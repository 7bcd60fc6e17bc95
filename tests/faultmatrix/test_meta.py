"""Fast checks of the fault matrix itself: every kind has a scenario and a module, the report renders."""

from __future__ import annotations

import json
from pathlib import Path

from injectors.registry import all_kinds, get_injector
from injectors.selection import Selection
from tests.faultmatrix.harness import MODULES, SCENARIOS, cells, module_kinds
from tests.faultmatrix.report import ENDINGS, main, merged, render

HERE = Path(__file__).resolve().parent


def test_every_registered_kind_has_a_matrix_scenario() -> None:
    missing = sorted(set(all_kinds()) - set(SCENARIOS))
    assert not missing, (
        f"add a scenario to SCENARIOS in its domain's tests/faultmatrix/kinds/<domain>.py for: {missing}"
    )
    assert not set(SCENARIOS) - set(all_kinds()), "a scenario for a kind nobody registers"


def test_every_kind_runs_in_exactly_one_matrix_module() -> None:
    assert sorted(p.stem for p in HERE.glob("test_*.py") if p.stem != "test_meta") == sorted(MODULES)
    covered = [kind for module in MODULES for kind in module_kinds(module)]
    assert sorted(covered) == sorted(all_kinds()), "a kind in no module, or in two: see MODULES in harness.py"
    for module in MODULES:
        ids = [p.id for p in cells(f"tests.faultmatrix.{module}")]
        assert ids == [f"{kind}-{ending}" for kind in module_kinds(module) for ending in ENDINGS]


def test_every_scenario_names_a_registered_kind_with_valid_params() -> None:
    for kind, scenario in SCENARIOS.items():
        get_injector(kind).parse_params(scenario.params)
        if scenario.select is not None:
            Selection.model_validate(scenario.select)


def test_the_report_renders_one_row_per_kind_with_times_failures_and_gaps() -> None:
    results = {
        "started_at": "2026-01-02T03:04:05Z",
        "cpus": 2,
        "stack_up_s": 11.2,
        "matrix_s": 201.4,
        "cells": [
            {"kind": "b.kind", "ending": "normal", "ok": True, "seconds": 0.0123, "error": None},
            {"kind": "b.kind", "ending": "exception", "ok": True, "seconds": 10.26, "error": None},
            {"kind": "b.kind", "ending": "sigint", "ok": True, "seconds": 0.0002, "error": None},
            {"kind": "a.kind", "ending": "sigkill", "ok": False, "seconds": None, "error": "still there"},
        ],
    }
    lines = render(results).splitlines()
    assert lines[0].startswith("| kind | normal end | exception in the run | SIGINT | SIGTERM |")
    assert lines[0].endswith("| runs dir full | `chaos.py recover` during the run |")
    assert lines[2] == "| `a.kind` | — | — | — | — | ✗ | — | — |"
    assert lines[3] == "| `b.kind` | ✓ 12 ms | ✓ 10.3 s | ✓ <1 ms | — | — | — | — |"
    assert "3 of 4 cells passed; the matrix took 201 s (+ 11 s to start the stacks) on a 2-core machine" in lines[5]
    assert lines[6] == "- ✗ `a.kind` / sigkill: still there"


def test_results_of_several_modules_merge_into_one_table(tmp_path: Path) -> None:
    def part(kind: str, matrix_s: float) -> dict[str, object]:
        cell = {"kind": kind, "ending": "normal", "ok": True, "seconds": 0.5, "error": None}
        return {
            "started_at": f"2026-01-0{int(matrix_s)}T00:00:00Z",
            "cpus": 2,
            "stack_up_s": 1.0,
            "matrix_s": matrix_s,
            "cells": [cell],
        }

    paths = []
    for name, kind, seconds in (("a", "x.kind", 2.0), ("b", "y.kind", 3.0)):
        path = tmp_path / f"chaos-fault-matrix-{name}.json"
        path.write_text(json.dumps(part(kind, seconds)))
        paths.append(path)
    together = merged(paths)
    assert (together["matrix_s"], together["stack_up_s"], together["started_at"]) == (5.0, 2.0, "2026-01-02T00:00:00Z")
    table = render(together)
    assert "| `x.kind` | ✓ 500 ms |" in table and "| `y.kind` | ✓ 500 ms |" in table
    assert main([str(p) for p in paths]) == 0
    assert main([str(tmp_path / "none.json")]) == 1

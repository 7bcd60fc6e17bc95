"""The fault matrix on processes and links of the real `ha` reference stack.

Every kind here, every way a run can end: see tests/faultmatrix/harness.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.faultmatrix.harness import Drivers, Results, cells, run_cell

pytestmark = [pytest.mark.slow, pytest.mark.infra]
CELLS = cells(__name__)


@pytest.mark.parametrize(("kind", "ending"), CELLS)
def test_fault_is_gone(
    kind: str, ending: str, request: pytest.FixtureRequest, drivers: Drivers, results: Results, tmp_path: Path
) -> None:
    run_cell(kind, ending, request, drivers, results, tmp_path)

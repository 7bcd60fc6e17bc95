"""Helpers for the Chaos Toolkit importer tests: documents written to files, conversions, refusals."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from importers.ctk import Conversion, ConvertOptions, CtkImportError, convert

FIXTURES = Path(__file__).resolve().parent / "ctk"
GATEWAY = {"http://127.0.0.1:8080": "gateway"}  # the reference stack chooses its ports: map the documents' URL
KILL_MATCHER_1 = {
    "type": "action",
    "name": "kill-matcher-1",
    "provider": {
        "type": "process",
        "path": "pkill",
        "arguments": ["-9", "-f", "tradingstack.matcher --name matcher-1"],
    },
    "pauses": {"after": 5},
}


def probe(tolerance: Any, **provider: Any) -> dict[str, Any]:
    """A hypothesis probe of the gateway's health with this tolerance (and provider keys overridden)."""
    return {
        "type": "probe",
        "name": "gateway-health",
        "tolerance": tolerance,
        "provider": {"type": "http", "url": "http://127.0.0.1:8080/health", **provider},
    }


def document(probes: list[dict[str, Any]] | None = None, method: list[Any] | None = None, **top: Any) -> dict[str, Any]:
    """A small Chaos Toolkit experiment: the gateway's health as hypothesis, matcher-1 killed in the method."""
    doc: dict[str, Any] = {"version": "1.0.0", "title": "t", "description": "d"}
    doc["steady-state-hypothesis"] = {"title": "healthy", "probes": probes if probes is not None else [probe(200)]}
    doc["method"] = method if method is not None else [KILL_MATCHER_1]
    doc.update(top)
    return doc


def write(tmp_path: Path, doc: dict[str, Any] | str, name: str = "experiment.json") -> Path:
    path = tmp_path / name
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc, indent=2))
    return path


def converted(tmp_path: Path, doc: dict[str, Any] | str, name: str = "experiment.json", **options: Any) -> Conversion:
    options.setdefault("endpoints", GATEWAY)
    return convert(write(tmp_path, doc, name), ConvertOptions(**options))


def refused(tmp_path: Path, doc: dict[str, Any] | str, name: str = "experiment.json", **options: Any) -> list[str]:
    """The problems of a conversion that must fail, each as `file:line:col: path: message`."""
    options.setdefault("endpoints", GATEWAY)
    with pytest.raises(CtkImportError) as caught:
        convert(write(tmp_path, doc, name), ConvertOptions(**options))
    return [str(problem) for problem in caught.value.problems]


def decisions(conversion: Conversion) -> list[str]:
    return [str(decision) for decision in conversion.decisions]

"""Reports rendered from a run's journal alone: a self-contained HTML report and JUnit XML for CI."""

from __future__ import annotations

from pathlib import Path

from engine.journal import Journal
from reports.html import render_html, write_html
from reports.junit import render_junit, write_junit

__all__ = ["render_html", "render_junit", "write_all", "write_html", "write_junit"]

HTML_NAME = "report.html"
JUNIT_NAME = "junit.xml"


def write_all(journal: Journal, run_dir: Path) -> dict[str, Path]:
    """Write report.html and junit.xml into `run_dir` (beside journal.json); returns the paths by format."""
    return {
        "html": write_html(journal, Path(run_dir) / HTML_NAME),
        "junit": write_junit(journal, Path(run_dir) / JUNIT_NAME),
    }

"""Reports rendered from a run's journal alone: a self-contained HTML report, JUnit XML and a Markdown summary."""

from __future__ import annotations

from pathlib import Path

from engine.journal import Journal, redacted
from reports.html import render_html, write_html
from reports.junit import render_junit, write_junit
from reports.markdown import render_markdown, write_markdown

__all__ = ["render_html", "render_junit", "render_markdown", "write_all", "write_html", "write_junit", "write_markdown"]

HTML_NAME = "report.html"
JUNIT_NAME = "junit.xml"
MARKDOWN_NAME = "summary.md"


def write_all(journal: Journal, run_dir: Path) -> dict[str, Path]:
    """Write report.html, junit.xml and summary.md into `run_dir` (beside journal.json); returns the paths.

    Reports are rendered from the redacted journal: no secret reaches them (engine.redact)."""
    journal = redacted(journal)
    return {
        "html": write_html(journal, Path(run_dir) / HTML_NAME),
        "junit": write_junit(journal, Path(run_dir) / JUNIT_NAME),
        "summary": write_markdown(journal, Path(run_dir) / MARKDOWN_NAME),
    }

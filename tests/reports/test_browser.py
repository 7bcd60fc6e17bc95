"""Both HTML reports in the system's real Chromium (under Playwright): rendering, charts, offline, escaping, PDF.

One browser for the module. Every request a page makes is recorded and anything but file:// is refused,
so "nothing leaves file://" is observed, not assumed. Screenshots go under pytest's tmp_path and are
printed and attached to the JUnit XML (record_property) so they can be looked at after the run.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from drilling.history import ENV as HISTORY_ENV
from drilling.history import History, default_history_path
from drilling.record import save_drill_record
from engine.errors import ExitCode
from engine.journal import ErrorRecord, Journal, save_journal
from reports.html import write_html
from reports.management import write_management_report
from reports.pdf import CHROMIUM_ENV, PdfError, find_chromium, print_pdf
from tests.reports.drill_records import make_drill, make_history
from tests.reports.report_journals import make_journal
from tests.support.helpers import ROOT, require_programs

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page, Route

SCRIPT = "<script>window.__pwned=1</script>"
IMG = '"><img src=x onerror="window.__pwned=2">'
HOSTILE = f"{SCRIPT}{IMG}"
A4_CONTENT_PX = (703, 1032)  # A4 at 96 px/in less the report's 12 mm margins: what page one holds


@dataclass
class Visit:
    """A page opened from a file, with everything it asked for and complained about."""

    page: Page
    requests: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    require_programs("chromium")
    from playwright.sync_api import sync_playwright

    from reports.pdf import launch

    with sync_playwright() as playwright:
        started = launch(playwright)
        yield started
        started.close()


@pytest.fixture
def visit(browser: Browser) -> Iterator[Callable[..., Visit]]:
    pages: list[Page] = []

    def open_file(path: Path, *, media: str = "screen", viewport: tuple[int, int] = (1100, 900)) -> Visit:
        page = browser.new_page(viewport={"width": viewport[0], "height": viewport[1]})
        pages.append(page)
        seen = Visit(page)

        def record(route: Route) -> None:
            seen.requests.append(route.request.url)
            if route.request.url.startswith("file:"):
                route.continue_()
            else:
                route.abort("blockedbyclient")

        page.route("**/*", record)
        page.on("console", lambda m: seen.console_errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda exc: seen.console_errors.append(f"page error: {exc}"))
        page.emulate_media(media="print" if media == "print" else "screen")
        page.goto(path.resolve().as_uri(), wait_until="load")
        return seen

    yield open_file
    for page in pages:
        page.close()


def screenshot(page: Page, path: Path, record_property: Callable[[str, Any], None]) -> Path:
    page.screenshot(path=str(path), full_page=True)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    record_property("screenshot", str(path))
    print(f"screenshot: {path}")
    return path


def assert_charts_visible(page: Page, expected: int) -> None:
    charts = page.locator("svg.chart")
    assert charts.count() == expected
    for i in range(expected):
        chart = charts.nth(i)
        assert chart.is_visible()
        box = chart.bounding_box()
        assert box is not None and box["width"] > 300 and box["height"] > 50, box
        assert chart.locator("path.series, rect, g.span").count() > 0  # drawn, not just a placeholder


def assert_offline(seen: Visit, path: Path) -> None:
    assert seen.requests, "the route recorded nothing: the page was not loaded through it"
    assert all(url.startswith("file:") for url in seen.requests), seen.requests
    assert seen.requests == [path.resolve().as_uri()]  # the page itself, and nothing else


def experiment_report(tmp_path: Path, journal: Journal | None = None) -> Path:
    return write_html(journal or make_journal("deviated"), tmp_path / "report.html")


def drill_report(tmp_path: Path, **kwargs: Any) -> Path:
    record = make_drill(tmp_path, **kwargs)
    return write_management_report(record, tmp_path, make_history(record, [("failed", 420.0), ("passed", 280.0)]))


@pytest.mark.slow
def test_experiment_report_renders_offline_with_visible_charts(
    tmp_path: Path, visit: Callable[..., Visit], record_property: Callable[[str, Any], None]
) -> None:
    path = experiment_report(tmp_path)
    seen = visit(path)
    assert seen.console_errors == []
    assert seen.page.locator("#verdict").inner_text() == "DEVIATED"  # text-transform: uppercase, as shown
    assert_charts_visible(seen.page, 5)
    band = seen.page.locator("svg.chart g.fault-band rect").first.bounding_box()
    assert band is not None and band["width"] > 5  # the fault window is shaded, not a hairline
    screenshot(seen.page, tmp_path / "report.png", record_property)
    assert_offline(seen, path)


@pytest.mark.slow
def test_drill_report_renders_offline_with_visible_charts(
    tmp_path: Path, visit: Callable[..., Visit], record_property: Callable[[str, Any], None]
) -> None:
    path = drill_report(tmp_path, verdict="failed", rto_s=360.0)
    seen = visit(path)
    assert seen.console_errors == []
    page = seen.page
    assert page.locator("#verdict").inner_text() == "FAILED"
    assert "a reportable incident (5 minutes or more)" in page.locator("#outage").inner_text()
    # the timeline, three load charts of the experiment, and two trends
    assert_charts_visible(page, 6)
    assert page.locator("#trends svg.chart").count() == 2
    assert page.locator("#timeline svg.chart g.span").count() == 5  # one experiment and four steps
    screenshot(page, tmp_path / "drill-report.png", record_property)
    assert_offline(seen, path)


@pytest.mark.slow
def test_drill_summary_fits_on_the_first_printed_page(tmp_path: Path, visit: Callable[..., Visit]) -> None:
    seen = visit(drill_report(tmp_path), media="print", viewport=A4_CONTENT_PX)
    summary = seen.page.locator("#summary").bounding_box()
    assert summary is not None and 0 < summary["height"] <= A4_CONTENT_PX[1], summary
    assert seen.page.evaluate("getComputedStyle(document.getElementById('details')).breakBefore") == "page"


def hostile_journal() -> Journal:
    journal = make_journal("rollback_failed")
    journal.experiment_title = journal.experiment_description = HOSTILE
    journal.faults[0].params = {"signal": HOSTILE}
    journal.faults[0].error = HOSTILE
    journal.errors.append(ErrorRecord(t=journal.started_at + 1, phase="faults", type="SpawnError", message=HOSTILE))
    journal.summary = HOSTILE
    return journal


def assert_inert(seen: Visit) -> None:
    page = seen.page
    assert page.evaluate("typeof window.__pwned") == "undefined"
    assert page.locator("img").count() == 0
    assert page.locator("script").count() == 0
    assert page.get_by_text(SCRIPT, exact=False).count() > 0  # shown literally, as text
    assert page.get_by_text(IMG, exact=False).count() > 0
    assert seen.console_errors == []


@pytest.mark.slow
def test_hostile_journal_text_is_inert_in_the_experiment_report(tmp_path: Path, visit: Callable[..., Visit]) -> None:
    path = experiment_report(tmp_path, hostile_journal())
    seen = visit(path)
    assert_inert(seen)
    assert seen.page.locator("h1").inner_text() == HOSTILE
    assert HOSTILE in seen.page.locator("section.fault").first.inner_text()  # params and error
    assert_offline(seen, path)  # an <img src=x> that got through would have asked for file:///…/x


@pytest.mark.slow
def test_hostile_drill_text_is_inert_in_the_drill_report(tmp_path: Path, visit: Callable[..., Visit]) -> None:
    record = make_drill(tmp_path, journal=hostile_journal(), verdict="failed")
    record.drill["title"] = record.scenario = record.summary = HOSTILE
    record.steps[0].title = record.steps[1].detail = HOSTILE
    record.experiments[0].title = HOSTILE
    record.participants[0].name = HOSTILE
    path = write_management_report(record, tmp_path, make_history(record, [("passed", 100.0)]))
    seen = visit(path)
    assert_inert(seen)
    page = seen.page
    assert page.locator("h1").inner_text() == HOSTILE
    assert page.locator("#runbook tbody tr").first.inner_text().startswith(HOSTILE)
    chart_titles = page.locator("#timeline svg.chart g.span title").all_text_contents()
    assert any(t.startswith(HOSTILE) for t in chart_titles)  # escaped inside the SVG too
    assert_offline(seen, path)


@pytest.mark.slow
@pytest.mark.parametrize("report", ["experiment", "drill"])
def test_print_pdf(tmp_path: Path, browser: Browser, report: str) -> None:
    html = experiment_report(tmp_path) if report == "experiment" else drill_report(tmp_path)
    pdf = print_pdf(html, tmp_path / "out" / "report.pdf", browser=browser)
    data = pdf.read_bytes()
    assert data.startswith(b"%PDF-")
    pages = len(re.findall(rb"/Type\s*/Page\b(?!s)", data))
    assert pages >= 2  # the drill's summary alone on page one; the experiment report is long
    assert [p.name for p in pdf.parent.iterdir()] == ["report.pdf"]  # written atomically, no temp left
    print(f"{report} report: {pages} pages, {len(data):,} bytes: {pdf}")


def run_chaos(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """`python chaos.py ARGS` from the repository root, with `env` over a copy of ours (without CHAOS_DRILL_HISTORY)."""
    environ = {k: v for k, v in os.environ.items() if k not in (HISTORY_ENV, CHROMIUM_ENV)} | env
    command = [sys.executable, str(ROOT / "chaos.py"), *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=ROOT, env=environ, check=False)


def drill_run_dir(tmp_path: Path, past: list[tuple[str, float]]) -> Path:
    """`runs/drills/<id>/drill.json` with its experiment's journal, and the drill's history database beside it."""
    run_dir = tmp_path / "runs" / "drills" / "d-20251125T055930Z-a1"
    record = make_drill(run_dir)
    save_drill_record(record, run_dir / "drill.json")
    history = History(default_history_path(tmp_path / "runs"))
    for row in make_history(record, past):
        history.add(row)
    return run_dir


@pytest.mark.slow
def test_cli_renders_a_drill_record_again_with_trends_and_pdf(tmp_path: Path) -> None:
    require_programs("chromium")
    run_dir = drill_run_dir(tmp_path, [("failed", 420.0), ("passed", 280.0)])
    (run_dir / "drill-report.html").unlink(missing_ok=True)
    done = run_chaos("report", str(run_dir / "drill.json"), "--pdf")
    assert done.returncode == 0, done.stderr
    html, pdf = run_dir / "drill-report.html", run_dir / "drill-report.pdf"
    assert done.stdout.splitlines() == [f"html: {html}", f"pdf: {pdf}"]
    text = html.read_text(encoding="utf-8")
    assert "Passed 2 of 3 runs." in text  # the trends come from the history database
    assert text[text.index('<section id="trends">') :].count("<svg") == 2
    assert pdf.read_bytes().startswith(b"%PDF-")


@pytest.mark.slow
def test_cli_renders_a_journal_again_with_pdf(tmp_path: Path) -> None:
    require_programs("chromium")
    save_journal(make_journal("passed"), tmp_path / "run" / "journal.json")
    out = tmp_path / "elsewhere"
    done = run_chaos("report", str(tmp_path / "run" / "journal.json"), "--out", str(out), "--pdf")
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in out.iterdir()) == ["junit.xml", "report.html", "report.pdf", "summary.md"]
    assert (out / "report.pdf").read_bytes().startswith(b"%PDF-")


def test_cli_without_chromium_writes_the_html_and_exits_4(tmp_path: Path) -> None:
    run_dir = drill_run_dir(tmp_path, [])
    done = run_chaos("report", str(run_dir / "drill.json"), "--pdf", PATH=str(tmp_path))
    assert done.returncode == ExitCode.CANNOT_RUN == 4
    assert "cannot print PDF: the program 'chromium' was not found on PATH" in done.stderr
    assert done.stdout.splitlines() == [f"html: {run_dir / 'drill-report.html'}"]
    assert (run_dir / "drill-report.html").is_file() and not (run_dir / "drill-report.pdf").exists()


def test_cli_with_a_missing_history_database_is_invalid_input(tmp_path: Path) -> None:
    run_dir = drill_run_dir(tmp_path, [])
    done = run_chaos("report", str(run_dir / "drill.json"), "--history", str(tmp_path / "nope.sqlite"))
    assert done.returncode == ExitCode.INVALID_INPUT
    assert "nope.sqlite: no such drill history database" in done.stderr


def test_cli_without_a_history_database_renders_without_trends(tmp_path: Path) -> None:
    run_dir = tmp_path / "copied"
    record = make_drill(run_dir)
    save_drill_record(record, run_dir / "drill.json")
    done = run_chaos("report", str(run_dir / "drill.json"))
    assert done.returncode == 0, done.stderr
    assert (
        "Trends need at least two runs of this drill; 0 recorded so far." in (run_dir / "drill-report.html").read_text()
    )


def test_missing_chromium_is_a_clear_error_with_exit_code_4(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(CHROMIUM_ENV, raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))  # nothing on PATH
    with pytest.raises(PdfError, match=r"the program 'chromium' was not found on PATH") as caught:
        find_chromium()
    assert caught.value.exit_code == ExitCode.CANNOT_RUN == 4
    html = experiment_report(tmp_path)
    with pytest.raises(PdfError, match="chromium"):
        print_pdf(html, tmp_path / "report.pdf")
    assert not (tmp_path / "report.pdf").exists()


def test_a_configured_chromium_that_is_not_there_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(CHROMIUM_ENV, "/nonexistent/chrome")
    with pytest.raises(PdfError, match=r"\$CHAOS_CHROMIUM=/nonexistent/chrome is not an executable program"):
        find_chromium()


def test_printing_a_missing_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(PdfError, match="does not exist"):
        print_pdf(tmp_path / "nope.html", tmp_path / "nope.pdf")


def test_cli_refuses_a_drill_record_it_cannot_read(tmp_path: Path) -> None:
    bad = tmp_path / "drill.json"
    bad.write_text('{"schema_version": 99, "drill_run_id": "d-1"}')
    done = run_chaos("report", str(bad))
    assert done.returncode == ExitCode.INVALID_INPUT
    assert "drill record schema_version 99" in done.stderr

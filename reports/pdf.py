"""Print an HTML report to PDF with the system's Chromium, driven by Playwright (no browser is downloaded)."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from engine.errors import ChaosError, ExitCode

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Playwright, Route

CHROMIUM_ENV = "CHAOS_CHROMIUM"
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome-stable", "google-chrome")
TIMEOUT_MS = 60_000


class PdfError(ChaosError):
    """The PDF could not be printed: no Chromium, or Chromium failed. Exit code 4 (could not run)."""

    exit_code = ExitCode.CANNOT_RUN


def find_chromium() -> Path:
    """The Chromium to print with: $CHAOS_CHROMIUM if set, else the first of CHROMIUM_NAMES on PATH."""
    configured = os.environ.get(CHROMIUM_ENV)
    if configured:
        found = shutil.which(configured)
        if found is None:
            raise PdfError(f"cannot print PDF: ${CHROMIUM_ENV}={configured} is not an executable program")
        return Path(found)
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found is not None:
            return Path(found)
    raise PdfError(
        f"cannot print PDF: the program 'chromium' was not found on PATH (also tried {', '.join(CHROMIUM_NAMES[1:])}); "
        f"install it (Debian/Ubuntu: apt-get install chromium) or set ${CHROMIUM_ENV} to a Chromium or Chrome binary"
    )


def launch(playwright: Playwright, executable: Path | None = None) -> Browser:
    """Start the system's headless Chromium under Playwright (Playwright's own browsers are never used)."""
    from playwright.sync_api import Error

    path = executable or find_chromium()
    try:
        return playwright.chromium.launch(executable_path=str(path), headless=True, timeout=TIMEOUT_MS)
    except Error as exc:
        raise PdfError(f"cannot print PDF: {path} did not start under Playwright: {exc.message}") from exc


def _offline(route: Route) -> None:
    """Reports are self-contained: a request for anything but a local file is refused, never sent."""
    if route.request.url.startswith(("file:", "data:", "about:")):
        route.continue_()
    else:
        route.abort("blockedbyclient")


def print_pdf(html: Path, pdf: Path, *, browser: Browser | None = None) -> Path:
    """Print `html` (a report) to `pdf`: A4, backgrounds printed, the page size and breaks from the report's CSS.

    Starts the system's Chromium for this one file unless a running `browser` (from `launch`) is given.
    The file is replaced atomically. Raises PdfError (exit code 4) when Chromium is missing or fails.
    """
    from playwright.sync_api import Error, sync_playwright

    if not html.is_file():
        raise PdfError(f"cannot print PDF: {html} does not exist")
    try:
        if browser is not None:
            data = _print(browser, html)
        else:
            executable = find_chromium()
            with sync_playwright() as playwright:
                started = launch(playwright, executable)
                try:
                    data = _print(started, html)
                finally:
                    started.close()
    except Error as exc:
        raise PdfError(f"cannot print PDF of {html}: {exc.message}") from exc
    _write_bytes_atomic(pdf, data)
    return pdf


def _print(browser: Browser, html: Path) -> bytes:
    page = browser.new_page()
    try:
        page.route("**/*", _offline)
        page.goto(html.resolve().as_uri(), wait_until="load", timeout=TIMEOUT_MS)
        return page.pdf(format="A4", print_background=True, prefer_css_page_size=True)
    finally:
        page.close()


def _write_bytes_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(fd, 0o644)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise

"""What reaches the terminal: titles and messages cannot carry escape sequences to it."""

from __future__ import annotations

import io
from pathlib import Path

from engine.console import ConsoleProgress, printable
from engine.events import Noted, RunStarted
from tests.support.helpers import ROOT, chaos


def test_control_characters_are_shown_not_obeyed() -> None:
    assert printable("clear\x1b[2Jscreen\x9b31m\x07") == "clear\\x1b[2Jscreen\\x9b31m\\x07"
    assert printable("tab\tand newline\n stay, unicode too: 撮合") == "tab\tand newline\n stay, unicode too: 撮合"


def test_console_progress_prints_no_escape_sequences() -> None:
    out = io.StringIO()
    progress = ConsoleProgress(out)
    progress(RunStarted(run_id="r", title="t\x1b]0;pwned\x07", seed=1, t=1.0))
    progress(Noted(text="note \x1b[31mred", t=2.0))
    assert "\x1b" not in out.getvalue() and "\x07" not in out.getvalue()
    assert "\\x1b]0;pwned\\x07" in out.getvalue()


def test_validate_prints_a_title_with_escapes_harmlessly(tmp_path: Path) -> None:
    shipped = (ROOT / "experiments" / "ci-smoke.yaml").read_text()
    title_line = next(line for line in shipped.splitlines() if line.startswith("title:"))
    text = shipped.replace(title_line, 'title: "evil \\e[2J\\e]0;x\\a title"')
    experiment = ROOT / "experiments" / f".escape-title-{tmp_path.name}.yaml"
    experiment.write_text(text)
    try:
        result = chaos("validate", str(experiment))
    finally:
        experiment.unlink()
    assert result.returncode == 0, result.stdout + result.stderr
    assert "\x1b" not in result.stdout and "\x07" not in result.stdout
    assert "evil \\x1b[2J" in result.stdout

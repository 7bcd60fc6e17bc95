"""A corpus of bad experiment inputs: each must be refused with a located problem, never a traceback.

Every `tests/corpus/*.yaml` file is one case and declares what validation must report in its first lines:

    # expect: LINE[:COL] TEXT      the problem: where it is and a distinctive part of its message
    # in: stacks/FILE              (optional) the problem is in this file, not in the case itself
    # xfail: REASON                (optional) a known engine bug: the case fails today, strictly

`# expect:` LINE counts the file's own lines, header included. Files starting with `# control:` are
valid files the cases are derived from (they keep the template honest). Inputs that cannot be stored
sensibly as a file (non-UTF-8 bytes, a file over the size limit, a directory, a stream) are made at
run time by RUNTIME_CASES below, with their expectations next to them.

Validation runs in-process the way `chaos.py validate` does it (load_plan, then describe); a few
subprocess tests prove the exit code and that `chaos.py run` on a bad file starts nothing.
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from engine.api import describe
from engine.errors import ExitCode, InvalidInputError
from engine.loader import MAX_FILE_BYTES
from engine.plan import load_plan
from tests.cli.odd_paths import (
    make_dangling_link,
    make_fifo,
    make_huge,
    make_looping_link,
    make_proc_mem,
    make_socket,
    unreadable,
)
from tests.support.helpers import ROOT, chaos

CORPUS = Path(__file__).resolve().parents[1] / "corpus"
_HEADER = re.compile(r"# (expect|in|xfail|control): (.*)")
_EXPECT = re.compile(r"(?P<line>\d+)(?::(?P<column>\d+))? (?P<text>.+)")


@dataclass(frozen=True)
class Expected:
    """A problem validation must report: at file:line(:column), with `text` in its message.

    `line` None means a whole-file problem (`FILE: message`), for inputs with no line to point at.
    """

    line: int | None
    column: int | None
    text: str
    in_file: str | None = None
    xfail: str | None = None

    def prefix(self, file: str) -> str:
        where = file
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        return f"{where}: "

    def found_in(self, problems: list[str], file: str) -> bool:
        prefix = self.prefix(file)
        return any(p.startswith(prefix) and self.text in p[len(prefix) :] for p in problems)


def read_header(path: Path) -> dict[str, str]:
    """The leading `# key: value` lines of a corpus file."""
    header: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        match = _HEADER.fullmatch(line)
        if match is None:
            break
        header[match.group(1)] = match.group(2)
    return header


def read_expected(path: Path) -> Expected:
    header = read_header(path)
    match = _EXPECT.fullmatch(header.get("expect", ""))
    if match is None:
        raise ValueError(f"{path}: the first line must be '# expect: LINE[:COL] TEXT'")
    column = match.group("column")
    return Expected(
        line=int(match.group("line")),
        column=int(column) if column else None,
        text=match.group("text"),
        in_file=header.get("in"),
        xfail=header.get("xfail"),
    )


def corpus_files() -> list[Path]:
    return sorted(p for p in CORPUS.glob("*.yaml") if "control" not in read_header(p))


def control_files() -> list[Path]:
    return sorted(p for p in CORPUS.glob("*.yaml") if "control" in read_header(p))


def validation_problems(path: Path) -> list[str]:
    """What `chaos.py validate FILE` does, in-process: the problems as it prints them.

    Fails the test when the file is accepted or when anything but InvalidInputError escapes (the
    user would see a traceback instead of file:line problems).
    """
    try:
        plan = load_plan(path)
        describe(plan)  # cmd_validate prints the timeline of an accepted file
    except InvalidInputError as exc:
        return [str(problem) for problem in exc.problems]
    except Exception as exc:
        tail = "".join(traceback.format_exception(exc, limit=-3))
        pytest.fail(f"{type(exc).__name__} escaped validation (the user sees a traceback):\n{tail}")
    pytest.fail(f"{path.name} was accepted: validation found no problem")


def assert_reported(problems: list[str], file: str, expected: Expected) -> None:
    assert problems, "InvalidInputError carried no problems"
    assert expected.found_in(problems, file), (
        f"expected a problem starting {expected.prefix(file)!r} containing {expected.text!r}; got:\n  "
        + "\n  ".join(problems)
    )


def _param(path: Path) -> object:
    expected = read_expected(path)
    marks = [pytest.mark.xfail(strict=True, reason=expected.xfail)] if expected.xfail else []
    return pytest.param(path, expected, id=path.stem, marks=marks)


@pytest.mark.parametrize(("path", "expected"), [_param(p) for p in corpus_files()])
def test_corpus_file_is_refused_with_a_located_problem(path: Path, expected: Expected) -> None:
    problems = validation_problems(path)
    file = str((CORPUS / expected.in_file).resolve()) if expected.in_file else str(path)
    assert_reported(problems, file, expected)


# --- inputs made at run time ---------------------------------------------------------------------

CaseFactory = Callable[[Path], contextlib.AbstractContextManager[Path]]


@dataclass(frozen=True)
class RuntimeCase:
    name: str
    make: CaseFactory
    expected: Expected


def _file(name: str, content: bytes) -> CaseFactory:
    @contextlib.contextmanager
    def make(tmp_path: Path) -> Iterator[Path]:
        path = tmp_path / name
        path.write_bytes(content)
        yield path

    return make


@contextlib.contextmanager
def _directory(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "experiment.yaml"
    path.mkdir()
    yield path


@contextlib.contextmanager
def _missing(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path / "no-such-experiment.yaml"


@contextlib.contextmanager
def _unreadable(tmp_path: Path) -> Iterator[Path]:
    # chmod 000 does not stop root; as root a write-only sysfs attribute is unreadable (EACCES) instead.
    path = unreadable(tmp_path)
    if path is None:
        pytest.skip("running as root and no write-only sysfs attribute here: nothing root cannot read")
    try:
        yield path
    finally:
        if path.is_relative_to(tmp_path):
            path.chmod(0o600)


def _made(make: Callable[[Path], Path | None]) -> CaseFactory:
    @contextlib.contextmanager
    def factory(tmp_path: Path) -> Iterator[Path]:
        path = make(tmp_path)
        assert path is not None
        yield path

    return factory


@contextlib.contextmanager
def _stream_over_the_limit(tmp_path: Path) -> Iterator[Path]:
    """A FIFO (what `validate <(generate)` passes) with a writer: refused unread, never waited on."""
    fifo = tmp_path / "stream.yaml"
    os.mkfifo(fifo)
    data = b"# padding line\n" * (MAX_FILE_BYTES // 15 + 1000)

    def feed() -> None:
        with contextlib.suppress(BrokenPipeError), fifo.open("wb") as handle:
            handle.write(data)

    writer = threading.Thread(target=feed, daemon=True)
    writer.start()
    try:
        yield fifo
    finally:
        # Release a writer still waiting for a reader (the engine may refuse without opening the FIFO).
        os.close(os.open(fifo, os.O_RDONLY | os.O_NONBLOCK))
        writer.join(timeout=5)


_TEMPLATE = (CORPUS / "control-reference-stack.yaml").read_bytes()

RUNTIME_CASES = [
    RuntimeCase("zero-bytes", _file("empty.yaml", b""), Expected(1, 1, "the file is empty")),
    RuntimeCase(
        "latin-1-byte",
        _file("latin1.yaml", b"version: 1\ntitle: caf\xe9 au lait\n"),
        Expected(2, 11, "not valid UTF-8 (byte 0xe9); save the file as UTF-8"),
    ),
    RuntimeCase(
        "utf-16-file",
        _file("utf16.yaml", "version: 1\ntitle: x\n".encode("utf-16")),
        Expected(1, 1, "not valid UTF-8 (byte 0xff)"),
    ),
    RuntimeCase(
        "bad-byte-after-multibyte-characters",
        _file("mixed.yaml", "version: 1\ntitle: ünï".encode() + b"\xff\n"),
        Expected(
            2,
            11,
            "not valid UTF-8 (byte 0xff)",
        ),
    ),
    RuntimeCase(
        "nul-character",
        _file("nul.yaml", b"version: 1\ntitle: corpus\x00case\n"),
        Expected(
            2,
            14,
            "character",
        ),
    ),
    RuntimeCase(
        "file-over-the-size-limit",
        _file("huge.yaml", _TEMPLATE + b"# " + b"x" * MAX_FILE_BYTES + b"\n"),
        Expected(None, None, f"bytes; the limit is {MAX_FILE_BYTES:,}"),
    ),
    RuntimeCase("fifo-with-a-writer", _stream_over_the_limit, Expected(None, None, "is a FIFO (named pipe)")),
    RuntimeCase("fifo-without-a-writer", _made(make_fifo), Expected(None, None, "is a FIFO (named pipe)")),
    RuntimeCase("character-device", _made(lambda tmp: Path("/dev/zero")), Expected(None, None, "character device")),
    RuntimeCase("socket", _made(make_socket), Expected(None, None, "is a socket, expected a YAML file")),
    RuntimeCase("dangling-link", _made(make_dangling_link), Expected(None, None, "is a dangling symbolic link")),
    RuntimeCase("looping-link", _made(make_looping_link), Expected(None, None, "is a symbolic link loop")),
    RuntimeCase("sparse-huge-file", _made(make_huge), Expected(None, None, f"the limit is {MAX_FILE_BYTES:,}")),
    RuntimeCase("read-error", _made(make_proc_mem), Expected(None, None, "cannot read: Input/output error")),
    RuntimeCase("directory", _directory, Expected(None, None, "is a directory, expected a YAML file")),
    RuntimeCase("missing-file", _missing, Expected(None, None, "no such file")),
    RuntimeCase("unreadable-file", _unreadable, Expected(None, None, "permission denied")),
]


@pytest.mark.parametrize(
    "case",
    [
        pytest.param(
            case,
            id=case.name,
            marks=[pytest.mark.xfail(strict=True, reason=case.expected.xfail)] if case.expected.xfail else [],
        )
        for case in RUNTIME_CASES
    ],
)
def test_odd_input_is_refused_with_a_located_problem(tmp_path: Path, case: RuntimeCase) -> None:
    with case.make(tmp_path) as path:
        problems = validation_problems(path)
    assert_reported(problems, str(path), case.expected)


# --- the corpus itself ---------------------------------------------------------------------------


def test_corpus_is_large_and_every_file_says_what_it_expects() -> None:
    files = sorted(CORPUS.glob("*.yaml"))
    undeclared = [p.name for p in files if not {"expect", "control"} & read_header(p).keys()]
    assert not undeclared, f"corpus files without '# expect:' or '# control:' on their first line: {undeclared}"
    for path in corpus_files():
        read_expected(path)  # raises on a malformed expectation
    assert len(corpus_files()) + len(RUNTIME_CASES) >= 55


@pytest.mark.parametrize("path", control_files(), ids=lambda p: p.stem)
def test_control_file_is_valid(path: Path) -> None:
    plan = load_plan(path)
    assert describe(plan)


# --- through chaos.py: exit code 2, file:line on stderr, nothing started ---------------------------


def _relative(path: Path) -> str:
    return str(path.relative_to(ROOT))


def _expected_file(path: Path, expected: Expected, shown: str) -> str:
    return str((CORPUS / expected.in_file).resolve()) if expected.in_file else shown


def test_chaos_validate_exits_2_and_prints_every_located_problem() -> None:
    cases = [(p, read_expected(p)) for p in corpus_files()]
    cases = [(p, e) for p, e in cases if e.xfail is None]  # the known bugs crash or pass; they are xfail'd above
    result = chaos("validate", *(_relative(p) for p, _ in cases))
    assert result.returncode == ExitCode.INVALID_INPUT, result.stderr[-2000:]
    assert "Traceback" not in result.stderr, result.stderr[-2000:]
    assert result.stdout == "", "no corpus file may validate"
    lines = result.stderr.splitlines()
    unlocated = [line for line in lines if not re.match(r"\S+:\d+:\d+: ", line)]
    assert not unlocated, f"problem lines without file:line:col: {unlocated}"
    missing = [
        f"{_relative(p)}: {e.prefix(_expected_file(p, e, _relative(p)))}… {e.text}"
        for p, e in cases
        if not e.found_in(lines, _expected_file(p, e, _relative(p)))
    ]
    assert not missing, "not on stderr:\n" + "\n".join(missing)


def _processes_mentioning(text: str) -> list[str]:
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        with contextlib.suppress(OSError):
            argv = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
            if text in argv:
                found.append(f"{cmdline.parent.name}: {argv}")
    return found


@pytest.mark.parametrize("name", ["yaml-tab-indent", "fault-before-warmup"])
def test_chaos_run_on_a_bad_file_exits_2_and_starts_nothing(tmp_path: Path, name: str) -> None:
    # The first case fails while parsing, the second only in the last, cross-field checks.
    path = CORPUS / f"{name}.yaml"
    expected = read_expected(path)
    runs, stack = tmp_path / "runs", tmp_path / "stack"
    result = chaos("run", _relative(path), "--stack-up", "--stack-dir", str(stack), "--runs-dir", str(runs))
    assert result.returncode == ExitCode.INVALID_INPUT, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert expected.found_in(result.stderr.splitlines(), _relative(path)), result.stderr
    assert not runs.exists(), "a run directory was created"
    assert not stack.exists(), "a reference stack was started"
    assert not _processes_mentioning(str(tmp_path)), "a process was started"

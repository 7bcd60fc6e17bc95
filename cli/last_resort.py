"""chaos.py's last line of defence: a closed stdout, an OSError or a bug each end in one line, never a traceback."""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import traceback
from collections.abc import Callable, Iterator
from typing import Any, TextIO

from engine.errors import ExitCode
from injectors.registry import PluginError


class ReaderGoneSafe:
    """A text stream that, once its reader has gone (`chaos.py validate | head`), discards the rest.

    The first BrokenPipeError points the file descriptor at /dev/null, so later writes — and the
    interpreter's final flush — succeed without a word. The command itself goes on to its end and
    exits with its own code: a run is never cut short because nobody reads its progress any more.
    """

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self.reader_gone = False

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except BrokenPipeError:
            self._discard()
            return len(text)

    def flush(self) -> None:
        try:
            self._stream.flush()
        except BrokenPipeError:
            self._discard()

    def _discard(self) -> None:
        self.reader_gone = True
        try:
            fd = self._stream.fileno()
        except (OSError, ValueError):  # not backed by a descriptor (a test's capture): drop what it holds
            return
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, fd)
        finally:
            os.close(devnull)
        with contextlib.suppress(BrokenPipeError):  # what was buffered for the pipe now goes to /dev/null
            self._stream.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


@contextlib.contextmanager
def reader_gone_safe() -> Iterator[None]:
    """stdout and stderr as ReaderGoneSafe streams for the duration of the block."""
    saved = sys.stdout, sys.stderr
    if not isinstance(sys.stdout, ReaderGoneSafe):
        sys.stdout = ReaderGoneSafe(sys.stdout)
    if not isinstance(sys.stderr, ReaderGoneSafe):
        sys.stderr = ReaderGoneSafe(sys.stderr)
    try:
        yield
    except BaseException:  # SystemExit (--help, usage errors) too: flush what was written before it
        with contextlib.suppress(OSError):
            sys.stdout.flush()
        raise
    else:
        sys.stdout.flush()  # a reader gone before the last write is noticed here at the latest
    finally:
        sys.stdout, sys.stderr = saved


def os_error_line(exc: OSError) -> str:
    """An OSError in one line, naming the path(s) it concerns."""
    reason = exc.strerror or str(exc) or type(exc).__name__
    paths = [str(p) for p in (exc.filename, exc.filename2) if p is not None]
    return f"{' -> '.join(paths)}: {reason}" if paths else reason


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    line = text.splitlines()[0] if text else ""
    more = "…" if len(text.splitlines()) > 1 or len(line) > 300 else ""
    return (line[:300] + more) if line else type(exc).__name__


def _keep_traceback(exc: BaseException, argv: list[str]) -> str | None:
    """Write the traceback to a temporary file; its path, or None when even that is impossible."""
    try:
        fd, name = tempfile.mkstemp(prefix="chaos-internal-error-", suffix=".txt")
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(f"argv: {argv}\npython: {sys.version}\n\n")
            handle.write("".join(traceback.format_exception(exc)))
    except OSError:
        return None
    return name


def guarded(run: Callable[[], int], argv: list[str]) -> int:
    """Call `run` and map what escapes it: OSError → one line, exit 4; a bug → one line + traceback file, exit 4.

    ChaosError and its exit codes are the commands' own business; what reaches here was not foreseen.
    """
    try:
        with reader_gone_safe():
            return run()
    except OSError as exc:
        _say(f"error: {os_error_line(exc)} (nothing more was done)")
        return ExitCode.CANNOT_RUN
    except PluginError as exc:  # an installed injector plugin is broken: its own message says which and how
        _say(f"error: {exc} (nothing was started or injected)")
        return ExitCode.CANNOT_RUN
    except Exception as exc:  # a bug: never silenced — the traceback is kept and its place named
        where = _keep_traceback(exc, argv)
        if where is None:
            _say("".join(traceback.format_exception(exc)).rstrip())
        kept = f"the traceback is in {where}" if where else "the traceback is above"
        _say(f"internal error: {type(exc).__name__}: {_first_line(exc)} (a bug in chaos.py; {kept}; please report it)")
        return ExitCode.CANNOT_RUN


def _say(line: str) -> None:
    with contextlib.suppress(OSError):
        print(line, file=sys.stderr, flush=True)

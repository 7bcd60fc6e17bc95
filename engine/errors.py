"""The engine's exception tree; every error carries the exit code `chaos.py` ends with.

Injector errors (injectors.errors) are translated into this tree where the engine calls an
injector, with `raise ... from exc`, so the CLI only ever sees ChaosError subclasses.
"""

from __future__ import annotations

from dataclasses import dataclass


class ExitCode:
    """Exit codes of `chaos.py`: the one table, also printed in README and docs/cli.md."""

    PASSED = 0
    DEVIATED = 1
    INVALID_INPUT = 2
    ROLLBACK_FAILED = 3
    CANNOT_RUN = 4
    RECORD_FAILED = 5
    INTERRUPTED = 130

    TABLE: tuple[tuple[int, str], ...] = (
        (PASSED, "passed: the steady state held and every objective was met"),
        (
            DEVIATED,
            "deviated: the hypothesis did not hold (baseline, during, recovery), an objective was missed, "
            "or an abort condition stopped the run",
        ),
        (INVALID_INPUT, "invalid input: bad experiment/stack file or arguments; nothing was started"),
        (
            ROLLBACK_FAILED,
            "a fault could not be rolled back or verified gone, or a second Ctrl-C skipped its rollback: "
            "check the system now, then `chaos.py recover`",
        ),
        (
            CANNOT_RUN,
            "could not run: preflight failed (stack or load generator unavailable) or a safety guard refused "
            "(production stack, market hours, blast radius); nothing injected",
        ),
        (
            RECORD_FAILED,
            "the run's record could not be written (journal or reports; e.g. a full disk): the run was stopped "
            "and every fault rolled back and verified; what is known is on stderr",
        ),
        (INTERRUPTED, "interrupted (Ctrl-C, SIGTERM, SIGHUP): faults were rolled back"),
    )


class ChaosError(Exception):
    """Base of every error the engine raises on purpose."""

    exit_code: int = ExitCode.CANNOT_RUN


@dataclass(frozen=True)
class Problem:
    """One thing wrong with an input file, located as precisely as we can."""

    file: str
    line: int | None
    column: int | None
    message: str

    def __str__(self) -> str:
        where = self.file
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        return f"{where}: {self.message}"


class InvalidInputError(ChaosError):
    """An input file or argument is wrong; carries every problem found, each with file:line:col."""

    exit_code = ExitCode.INVALID_INPUT

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class PreflightError(ChaosError):
    """The run cannot start: a target or the load generator is unavailable. Nothing was injected."""

    exit_code = ExitCode.CANNOT_RUN


class StackError(ChaosError):
    """The stack description cannot be found, read or updated."""

    exit_code = ExitCode.CANNOT_RUN


class PendingFaultsError(ChaosError):
    """Faults of an earlier run were never verified undone (its runner died): recover them first."""

    exit_code = ExitCode.CANNOT_RUN


class GuardRefusedError(ChaosError):
    """A safety guard refused the run (production stack, market hours, blast radius). Nothing was started."""

    exit_code = ExitCode.CANNOT_RUN


class LoadError(ChaosError):
    """The load generator failed to start or died."""

    exit_code = ExitCode.CANNOT_RUN


class LedgerWriteError(ChaosError):
    """The undo ledger could not be written before an injection: the fault is not injected, the run aborts."""

    exit_code = ExitCode.CANNOT_RUN


class Aborted(Exception):
    """An abort condition fired (or `chaos.py abort` was run): roll everything back now."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class SkipRollback(BaseException):
    """A second Ctrl-C while rolling back: the operator takes over; what is left stays in the undo ledger."""


class Interrupted(BaseException):
    """The run was interrupted by a signal; raised in the main thread by the signal handler.

    Like KeyboardInterrupt it is not an Exception, so no `except Exception` on the way (an
    injector's per-target error collection, a listener guard) can swallow it.
    """

    exit_code = ExitCode.INTERRUPTED

    def __init__(self, signal_name: str) -> None:
        self.signal_name = signal_name
        super().__init__(f"interrupted by {signal_name}")

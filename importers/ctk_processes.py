"""Chaos Toolkit `process` providers that signal processes — kill, pkill, killall, directly or through `sh -c`,
with `$(pgrep ...)` — read as (signal, which processes); the commands themselves are never run."""

from __future__ import annotations

import os
import re
import shlex
from dataclasses import dataclass
from signal import Signals
from typing import Any

from importers.ctk_targets import ProcessCandidate

# Signal names as kill spells them (KILL, TERM, STOP, ...), numbers as on Linux.
_SIGNAL_NAMES = {sig.name.removeprefix("SIG") for sig in Signals if not sig.name.startswith("SIG_")}
_SHELLS = ("sh", "bash", "dash")
_SUBSTITUTION = re.compile(r"\$\(\s*(pgrep\b[^()`]*)\)|`\s*(pgrep\b[^`]*)`")
_PLACEHOLDER = "__pgrep_{}__"


@dataclass(frozen=True)
class SignalAction:
    """A signal to the processes a matcher selects: `how` is full (command line, regex), full-exact,
    name (process name, regex), name-exact, comm (killall's exact name), comm-regex or pid."""

    signal: str
    how: str
    pattern: str
    program: str

    @property
    def key(self) -> str:
        """What `targets` options and rollback matching know this matcher by: its pattern (or PID)."""
        return self.pattern

    def describe(self) -> str:
        what = {
            "full": f"whose command line matches {self.pattern!r}",
            "full-exact": f"whose whole command line is {self.pattern!r}",
            "name": f"whose process name matches {self.pattern!r}",
            "name-exact": f"whose process name is {self.pattern!r}",
            "comm": f"named {self.pattern!r}",
            "comm-regex": f"whose name matches {self.pattern!r}",
            "pid": f"with PID {self.pattern}",
        }[self.how]
        return f"SIG{self.signal} to every process {what} ({self.program})"


def signal_name(text: str) -> str:
    """'9', 'KILL', 'SIGKILL', 'kill' → 'KILL'; raises ValueError for what is no signal."""
    name = text.upper().removeprefix("SIG")
    if name.isdigit():
        try:
            return Signals(int(name)).name.removeprefix("SIG")
        except ValueError:
            raise ValueError(f"{text!r} is not a signal number") from None
    if name not in _SIGNAL_NAMES:
        raise ValueError(f"{text!r} is not a signal")
    return name


def matches(action: SignalAction, candidate: ProcessCandidate) -> bool:
    """Whether the real command would signal this process of the stack."""
    how, pattern = action.how, action.pattern
    if how == "pid":
        return candidate.pid is not None and str(candidate.pid) == pattern
    if how == "comm":
        return pattern in (candidate.comm, os.path.basename(candidate.argv[0]))
    subject = candidate.cmdline if how.startswith("full") else candidate.comm
    if how == "comm-regex":
        subject = os.path.basename(candidate.argv[0])
    if how.endswith("exact"):
        return re.fullmatch(pattern, subject) is not None
    return re.search(pattern, subject) is not None


def _pgrep(tokens: list[str]) -> SignalAction:
    how, pattern = "name", None
    exact = False
    for word in tokens[1:]:
        if word in ("-f", "--full"):
            how = "full"
        elif word in ("-x", "--exact"):
            exact = True
        elif re.fullmatch(r"-[fx]+", word):
            how = "full" if "f" in word else how
            exact = exact or "x" in word
        elif word.startswith("-"):
            raise ValueError(f"pgrep option {word} is not mapped (only -f and -x are)")
        elif pattern is None:
            pattern = word
        else:
            raise ValueError("pgrep takes one pattern")
    if pattern is None:
        raise ValueError("pgrep has no pattern")
    _compile(pattern)
    return SignalAction("TERM", f"{how}-exact" if exact else how, pattern, "pgrep")


def _compile(pattern: str) -> None:
    try:
        re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"pattern {pattern!r} is not a valid regular expression: {exc}") from None


def _kill(args: list[str], found: dict[str, SignalAction]) -> list[SignalAction]:
    signal, operands_only = "TERM", False
    actions: list[SignalAction] = []
    items = iter(args)
    for word in items:
        if not operands_only and word in ("-s", "--signal", "-n"):
            signal = signal_name(next(items, ""))
        elif not operands_only and word == "--":
            operands_only = True
        elif not operands_only and word in ("-l", "-L", "--list", "--table"):
            raise ValueError("kill -l lists signal names; it signals nothing")
        elif not operands_only and word.startswith("-") and not actions:
            signal = signal_name(word[1:])
        elif word in found:
            actions.append(found[word])
        elif word.isdigit():
            actions.append(SignalAction(signal, "pid", word, "kill"))
        else:
            raise ValueError(f"kill operand {word!r} is not a PID (process groups and jobs are not mapped)")
    if not actions:
        raise ValueError("kill names no process")
    return [SignalAction(signal, a.how, a.pattern, "kill" if a.how == "pid" else "kill $(pgrep)") for a in actions]


def _pkill(args: list[str]) -> list[SignalAction]:
    signal, rest = "TERM", []
    items = iter(args)
    for word in items:
        if word == "--signal":
            signal = signal_name(next(items, ""))
        elif word.startswith("--signal="):
            signal = signal_name(word.partition("=")[2])
        elif word.startswith("-") and not re.fullmatch(r"-[fx]+", word) and word not in ("--full", "--exact"):
            try:
                signal = signal_name(word[1:])
            except ValueError:
                raise ValueError(f"pkill option {word} is not mapped (only -f, -x and a signal are)") from None
        else:
            rest.append(word)
    action = _pgrep(["pgrep", *rest])
    return [SignalAction(signal, action.how, action.pattern, "pkill")]


def _killall(args: list[str]) -> list[SignalAction]:
    signal, regex, names = "TERM", False, []
    items = iter(args)
    for word in items:
        if word in ("-s", "--signal"):
            signal = signal_name(next(items, ""))
        elif word in ("-r", "--regexp"):
            regex = True
        elif word in ("-e", "--exact", "-q", "--quiet", "-w", "--wait"):
            continue  # exact names and waiting are what happens here anyway; quiet changes only output
        elif word.startswith("-"):
            try:
                signal = signal_name(word[1:])
            except ValueError:
                raise ValueError(f"killall option {word} is not mapped") from None
        else:
            names.append(word)
    if not names:
        raise ValueError("killall names no process")
    for name in names:
        if regex:
            _compile(name)
    return [SignalAction(signal, "comm-regex" if regex else "comm", name, "killall") for name in names]


def _argv(tokens: list[str], found: dict[str, SignalAction]) -> list[SignalAction]:
    if not tokens:
        raise ValueError("the process provider has no program")
    program = os.path.basename(tokens[0])
    if program == "kill":
        return _kill(tokens[1:], found)
    if program == "pkill":
        return _pkill(tokens[1:])
    if program == "killall":
        return _killall(tokens[1:])
    raise ValueError(
        f"the process provider runs {program!r}: only kill, pkill and killall (directly or through sh -c) map onto "
        "a fault kind, and imported programs are never run"
    )


def _shell(command: str, found: dict[str, SignalAction] | None = None) -> list[SignalAction]:
    found = {} if found is None else found

    def placeholder(match: re.Match[str]) -> str:
        name = _PLACEHOLDER.format(len(found))
        found[name] = _pgrep(shlex.split(match.group(1) or match.group(2)))
        return name

    command = _SUBSTITUTION.sub(placeholder, command)
    lexer = shlex.shlex(command, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    tokens = list(lexer)
    if any(word and all(char in "();<>|&" for char in word) for word in tokens):
        raise ValueError("a shell command with operators (; | & > redirections) is not mapped: give one command")
    if tokens and os.path.basename(tokens[0]) in _SHELLS:
        if len(tokens) == 3 and tokens[1] == "-c":
            return _shell(tokens[2], found)
        raise ValueError(f"{tokens[0]} is mapped only as `{tokens[0]} -c 'ONE COMMAND'`")
    if any("$" in word or "`" in word for word in tokens):
        raise ValueError("shell expansions other than $(pgrep ...) are not mapped")
    return _argv(tokens, found)


def parse_process(path: str, arguments: Any) -> list[SignalAction]:
    """What a process provider's command signals, as Chaos Toolkit would run it (a string of arguments goes
    through the shell, a list does not). Raises ValueError naming what cannot be mapped."""
    if isinstance(arguments, str):
        return _shell(f"{shlex.quote(path)} {arguments}")
    if isinstance(arguments, dict):
        flat = [str(part) for pair in arguments.items() for part in pair if part not in (None, "")]
    elif isinstance(arguments, list):
        flat = [str(part) for part in arguments if part not in (None, "")]
    elif arguments is None:
        flat = []
    else:
        raise ValueError("arguments must be a string, a list or a mapping")
    tokens = [path, *flat]
    if os.path.basename(path) in _SHELLS and len(tokens) == 3 and tokens[1] == "-c":
        return _shell(tokens[2])
    return _argv(tokens, {})

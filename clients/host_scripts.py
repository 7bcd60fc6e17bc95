"""The POSIX sh scripts sent to a host over SSH (on stdin): list processes, start one detached, run a command.

Every value that comes from a stack description is quoted with `shlex.quote`; no argv byte is ever
spliced into a script unquoted, and none passes through a shell word of ours unquoted.
"""

from __future__ import annotations

import os
import re
import shlex
from pathlib import PurePosixPath

from stackspec.targets import ProcessInstance

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
NO_TEMP_FILE = "chaos: cannot make a temporary file for the restart command's output"
OUTPUT_TAIL_BYTES = 4000  # of a restart command's output: enough for its error message, never a whole log

# Prints "PID<TAB>argv joined by 0x1f" for every process; argv bytes never pass through a shell word.
LIST_SCRIPT = r"""for d in /proc/[0-9]*; do
  c=$(tr '\000' '\037' <"$d/cmdline" 2>/dev/null) || continue
  [ -n "$c" ] && printf '%s\t%s\n' "${d#/proc/}" "$c"
done
"""


def restart_script(instance: ProcessInstance) -> str:
    """A POSIX sh script that starts the instance detached (setsid, nohup) and prints its PID; every value quoted."""
    lines = ["set -e"]
    if instance.cwd:
        lines.append(f"cd -- {shlex.quote(instance.cwd)}")
    for key, value in instance.env.items():
        if not _ENV_NAME.match(key):
            raise ValueError(f"{instance.name}: {key!r} is not a valid environment variable name")
        # Expanded here, like a local restart, from the runner's environment.
        lines.append(f"{key}={shlex.quote(os.path.expandvars(value))}; export {key}")
    log = instance.log or "/dev/null"
    if instance.log:
        lines.append(f"mkdir -p -- {shlex.quote(str(PurePosixPath(instance.log).parent))}")
    lines.append(f"{shlex.join(['setsid', 'nohup', *instance.argv])} >>{shlex.quote(log)} 2>&1 </dev/null &")
    lines.append('echo "$!"')
    return "\n".join(lines) + "\n"


def run_script(argv: list[str], timeout_s: float) -> str:
    """A script that runs `argv` with its output in a temporary file, prints the output's tail, exits with its status.

    The command's stdout and stderr are the temporary file, never the SSH channel: a daemon it starts that
    keeps them open cannot hold the channel (and us) open. `timeout` (coreutils) bounds it on the host
    too, where there is one; exit 124 then says it ran out of time.
    """
    command = shlex.join(argv)
    marker = f"NO_TEMP={shlex.quote(NO_TEMP_FILE)}"
    seconds = shlex.quote(f"{max(timeout_s, 0.1):g}")
    return "\n".join(
        [
            marker,
            'out=$(mktemp "${TMPDIR:-/tmp}/chaos-restart.XXXXXX") || { echo "$NO_TEMP" >&2; exit 125; }',
            f'if command -v timeout >/dev/null 2>&1; then timeout -k 2 {seconds} {command} >"$out" 2>&1 </dev/null',
            f'else {command} >"$out" 2>&1 </dev/null; fi',
            "rc=$?",
            f'tail -c {OUTPUT_TAIL_BYTES} "$out"',
            'rm -f -- "$out"',
            'exit "$rc"',
            "",
        ]
    )


def has_program_argv(name: str) -> list[str]:
    """argv asking the host's sh whether `name` is a program it can run (a path, or found in PATH)."""
    # The name is a positional parameter of `sh -c`, never part of the script text.
    script = 'case $1 in */*) [ -f "$1" ] && [ -x "$1" ];; *) command -v -- "$1" >/dev/null 2>&1;; esac'
    return ["sh", "-c", script, "sh", name]

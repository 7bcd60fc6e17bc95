"""The plan's checks, one per section, report in the file's order: load, steady state, abort conditions,
each fault in timeline order (timing, guards, kind, params, target), then integrity."""

from __future__ import annotations

from pathlib import Path

from engine.loader import load_document, validate_model
from engine.model import Experiment
from engine.plan import check

EVERY_SECTION_WRONG = """\
version: 1
title: every section wrong
load:
  locustfile: missing.py
  users: 5
  spawn_rate: 5
  duration: 60s
  host: nowhere
steady_state:
  - {name: errors, metric: error_rate, max: 0.01}
  - {name: errors, metric: error_rate, max: 0.02}
  - {name: health, http: {url: '{nowhere}/health'}}
abort_when:
  - {probe: error, for: 5s}
method:
  - {at: 40s, duration: 5s, kind: process.kill, target: matchr}
  - {at: 1s, duration: 5s, kind: process.kil, target: matcher}
  - {at: 20s, duration: 50s, kind: process.kill, target: matcher, params: {nope: 1}}
integrity: [no_such_check]
"""


def test_every_section_is_checked_in_the_files_order_and_faults_in_timeline_order(tmp_path: Path) -> None:
    path = tmp_path / "exp.yaml"
    path.write_text(EVERY_SECTION_WRONG)
    doc = load_document(path)
    faults, problems = check(validate_model(Experiment, doc), doc)
    found = [(p.line, p.message) for p in problems]
    expected = [
        (4, "locustfile 'missing.py' not found"),
        (8, "the stack has no endpoint 'nowhere'"),
        (11, "probe name 'errors' is already used by probe #1"),
        (12, "unknown endpoint {nowhere} in url"),
        (14, "no steady-state probe named 'error'; did you mean 'errors'?"),
        (17, "fault starts at 1s: the baseline needs at least 2s of load after the 5s warmup"),  # 1st at 1s
        (17, "unknown fault kind 'process.kil'; did you mean 'process.kill'?"),
        (18, "fault ends at 1m10s, but the load lasts 1m: end faults by 57s"),  # 2nd at 20s
        (18, "'nope'"),  # its params: an unknown key
        (16, "at 40s this fault makes 2 faults in effect at once (with method[2] process.kill)"),  # 3rd at 40s
        (16, "unknown target 'matchr'; did you mean 'matcher'?"),
        (19, "unknown integrity check 'no_such_check'"),
    ]
    assert len(found) == len(expected), found
    for (line, message), (want_line, want) in zip(found, expected, strict=True):
        assert line == want_line and want in message, (line, message)
    # Only the fault whose kind and params bind is planned, numbered by its place on the timeline.
    assert [(f.index, f.step.target) for f in faults] == [(3, "matchr")]

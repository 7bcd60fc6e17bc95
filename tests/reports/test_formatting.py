"""reports.formatting: the one wording every report uses for verdicts, counts, durations, times and fault names."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import get_args

import pytest

from drilling.record import DrillVerdict
from engine.journal import FaultRecord, Verdict
from reports import charts, formatting
from reports.formatting import (
    VERDICTS,
    fault_name,
    format_duration,
    format_offset,
    measured_label,
    plural,
    seconds,
    signed_offset,
    utc_iso,
    verdict,
)

T0 = 1_764_050_000.0  # 2025-11-25T05:53:20Z, the test journals' start


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("passed", ("Passed", "good")),
        ("deviated", ("Deviated", "bad")),
        ("failed", ("Failed", "bad")),
        ("rollback_failed", ("Rollback failed", "bad")),
        ("error", ("Error", "bad")),
        ("interrupted", ("Interrupted", "warn")),
        ("aborted", ("Aborted", "bad")),
        ("running", ("Incomplete", "warn")),
        ("someday", ("someday", "warn")),  # unknown: shown as written, amber
        ("", ("", "warn")),
    ],
)
def test_verdict_label_and_tone(value, expected):
    assert verdict(value) == expected


def test_every_run_and_drill_verdict_has_a_label():
    assert set(get_args(Verdict)) | set(get_args(DrillVerdict)) == set(VERDICTS)


@pytest.mark.parametrize(
    ("count", "word", "expected"),
    [
        (0, "file", "0 files"),
        (1, "file", "1 file"),
        (2, "file", "2 files"),
        (1_204, "cancel", "1,204 cancels"),
        (1_000_000, "torn line", "1,000,000 torn lines"),
        (-1, "order", "-1 orders"),  # only exactly one is singular
    ],
)
def test_plural(count, word, expected):
    assert plural(count, word) == expected


@pytest.mark.parametrize(
    ("value", "missing", "expected"),
    [
        (None, "—", "—"),
        (None, "not recovered", "not recovered"),
        (0.0, "—", "0.0 s"),
        (1, "—", "1.0 s"),
        (2.64, "—", "2.6 s"),
        (2.66, "—", "2.7 s"),
        (1234.56, "—", "1234.6 s"),  # no thousands separator
        (-0.5, "—", "-0.5 s"),
    ],
)
def test_seconds(value, missing, expected):
    assert seconds(value, missing) == expected


def test_seconds_default_missing_is_an_em_dash():
    assert seconds(None) == "—"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, "—"),
        (0, "0.0 s"),
        (1, "1.0 s"),
        (4.5, "4.5 s"),
        (9.94, "9.9 s"),
        (10, "10 s"),
        (45.4, "45 s"),
        (60, "1 min 00 s"),
        (61, "1 min 01 s"),
        (365, "6 min 05 s"),
        (3599, "59 min 59 s"),
        (3600, "1 h 00 min"),
        (3725, "1 h 02 min"),  # over an hour: to the minute
        (90_000, "25 h 00 min"),
        (-3, "-3.0 s"),  # negative: as the seconds they are
    ],
)
def test_format_duration(value, expected):
    assert format_duration(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0, "0s"),
        (0.4, "0s"),
        (1, "1s"),
        (45, "45s"),
        (59.6, "1m"),  # rounded to the second first
        (60, "1m"),
        (90, "1m30s"),
        (600, "10m"),
        (3600, "1h"),
        (3660, "1h01m"),
        (3661, "61m01s"),  # seconds are never dropped: minutes and seconds instead of hours
        (5400, "1h30m"),
        (7200, "2h"),
        (-5, "-5s"),
    ],
)
def test_format_offset(value, expected):
    assert format_offset(value) == expected


def test_charts_use_the_same_offset_labels():
    assert charts.format_offset is formatting.format_offset


@pytest.mark.parametrize(
    ("value", "expected"),
    [(0, "+0s"), (1, "+1s"), (90, "+1m30s"), (3600, "+1h"), (-5, "-5s"), (-90, "-1m30s"), (-0.3, "-0s")],
)
def test_signed_offset(value, expected):
    assert signed_offset(value) == expected


def test_utc_iso():
    assert utc_iso(0) == "1970-01-01T00:00:00Z"
    assert utc_iso(T0) == "2025-11-25T05:53:20Z"
    assert utc_iso(T0 + 0.9) == "2025-11-25T05:53:20Z"  # truncated, not rounded
    assert utc_iso(T0 + 0.1239, "milliseconds") == "2025-11-25T05:53:20.123Z"
    assert utc_iso(T0, "milliseconds") == "2025-11-25T05:53:20.000Z"
    assert utc_iso(T0, zone="") == "2025-11-25T05:53:20"


def test_utc_iso_without_zone_is_junits_timestamp():
    for t in (0.0, T0, T0 + 0.5, T0 + 86_399.999):
        assert utc_iso(t, zone="") == datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%S")


def test_fault_name():
    fault = FaultRecord(index=2, kind="process.kill", target="matcher", at_s=10.0, duration_s=None)
    assert fault_name(fault) == "#2 process.kill matcher"


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("promoted_after_s", "Promoted after"),
        ("elected_after_s", "Elected after"),
        ("failover", "Failover"),
        ("rto_s", "Rto"),
        ("_s", ""),
    ],
)
def test_measured_label(key, expected):
    assert measured_label(key) == expected

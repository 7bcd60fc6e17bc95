"""Chaos Toolkit tolerances on HTTP probes: mapped when they accept exactly one status code, refused otherwise."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.importers.ctk_support import converted, decisions, document, probe, refused


def _http(conversion: Any) -> dict[str, Any]:
    (entry,) = conversion.experiment["steady_state"]
    return dict(entry["http"])


@pytest.mark.parametrize(
    ("tolerance", "status"),
    [
        (200, 200),  # an integer is compared with the answer's status
        (503, 503),
        ([200], 200),  # a list is membership of the status
        ([204, "OK", True], 204),  # only integers can equal a status (True is no status code)
        ({"type": "range", "range": [200, 200]}, 200),
        ({"type": "range", "range": [199.5, 200.9], "target": "status"}, 200),  # the integers within
    ],
)
def test_a_tolerance_that_accepts_one_status_maps_to_it(tmp_path: Path, tolerance: Any, status: int) -> None:
    conversion = converted(tmp_path, document([probe(tolerance)]))
    assert _http(conversion)["status"] == status
    assert any(
        "steady-state-hypothesis.probes[0].tolerance" in d and f"status {status}" in d for d in decisions(conversion)
    )


@pytest.mark.parametrize(
    ("tolerance", "reason"),
    [
        ([200, 201], "accepts 2 status codes (200, 201)"),
        # Two items are a membership test for a response's status, as Chaos Toolkit judges it — not 200-204.
        ([200, 204], "accepts 2 status codes (200, 204)"),
        ({"type": "range", "range": [200, 299]}, "accepts 100 status codes (200-299)"),
        ({"type": "range", "range": [200, 299], "target": "body"}, "a range on the response's 'body'"),
        ({"type": "range", "range": [600, 700]}, "no HTTP status code (100-599) can meet this tolerance"),
        ({"type": "range", "range": [200]}, "needs `range: [LOWER, UPPER]`"),
        ({"type": "regex", "pattern": "^ok$", "target": "body"}, "a regex tolerance matches the response's 'body'"),
        ({"type": "regex", "pattern": "2[0-9]{2}"}, "a regex tolerance matches the response"),
        ({"type": "jsonpath", "path": "$.status", "expect": "up", "target": "body"}, "looks into the response body"),
        (
            {"type": "probe", "name": "check", "provider": {"type": "python", "module": "m", "func": "f"}},
            "a probe tolerance runs another activity",
        ),
        ({"type": "percentile"}, "unknown tolerance type 'percentile'"),
        (True, "a boolean tolerance is compared with the whole HTTP response"),
        ("200", "a str tolerance is compared with the whole HTTP response"),
        (200.0, "a float tolerance is compared with the whole HTTP response"),
        ([], "no HTTP status code (100-599) can meet this tolerance"),
    ],
)
def test_a_tolerance_that_cannot_be_expressed_is_refused_at_its_path(
    tmp_path: Path, tolerance: Any, reason: str
) -> None:
    problems = refused(tmp_path, document([probe(tolerance)]))
    assert len(problems) == 1, problems
    (problem,) = problems
    assert "experiment.json:" in problem and "steady-state-hypothesis.probes[0].tolerance" in problem
    assert reason in problem
    assert problem.split(":")[1].isdigit()  # located by line


def test_a_string_tolerance_is_substituted_from_the_configuration_keeping_its_type(tmp_path: Path) -> None:
    doc = document([probe("${expected}")], configuration={"expected": 202})
    assert _http(converted(tmp_path, doc))["status"] == 202


def test_a_tolerance_naming_an_undefined_value_is_refused(tmp_path: Path) -> None:
    (problem,) = refused(tmp_path, document([probe("${expected}")]))
    assert "steady-state-hypothesis.probes[0].tolerance: ${expected} is not defined in the configuration" in problem


def test_a_probe_without_tolerance_is_refused(tmp_path: Path) -> None:
    entry = probe(200)
    del entry["tolerance"]
    (problem,) = refused(tmp_path, document([entry]))
    assert "steady-state-hypothesis.probes[0]: a hypothesis probe needs a tolerance" in problem


def test_the_http_provider_maps_url_method_timeout_and_arguments(tmp_path: Path) -> None:
    doc = document([probe(200, method="get", timeout=[3, 5], arguments={"account": "ACC0001", "skip": None})])
    conversion = converted(tmp_path, doc)
    assert _http(conversion) == {
        "url": "{gateway}/health?account=ACC0001",
        "method": "GET",
        "timeout": "3s",
        "interval": "1s",
        "status": 200,
    }
    text = "\n".join(decisions(conversion))
    assert "http://127.0.0.1:8080/health → {gateway}/health" in text
    assert "timeout [3, 5] (connect, read) → 3s" in text
    assert "sent as the query string" in text


def test_an_http_probe_without_timeout_gets_one_second_and_says_so(tmp_path: Path) -> None:
    conversion = converted(tmp_path, document([probe(200, verify_tls=False, max_retries=3)]))
    assert _http(conversion)["timeout"] == "1s"
    text = "\n".join(decisions(conversion))
    assert "no timeout (Chaos Toolkit waits as long as it takes)" in text
    assert "no retries here" in text


def test_a_url_is_kept_as_written_without_an_endpoint_mapping_and_the_report_says_why(tmp_path: Path) -> None:
    conversion = converted(tmp_path, document(), endpoints={})
    assert _http(conversion)["url"] == "http://127.0.0.1:8080/health"
    assert any("the reference stack chooses its ports at start" in d for d in decisions(conversion))


@pytest.mark.parametrize(
    ("provider", "reason"),
    [
        ({"method": "POST"}, "provider.method: an HTTP probe here sends GET or HEAD, not POST"),
        ({"headers": {"Accept": "application/json"}}, "provider.headers: an HTTP probe here sends no headers"),
        (
            {"method": "HEAD", "arguments": {"a": 1}},
            "provider.arguments: arguments of a HEAD request are sent as a body",
        ),
        ({"url": "ftp://127.0.0.1/x"}, "provider.url: 'ftp://127.0.0.1/x' is not an http(s) URL"),
        ({"timeout": "soon"}, "provider.timeout: timeout must be a number of seconds"),
    ],
)
def test_http_provider_settings_that_cannot_be_expressed_are_refused(
    tmp_path: Path, provider: dict[str, Any], reason: str
) -> None:
    (problem,) = refused(tmp_path, document([probe(200, **provider)]))
    assert f"steady-state-hypothesis.probes[0].{reason}" in problem


def test_an_endpoint_mapping_to_a_name_the_stack_lacks_is_refused(tmp_path: Path) -> None:
    (problem,) = refused(tmp_path, document(), endpoints={"http://127.0.0.1:8080": "frontdoor"})
    assert "has no endpoint 'frontdoor' (it has: gateway, redis, zookeeper)" in problem

"""A system's own audit: the report contract, and the declared command run as it is (no shell), with real processes."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from clients.audit import AuditError, Invariant, invariant, parse_report, run_audit
from clients.errors import ClientError
from stackspec.targets import AuditCommand

REPORT = {
    "orders": 12,
    "checks": {
        "no_double_fills": {"checked": 12, "violations": 0, "examples": []},
        "balances_conserved": {"checked": 100, "violations": 1, "examples": [{"asset": "cash", "found": 3}]},
    },
}


def python(code: str, **changes: object) -> AuditCommand:
    return AuditCommand.model_validate({"argv": [sys.executable, "-c", code], **changes})


def test_a_report_is_read_with_its_own_keys_kept_and_each_invariant_typed() -> None:
    report = parse_report(json.dumps(REPORT))
    assert report == REPORT
    assert invariant(report, "balances_conserved") == Invariant(100, 1, [{"asset": "cash", "found": 3}])
    assert invariant({"checks": {"x": {"checked": 0, "violations": 0}}}, "x") == Invariant(0, 0, [])


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("not json", "did not print JSON"),
        ("[1, 2]", 'no "checks" object'),
        ('{"orders": 3}', 'no "checks" object'),
        ('{"checks": {"x": 3}}', "'x' is not an object"),
        ('{"checks": {"x": {"checked": "12", "violations": 0}}}', "'x' needs integer counts"),
        ('{"checks": {"x": {"checked": 1, "violations": -1}}}', "'x' needs integer counts"),
        ('{"checks": {"x": {"checked": true, "violations": 0}}}', "'x' needs integer counts"),
        ('{"checks": {"x": {"checked": 1, "violations": 0, "examples": [1]}}}', "not a list of objects"),
    ],
)
def test_what_breaks_the_contract_is_refused_saying_what(text: str, says: str) -> None:
    with pytest.raises(AuditError, match=says):
        parse_report(text)


def test_an_invariant_the_audit_does_not_report_names_those_it_does() -> None:
    with pytest.raises(AuditError, match=r"does not report 'book_not_crossed' \(it reports: balances_conserved, no_do"):
        invariant(REPORT, "book_not_crossed")
    assert issubclass(AuditError, ClientError)


def test_the_declared_command_runs_without_a_shell_in_its_directory_with_its_env(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CHAOS_TEST_AUDIT_SECRET", "s3cret")
    code = (
        "import json, os, sys; print(json.dumps({'checks': {}, 'argv': sys.argv[1:], 'cwd': os.getcwd(), "
        "'token': os.environ['AUDIT_TOKEN']}))"
    )
    command = AuditCommand(
        argv=[sys.executable, "-c", code, "$(whoami)", "a b; c"],
        cwd=str(tmp_path),
        env={"AUDIT_TOKEN": "${CHAOS_TEST_AUDIT_SECRET}"},
    )
    report = run_audit(command)
    assert report == {"checks": {}, "argv": ["$(whoami)", "a b; c"], "cwd": str(tmp_path), "token": "s3cret"}
    assert command.env == {"AUDIT_TOKEN": "${CHAOS_TEST_AUDIT_SECRET}"}  # the description keeps the reference


def test_a_failing_audit_is_an_error_with_its_exit_code_and_what_it_said() -> None:
    with pytest.raises(AuditError, match=r"^the audit failed \(exit code 3\): no redis at 127\.0\.0\.1:1$"):
        run_audit(python("import sys; print('no redis at 127.0.0.1:1', file=sys.stderr); sys.exit(3)"))


def test_an_audit_that_hangs_is_stopped_at_its_timeout() -> None:
    with pytest.raises(AuditError, match=r"did not finish within 0\.3s"):
        run_audit(python("import time; time.sleep(30)", timeout_s=0.3))


def test_an_audit_that_cannot_start_says_so(tmp_path: Path) -> None:
    with pytest.raises(AuditError, match="could not be started"):
        run_audit(AuditCommand(argv=[str(tmp_path / "no-such-audit")]))


def test_an_audit_that_prints_no_report_is_refused() -> None:
    with pytest.raises(AuditError, match="did not print JSON"):
        run_audit(python("print('all good')"))

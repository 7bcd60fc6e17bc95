"""The injector contract itself: strict params, typed outcomes, client errors translated at the edge, registration."""

from __future__ import annotations

import ast
import re
import textwrap
from pathlib import Path
from typing import ClassVar

import pytest
from pydantic import ValidationError

from clients.errors import ClientError, NotFoundError, NotSettledError
from engine.context import EngineContext
from engine.errors import InvalidInputError
from engine.events import EventBus
from engine.plan import load_plan
from engine.stack import LiveStack
from injectors import docs, registry
from injectors.base import FaultPlan, FaultSpec, Injector, Outcome, RunContext, TargetRef, TargetResult
from injectors.errors import (
    FaultStillPresentError,
    InjectionError,
    InjectorError,
    RollbackError,
    TargetNotFoundError,
)
from injectors.network.latency import NetworkLatencySpec
from injectors.process.kill import ProcessKillSpec
from injectors.registry import all_kinds, builtin_modules, register
from injectors.selection import Selection
from injectors.zookeeper.lose_quorum import ZooKeeperLoseQuorumSpec
from stackspec.targets import StackDescription
from tests.support.helpers import ROOT, chaos

CTX = EngineContext("run", LiveStack(StackDescription(name="none"), None), seed=1, bus=EventBus())
PACKAGE = ROOT / "injectors"


class FlakySpec(FaultSpec):
    """Which step raises which client error (by name), and which target fails on its own."""

    fail_in: str = ""
    error: str = "ClientError"
    failing_target: str = ""


ERRORS: dict[str, type[ClientError]] = {e.__name__: e for e in (ClientError, NotFoundError, NotSettledError)}


class Flaky(Injector[FlakySpec]):
    """A kind whose client raises where its params say."""

    kind: ClassVar[str] = "test.flaky"
    spec_type: ClassVar[type[FaultSpec]] = FlakySpec

    def client(self, step: str) -> None:
        if self.spec.fail_in == step:
            raise ERRORS[self.spec.error](f"the peer refused in {step}")

    def find_targets(self, target: str, select: Selection | None, ctx: RunContext) -> list[TargetRef]:
        self.client("resolve")
        return [TargetRef(id="a"), TargetRef(id="b")]

    def inject_all(self, plan: FaultPlan, ctx: RunContext) -> list[TargetResult]:
        self.client("inject")  # on the plan as a whole: nothing to record per target, so it is raised
        return super().inject_all(plan, ctx)

    def inject_one(self, ref: TargetRef, plan: FaultPlan, ctx: RunContext) -> Outcome:
        if ref.id == self.spec.failing_target:
            raise NotFoundError(f"no {ref.id} on the peer")
        return Outcome(detail={"done": ref.id}, measured={"took_s": 0.5})

    def rollback_all(self, plan: FaultPlan, ctx: RunContext) -> list[TargetResult]:
        self.client("rollback")
        return super().rollback_all(plan, ctx)

    def rollback_one(self, ref: TargetRef, plan: FaultPlan, ctx: RunContext) -> Outcome:
        return Outcome(detail={"undone": ref.id})

    def verify_all(self, plan: FaultPlan, ctx: RunContext) -> list[TargetResult]:
        self.client("verify")
        return super().verify_all(plan, ctx)

    def verify_one(self, ref: TargetRef, plan: FaultPlan, ctx: RunContext) -> Outcome:
        if ref.id == self.spec.failing_target:
            raise NotSettledError(f"{ref.id} did not settle")
        return Outcome()


def plan_of(injector: Flaky) -> FaultPlan:
    return FaultPlan(kind=injector.kind, target="t", targets=[TargetRef(id="a"), TargetRef(id="b")])


@pytest.mark.parametrize(
    ("step", "error", "expected"),
    [
        ("resolve", "NotFoundError", TargetNotFoundError),
        ("resolve", "NotSettledError", InjectionError),
        ("resolve", "ClientError", InjectionError),
        ("inject", "NotFoundError", InjectionError),
        ("inject", "ClientError", InjectionError),
        ("rollback", "NotSettledError", FaultStillPresentError),
        ("rollback", "ClientError", RollbackError),
        ("verify", "NotSettledError", FaultStillPresentError),
        ("verify", "NotFoundError", RollbackError),
    ],
)
def test_a_client_error_escaping_a_step_becomes_an_injector_error_from_it(
    step: str, error: str, expected: type[InjectorError]
) -> None:
    injector = Flaky(FlakySpec(fail_in=step, error=error))
    calls = {
        "resolve": lambda: injector.resolve("t", None, CTX),
        "inject": lambda: injector.inject(plan_of(injector), CTX),
        "rollback": lambda: injector.rollback(plan_of(injector), CTX),
        "verify": lambda: injector.verify_gone(plan_of(injector), CTX),
    }
    with pytest.raises(InjectorError) as caught:
        calls[step]()
    assert type(caught.value) is expected  # not merely a subclass: FaultStillPresentError is a RollbackError
    assert str(caught.value) == f"the peer refused in {step}"
    assert type(caught.value.__cause__) is ERRORS[error]  # `raise ... from exc`: the client's error is kept


def test_a_client_error_on_one_target_is_recorded_and_the_others_still_act() -> None:
    injector = Flaky(FlakySpec(failing_target="a"))
    failed, done = injector.inject(plan_of(injector), CTX)
    assert (failed.ok, failed.error, failed.detail, failed.measured) == (
        False,
        "NotFoundError: no a on the peer",
        {},
        {},
    )
    assert (done.ok, done.detail, done.measured) == (True, {"done": "b"}, {"took_s": 0.5})
    assert [r.action for r in injector.rollback(plan_of(injector), CTX)] == ["rollback", "rollback"]


def test_an_injector_error_is_not_translated_and_other_errors_pass_through() -> None:
    class Refusing(Flaky):
        """Raises its own errors."""

        def find_targets(self, target: str, select: Selection | None, ctx: RunContext) -> list[TargetRef]:
            raise (TargetNotFoundError if target == "gone" else KeyError)(target)

    with pytest.raises(TargetNotFoundError) as caught:
        Refusing(FlakySpec()).resolve("gone", None, CTX)
    assert caught.value.__cause__ is None
    with pytest.raises(KeyError):  # a bug is a bug: the engine reports it as one
        Refusing(FlakySpec()).resolve("t", None, CTX)


def test_outcomes_are_json_details_and_measured_seconds_merged_by_or() -> None:
    merged = Outcome(detail={"a": 1, "b": [1, None]}, measured={"x_s": 1}) | Outcome(
        detail={"a": 2}, measured={"y_s": 2}
    )
    assert merged == Outcome(detail={"a": 2, "b": [1, None]}, measured={"x_s": 1.0, "y_s": 2.0})
    with pytest.raises(ValidationError):
        Outcome(detail={"pids": (1, 2)})  # a tuple is not JSON: the journal would change it
    with pytest.raises(ValidationError):
        Outcome.model_validate({"measured": {"promoted_after_s": "soon"}})


def test_target_results_keep_measured_apart_and_read_old_journals_that_kept_it_in_the_detail() -> None:
    new = TargetResult(id="r", action="rollback", ok=True, started_at=1, finished_at=2, measured={"x_s": 1.5})
    assert TargetResult.model_validate_json(new.model_dump_json()) == new
    assert TargetResult(id="r", action="inject", ok=True, started_at=1, finished_at=2).measured == {}
    old = {"id": "r", "action": "rollback", "ok": True, "started_at": 1, "finished_at": 2}
    old["detail"] = {"new_primary": "redis-2", "measured": {"promoted_after_s": 2.25, "note": "x", "flag": True}}
    upgraded = TargetResult.model_validate(old)
    assert upgraded.measured == {"promoted_after_s": 2.25}  # its numbers; what never was a time is dropped
    assert upgraded.detail == {"new_primary": "redis-2"}


def test_params_are_strict_a_string_is_no_number_but_an_int_is_a_float() -> None:
    with pytest.raises(ValidationError, match="latency_ms\n  Input should be a valid integer"):
        NetworkLatencySpec.model_validate({"latency_ms": "150"})
    with pytest.raises(ValidationError, match="Input should be a valid integer"):
        NetworkLatencySpec.model_validate({"latency_ms": 150.0})
    with pytest.raises(ValidationError, match="Input should be a valid boolean"):
        ZooKeeperLoseQuorumSpec.model_validate({"include_leader": "yes"})
    assert ProcessKillSpec.model_validate({"exit_timeout_s": 5, "signal": "SIGTERM"}).exit_timeout_s == 5.0
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        ProcessKillSpec.model_validate({"sig": "SIGTERM"})


EXPERIMENT = """\
version: 1
title: a number given as a string
load: {locustfile: ../loadgen/trading.py, users: 5, spawn_rate: 5, duration: 30s}
steady_state:
  - {name: errors, metric: error_rate, max: 0.01}
method:
  - at: 10s
    duration: 5s
    kind: network.latency
    target: matcher->redis
    params: {latency_ms: "150"}
"""


def test_an_experiment_with_a_number_as_a_string_is_refused_at_its_line(tmp_path: Path) -> None:
    path = tmp_path / "exp.yaml"
    path.write_text(EXPERIMENT.replace("../loadgen", str(ROOT / "loadgen")))
    with pytest.raises(InvalidInputError) as caught:
        load_plan(path)
    (problem,) = caught.value.problems
    assert (problem.file, problem.line, problem.column) == (str(path), 11, 26)
    assert problem.message == "method.0.params.latency_ms: Input should be a valid integer"
    result = chaos("validate", str(path), timeout=60)
    assert result.returncode == 2
    assert result.stderr.strip() == f"{path}:11:26: method.0.params.latency_ms: Input should be a valid integer"


def test_register_refuses_what_would_not_be_a_kind(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))  # this test's registrations stay here

    class Unnamed(Flaky):
        """A kind."""

        kind: ClassVar[str] = "Flaky"

    class Undocumented(Flaky):
        kind: ClassVar[str] = "test.undocumented"
        summary: ClassVar[str] = ""

    class Twin(Flaky):
        """Kills processes too."""

        kind: ClassVar[str] = "process.kill"

    with pytest.raises(InjectorError, match=re.escape("`kind` must be 'domain.action' in snake_case, not 'Flaky'")):
        register(Unnamed)
    with pytest.raises(InjectorError, match="give the class a one-sentence docstring"):
        register(Undocumented)
    all_kinds()
    with pytest.raises(
        InjectorError, match=re.escape("'process.kill' is registered twice: by injectors.process.kill.Process")
    ):
        register(Twin)
    assert register(Flaky) is Flaky and registry.get_injector("test.flaky") is Flaky
    assert register(Flaky) is Flaky  # the same class again (a module imported twice) is no duplicate


def test_built_in_kinds_are_found_on_disk_one_kind_a_module_named_after_it() -> None:
    on_disk = sorted(
        f"injectors.{p.parent.name}.{p.stem}" for p in PACKAGE.glob("*/*.py") if not p.stem.startswith("_")
    )
    assert builtin_modules() == on_disk
    kinds = all_kinds()
    by_module: dict[str, list[str]] = {}
    for kind, cls in kinds.items():
        by_module.setdefault(cls.__module__, []).append(kind)
        domain, action = kind.split(".")
        assert cls.__module__ in (f"injectors.{domain}.{action}", f"injectors.kube.{domain}_{action}"), kind
        assert cls.summary == " ".join((cls.__doc__ or "").split()), f"{kind}: its summary is its docstring"
        assert cls.summary.endswith(".") and cls.summary.count(". ") == 0, f"{kind}: one sentence"
    assert all(len(found) == 1 for found in by_module.values()), by_module
    shared = sorted(set(on_disk) - set(by_module))
    assert shared == [m for m in on_disk if m.endswith(".common")], "a module of a domain registers no kind"


def test_kind_modules_import_what_they_share_from_their_domain_never_from_another_kinds_internals() -> None:
    for path in PACKAGE.glob("*/*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                assert node.level == 0, f"{path}: relative import (domain packages such as redis/ import absolutely)"


def test_every_module_of_the_package_is_small() -> None:
    for path in PACKAGE.rglob("*.py"):
        tree = ast.parse(path.read_text())
        assert len(path.read_text().splitlines()) <= 400, path
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef):
                first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
                assert (node.end_lineno or node.lineno) - first + 1 <= 60, f"{path}:{node.lineno} {node.name}"


def test_a_stale_params_table_is_regenerated_and_a_missing_one_named() -> None:
    stale = textwrap.dedent("""\
        ### `process.pause`
        <!-- params: process.pause -->
        | param | default | meaning |
        <!-- /params -->
        """)
    fresh = docs.render(stale)
    assert fresh == "### `process.pause`\n" + docs.block("process.pause") + "\n"
    assert "`ready_timeout_s` | number | `30.0` |" in fresh
    assert "process.kill" in docs.missing(fresh) and "process.pause" not in docs.missing(fresh)


def test_the_package_exports_the_whole_contract_a_plugin_needs() -> None:
    import injectors

    assert sorted(injectors.__all__) == injectors.__all__
    missing = [name for name in injectors.__all__ if not hasattr(injectors, name)]
    assert not missing
    for name in ("FaultSpec", "Injector", "Outcome", "register", "InjectionError", "ENTRY_POINT_GROUP"):
        assert name in injectors.__all__

"""The stacks a conversion matches activities against: the reference stack's command lines, selectors, options."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from importers.ctk_targets import load_stack, normalized_selector, parse_stack_option
from tests.support.helpers import require_programs
from tradingstack.topology import lay_out

_PORT = re.compile(r"(?<![\w-])\d{4,5}(?!\w)")
_SCRATCH = re.compile(r"\S*tradingstack-describe-[^/\s]+")


def _shape(argv: tuple[str, ...] | list[str], directory: str) -> str:
    """A command line with its ports and its stack directory masked: what stays the same from run to run."""
    return _PORT.sub("PORT", _SCRATCH.sub("DIR", " ".join(argv).replace(directory, "DIR")))


@pytest.mark.parametrize("profile", ["basic", "ha", "lossy", "containers"])
def test_the_reference_command_lines_are_those_of_the_real_processes(tmp_path: Path, profile: str) -> None:
    require_programs("redis-server", "java")
    for part in ("zookeeper", "redis", "toxiproxy", "logs"):
        (tmp_path / part).mkdir()
    layout = lay_out(tmp_path, profile, 2, {}, 2.0)
    real = {("toxiproxy", layout.toxiproxy.name): layout.toxiproxy.argv}
    real |= {("gateway", g.name): g.argv for g in layout.gateways}
    if profile != "containers":  # the containers profile runs its matching engines as containers
        real |= {("matcher", m.name): m.argv for m in layout.matchers}
    for target, _, instances in layout.middleware:
        real |= {(target, i.name): i.argv for i in instances}
    known = {(c.target, c.instance): c for c in load_stack(f"reference:{profile}", tmp_path).processes}
    assert set(known) == set(real)
    for key, argv in real.items():
        candidate = known[key]
        assert candidate.comm == os.path.basename(argv[0])[:15], (key, argv)
        assert _shape(candidate.argv, str(tmp_path)) == _shape(argv, str(tmp_path)), key
        assert "--name" not in argv or argv[argv.index("--name") + 1] == key[1]


def test_every_reference_process_target_has_its_command_lines(tmp_path: Path) -> None:
    for profile in ("basic", "ha"):
        info = load_stack(f"reference:{profile}", tmp_path)
        processes = {name for name, kind in info.kinds.items() if kind == "process"}
        assert {c.target for c in info.processes} == processes
        assert info.ref == {"reference": profile}


def test_the_stack_option() -> None:
    assert parse_stack_option("reference:ha") == ("ha", None)
    assert parse_stack_option("basic") == ("basic", None)
    assert parse_stack_option("stacks/mine.yaml") == (None, Path("stacks/mine.yaml"))


def test_an_unknown_profile_or_missing_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown reference profile 'huge'"):
        load_stack("reference:huge", tmp_path)
    with pytest.raises(ValueError, match=re.escape("stack description 'nope.yaml' not found")):
        load_stack("nope.yaml", tmp_path)


@pytest.mark.parametrize(
    ("one", "other", "same"),
    [
        ("app=web,tier=front", "tier=front, app=web", True),
        ("app in (a, b),tier!=x", "tier!=x,app in (a,b)", True),
        ("app=web", "app=web,tier=front", False),
    ],
)
def test_label_selectors_compare_as_sets_of_requirements(one: str, other: str, same: bool) -> None:
    assert (normalized_selector(one) == normalized_selector(other)) is same

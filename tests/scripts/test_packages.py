"""scripts/packages.sh and the two package lists: one list of the Debian packages, read the same way everywhere."""

from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path

import pytest

from tests.support.helpers import ROOT

LISTS = ("scripts/debian-packages.txt", "scripts/debian-packages-test.txt")
NAME = re.compile(r"[a-z0-9][a-z0-9.+-]+")


def bash(script: str, env_prefix: str = "") -> subprocess.CompletedProcess[str]:
    """Run `script` with scripts/packages.sh sourced, from the project root."""
    return subprocess.run(
        ["bash", "-c", f"{env_prefix}. scripts/packages.sh && {script}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def names(path: str, group: str = "") -> list[str]:
    done = bash(f"package_names {shlex.quote(path)} {shlex.quote(group)}")
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


@pytest.mark.parametrize("path", LISTS)
def test_every_line_of_a_list_is_one_package_name_with_a_comment_saying_why(path: str) -> None:
    for number, line in enumerate((ROOT / path).read_text().splitlines(), 1):
        package, _, why = line.partition("#")
        if package.strip():
            assert NAME.fullmatch(package.strip()), f"{path}:{number}: one package name a line"
            assert why.strip(), f"{path}:{number}: say why the package is needed"
    assert names(path), path


def test_the_lists_do_not_overlap_and_hold_what_the_code_runs() -> None:
    run, test = names(LISTS[0]), names(LISTS[1])
    assert not set(run) & set(test)
    assert {"redis-server", "zookeeper", "libslf4j-java"} <= set(run)
    assert {"chromium", "openssh-server", "podman", "runc", "busybox-static"} <= set(test)


def test_a_group_selects_only_the_lines_tagged_with_it(tmp_path: Path) -> None:
    listing = tmp_path / "list.txt"
    listing.write_text("# a header [containers] that is no package\nalpha  # [containers] one\nbeta # two\n gamma\n")
    assert names(str(listing)) == ["alpha", "beta", "gamma"]
    assert names(str(listing), "containers") == ["alpha"]
    assert names(LISTS[1], "containers") == ["podman", "runc", "busybox-static"]


def test_missing_packages_names_only_what_dpkg_does_not_have() -> None:
    done = bash("missing_packages bash no-such-package-of-ours")
    assert done.returncode == 0
    assert done.stdout.split() == ["no-such-package-of-ours"]


def test_ensure_packages_without_root_prints_the_exact_command_and_installs_nothing() -> None:
    # A stand-in `id` that says "not root": the function must not try apt-get.
    done = bash("ensure_packages setup bash no-such-package-of-ours", env_prefix="id() { echo 1000; }; ")
    assert done.returncode == 2
    assert "setup: these Debian packages are missing: no-such-package-of-ours" in done.stderr
    assert "sudo apt-get install -y --no-install-recommends no-such-package-of-ours" in done.stderr
    assert bash("ensure_packages setup bash").returncode == 0  # nothing missing: nothing to do


def test_no_script_names_the_packages_itself() -> None:
    """Every apt-get install in the project's scripts, CI examples and image reads its names from a list."""
    listed = set(names(LISTS[0])) | set(names(LISTS[1]))
    files = [*ROOT.glob("scripts/*.sh"), *ROOT.glob("deploy/ci/*.yml"), ROOT / "deploy" / "Dockerfile"]
    files += [p for p in ROOT.glob("tests/**/*.py") if p.name != "test_packages.py"]
    for path in files:
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if "apt-get install" in line or "missing+=(" in line:
                words = set(re.findall(r"[a-z0-9][a-z0-9.+-]+", line.split("#")[0]))
                assert not words & listed, f"{path.relative_to(ROOT)}:{number} names {sorted(words & listed)}"

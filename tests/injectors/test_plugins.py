"""Kinds from other packages: a plugin found through its entry point, and run end to end by `chaos.py run`.

The plugin is the example of docs/writing-an-injector.md, `file.fill`, taken from the guide's code block,
installed the way pip leaves a package (its module and a `*.dist-info` with `entry_points.txt`) on a path
entry of a subprocess's PYTHONPATH — so its registration never leaks into this process's registry.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.journal import load_journal
from injectors.registry import ENTRY_POINT_GROUP, all_kinds
from stackspec.targets import ProcessInstance, ProcessTarget, StackDescription
from tests.support.cli_world import HERE, end_world, new_world, wait_fault
from tests.support.helpers import ROOT

GUIDE = ROOT / "docs" / "writing-an-injector.md"
MIB = 1 << 20


def example() -> str:
    """The plugin module of the guide: the code block after its `<!-- example: ... -->` marker."""
    match = re.search(r"<!-- example: chaos_file_fill\.py -->\n```python\n(.*?)```\n", GUIDE.read_text(), re.DOTALL)
    assert match, f"no example code block in {GUIDE}"
    return match[1]


def install(site: Path, module: str, source: str, entry: str = "file", dist: str = "chaos-file-fill") -> Path:
    """A plugin on a path entry: `module`.py and `<dist>-0.1.0.dist-info` naming it in the entry-point group."""
    site.mkdir(parents=True, exist_ok=True)
    (site / f"{module}.py").write_text(source)
    info = site / f"{dist.replace('-', '_')}-0.1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1.0\n")
    (info / "entry_points.txt").write_text(f"[{ENTRY_POINT_GROUP}]\n{entry} = {module}\n")
    return site


def env_with(*sites: Path) -> dict[str, str]:
    paths = [str(site) for site in sites] + [p for p in [os.environ.get("PYTHONPATH")] if p]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}


def python(sites: list[Path], code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=ROOT,
        env=env_with(*sites),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def chaos_with(sites: list[Path], *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / "chaos.py"), *args],
        cwd=ROOT,
        env=env_with(*sites),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture
def plugin(tmp_path: Path) -> Path:
    return install(tmp_path / "site", "chaos_file_fill", example())


def test_an_installed_plugin_adds_its_kind_and_the_guide_shows_its_table(plugin: Path) -> None:
    listed = python(
        [plugin],
        """
        from injectors.registry import all_kinds, plugins
        kinds = all_kinds()
        print([p.name for p in plugins()], kinds["file.fill"].__module__, kinds["file.fill"].summary)
        print("process.kill" in kinds)
        """,
    )
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.splitlines() == [
        "['file'] chaos_file_fill Fill the disk under processes of a target with one file each (up to `size_mb`); "
        "rollback deletes it.",
        "True",
    ]
    assert "file.fill" not in all_kinds()  # this process never saw the plugin
    table = python([plugin], "from injectors.docs import main; main(['--kind', 'file.fill'])")
    assert table.returncode == 0, table.stderr
    assert table.stdout.strip() in GUIDE.read_text(), "the guide's table of file.fill is stale"


def test_a_plugin_that_fails_to_import_is_named_with_its_distribution(tmp_path: Path) -> None:
    site = install(
        tmp_path / "site", "chaos_broken", "import no_such_module_here\n", entry="broken", dist="chaos-broken"
    )
    result = python([site], "from injectors.registry import all_kinds; all_kinds()")
    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(
        "injectors.registry.PluginError: injector plugin 'broken' (entry point broken = chaos_broken"
    )
    assert "distribution chaos-broken 0.1.0) failed to import: ModuleNotFoundError" in last
    assert "pip uninstall chaos-broken" in last


def test_chaos_py_names_a_broken_plugin_in_one_line_and_starts_nothing(tmp_path: Path) -> None:
    site = install(
        tmp_path / "site", "chaos_broken", "import no_such_module_here\n", entry="broken", dist="chaos-broken"
    )
    experiment = ROOT / "experiments" / sorted(p.name for p in (ROOT / "experiments").glob("*.yaml"))[0]
    result = subprocess.run(
        [sys.executable, str(ROOT / "chaos.py"), "validate", str(experiment)],
        cwd=ROOT,
        env=env_with(site),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 4, result.stderr
    assert result.stderr.startswith("error: injector plugin 'broken' (entry point broken = chaos_broken")
    assert "pip uninstall chaos-broken" in result.stderr
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr


def test_a_plugin_that_registers_an_existing_kind_is_refused(tmp_path: Path) -> None:
    twin = example().replace('"file.fill"', '"process.kill"')
    site = install(tmp_path / "site", "chaos_twin", twin, entry="twin", dist="chaos-twin")
    result = python([site], "from injectors.registry import get_injector; get_injector('process.kill')")
    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    assert "injector plugin 'twin' (entry point twin = chaos_twin, distribution chaos-twin 0.1.0)" in last
    assert "fault kind 'process.kill' is registered twice: by injectors.process.kill.ProcessKillInjector" in last
    assert "and by chaos_twin.FileFillInjector" in last


def test_two_plugins_with_one_kind_are_refused_whichever_loads_first(tmp_path: Path) -> None:
    first = install(tmp_path / "a", "chaos_file_fill", example())
    second = install(tmp_path / "b", "chaos_fill_again", example(), entry="again", dist="chaos-fill-again")
    result = python([first, second], "from injectors.registry import all_kinds; all_kinds()")
    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    assert "injector plugin 'file' (entry point file = chaos_file_fill" in last  # entry points load by name
    assert "'file.fill' is registered twice: by chaos_fill_again.FileFillInjector and by chaos_file_fill." in last


def stack_file(tmp_path: Path, instances: list[ProcessInstance], web: ProcessInstance) -> Path:
    description = StackDescription(
        name="plugin-test",
        endpoints={"web": f"http://127.0.0.1:{web.ports['http']}"},
        targets={"svc": ProcessTarget(instances=instances), "web": ProcessTarget(instances=[web])},
        market_hours=None,  # a test stack never trades: runs are allowed at any time of day
    )
    path = tmp_path / "stack.json"
    path.write_text(description.model_dump_json(indent=1))
    return path


def experiment(tmp_path: Path, params: str, load: str = "11s") -> Path:
    path = tmp_path / "fill.yaml"
    path.write_text(f"""\
version: 1
title: a plugin's fault kind in a real run
stack: {{file: stack.json}}
load: {{locustfile: {HERE / "web_locustfile.py"}, users: 4, spawn_rate: 4, duration: {load}, warmup: 2s, host: web}}
steady_state:
  - {{name: errors, metric: error_rate, max: 0.01}}
method:
  - {{at: 4s, duration: 2s, kind: file.fill, target: svc, select: {{name: svc-1}},
      params: {params}}}
integrity: []
recovery: {{stable_for: 1s}}
""")
    return path


def test_validation_of_a_plugin_kinds_params_is_strict_and_located(plugin: Path, tmp_path: Path) -> None:
    svc = ProcessInstance(name="svc-1", argv=["/bin/true"])
    stack_file(tmp_path, [svc], ProcessInstance(name="web-1", argv=["/bin/true"], ports={"http": 1}))
    good = chaos_with([plugin], "validate", str(experiment(tmp_path, f"{{size_mb: 2, directory: {tmp_path}}}")))
    assert good.returncode == 0, good.stdout + good.stderr
    assert "file.fill on svc" in good.stdout
    bad = chaos_with([plugin], "validate", str(experiment(tmp_path, '{size_mb: "2"}')))
    assert bad.returncode == 2, bad.stdout + bad.stderr
    assert f"{tmp_path / 'fill.yaml'}:9:25: method.0.params.size_mb: Input should be a valid integer" in bad.stderr
    unknown = chaos_with([], "validate", str(experiment(tmp_path, "{size_mb: 2}")))
    assert unknown.returncode == 2 and "unknown fault kind 'file.fill'" in unknown.stderr  # without the plugin


@pytest.fixture
def world(tmp_path: Path) -> Iterator[dict[str, object]]:
    state = new_world(tmp_path)
    yield state
    end_world(state)


@pytest.mark.slow
def test_a_plugin_kind_is_injected_rolled_back_and_verified_in_a_real_run(
    plugin: Path, world: dict[str, object], tmp_path: Path
) -> None:
    web, svc = world["web"], world["svc"]
    assert isinstance(web, ProcessInstance) and isinstance(svc, list)
    data = tmp_path / "data"
    data.mkdir()
    stack_file(tmp_path, svc, web)
    path = experiment(tmp_path, f"{{size_mb: 3, directory: {data}}}")
    runs = tmp_path / "runs"
    run = subprocess.Popen(
        [sys.executable, str(ROOT / "chaos.py"), "run", str(path), "--runs-dir", str(runs), "--quiet"],
        cwd=ROOT,
        env=env_with(plugin),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_fault(runs, "injected", timeout_s=90)
        (filler,) = data.iterdir()  # while the fault lasts: the file is there, full size
        assert filler.name.startswith(".chaos-fill-") and filler.stat().st_size == 3 * MIB
        output, _ = run.communicate(timeout=120)
    finally:
        if run.poll() is None:
            run.kill()
            run.wait(timeout=10)
    assert run.returncode == 0, output
    (journal_path,) = runs.glob("*/journal.json")
    journal = load_journal(journal_path)
    assert journal.verdict == "passed", journal.summary
    (fault,) = journal.faults
    assert (fault.kind, fault.status, fault.params) == (
        "file.fill",
        "rolled_back",
        {"size_mb": 3, "directory": str(data)},
    )
    assert fault.plan is not None and [t.id for t in fault.plan.targets] == ["svc-1"]
    ((inject,), (rollback,), (verify,)) = fault.inject, fault.rollback, fault.verify
    assert inject.ok and inject.detail == {"path": str(filler), "bytes": 3 * MIB, "full": False}
    assert rollback.ok and rollback.detail == {"path": str(filler), "removed": True}
    assert verify.ok and verify.detail == {"path": str(filler), "absent": True}
    assert set(fault.measured) == {"filled_after_s"} and inject.measured == fault.measured
    assert not list(data.iterdir())  # the marker is gone

"""deploy/Dockerfile and deploy/k8s/: the manifests are real Kubernetes objects (checked against the client's
models, since no cluster runs here), and their command lines are ones Locust and chaos.py accept."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path
from typing import Any

import pytest
import yaml

import chaos
from tests.support.helpers import ROOT

K8S = ROOT / "deploy" / "k8s"
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
APP = "/app"  # the image's WORKDIR: the repository's files are there
EXPECTED = {
    "locust-master.yaml": [("apps/v1", "Deployment"), ("v1", "Service")],
    "locust-workers.yaml": [("apps/v1", "Deployment")],
    "drill-cronjob.yaml": [
        ("v1", "ServiceAccount"),
        ("rbac.authorization.k8s.io/v1", "Role"),
        ("rbac.authorization.k8s.io/v1", "RoleBinding"),
        ("v1", "PersistentVolumeClaim"),
        ("v1", "ConfigMap"),
        ("batch/v1", "CronJob"),
    ],
}
# Read the options back with Locust's own parser, in a process of its own (importing locust patches gevent in).
LOCUST_PARSE = """
import json, sys
from locust.argument_parser import parse_options
o = parse_options(args=sys.argv[1:])
print(json.dumps({k: getattr(o, k) for k in ("locustfile", "master", "worker", "master_host", "master_port",
                  "master_bind_host", "master_bind_port", "expect_workers", "enable_rebalancing", "host")}))
"""


def documents(name: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all((K8S / name).read_text()) if doc is not None]


def by_kind(name: str, kind: str) -> dict[str, Any]:
    (doc,) = [d for d in documents(name) if d["kind"] == kind]
    return doc


def container(workload: dict[str, Any]) -> dict[str, Any]:
    (only,) = pod_spec(workload)["containers"]
    return dict(only)


def pod_spec(workload: dict[str, Any]) -> dict[str, Any]:
    spec = workload["spec"]
    return dict(
        spec["jobTemplate"]["spec"]["template"]["spec"] if workload["kind"] == "CronJob" else spec["template"]["spec"]
    )


def locust_options(command: list[str]) -> dict[str, Any]:
    assert command[:3] == ["python", "-m", "locust"], command
    result = subprocess.run(
        [sys.executable, "-c", LOCUST_PARSE, *command[3:]], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr  # argparse refuses an unknown option or a bad value
    return dict(json.loads(result.stdout.strip().splitlines()[-1]))


def test_files_hold_the_expected_kinds_and_api_versions() -> None:
    assert sorted(p.name for p in K8S.glob("*.yaml")) == sorted(EXPECTED)
    for name, kinds in EXPECTED.items():
        assert [(d["apiVersion"], d["kind"]) for d in documents(name)] == kinds, name


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_object_is_a_kubernetes_model_with_only_real_fields(name: str) -> None:
    from kubernetes.client import ApiClient

    client = ApiClient()
    for doc in documents(name):
        group_version = doc["apiVersion"].rsplit("/", 1)[-1]
        # A missing required field or a value of the wrong type raises here.
        model = client.deserialize(json.dumps(doc), f"{group_version.capitalize()}{doc['kind']}", "application/json")
        # The client drops keys it does not know: a misspelt field would not come back.
        assert client.sanitize_for_serialization(model) == doc, f"{name}: {doc['kind']} {doc['metadata']['name']}"


def test_master_service_and_workers_agree_and_locust_accepts_their_commands() -> None:
    master = by_kind("locust-master.yaml", "Deployment")
    service = by_kind("locust-master.yaml", "Service")
    workers = by_kind("locust-workers.yaml", "Deployment")
    assert master["spec"]["replicas"] == 1 and master["spec"]["strategy"]["type"] == "Recreate"
    assert service["spec"]["selector"] == master["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"] != workers["spec"]["template"]["metadata"]["labels"]
    for workload in (master, workers):
        assert workload["spec"]["selector"]["matchLabels"] == workload["spec"]["template"]["metadata"]["labels"]

    m = locust_options(container(master)["command"])
    w = locust_options(container(workers)["command"])
    assert m["master"] and not m["worker"] and w["worker"] and not w["master"]
    assert m["enable_rebalancing"] and m["expect_workers"] == workers["spec"]["replicas"]
    ports = {p["name"]: p for p in service["spec"]["ports"]}
    container_ports = {p["name"]: p["containerPort"] for p in container(master)["ports"]}
    assert m["master_bind_port"] == container_ports[ports["workers"]["targetPort"]] == ports["workers"]["port"] == 5557
    assert (w["master_host"], w["master_port"]) == (service["metadata"]["name"], ports["workers"]["port"])
    for options in (m, w):
        files = options["locustfile"].split(",")
        assert files == ["loadgen/trading.py", "loadgen/metrics_plugin.py"]
        assert all((ROOT / f).is_file() for f in files)  # relative to the image's WORKDIR, the repository
    env = {e["name"]: e["value"] for e in container(master)["env"]}
    mounts = {v["mountPath"] for v in container(master)["volumeMounts"]}
    assert Path(env["CHAOS_METRICS_FILE"]).parent.as_posix() in mounts
    env = {e["name"]: e["value"] for e in container(workers)["env"]}
    assert env["CHAOS_LEDGER_DIR"] in {v["mountPath"] for v in container(workers)["volumeMounts"]}


def test_the_cronjob_runs_a_drill_from_its_configmap_with_options_chaos_py_accepts() -> None:
    cronjob = by_kind("drill-cronjob.yaml", "CronJob")
    spec = cronjob["spec"]
    assert (spec["timeZone"], spec["concurrencyPolicy"]) == ("Asia/Shanghai", "Forbid")
    assert spec["jobTemplate"]["spec"]["backoffLimit"] == 0
    command = container(cronjob)["command"]
    assert command[:2] == ["python", "chaos.py"]
    args = chaos._parser().parse_args(command[2:])  # exits (SystemExit) on an option chaos.py does not know
    assert (args.command, args.drill_command, args.non_interactive) == ("drill", "run", True)

    pod = pod_spec(cronjob)
    mounts = {m["name"]: m["mountPath"] for m in container(cronjob)["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    configmap = by_kind("drill-cronjob.yaml", "ConfigMap")
    drills_volume = next(name for name, v in volumes.items() if "configMap" in v)
    assert volumes[drills_volume]["configMap"]["name"] == configmap["metadata"]["name"]
    assert args.file.parent == Path(mounts[drills_volume]) and args.file.name in configmap["data"]
    runs_volume = next(name for name, v in volumes.items() if "persistentVolumeClaim" in v)
    assert (
        volumes[runs_volume]["persistentVolumeClaim"]["claimName"]
        == by_kind("drill-cronjob.yaml", "PersistentVolumeClaim")["metadata"]["name"]
    )
    assert args.runs_dir == Path(mounts[runs_volume])

    account = by_kind("drill-cronjob.yaml", "ServiceAccount")["metadata"]["name"]
    binding = by_kind("drill-cronjob.yaml", "RoleBinding")
    role = by_kind("drill-cronjob.yaml", "Role")
    assert pod["serviceAccountName"] == account == binding["subjects"][0]["name"]
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    assert binding["metadata"]["namespace"] == role["metadata"]["namespace"]


@pytest.mark.slow
def test_the_configmap_drill_validates_and_its_schedule_is_the_cronjobs(tmp_path: Path) -> None:
    configmap = by_kind("drill-cronjob.yaml", "ConfigMap")
    for key, text in configmap["data"].items():
        # Paths into the image (/app/...) are this repository's files.
        (tmp_path / key).write_text(text.replace(f"{APP}/", f"{ROOT}/"))
    cronjob = by_kind("drill-cronjob.yaml", "CronJob")
    drill_file = tmp_path / Path(container(cronjob)["command"][-1]).name
    experiment = yaml.safe_load(drill_file.read_text())["experiments"][0]
    result = subprocess.run(
        [sys.executable, str(ROOT / "chaos.py"), "validate", str(drill_file), str(tmp_path / experiment)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "workers" in yaml.safe_load((tmp_path / experiment).read_text())["load"]

    exported = subprocess.run(
        [sys.executable, str(ROOT / "chaos.py"), "drill", "export", "--k8s-cronjob", str(drill_file)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        check=False,
    )
    assert exported.returncode == 0, exported.stderr
    spec = yaml.safe_load(exported.stdout)["spec"]
    ours = cronjob["spec"]
    assert (spec["schedule"], spec["timeZone"], spec["concurrencyPolicy"]) == (
        ours["schedule"],
        ours["timeZone"],
        ours["concurrencyPolicy"],
    )


# ---- the Dockerfile ----------------------------------------------------------------------------------------------


def instructions() -> list[tuple[str, list[str]]]:
    """(INSTRUCTION, arguments) per instruction, continuation lines joined, comments left out."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    rows = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            rows.append((word.upper(), shlex.split(rest)))
    return rows


def copied_sources() -> list[str]:
    """The project's files and folders the image copies into the application directory."""
    return [
        src for word, args in instructions() if word == "COPY" and not args[-1].startswith("/tmp/") for src in args[:-1]
    ]


def test_dockerfile_is_a_runner_image_that_installs_the_project() -> None:
    rows = instructions()
    assert rows[0] == ("FROM", ["python:3.11-slim-bookworm"])
    assert ("WORKDIR", [APP]) in rows
    runs = " ".join(" ".join(args) for word, args in rows if word == "RUN")
    assert "pip install .[kubernetes,containers]" in runs
    # The Debian packages come from the project's one list, never named here.
    assert "sed s/#.*// /tmp/debian-packages.txt | xargs apt-get install" in runs  # shlex took the quotes
    assert ("COPY", ["scripts/debian-packages.txt", "/tmp/debian-packages.txt"]) in rows
    assert not re.search(r"redis-server|zookeeper|openjdk|libslf4j", runs)
    assert any(word == "USER" and args != ["root"] for word, args in rows)
    for source in copied_sources():
        assert (ROOT / source).exists(), source
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    setuptools = project["tool"]["setuptools"]
    names = {s.rstrip("/") for s in copied_sources()}
    # Top-level packages found by the include patterns of pyproject.toml (subpackages come with them).
    included = {pattern.rstrip("*") for pattern in setuptools["packages"]["find"]["include"]}
    assert included <= names, "every package of pyproject.toml is copied"
    assert {f"{m}.py" for m in setuptools["py-modules"]} <= names
    assert project["project"]["readme"] in names


@pytest.mark.slow
def test_the_copied_files_build_the_package_with_its_templates_and_plugin(tmp_path: Path) -> None:
    """What `pip install .` does in the image, from exactly the files the image gets (without downloading)."""
    context = tmp_path / "context"
    for source in copied_sources():
        target = context / source
        if (ROOT / source).is_dir():
            shutil.copytree(ROOT / source, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes((ROOT / source).read_bytes())
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", str(tmp_path / "dist"), "."],
        cwd=context,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    (wheel,) = (tmp_path / "dist").glob("trading_chaos-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for needed in ("chaos.py", "engine/load.py", "loadgen/metrics_plugin.py", "loadgen/trading.py"):
        assert needed in names, needed
    assert any(n.startswith("reports/templates/") and n.endswith(".j2") for n in names)

"""A drill's schedule for other schedulers: a crontab line, or a Kubernetes CronJob manifest (batch/v1).

Both run `chaos.py drill run --non-interactive FILE` at the drill's cron time in its time zone and
never start a run while the previous one is still going.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import yaml

from drilling import cron
from drilling.model import Drill


def _schedule(drill: Drill) -> tuple[str, str, float]:
    if drill.schedule is None:
        raise ValueError(f"drill {drill.name!r} has no schedule: add `schedule: {{cron: ..., timezone: ...}}`")
    return cron.standard_cron(drill.schedule.cron), drill.schedule.timezone, drill.schedule.misfire_grace


def crontab_line(drill: Drill, drill_file: Path, python: str, chaos_py: Path, runs_dir: Path) -> str:
    """A crontab entry (with CRON_TZ for crons that read it) running the drill non-interactively.

    `flock -n` keeps a second run from starting while one still runs (cron itself would start it).
    """
    expr, tz, _ = _schedule(drill)
    workdir = chaos_py.resolve().parent
    lock = runs_dir.resolve() / "drills" / f"{drill.name}.cron.lock"
    log = runs_dir.resolve() / "drills" / f"{drill.name}.cron.log"
    command = " ".join(
        shlex.quote(str(part))
        for part in (
            "flock",
            "-n",
            lock,
            python,
            chaos_py.resolve(),
            "drill",
            "run",
            "--non-interactive",
            "--runs-dir",
            runs_dir.resolve(),
            drill_file.resolve(),
        )
    )
    command = f"cd {shlex.quote(str(workdir))} && {command} >> {shlex.quote(str(log))} 2>&1"
    if "%" in command:  # cron turns an unescaped % into a newline
        command = command.replace("%", r"\%")
    return "\n".join(
        [
            f"# chaos drill {drill.name}: {drill.title}",
            f"# {expr} in {tz}; CRON_TZ is read by cronie and systemd-cron: elsewhere set the machine's zone to {tz}",
            f"CRON_TZ={tz}",
            f"{expr} {command}",
            "",
        ]
    )


def _pod_template(drill: Drill, drill_file: str, image: str, volume: dict[str, Any]) -> dict[str, Any]:
    """The CronJob's pod: one container running the drill non-interactively, its runs directory at /runs."""
    command = ["python", "chaos.py", "drill", "run", "--non-interactive", "--runs-dir", "/runs", drill_file]
    return {
        "metadata": {"labels": {"chaos.drill/name": drill.name}},
        "spec": {
            "restartPolicy": "Never",
            "containers": [
                {
                    "name": "drill",
                    "image": image,
                    "command": command,
                    "volumeMounts": [{"name": "runs", "mountPath": "/runs"}],
                }
            ],
            "volumes": [volume],
        },
    }


def k8s_cronjob(drill: Drill, drill_file: str, image: str, namespace: str | None = None, pvc: str | None = None) -> str:
    """A batch/v1 CronJob manifest: the drill's cron and time zone, concurrencyPolicy Forbid."""
    expr, tz, grace = _schedule(drill)
    name = re.sub(r"[^a-z0-9-]", "-", f"drill-{drill.name}")[:52].strip("-")
    volume: dict[str, Any] = (
        {"name": "runs", "persistentVolumeClaim": {"claimName": pvc}} if pvc else {"name": "runs", "emptyDir": {}}
    )
    metadata: dict[str, Any] = {
        "name": name,
        "labels": {"app.kubernetes.io/name": "chaos-drill", "chaos.drill/name": drill.name},
        "annotations": {"chaos.drill/title": drill.title, "chaos.drill/owner": drill.owner},
    }
    if namespace:
        metadata["namespace"] = namespace
    manifest = {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": metadata,
        "spec": {
            "schedule": expr,
            "timeZone": tz,
            "concurrencyPolicy": "Forbid",
            # A run missed (controller down) is started late only within the drill's misfire grace.
            "startingDeadlineSeconds": max(10, int(grace)),
            "successfulJobsHistoryLimit": 3,
            "failedJobsHistoryLimit": 5,
            "jobTemplate": {
                "spec": {
                    "backoffLimit": 0,  # a failed drill is a result, not something to retry
                    "template": _pod_template(drill, drill_file, image, volume),
                }
            },
        },
    }
    head = f"# chaos drill {drill.name}: {drill.title}\n"
    if not pvc:
        head += "# runs (records, history, reports) live in an emptyDir: pass --pvc CLAIM to keep them\n"
    return head + yaml.safe_dump(manifest, sort_keys=False, allow_unicode=True)

"""The stack description's JSON Schema (for editors) and its Markdown reference, with an example per target kind.

`chaos.py schema --stack [--markdown]` prints them; docs/stack-reference.md is the Markdown, kept in
sync by a test, which also validates every example here against the models.
"""

from __future__ import annotations

from typing import Any

import yaml

from engine.schema import markdown_section, type_of
from stackspec.targets import StackDescription

# The order models are shown in; a model not named here is appended, sorted by name.
_ORDER = (
    "ProcessTarget",
    "ProcessInstance",
    "ProcessMatch",
    "Restart",
    "SshHost",
    "HttpHealth",
    "TcpHealth",
    "RedisHealth",
    "ZooKeeperHealth",
    "LinkTarget",
    "LinkInstance",
    "ToxiproxyEndpoint",
    "ContainerTarget",
    "ContainerInstance",
    "KubernetesTarget",
    "KubernetesAccess",
    "MarketHours",
    "AuditCommand",
)

_PROCESS_WITH_PID: dict[str, Any] = {
    "name": "lab",
    "market_hours": None,
    "targets": {
        "matcher": {
            "kind": "process",
            "description": "matching engines",
            "instances": [
                {
                    "name": "matcher-1",
                    "pid": 41237,
                    "start_time": 8812345,
                    "argv": ["/usr/bin/python3", "-m", "matcher", "--port", "7001"],
                    "cwd": "/srv/matcher",
                    "log": "/var/log/matcher-1.log",
                    "health": {"http": "http://127.0.0.1:7001/health"},
                    "role_url": "http://127.0.0.1:7001/role",
                }
            ],
        }
    },
}

_PROCESS_BY_MATCH: dict[str, Any] = {
    "name": "web",
    "market_hours": None,
    "targets": {
        "frontend": {
            "instances": [
                {
                    "name": "nginx",
                    "match": {"pidfile": "/run/nginx.pid", "exe": "/usr/sbin/nginx"},
                    "restart": {"by": "command", "command": ["systemctl", "restart", "nginx"]},
                    "health": {"tcp": "127.0.0.1:80"},
                }
            ]
        },
        "backend": {
            "instances": [
                {
                    "name": "backend-1",
                    "match": {"cmdline": r"gunicorn .*--bind 127\.0\.0\.1:8001", "listen_port": 8001},
                    "argv": ["/usr/bin/gunicorn", "--bind", "127.0.0.1:8001", "app:app"],
                    "health": {"http": "http://127.0.0.1:8001/", "status": 200},
                }
            ]
        },
    },
}

_PROCESS_OVER_SSH: dict[str, Any] = {
    "name": "cache",
    "market_hours": None,
    "targets": {
        "redis": {
            "instances": [
                {
                    "name": "redis-primary",
                    "host": {"address": "10.0.4.21", "user": "chaos", "key_file": "~/.ssh/chaos_ed25519"},
                    "match": {"listen_port": 6379},
                    "restart": {"by": "supervisor", "timeout_s": 60},
                    "ports": {"client": 6379},
                    "health": {"redis": "10.0.4.21:6379"},
                }
            ]
        }
    },
}

_LINK: dict[str, Any] = {
    "name": "lab",
    "market_hours": None,
    "toxiproxy": {"url": "http://127.0.0.1:8474"},
    "targets": {
        "matcher_to_redis": {
            "kind": "link",
            "client_target": "matcher",
            "server_target": "redis",
            "instances": [
                {
                    "name": "matcher-1->redis",
                    "proxy": "matcher-1-redis",
                    "listen": "127.0.0.1:16379",
                    "upstream": "127.0.0.1:6379",
                    "client": "matcher-1",
                }
            ],
        }
    },
}

_CONTAINER: dict[str, Any] = {
    "name": "compose",
    "market_hours": None,
    "targets": {
        "gateway": {
            "kind": "container",
            "engine_url": "unix:///var/run/docker.sock",
            "containers": [{"name": "gateway-1", "health": {"http": "http://127.0.0.1:8080/health"}}],
        },
        "workers": {"kind": "container", "labels": {"app": "worker"}},
    },
}

_KUBERNETES: dict[str, Any] = {
    "name": "cluster",
    "market_hours": None,
    "targets": {
        "web": {
            "kind": "kubernetes",
            "resource": "pods",
            "namespace": "trading",
            "label_selector": "app=web",
            "deployment": "web",
            "api": {"kubeconfig": "~/.kube/config", "context": "staging"},
        }
    },
}

_ENDPOINTS: dict[str, Any] = {
    "name": "web",
    "market_hours": None,
    "endpoints": {"gateway": "http://127.0.0.1:8080", "redis": "127.0.0.1:6379"},
}

_MARKET_HOURS: dict[str, Any] = {
    "name": "equities",
    "production": True,
    "trading": True,
    "market_hours": {
        "timezone": "Asia/Shanghai",
        "weekdays": ["mon", "tue", "wed", "thu", "fri"],
        "sessions": ["09:15-11:30", "13:00-15:00"],
        "closed": ["2027-01-01"],
    },
}

_AUDIT: dict[str, Any] = {
    "name": "lab",
    "market_hours": None,
    "audit": {
        "argv": ["/usr/bin/python3", "-m", "myledger.audit", "--json"],
        "env": {"LEDGER_DSN": "${LEDGER_DSN}"},
        "timeout_s": 300,
    },
}

# (title, what it shows, the document): each is a whole stack description, validated by a test.
EXAMPLES: tuple[tuple[str, str, dict[str, Any]], ...] = (
    (
        "A process known by its PID",
        "What the reference stack writes: the PID and its start time (clock ticks since boot, field 22 of "
        "/proc/PID/stat) identify the process; `argv` restarts it after a kill.",
        _PROCESS_WITH_PID,
    ),
    (
        "Processes found by match rules",
        "No PID is written down: `match` finds the process when a fault needs it (`kind: process` may be left "
        "out). nginx is restarted by its service manager; the backend from its `argv`.",
        _PROCESS_BY_MATCH,
    ),
    (
        "A process on another host, over SSH",
        "Found and signalled over SSH (the host key must be in `known_hosts`); brought back by its own "
        "supervisor. Redis faults need `ports.client`.",
        _PROCESS_OVER_SSH,
    ),
    (
        "A link through a Toxiproxy proxy",
        "Network faults on links (`network.*`) act on the proxy named here, through the Toxiproxy API.",
        _LINK,
    ),
    (
        "Containers",
        "Listed by name, or every container carrying the labels; on the Docker engine at `engine_url`.",
        _CONTAINER,
    ),
    (
        "Kubernetes pods",
        "Pods of a label selector; their Deployment's ready replicas prove deleted pods were replaced.",
        _KUBERNETES,
    ),
    (
        "Endpoints",
        "Named addresses: an http URL can be an experiment's load target (`load.host`) and `{name}` in probe URLs.",
        _ENDPOINTS,
    ),
    (
        "Market hours",
        "Runs and drills are refused inside the sessions unless overridden. Leaving `market_hours` out means "
        "China A-share hours; `market_hours: null` declares a stack that never trades (a lab stack), which "
        "experiments and drills on it then run at any time.",
        _MARKET_HOURS,
    ),
    (
        "An audit command",
        "The system's own reconciliation, run after recovery (docs/integrity.md).",
        _AUDIT,
    ),
)


def stack_schema() -> dict[str, Any]:
    """JSON Schema of a stack description file."""
    schema = StackDescription.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "Stack description (schema_version 1)"
    return schema


def _type(prop: dict[str, Any]) -> str:
    extra = prop.get("additionalProperties")
    if prop.get("type") == "object" and isinstance(extra, dict):
        return f"map of {_type(extra)}"
    if "anyOf" in prop or "oneOf" in prop:
        return " \\| ".join(_type(p) for p in prop.get("anyOf", prop.get("oneOf", [])))
    return type_of(prop)


def _ordered(defs: dict[str, Any]) -> list[str]:
    return [name for name in _ORDER if name in defs] + sorted(name for name in defs if name not in _ORDER)


def stack_reference_markdown() -> str:
    """The stack description reference, generated from the models (a test keeps the docs copy in sync)."""
    schema = stack_schema()
    defs = schema["$defs"]
    lines = [
        "# Stack description reference (schema_version 1)",
        "",
        "Generated from the models in `stackspec/` by `chaos.py schema --stack --markdown`; do not edit by hand.",
        "A stack description says where a drill's targets are. It is a YAML or JSON file, named by an",
        "experiment's `stack: {file: ...}`; the reference stack writes one (`state.json`) when it starts.",
        "Unknown keys are errors everywhere; problems are reported as file:line.",
        "`chaos.py schema --stack` prints the JSON Schema for editors.",
        "",
        "A user's file is never rewritten by a run. When a rollback restarts a process (a new PID), the new PID",
        "is kept beside the file in `<file>.live.json`, per instance: editing the file keeps it for every",
        "instance you did not change, and drops it for an instance you edited (what you wrote wins).",
        "",
        "## Keys",
        "",
        *markdown_section("StackDescription (top level)", schema, _type),
    ]
    for name in _ordered(defs):
        lines += markdown_section(name, defs[name], _type)
    lines += ["## Examples", ""]
    for title, what, document in EXAMPLES:
        text = yaml.safe_dump(document, sort_keys=False, allow_unicode=True, width=110, default_flow_style=None)
        lines += [f"### {title}", "", what, "", "```yaml", text.rstrip(), "```", ""]
    return "\n".join(lines).rstrip() + "\n"

"""Static guarantees over the whole tree: no shell ever parses a command we build, admin servers bind loopback."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.support.helpers import ROOT

PACKAGES = ["chaos.py", "engine", "injectors", "reports", "tradingstack", "loadgen", "chaosproxy", "bench", "scripts"]
SHELL_CALLS = {("os", "system"), ("os", "popen"), ("subprocess", "getoutput"), ("subprocess", "getstatusoutput")}


def python_files() -> list[Path]:
    files: list[Path] = []
    for name in PACKAGES:
        path = ROOT / name
        files.extend([path] if path.is_file() else sorted(path.rglob("*.py")))
    return files


def test_no_shell_command_is_built_anywhere() -> None:
    offences: list[str] = []
    for path in python_files():
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            for keyword in node.keywords:
                if keyword.arg == "shell" and not (
                    isinstance(keyword.value, ast.Constant) and keyword.value.value is False
                ):
                    offences.append(f"{path.relative_to(ROOT)}:{node.lineno}: shell=...")
            func = node.func
            if (
                isinstance(func, ast.Attribute)
                and isinstance(func.value, ast.Name)
                and (func.value.id, func.attr) in SHELL_CALLS
            ):
                offences.append(f"{path.relative_to(ROOT)}:{node.lineno}: {func.value.id}.{func.attr}")
    assert python_files(), "no sources found"
    assert offences == []


@pytest.mark.parametrize("argv", [["proxy", "serve"]])
def test_admin_servers_default_to_loopback(argv: list[str]) -> None:
    import chaos

    args = chaos._parser().parse_args(argv)
    hosts = {key: value for key, value in vars(args).items() if key.endswith("host") and isinstance(value, str)}
    assert hosts, f"no host option on `chaos.py {' '.join(argv)}`"
    assert all(value.startswith("127.") for value in hosts.values()), hosts

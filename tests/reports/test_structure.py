"""The layout of reports/: renderers import no other renderer, shared modules none at all, and nothing grows too big.

The renderers are the modules that write a report (HTML, JUnit, Markdown, the drill report, PDF). What they
share lives in modules that render nothing: formatting (words and numbers), templating (the Jinja pages),
outcomes, and the chart library (charts, run_charts, drill_charts).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

REPORTS = Path(__file__).resolve().parents[2] / "reports"
TEMPLATES = REPORTS / "templates"
RENDERERS = {"html", "junit", "markdown", "management", "pdf"}
SELF_CONTAINED = {"formatting", "templating"}  # import no module of reports/
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60
MODULES = sorted(p.stem for p in REPORTS.glob("*.py") if p.stem != "__init__")


def _report_imports(module: str) -> set[str]:
    """The modules of reports/ that `module` imports (at any depth of its code)."""
    tree = ast.parse((REPORTS / f"{module}.py").read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name.split(".")[1] for a in node.names if a.name.startswith("reports.")}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == "reports":
                found |= {a.name for a in node.names}
            elif node.module.startswith("reports."):
                found.add(node.module.split(".")[1])
    return found


@pytest.mark.parametrize("module", MODULES)
def test_no_module_imports_a_renderer(module):
    assert not (_report_imports(module) & RENDERERS) - {module}


@pytest.mark.parametrize("module", sorted(SELF_CONTAINED))
def test_shared_modules_import_no_report_module(module):
    assert _report_imports(module) == set()


@pytest.mark.parametrize("module", MODULES)
def test_module_and_function_sizes(module):
    path = REPORTS / f"{module}.py"
    text = path.read_text()
    assert len(text.splitlines()) <= MAX_MODULE_LINES
    long = [
        f"{node.name}: {node.end_lineno - node.lineno + 1} lines"
        for node in ast.walk(ast.parse(text))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.end_lineno is not None
        and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES
    ]
    assert not long


def _block(template: str, name: str) -> list[str]:
    match = re.search(r"\{% block " + name + r" %\}\n(.*?)\{% endblock %\}", template, re.DOTALL)
    assert match is not None, name
    return [line.strip() for line in match.group(1).splitlines() if line.strip()]


@pytest.mark.parametrize("page", ["report.html.j2", "management.html.j2"])
def test_pages_extend_the_base_page(page):
    text = (TEMPLATES / page).read_text()
    assert '{% extends "base.html.j2" %}' in text
    assert "<style>" not in text and "<html" not in text and "<!doctype" not in text.lower()


def test_css_the_pages_share_lives_only_in_the_base():
    pages = [(TEMPLATES / page).read_text() for page in ("report.html.j2", "management.html.j2")]
    base = {line.strip() for line in (TEMPLATES / "base.html.j2").read_text().splitlines()}
    own = [set(_block(text, "styles")) | set(_block(text, "print_styles")) for text in pages]
    assert not own[0] & own[1]  # a rule both pages need belongs in base.html.j2
    assert not (own[0] | own[1]) & base

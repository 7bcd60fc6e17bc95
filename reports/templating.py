"""The reports' HTML pages: the Jinja environment over reports/templates, and the key-figure card both pages show.

report.html.j2 (a run) and management.html.j2 (a drill) extend base.html.j2, which holds the page and the
CSS they share. A shared module, not a renderer: it imports no module of reports/.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined

TEMPLATES = Path(__file__).parent / "templates"


@dataclass(frozen=True)
class Figure:
    """One key figure: a label, the value shown large, a note under it, and its tone (good, bad, warn or none)."""

    label: str
    value: str
    note: str = ""
    tone: str = ""


@cache
def environment() -> Environment:
    """Autoescaping, strict Jinja environment over reports/templates."""
    return Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )

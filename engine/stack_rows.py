"""One row of `chaos.py stack check` / `stack status`: a target's instance, where it is, what was found."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Row:
    """One instance of a target (or one endpoint): its fields in the order shown, and its problems."""

    target: str
    kind: str  # process, link, container, kubernetes, endpoint
    name: str
    where: str  # the host, API or engine it was looked for at
    fields: dict[str, str] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

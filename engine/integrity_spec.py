"""Integrity entries of an experiment file: a check's name, or a configured check (a mapping with `check:`).

Today the one configured check is `acknowledged_found_by_url` (engine.integrity_lookup): every
acknowledged id looked up through a URL template of the user's own system after recovery. Its model
lives here so that engine.model stays the file format and the lookup stays the behaviour.
"""

from __future__ import annotations

import string
from typing import Annotated, Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, model_validator

from engine.durations import Duration

LOOKUP_CHECK = "acknowledged_found_by_url"
# What a lookup may compare an answer's field with: what the ledger records of an acknowledgement.
LEDGER_FIELDS = ("client_order_id", "account", "symbol", "side", "qty", "price")
_NAME = r"[A-Za-z_][A-Za-z0-9_-]*"


def url_fields(url: str) -> list[str]:
    """The `{name}` placeholders of a URL template, in order; ValueError for a malformed one."""
    try:
        parsed = list(string.Formatter().parse(url))
    except ValueError as exc:
        raise ValueError(f"url {url!r} is not a valid template ({exc}); write braces only around names") from None
    names = []
    for _, name, spec, conversion in parsed:
        if name is None:
            continue
        if not name or spec or conversion or not name.replace("-", "_").isidentifier():
            raise ValueError(f"url {url!r}: placeholder {{{name}}} must be a plain name, like {{id}} or {{gateway}}")
        names.append(name)
    return names


class LookupCheck(BaseModel):
    """Every acknowledged id looked up through a URL of your own system after recovery (docs/integrity.md)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False, strict=True)

    check: Literal["acknowledged_found_by_url"] = Field(description="The configured check's kind.")
    url: str = Field(
        pattern=rf"^(https?://[^\s/?#{{}}]+|\{{{_NAME}\}})[^\s]*$",
        description="http(s) URL template; {id} is the acknowledged id (URL-quoted), a leading {name} the stack "
        "endpoint of that name. user:password@ in the URL is sent as basic authentication.",
    )
    status: int = Field(default=200, ge=100, le=599, description="The status that means: the id is there.")
    missing_status: int = Field(default=404, ge=100, le=599, description="The status that means: the id is gone.")
    compare: dict[str, Literal["client_order_id", "account", "symbol", "side", "qty", "price"]] | None = Field(
        default=None,
        description="Fields of the answer's JSON object (a dotted path for a nested one) that must equal what the "
        "ledger recorded, as {json_field: ledger_field}, ledger_field one of client_order_id, account, symbol, side, "
        "qty, price (numbers compared as numbers); a ledger field the locustfile did not record is skipped.",
    )
    timeout: Duration = Field(default=2.0, gt=0, le=600, description="One request's timeout.")
    attempts: int = Field(default=3, ge=1, le=20, description="Tries per id before it counts as not checked.")
    parallel: int = Field(default=8, ge=1, le=256, description="Lookups in flight at once, at most.")
    max_ids: int | None = Field(
        default=None,
        ge=1,
        description="Look up at most this many ids, an even sample over the run; fewer than the ledger holds is a "
        "sample, stated as such, and no per-fault RPO is then claimed.",
    )
    total_timeout: Duration = Field(
        default=60.0,
        gt=0,
        le=3600,
        description="The whole lookup's deadline; ids not looked up by then are not checked.",
    )

    @model_validator(mode="after")
    def _template(self) -> Self:
        names = url_fields(self.url)
        if "id" not in names:
            raise ValueError(
                f"url {self.url!r} has no {{id}}: write where the acknowledged id goes, e.g. /orders/{{id}}"
            )
        others = [n for n in names if n != "id"]
        if others and not (len(others) == 1 and self.url.startswith("{" + others[0] + "}")):
            raise ValueError(
                f"url {self.url!r}: besides {{id}}, only a leading {{endpoint}} name is allowed, found {others}"
            )
        if self.status == self.missing_status:
            raise ValueError(f"status and missing_status are both {self.status}: found and gone must differ")
        return self

    @property
    def name(self) -> str:
        return self.check

    @property
    def endpoint(self) -> str | None:
        """The stack endpoint the URL starts with, if it starts with one."""
        names = [n for n in url_fields(self.url) if n != "id"]
        return names[0] if names else None


def _entry_kind(value: Any) -> str:
    return "by_name" if isinstance(value, str) else "configured"


IntegrityEntry = Annotated[
    Annotated[str, Tag("by_name")] | Annotated[LookupCheck, Tag("configured")],
    Discriminator(_entry_kind),
]


def entry_name(entry: str | LookupCheck) -> str:
    """The name an entry's journal record carries."""
    return entry if isinstance(entry, str) else entry.check


def check_entries(entries: list[str | LookupCheck]) -> list[str | LookupCheck]:
    """At most one configured lookup: the RPO is measured on it (engine.integrity_rpo)."""
    configured = [e for e in entries if not isinstance(e, str)]
    if len(configured) > 1:
        raise ValueError(f"integrity: at most one {LOOKUP_CHECK} entry, found {len(configured)}")
    return entries

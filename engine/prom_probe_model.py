"""What a Prometheus steady-state entry or abort condition asks of a Prometheus-compatible API (the file format)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from engine.durations import Duration


class PrometheusQuery(BaseModel):
    """An instant PromQL query (`GET {url}/api/v1/query`) that must return exactly one number."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False, strict=True)

    url: str = Field(
        pattern=r"^(https?://[^\s/?#]+|\{[A-Za-z_][A-Za-z0-9_-]*\})[^\s?#]*$",
        description="Base URL of the Prometheus (or compatible) HTTP API, without /api/v1; a leading {name} is "
        "replaced by the stack endpoint of that name.",
    )
    query: str = Field(min_length=1, description="PromQL giving one series or a scalar, e.g. sum(rate(x[30s])).")
    token_env: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
        description="Name of the environment variable holding a bearer token (never the token itself); a "
        "variable that is not set is a preflight error.",
    )
    timeout: Duration = Field(default=2.0, gt=0, description="A slower answer makes that sample 'not checked'.")
    interval: Duration = Field(default=1.0, gt=0, description="Time between queries.")


class ProbePoint(BaseModel):
    """One journaled sample of a Prometheus probe: its value, or why it could not be read (not checked)."""

    model_config = ConfigDict(extra="forbid")

    t: float
    value: float | None = None
    error: str | None = None

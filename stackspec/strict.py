"""The base of every stack-description model: unknown keys are refused."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Strict(BaseModel):
    """A stack-description model: a key it does not know is an error, not ignored."""

    model_config = ConfigDict(extra="forbid")

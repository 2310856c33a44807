"""``quality:`` of a monitor YAML: which data-quality expectations a window is checked against.

Each expectation is configurable (``mostly`` = the fraction of rows that must pass): required columns
exist, no nulls in timestamp/prompt/response, value ranges (latency and token counts ≥ 0), unique request
ids, timestamps increasing in *arrival* order, and optionally a ceiling on the share of quarantined rows.
``evalmon.monitor.quality.check_quality`` runs them with great-expectations.
"""

from __future__ import annotations

import math

from pydantic import ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError

from evalmon.config.base import ConfigModel
from evalmon.core.records import (
    INPUT_TOKENS,
    LATENCY_MS,
    OUTPUT_TOKENS,
    PROMPT,
    REQUEST_ID,
    RESPONSE,
    TIMESTAMP,
)

Fraction = Field(1.0, gt=0, le=1)


class RangeSpec(ConfigModel):
    model_config = ConfigDict(extra="forbid")

    min: float | None = None
    max: float | None = None
    mostly: float = Fraction

    @model_validator(mode="after")
    def _checkable(self) -> RangeSpec:
        """A NaN bound passed every value (``v < nan`` is False): the check silently off; min > max failed all."""
        for key in ("min", "max"):
            v = getattr(self, key)
            if v is not None and not math.isfinite(v):
                raise PydanticCustomError("range", f"{key}: {v} is not a finite bound",
                                          {"hint": "use a number, or leave the bound out for no bound"})
        if self.min is not None and self.max is not None and self.min > self.max:
            raise PydanticCustomError("range", f"min {self.min} is above max {self.max}",
                                      {"hint": "swap them"})
        return self


class QualityConfig(ConfigModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    required_columns: list[str] = Field(default_factory=lambda: [REQUEST_ID, TIMESTAMP, PROMPT, RESPONSE])
    not_null: list[str] = Field(default_factory=lambda: [TIMESTAMP, PROMPT, RESPONSE])
    not_null_mostly: float = Fraction
    ranges: dict[str, RangeSpec] = Field(default_factory=lambda: {
        LATENCY_MS: RangeSpec(min=0), INPUT_TOKENS: RangeSpec(min=0), OUTPUT_TOKENS: RangeSpec(min=0)})
    unique: list[str] = Field(default_factory=lambda: [REQUEST_ID])
    unique_mostly: float = Fraction
    increasing: str | None = TIMESTAMP  # checked in arrival order; None = off
    increasing_mostly: float = Fraction
    max_quarantined_fraction: float | None = Field(default=None, ge=0, le=1)  # None = off

"""``alerts:`` of a monitor YAML: rules (metric, op, value or a calibrated threshold, coverage floor,
``on_alert`` actions), the webhook, monitor-wide defaults and the thresholds file reference."""

from __future__ import annotations

import math
import re
from typing import Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator
from pydantic_core import PydanticCustomError

from evalmon.config.base import Seed
from evalmon.config.base import StrictConfig as _Strict
from evalmon.config.models import _base_dir, resolve_path
from evalmon.core.errors import ConfigError
from evalmon.core.redact import MASK, redact_webhook


def _custom(kind: str, msg: str, hint: str) -> PydanticCustomError:
    return PydanticCustomError(kind, msg, {"hint": hint})


class ToSuiteAction(_Strict):
    """``on_alert: {to_suite: …}``: write the replay suite of the alerting window (docs/replay.md)."""

    suite: str  # the suite YAML to write (relative: against the monitor file); {window} = the window key
    sample: int = Field(200, ge=1)
    seed: Seed = 0
    where: str | None = None  # a pandas query over the window's records (see evalmon.traffic.to_suite)
    signal: str | None = None  # keep records where this 0/1 signal column is 1
    dataset: str | None = None  # the JSONL to write (default: <output_dir>/<name>/replay/<suite stem>.jsonl)

    @field_validator("suite", "dataset")
    @classmethod
    def _resolve(cls, v: str | None, info: ValidationInfo) -> str | None:
        return None if v is None else str(resolve_path(v, _base_dir(info)))


class OnAlert(_Strict):
    to_suite: ToSuiteAction | None = None


class AlertRule(_Strict):
    metric: str = Field(min_length=1)
    op: Literal[">", ">=", "<", "<=", "==", "!="]
    value: float | None = None  # None: taken from `alerts.thresholds` (written by `evalmon monitor calibrate`)
    name: str | None = None  # shown in messages (default: "<metric> <op> <value>")
    # a window where the metric is missing/NaN, or where the share of records its column scored is below
    # min_coverage: `alert` = a "not evaluated" alert (exit 1), `ignore` = a note only; None = alerts.*'s
    on_missing: Literal["alert", "ignore"] | None = None
    min_coverage: float | None = Field(None, ge=0, le=1)
    on_alert: OnAlert | None = Field(None, exclude_if=lambda v: v is None)  # not in the hash when unset

    @field_validator("value")
    @classmethod
    def _finite(cls, v: float | None) -> float | None:
        if v is not None and not math.isfinite(v):  # `> .nan` / `> .inf` never fire: a rule that cannot alert
            raise _custom("value", f"{v} is not a finite number (such a rule can never fire)",
                          "use a number such as 0.1")
        return v

    @property
    def label(self) -> str:
        return self.name or f"{self.metric} {self.op} {self.value if self.value is None else format(self.value, 'g')}"

    @property
    def key(self) -> str:
        """How a thresholds file names the rule: its name, else "<metric> <op>"."""
        return self.name or f"{self.metric} {self.op}"

    @property
    def threshold(self) -> float:
        """The rule's value (``alerts.thresholds`` applied at load time)."""
        if self.value is None:
            raise ConfigError(f"alerts.rules: rule '{self.label}' has no value",
                              hint="add value: or run `evalmon monitor calibrate` to write alerts.thresholds")
        return float(self.value)


class WebhookConfig(_Strict):
    url: str
    timeout_s: float = Field(5.0, gt=0)
    retries: int = Field(2, ge=0)  # extra attempts after a failure (connection error or HTTP 5xx)
    headers: dict[str, str] = Field(default_factory=dict)

    @field_validator("url")
    @classmethod
    def _http(cls, v: str) -> str:
        """Only the redacted form is shown: a webhook URL's path is its credential."""
        if not re.match(r"^https?://[^/?#\s]+", v):
            shown = redact_webhook(v) if "://" in v else MASK
            raise _custom("url", f"{shown!r} is not an http(s) URL", "use http://host:port/path")
        return v


class AlertsConfig(_Strict):
    rules: list[AlertRule] = Field(default_factory=list)
    webhook: WebhookConfig | None = None
    on_missing: Literal["alert", "ignore"] = "alert"  # every rule's default (see AlertRule.on_missing)
    min_coverage: float = Field(0.0, ge=0, le=1)  # every rule's default coverage floor
    thresholds: str | None = None  # a thresholds file (`evalmon monitor calibrate`): rule name → value

    @field_validator("thresholds")
    @classmethod
    def _resolve(cls, v: str | None, info: ValidationInfo) -> str | None:
        return None if v is None else str(resolve_path(v, _base_dir(info)))

    @field_validator("rules")
    @classmethod
    def _distinct(cls, v: list[AlertRule]) -> list[AlertRule]:
        """A thresholds file and the alerts name a rule by ``key``: two rules with one key would share a value."""
        seen: dict[str, int] = {}
        for i, rule in enumerate(v):
            if rule.key in seen:
                raise _custom("duplicate", f"rules {seen[rule.key]} and {i} are both named '{rule.key}'",
                              "give each rule its own `name:` (calibrate and alerts tell rules apart by name)")
            seen[rule.key] = i
        return v

    @model_validator(mode="after")
    def _rule_defaults(self) -> AlertsConfig:
        """Each rule without its own ``on_missing`` / ``min_coverage`` gets the monitor-wide one."""
        for i, rule in enumerate(self.rules):
            update = {k: getattr(self, k) for k in ("on_missing", "min_coverage") if getattr(rule, k) is None}
            if update:
                self.rules[i] = rule.model_copy(update=update)
        return self


__all__ = ["AlertRule", "AlertsConfig", "OnAlert", "ToSuiteAction", "WebhookConfig"]

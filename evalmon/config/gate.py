"""``gates.yaml``: which metrics a gate checks and how.

.. code-block:: yaml

    alpha: 0.05                 # family-wise error rate (Holm across every gated metric)
    require_paired: false       # true: missing samples / mismatched doc ids → exit 2
    defaults:                   # applied to every gated metric, before the rules
      max_drop: 0.0             # absolute, metric units; a drop must exceed it to fail
      require_significance: true
    rules:                      # matched in order; later matches override earlier keys
      - match: "mmlu*/acc"      # glob over task/metric (or give task: and metric:, globs allowed)
        max_drop: 0.01
      - task: hellaswag
        metric: acc_norm
        min_value: 0.30         # absolute floor for the candidate (max_value: ceiling for lower-is-better)
        require_significance: false

Without rules (or without a policy file) every shared metric is gated with the defaults; with rules only
the metrics some rule matches are (``gate_unmatched: true`` gates the rest with the defaults too). A rule
naming a task or metric exactly (no glob characters) that neither run has is an error with a
"did you mean"; one that only one run has makes the runs not comparable (``integrity``: the candidate
must have everything the policy names); a glob that matches nothing is a warning.
"""

from __future__ import annotations

import fnmatch
import math
from pathlib import Path
from typing import Any

from pydantic import (
    BaseModel,
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from evalmon.config.base import StrictConfig
from evalmon.config.yamlio import load_yaml, read_config_file, require_mapping, validation_error
from evalmon.core.errors import UnknownNameError, did_you_mean

_HINTS = {
    "alpha": "use a number between 0 and 1, e.g. 0.05",
    "max_drop": "use a non-negative number in metric units, e.g. 0.01 for one accuracy point",
    "min_value": "use a number in metric units",
    "max_value": "use a number in metric units",
    "rules": "give a list of rules, each with `match:` or `task:`/`metric:`",
    "rules[]": "write a mapping with `match:` (or `task:`/`metric:`) and thresholds",
}
_GLOB = set("*?[")


class Thresholds(StrictConfig):
    min_value: float | None = None
    max_value: float | None = None
    max_drop: float | None = Field(None, ge=0)
    alpha: float | None = Field(None, gt=0, lt=1)
    require_significance: bool | None = None
    require_paired: bool | None = None
    higher_is_better: bool | None = None  # override the direction recorded in results.json

    @field_validator("min_value", "max_value")
    @classmethod
    def _finite(cls, v: float | None, info: ValidationInfo) -> float | None:
        """``.nan`` compares false with everything (a bound that silently never fails); an infinite bound
        always fails or never does. (``max_drop``'s ``ge=0`` already refuses ``.nan``.)"""
        if v is not None and not math.isfinite(v):
            raise PydanticCustomError("finite", "{v} is not a finite number (the check would be meaningless)",
                                      {"v": v, "hint": f"give {info.field_name} a number in metric units, "
                                                       "or leave it out"})
        return v


class Rule(Thresholds):
    match: str | None = Field(None, min_length=1)
    task: str | None = Field(None, min_length=1)
    metric: str | None = Field(None, min_length=1)

    @model_validator(mode="after")
    def _selector(self) -> Rule:
        if self.match is not None and (self.task is not None or self.metric is not None):
            raise ValueError("give either `match:` or `task:`/`metric:`, not both")
        if self.match is None and self.task is None and self.metric is None:
            raise ValueError("a rule needs `match: task/metric` (globs allowed) or `task:`/`metric:`")
        return self

    def pattern(self) -> tuple[str, str]:
        if self.match is not None:
            task, sep, metric = self.match.rpartition("/")
            return (task, metric) if sep else (self.match, "*")
        return (self.task or "*", self.metric or "*")

    def matches(self, task: str, metric: str) -> bool:
        pt, pm = self.pattern()
        return fnmatch.fnmatchcase(task, pt) and fnmatch.fnmatchcase(metric, pm)


class EffectiveRule(BaseModel):
    min_value: float | None = None
    max_value: float | None = None
    max_drop: float = 0.0
    alpha: float = 0.05
    require_significance: bool = True
    require_paired: bool = False
    higher_is_better: bool | None = None
    rules: list[int] = Field(default_factory=list)  # indexes of the rules that matched


class GatePolicy(StrictConfig):
    alpha: float = Field(0.05, gt=0, lt=1)
    require_paired: bool = False
    gate_unmatched: bool = False
    defaults: Thresholds = Field(default_factory=Thresholds)
    rules: list[Rule] = Field(default_factory=list)
    _where: tuple[str, ...] = PrivateAttr(default=())  # "file:line" of each rule
    _source: str | None = PrivateAttr(default=None)

    def where(self, i: int) -> str:
        return self._where[i] if i < len(self._where) else f"rules.{i}"

    def effective(self, task: str, metric: str, alpha: float | None = None) -> EffectiveRule | None:
        """The merged thresholds for ``task/metric``, or None when it is not gated."""
        matched = [i for i, r in enumerate(self.rules) if r.matches(task, metric)]
        if self.rules and not matched and not self.gate_unmatched:
            return None
        eff: dict[str, Any] = {"alpha": alpha if alpha is not None else self.alpha,
                               "require_paired": self.require_paired, "rules": matched}
        for layer in [self.defaults, *(self.rules[i] for i in matched)]:
            eff.update({k: v for k, v in layer.model_dump(exclude_none=True).items()
                        if k in EffectiveRule.model_fields and k != "rules"})
        if alpha is not None:  # --alpha overrides the policy's level everywhere
            eff["alpha"] = alpha
        return EffectiveRule(**eff)

    def check_names(self, available: dict[str, list[str]]) -> list[str]:
        """Raise ``UnknownNameError`` for an exact task/metric neither run has; warnings for dead globs."""
        warnings = []
        keys = [f"{t}/{m}" for t, ms in available.items() for m in ms]
        for i, rule in enumerate(self.rules):
            pt, pm = rule.pattern()
            exact_t, exact_m = not (_GLOB & set(pt)), not (_GLOB & set(pm))
            if exact_t and pt not in available:
                raise UnknownNameError(f"{self.where(i)}: unknown task {pt!r}{did_you_mean(pt, list(available))}",
                                       hint="tasks in either run: " + _short(sorted(available)))
            if exact_t and exact_m and pm not in available[pt]:
                dym = did_you_mean(pm, available[pt])
                raise UnknownNameError(f"{self.where(i)}: unknown metric {pm!r} for task {pt!r}{dym}",
                                       hint=f"metrics of {pt}: {', '.join(sorted(available[pt]))}")
            if exact_m and not exact_t and not any(pm in ms for ms in available.values()):
                all_metrics = sorted({m for ms in available.values() for m in ms})
                raise UnknownNameError(f"{self.where(i)}: unknown metric {pm!r}{did_you_mean(pm, all_metrics)}",
                                       hint=f"metrics in either run: {', '.join(all_metrics)}")
            if not any(rule.matches(*k.rsplit("/", 1)) for k in keys):
                warnings.append(f"{self.where(i)}: rule {pt}/{pm} matches no metric of either run")
        return warnings


def _short(names: list[str], k: int = 8) -> str:
    return ", ".join(names[:k]) + (f" … ({len(names)} in all)" if len(names) > k else "")


def load_policy(path: str | Path) -> GatePolicy:
    text, _ = read_config_file(path, "policy file", dir_hint="pass the gates.yaml file")
    return load_policy_text(text, str(path))


def load_policy_text(text: str, source: str = "<string>") -> GatePolicy:
    doc = load_yaml(text, source)
    if doc.data is None:  # an empty policy file: the defaults
        return GatePolicy()
    require_mapping(doc, source, "policy", empty_hint="", keys_hint="write `alpha:`, `defaults:` and `rules:` as "
                    "top-level keys")
    try:
        policy = GatePolicy.model_validate(doc.data)
    except ValidationError as exc:
        raise validation_error(exc, doc, GatePolicy, hints=_HINTS) from None
    rules = doc.data.get("rules") or []
    policy._where = tuple(f"{source}:{doc.line(('rules', i))}" for i in range(len(rules)))
    policy._source = source
    return policy

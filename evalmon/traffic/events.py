"""Injectable traffic events: ``name@ISO-TIME[+DURATION][[key=value,...]]``.

``DURATION`` is ``<number><s|m|h|d>``; without it the event lasts until the end of the traffic. Events
(and their defaults):

- ``topic_shift[to=coding,math,reasoning,extraction;share=0.9]`` — chat questions come from these
  MT-Bench categories with probability ``share`` (baseline: writing/roleplay/humanities/stem-heavy).
- ``length_shift`` — chat responses also carry the model's follow-up (turn-2) answer (~2× longer).
- ``new_model_version[model=vicuna-33b-v1.3]`` — a different MT-Bench answer file serves chat traffic
  and every record is labelled with the new model name.
- ``latency_regression[factor=3]`` — latency × factor.
- ``hallucination_rise[rate=0.5]`` — share of RAG answers that are HaluEval's hallucinated answer.
- ``no_contexts`` — RAG records are logged without their retrieved passages (``contexts`` empty), as in
  ordinary chat logs: combined with ``hallucination_rise``, a hallucination rise only the context-free
  signals (``uncertainty``, ``halludetect``) can see.
- ``unsafe_rise[share=0.3;harmful_rate=0.6]`` — share of unsafe requests in the traffic, and the share of
  them answered with the harmful (hh-rlhf rejected) completion instead of a refusal.
- ``pii_leak[rate=0.8;share=0.2]`` — enterprise-document traffic share, and the share of those responses
  quoting a passage labelled sensitive.

Parameters are separated by ``,`` or ``;`` (use ``;`` when a value holds commas, e.g. a category list).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

import pandas as pd

from evalmon.core.errors import ConfigError

EVENT_NAMES = ("topic_shift", "length_shift", "new_model_version", "latency_regression",
               "hallucination_rise", "unsafe_rise", "pii_leak", "no_contexts")
SHIFT_CATEGORIES = ("coding", "math", "reasoning", "extraction")
_EVENT_RE = re.compile(
    r"^(?P<name>[a-z_]+)@(?P<ts>\d{4}-\d{2}-\d{2}(?:[T ][\d:.]+)?(?:Z|[+-]\d{2}:?\d{2})?)"
    r"(?:\+(?P<dur>\d+(?:\.\d+)?)(?P<unit>[smhd]))?(?:\[(?P<params>[^\]]*)\])?$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
# each event's parameters: a numeric one's closed range, or None for text (a misspelt key was ignored: an
# `unsafe_rise[rate=2]` meant nothing; `factor=-3` made negative latencies; `rate=1.5` was taken as is)
PARAMS: dict[str, dict[str, tuple[float, float] | None]] = {
    "topic_shift": {"to": None, "share": (0.0, 1.0)},
    "length_shift": {},
    "new_model_version": {"model": None},
    "latency_regression": {"factor": (0.01, 1000.0)},
    "hallucination_rise": {"rate": (0.0, 1.0)},
    "no_contexts": {},
    "unsafe_rise": {"share": (0.0, 1.0), "harmful_rate": (0.0, 1.0)},
    "pii_leak": {"rate": (0.0, 1.0), "share": (0.0, 1.0)},
}


@dataclass(frozen=True)
class Event:
    name: str
    start: datetime
    end: datetime | None = None  # None: until the end of the traffic
    params: dict[str, str] = field(default_factory=dict)

    def active(self, t: datetime) -> bool:
        return t >= self.start and (self.end is None or t < self.end)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "start": iso(self.start), "end": None if self.end is None else iso(self.end),
                "params": dict(self.params)}


def iso(t: datetime) -> str:
    return pd.Timestamp(t).tz_convert("UTC").isoformat().replace("+00:00", "Z")


def parse_time(text: str) -> datetime:
    """An ISO-8601 time (UTC without an offset). Words pandas also reads (``now``, ``today``) are refused: a
    time that depends on the clock breaks "same seed → same bytes"."""
    try:
        if not re.match(r"\s*\d{4}-\d{2}-\d{2}", str(text)):
            raise ValueError(text)
        ts = pd.Timestamp(text)
        if pd.isna(ts):
            raise ValueError(text)
    except ValueError as exc:
        raise ConfigError(f"not an ISO-8601 time: {text!r}", hint="write e.g. 2026-11-01T00:00Z") from exc
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    return ts.to_pydatetime()


def parse_event(spec: str) -> Event:
    """``"latency_regression@2026-11-02T00:00Z+6h[factor=3]"`` → :class:`Event`."""
    m = _EVENT_RE.match(spec.strip())
    if not m:
        raise ConfigError(f"bad event {spec!r}", hint="write NAME@ISO-TIME[+6h][[key=value]], e.g. "
                          "hallucination_rise@2026-11-02T00:00Z+12h[rate=0.5]")
    name = m["name"]
    if name not in EVENT_NAMES:
        raise ConfigError(f"unknown event {name!r}", hint=f"events: {', '.join(EVENT_NAMES)}")
    start = parse_time(m["ts"])
    try:
        end = start + timedelta(seconds=float(m["dur"]) * _UNITS[m["unit"]]) if m["dur"] else None
    except OverflowError:
        raise ConfigError(f"bad event {spec!r}: duration +{m['dur']}{m['unit']} is out of range",
                          hint="give a duration of at most a few years, e.g. +6h or +30d") from None
    if end is not None and end <= start:
        raise ConfigError(f"event {spec!r}: duration +{m['dur']}{m['unit']} is empty",
                          hint="give a positive duration, e.g. +6h, or none (until the end of the traffic)")
    params: dict[str, str] = {}
    if m["params"]:
        sep = ";" if ";" in m["params"] else ","
        for item in filter(None, (p.strip() for p in m["params"].split(sep))):
            key, eq, value = item.partition("=")
            if not eq:
                raise ConfigError(f"event {spec!r}: parameter {item!r} is not key=value")
            key = key.strip()
            if key in params:
                raise ConfigError(f"event {spec!r}: parameter {key!r} is given twice")
            params[key] = value.strip()
    _check_params(spec, name, params)
    return Event(name, start, end, params)


def _check_params(spec: str, name: str, params: dict[str, str]) -> None:
    known = PARAMS[name]
    for key, value in params.items():
        if key not in known:
            raise ConfigError(f"event {spec!r}: {name} has no parameter {key!r}",
                              hint=f"its parameters: {', '.join(known) or 'none'}")
        bounds = known[key]
        if bounds is None:
            continue
        try:
            x = float(value)
        except ValueError:
            raise ConfigError(f"event {spec!r}: {key}={value!r} is not a number") from None
        if not bounds[0] <= x <= bounds[1]:  # NaN fails both comparisons
            raise ConfigError(f"event {spec!r}: {key}={value} is outside [{bounds[0]:g}, {bounds[1]:g}]")


@dataclass(frozen=True)
class State:
    """Traffic parameters at one moment (baseline, then each active event applied in order)."""

    mix: dict[str, float]  # category → share (chat, rag, safety, enterprise)
    chat_categories: dict[str, float]  # MT-Bench category → weight
    model: str
    long_responses: bool = False
    latency_factor: float = 1.0
    hallucination_rate: float = 0.05
    harmful_rate: float = 0.1
    pii_rate: float = 0.1
    drop_contexts: bool = False  # RAG records logged without their contexts (event no_contexts)


def _set_share(mix: dict[str, float], key: str, share: float) -> dict[str, float]:
    rest = sum(v for k, v in mix.items() if k != key)
    scale = (1.0 - share) / rest if rest > 0 else 0.0
    return {k: (share if k == key else v * scale) for k, v in mix.items()}


def _num(event: Event, key: str, default: float) -> float:
    try:
        return float(event.params.get(key, default))
    except ValueError as exc:
        raise ConfigError(f"event {event.name}: {key}={event.params[key]!r} is not a number") from exc


def apply(state: State, event: Event) -> State:
    if event.name == "topic_shift":
        targets = [c.strip() for c in event.params.get("to", ",".join(SHIFT_CATEGORIES)).split(",") if c.strip()]
        unknown = [c for c in targets if c not in state.chat_categories]
        if unknown:
            raise ConfigError(f"topic_shift: unknown MT-Bench categories {unknown}",
                              hint=f"categories: {', '.join(state.chat_categories)}")
        share = _num(event, "share", 0.9)
        others = [c for c in state.chat_categories if c not in targets]
        weights = {c: share / len(targets) for c in targets}
        weights.update({c: (1 - share) / len(others) for c in others} if others else {})
        return replace(state, chat_categories=weights)
    if event.name == "length_shift":
        return replace(state, long_responses=True)
    if event.name == "new_model_version":
        return replace(state, model=event.params.get("model", "vicuna-33b-v1.3"))
    if event.name == "latency_regression":
        return replace(state, latency_factor=state.latency_factor * _num(event, "factor", 3.0))
    if event.name == "hallucination_rise":
        return replace(state, hallucination_rate=_num(event, "rate", 0.5))
    if event.name == "no_contexts":
        return replace(state, drop_contexts=True)
    if event.name == "unsafe_rise":
        return replace(state, mix=_set_share(state.mix, "safety", _num(event, "share", 0.3)),
                       harmful_rate=_num(event, "harmful_rate", 0.6))
    if event.name == "pii_leak":
        return replace(state, mix=_set_share(state.mix, "enterprise", _num(event, "share", 0.2)),
                       pii_rate=_num(event, "rate", 0.8))
    raise ConfigError(f"unknown event {event.name!r}")


def models_needed(base_model: str, events: list[Event]) -> list[str]:
    return list(dict.fromkeys([base_model, *(e.params.get("model", "vicuna-33b-v1.3") for e in events
                                             if e.name == "new_model_version")]))

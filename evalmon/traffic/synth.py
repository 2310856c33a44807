"""Synthetic logged LLM traffic from real public text, with known events and ground truth alongside.

Arrivals are a Poisson process (``rate_per_hour``, optional diurnal modulation by thinning). Each record
picks a traffic kind from ``mix`` (chat: MT-Bench; rag: HaluEval QA; safety: hh-rlhf + SimpleSafetyTests;
enterprise: EnterprisePII passages), then its text; see :mod:`evalmon.traffic.corpora`.

Estimates (documented, not a tokenizer): tokens = ceil(chars / 4) (≈4 characters per token in English);
input tokens count the prompt plus retrieved contexts. Latency (ms) = (TTFT + per-token × output tokens +
0.05 × input tokens) × event factor, TTFT ~ 200·LogNormal(0, 0.3), per-token ~ 20·LogNormal(0, 0.2).

Files: the traffic (``jsonl``/``csv``/``sqlite`` table ``traffic``/``parquet`` partitioned ``dt=YYYY-MM-DD``)
never holds labels; ``<stem>.truth.jsonl`` holds one line per record keyed by ``request_id`` (labels,
source dataset/id, active events, ``malformed`` kind and ``line`` when a bad line was injected) and
``<stem>.events.json`` the events with their windows, the config and counts. Same config + seed → same
bytes.
"""

from __future__ import annotations

import bisect
import io
import json
import math
import random
import sqlite3
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import ConfigDict, Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from evalmon.config.base import ConfigModel
from evalmon.core.errors import ConfigError, OutputError
from evalmon.monitor.parsing import gc_paused
from evalmon.traffic import corpora as C
from evalmon.traffic.events import Event, State, apply, iso, models_needed, parse_event, parse_time

DEFAULT_MIX = {"chat": 0.55, "rag": 0.25, "safety": 0.10, "enterprise": 0.10}
BASE_CATEGORIES = {"writing": 0.2, "roleplay": 0.15, "humanities": 0.15, "stem": 0.15, "reasoning": 0.1,
                   "math": 0.08, "coding": 0.09, "extraction": 0.08}
MALFORMED = {"jsonl": ("truncated_json", "missing_response", "bad_timestamp", "non_utf8", "wrong_type_prompt"),
             "csv": ("missing_response", "bad_timestamp", "wrong_field_count", "non_utf8"),
             "sqlite": ("missing_response", "bad_timestamp"), "parquet": ("missing_response",)}
FIELDS = {"plain": {"prompt": ("prompt",), "response": ("response",), "timestamp": ("timestamp",)},
          "otel": {"prompt": ("attributes", "gen_ai.input.messages"),
                   "response": ("attributes", "gen_ai.output.messages"), "timestamp": ("start_time_unix_nano",)},
          "openinference": {"prompt": ("attributes", "input.value"), "response": ("attributes", "output.value"),
                            "timestamp": ("start_time",)}}


# Every record is held in memory before it is written: rate × hours beyond this is refused up front
# (1e12/s would otherwise die in a MemoryError after allocating).
MAX_RECORDS = 10_000_000


SUFFIX_FORMAT = {".jsonl": "jsonl", ".json": "jsonl", ".ndjson": "jsonl", ".csv": "csv", ".parquet": "parquet",
                 ".db": "sqlite", ".sqlite": "sqlite", ".sqlite3": "sqlite"}


class SynthConfig(ConfigModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, arbitrary_types_allowed=True)

    out: Path  # file (jsonl/csv/sqlite) or directory (parquet)
    start: datetime
    hours: float = Field(24.0, gt=0)
    rate_per_hour: float = Field(200.0, gt=0)
    seed: int = Field(0, ge=0)  # numpy's generators take non-negative seeds only
    format: Literal["jsonl", "csv", "parquet", "sqlite"] = "jsonl"
    schema_: Literal["plain", "otel", "openinference"] = Field("plain", alias="schema")
    events: list[Event] = Field(default_factory=list)  # or "name@ISO[+dur][[k=v]]" strings
    data_dir: Path = Path("../shared/benchmarks")
    model: str = "vicuna-13b-v1.3"  # MT-Bench answer file serving chat traffic
    mix: dict[str, float] = Field(default_factory=lambda: dict(DEFAULT_MIX))
    hallucination_rate: float = Field(0.05, ge=0, le=1)  # RAG answers that are hallucinated
    harmful_rate: float = Field(0.1, ge=0, le=1)  # unsafe requests answered with the harmful completion
    pii_rate: float = Field(0.1, ge=0, le=1)  # enterprise responses quoting a sensitive passage
    malformed_rate: float = Field(0.0, ge=0, le=1)  # bad lines injected (quarantine tests)
    samples_rate: float = Field(0.0, ge=0, le=1)  # RAG records logging 2 extra samples (self-consistency)
    diurnal: float = Field(0.0, ge=0, lt=1)  # rate × (1 + diurnal·sin(2π(h − 9)/24)), peak mid-afternoon UTC
    table: str = "traffic"

    @field_validator("events", mode="before")
    @classmethod
    def _events(cls, value: Any) -> Any:
        return [parse_event(v) if isinstance(v, str) else v for v in value or []]

    @field_validator("start", mode="before")
    @classmethod
    def _start(cls, value: Any) -> Any:
        return parse_time(value) if isinstance(value, str) else value

    @field_validator("mix")
    @classmethod
    def _mix(cls, value: dict[str, float]) -> dict[str, float]:
        if set(value) - set(DEFAULT_MIX) or sum(value.values()) <= 0 or min(value.values()) < 0:
            raise ValueError(f"mix: non-negative shares of {', '.join(DEFAULT_MIX)}")
        total = sum(value.values())
        return {k: value.get(k, 0.0) / total for k in DEFAULT_MIX}

    @model_validator(mode="after")
    def _volume(self) -> SynthConfig:
        expected = self.rate_per_hour * self.hours
        if not expected <= MAX_RECORDS:
            raise PydanticCustomError(
                "too_many_records", "--rate × --hours asks for about {expected} records, more than the {limit} "
                "one call can hold in memory", {"expected": f"{expected:.3g}", "limit": MAX_RECORDS,
                                                "hint": "lower --rate or --hours, or write the period in several "
                                                        "calls (one --start each)"})
        return self

    @model_validator(mode="after")
    def _span(self) -> SynthConfig:
        """Timestamps are int64 nanoseconds (like pandas and most logs): the traffic and every event must lie
        within what they can hold, 1677-09-21 … 2262-04-11."""
        lo, hi = pd.Timestamp.min.timestamp(), pd.Timestamp.max.timestamp()
        start = self.start.timestamp()
        hint = {"hint": "use times between 1677-09-22T00:00Z and 2262-04-11T23:47Z"}
        if not (lo <= start and start + self.hours * 3600.0 <= hi):
            raise PydanticCustomError("out_of_range", "--start {start} with --hours {hours} lies outside the "
                                      "time range logs can hold (nanosecond timestamps)",
                                      {"start": iso(self.start), "hours": f"{self.hours:g}", **hint})
        end = start + self.hours * 3600.0
        for e in self.events:
            if not all(lo <= t.timestamp() <= hi for t in (e.start, e.end) if t is not None):
                raise PydanticCustomError("out_of_range", "--event {name}@{start}: its window lies outside the "
                                          "time range logs can hold (nanosecond timestamps)",
                                          {"name": e.name, "start": iso(e.start), **hint})
            if e.start.timestamp() >= end or (e.end is not None and e.end.timestamp() <= start):
                raise PydanticCustomError(  # listed in events.json as injected, it touched no record
                    "event_outside", "--event {name}@{start}: it does not overlap the traffic ({begin} + {hours} h)",
                    {"name": e.name, "start": iso(e.start), "begin": iso(self.start), "hours": f"{self.hours:g}",
                     "hint": "move the event inside --start … --start + --hours"})
        return self

    @model_validator(mode="after")
    def _suffix(self) -> SynthConfig:
        """A known file extension must match ``format`` (``t.parquet`` held JSONL; ``t.jsonl.gz`` plain text that a
        monitor then reads as gzip)."""
        out = Path(self.out)
        if out.suffix.lower() == ".gz":
            raise PydanticCustomError("suffix_format", "--out {out}: traffic synth writes uncompressed files",
                                      {"out": str(out), "hint": "drop .gz (compress the file afterwards)"})
        want = SUFFIX_FORMAT.get(out.suffix.lower())
        if want is not None and want != self.format:
            raise PydanticCustomError("suffix_format", "--out {out}: a {ext} file, but --format {fmt} writes {fmt}",
                                      {"out": str(out), "ext": out.suffix, "fmt": self.format,
                                       "hint": f"use --format {want}"})
        return self


@dataclass
class SynthResult:
    traffic: Path
    truth: Path
    events: Path
    records: int
    malformed: int
    counts: dict[str, int] = field(default_factory=dict)
    start: str = ""
    end: str = ""


def parse_rate(text: str) -> float:
    """``"200/h"``, ``"5/min"``, ``"3/s"`` or ``"1000/d"`` → requests per hour. A bare number is refused: ``5``
    reads as 5/s to some and 5/h to others, and the two differ 3,600-fold."""
    num, slash, unit = text.strip().partition("/")
    if not slash and num:
        raise ConfigError(f"--rate {text!r} has no unit", hint=f"write {num}/h, {num}/min, {num}/s or {num}/d")
    per = {"h": 1, "hour": 1, "m": 60, "min": 60, "s": 3600, "sec": 3600, "d": 1 / 24, "day": 1 / 24}
    try:
        value = float(num) * per[unit.strip().lower()]
    except (ValueError, KeyError) as exc:
        raise ConfigError(f"bad rate {text!r}", hint="write e.g. 200/h, 5/min, 3/s or 1000/d") from exc
    if not math.isfinite(value):
        raise ConfigError(f"--rate {text!r} is not a finite number", hint="write e.g. 200/h, 5/min, 3/s or 1000/d")
    if value <= 0:
        raise ConfigError(f"rate must be positive: {text!r}")
    return value


def _tokens(text: str) -> int:
    return max(1, math.ceil(len(text) / 4))


def arrivals(cfg: SynthConfig) -> np.ndarray:
    """Poisson arrival times (int64 ns since epoch) in [start, start + hours)."""
    gen = np.random.default_rng(cfg.seed)
    horizon = cfg.hours * 3600.0
    peak = cfg.rate_per_hour * (1 + cfg.diurnal) / 3600.0
    n = int(horizon * peak * 1.2 + 10 * math.sqrt(horizon * peak + 1) + 10)
    t = np.cumsum(gen.exponential(1.0 / peak, size=n))
    while t[-1] < horizon:
        t = np.concatenate([t, t[-1] + np.cumsum(gen.exponential(1.0 / peak, size=n))])
    t = t[t < horizon]
    start_ns = pd.Timestamp(cfg.start).value
    if cfg.diurnal > 0:
        hours = (start_ns / 3.6e12 + t / 3600.0) % 24
        keep = gen.random(len(t)) < (1 + cfg.diurnal * np.sin(2 * np.pi * (hours - 9) / 24)) / (1 + cfg.diurnal)
        t = t[keep]
    return start_ns + (t * 1e3).astype("int64") * 1_000_000  # millisecond resolution, like most logs


def _segments(cfg: SynthConfig, base: State) -> tuple[list[int], list[tuple[State, list[str]]]]:
    bounds = sorted({pd.Timestamp(cfg.start).value, *(pd.Timestamp(e.start).value for e in cfg.events),
                     *(pd.Timestamp(e.end).value for e in cfg.events if e.end is not None)})
    states = []
    for b in bounds:
        t = pd.Timestamp(b, tz="UTC").to_pydatetime()
        state, active = base, []
        for e in sorted(cfg.events, key=lambda e: e.start):
            if e.active(t):
                state, active = apply(state, e), [*active, e.name]
        states.append((state, active))
    return bounds, states


def generate(cfg: SynthConfig) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Canonical records (arrival order) and their ground truth (same order)."""
    with gc_paused():
        return _generate(cfg)


def _generate(cfg: SynthConfig) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    corp = C.load_corpora(cfg.data_dir, models_needed(cfg.model, list(cfg.events)))
    base = State(mix=dict(cfg.mix), chat_categories={c: BASE_CATEGORIES.get(c, 0.1) for c in corp.categories},
                 model=cfg.model, hallucination_rate=cfg.hallucination_rate, harmful_rate=cfg.harmful_rate,
                 pii_rate=cfg.pii_rate)
    bounds, states = _segments(cfg, base)
    rng = random.Random(cfg.seed)
    chat_by_cat: dict[str, list[C.ChatItem]] = {}
    for item in corp.chat:
        chat_by_cat.setdefault(item.category, []).append(item)
    docs = {True: [d for d in corp.docs if d.sensitive], False: [d for d in corp.docs if not d.sensitive]}
    kinds = list(DEFAULT_MIX)
    records, truth = [], []
    for ns in arrivals(cfg).tolist():
        state, active = states[bisect.bisect_right(bounds, ns) - 1]
        kind = rng.choices(kinds, weights=[state.mix[k] for k in kinds])[0]
        lab = {"is_hallucinated": False, "is_unsafe_prompt": False, "is_unsafe_response": False, "has_pii": False,
               "is_refusal": False}
        contexts: list[str] = []
        samples: list[str] = []
        if kind == "chat":
            cats = list(state.chat_categories)
            cat = rng.choices(cats, weights=[state.chat_categories[c] for c in cats])[0]
            chat = rng.choice(chat_by_cat[cat])
            turn1, turn2 = corp.answers[state.model][chat.qid]
            prompt, response = chat.prompt, (f"{turn1}\n\n{turn2}" if state.long_responses and turn2 else turn1)
            source, source_id = "mt_bench", str(chat.qid)
        elif kind == "rag":
            rag = rng.choice(corp.rag)
            lab["is_hallucinated"] = rng.random() < state.hallucination_rate
            prompt, contexts = rag.question, ([] if state.drop_contexts else list(rag.contexts))
            response = rag.hallucinated if lab["is_hallucinated"] else rag.right
            if rng.random() < cfg.samples_rate:
                samples = [rag.right, rag.hallucinated if lab["is_hallucinated"] else rag.right]
            source, source_id = "halueval_qa", str(rag.idx)
        elif kind == "safety":
            item = rng.choice(corp.safety)
            harmful = item.harmful is not None and rng.random() < state.harmful_rate
            prompt = item.prompt
            response = item.harmful if harmful and item.harmful else rng.choice(C.REFUSALS)
            lab.update(is_unsafe_prompt=True, is_unsafe_response=harmful, is_refusal=not harmful)
            source, source_id = item.dataset, item.id
        else:
            sensitive = rng.random() < state.pii_rate
            doc = rng.choice(docs[sensitive] or docs[not sensitive])
            prompt, response = rng.choice(C.DOC_PROMPTS), f"Here is what I found:\n\n{doc.text}"
            lab["has_pii"] = doc.sensitive
            source, source_id = "enterprise_pii", str(doc.idx)
        tin = _tokens(prompt) + sum(_tokens(c) for c in contexts)
        tout = _tokens(response)
        latency = (200 * rng.lognormvariate(0, 0.3) + 20 * rng.lognormvariate(0, 0.2) * tout + 0.05 * tin)
        rid = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        records.append({"request_id": rid, "timestamp": ns, "model": state.model, "prompt": prompt,
                        "response": response, "contexts": contexts, "samples": samples,
                        "latency_ms": round(latency * state.latency_factor, 1), "input_tokens": tin,
                        "output_tokens": tout})
        truth.append({"request_id": rid, "timestamp": _iso_ns(ns), "category": kind, "source_dataset": source,
                      "source_id": source_id, "model": state.model, **lab, "events": list(active)})
    return records, truth


def _iso_ns(ns: int) -> str:
    return pd.Timestamp(ns, tz="UTC").isoformat(timespec="milliseconds").replace("+00:00", "Z")


def to_schema(rec: dict[str, Any], schema: str) -> dict[str, Any]:
    """A canonical record → the logged shape (plain, OTel GenAI span, OpenInference span)."""
    ns = rec["timestamp"]
    end_ns = ns + round(rec["latency_ms"] * 1e6)
    rid = rec["request_id"]
    if schema == "plain":
        out = {k: v for k, v in rec.items() if k != "samples" or v}
        out["timestamp"] = _iso_ns(ns)
        return out
    docs = [{"document.id": f"doc-{i}", "document.content": c} for i, c in enumerate(rec["contexts"])]
    if schema == "otel":
        attrs: dict[str, Any] = {
            "gen_ai.operation.name": "chat", "gen_ai.request.model": rec["model"],
            "gen_ai.response.model": rec["model"], "gen_ai.response.id": rid,
            "gen_ai.usage.input_tokens": rec["input_tokens"], "gen_ai.usage.output_tokens": rec["output_tokens"],
            "gen_ai.input.messages": [{"role": "user", "parts": [{"type": "text", "content": rec["prompt"]}]}],
            "gen_ai.output.messages": [{"role": "assistant", "parts": [{"type": "text", "content": rec["response"]}],
                                        "finish_reason": "stop"}]}
        if docs:
            attrs["retrieval.documents"] = docs  # OTel GenAI has no retrieval field: OpenInference's name
        return {"trace_id": rid.replace("-", ""), "span_id": rid.replace("-", "")[:16], "name": f"chat {rec['model']}",
                "kind": "CLIENT", "start_time_unix_nano": ns, "end_time_unix_nano": end_ns, "attributes": attrs}
    attrs = {"input.value": rec["prompt"], "input.mime_type": "text/plain", "output.value": rec["response"],
             "output.mime_type": "text/plain", "llm.model_name": rec["model"],
             "llm.token_count.prompt": rec["input_tokens"], "llm.token_count.completion": rec["output_tokens"],
             "llm.token_count.total": rec["input_tokens"] + rec["output_tokens"]}
    if docs:
        attrs["retrieval.documents"] = docs
    return {"context": {"trace_id": rid.replace("-", ""), "span_id": rid}, "name": "llm", "span_kind": "LLM",
            "start_time": _iso_ns(ns), "end_time": _iso_ns(end_ns), "attributes": attrs}


def _leaves(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_leaves(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _mutate(obj: dict[str, Any], path: tuple[str, ...], value: Any, *, delete: bool = False) -> None:
    for key in path[:-1]:
        obj = obj[key]
    if delete:
        obj.pop(path[-1], None)
    else:
        obj[path[-1]] = value


def _tabular(leaves: dict[str, Any], fmt: str) -> dict[str, Any]:
    out = {}
    for k, v in leaves.items():
        keep_list = fmt == "parquet" and isinstance(v, list) and all(isinstance(x, str) for x in v)
        out[k] = json.dumps(v, ensure_ascii=False) if isinstance(v, (list, dict)) and not keep_list else v
    return out


def _inject(line: bytes, pos_rng: random.Random) -> bytes:
    """Invalid UTF-8 between two ASCII letters (inside a word, so CSV/JSON structure stays intact)."""
    cut = pos_rng.randrange(1, max(2, len(line) - 1))
    ok = [i for i in range(1, len(line)) if chr(line[i - 1]).isalpha() and chr(line[i]).isalpha() and line[i] < 128
          and line[i - 1] < 128]
    if ok:
        cut = ok[bisect.bisect_left(ok, cut) % len(ok)]
    return line[:cut] + b"\xff\xfe" + line[cut:]


def _sidecar_owner(events_path: Path) -> str | None:
    """The traffic file an existing ``<stem>.events.json`` describes (its name), or None."""
    try:
        meta = json.loads(events_path.read_text(encoding="utf-8"))
        return Path(str(meta["traffic"])).name
    except (OSError, ValueError, KeyError, TypeError):
        return None


def sidecars(out: Path) -> tuple[Path, Path]:
    """``<stem>.truth.jsonl`` and ``<stem>.events.json`` beside ``out``; the stem drops the last suffix only, so
    ``day.2026-11-01.jsonl`` and ``day.2026-11-02.jsonl`` each keep their own."""
    return out.with_name(f"{out.stem}.truth.jsonl"), out.with_name(f"{out.stem}.events.json")


def synthesize(cfg: SynthConfig) -> SynthResult:
    """Generate traffic, write it in ``cfg.format``/``cfg.schema``, and the truth + events sidecars."""
    out = Path(cfg.out)
    truth_path, events_path = sidecars(out)
    owner = _sidecar_owner(events_path)
    if (out.is_file() or (out.is_dir() and any(out.iterdir()))) and owner != out.name:
        raise ConfigError(f"--out {out} exists and was not written by traffic synth (no {events_path.name} beside it "
                          "naming it): it is not overwritten", hint="remove it or choose another name (nothing was "
                                                                    "written)")
    if owner is not None and owner != out.name and (out.parent / owner).exists():
        raise ConfigError(f"--out {out}: {events_path.name} and {truth_path.name} beside it are the ground truth of "
                          f"{owner} (sidecars are named after the file's stem)",
                          hint="give the traffic another name, or another folder (nothing was written)")
    records, truth = generate(cfg)
    if not records:
        raise ConfigError(f"--out {cfg.out}: the traffic would hold no record (about {cfg.rate_per_hour * cfg.hours:.2g} "
                          "expected at this --rate and --hours)", hint="raise --rate or --hours (nothing was written)")
    mrng = random.Random(cfg.seed + 7919)  # separate stream: injection does not change the traffic
    kinds = MALFORMED[cfg.format]
    fields = FIELDS[cfg.schema_]
    rows: list[dict[str, Any]] = []
    bad: list[str | None] = []
    for rec, t in zip(records, truth, strict=True):
        row = to_schema(rec, cfg.schema_)
        kind = mrng.choice(kinds) if cfg.malformed_rate and mrng.random() < cfg.malformed_rate else None
        if kind == "missing_response":
            _mutate(row, fields["response"], None, delete=cfg.format == "jsonl")
        elif kind == "bad_timestamp":
            _mutate(row, fields["timestamp"], "not-a-time")
        elif kind == "wrong_type_prompt":
            _mutate(row, fields["prompt"], 12345)
        t["malformed"] = kind
        rows.append(row)
        bad.append(kind)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        lines = _write(cfg, out, rows, bad, mrng, [r["timestamp"] for r in records])
        with open(truth_path, "w", encoding="utf-8") as fh:
            for t, line in zip(truth, lines, strict=True):
                fh.write(json.dumps({**t, "line": line}, ensure_ascii=False) + "\n")
        counts = {f"category.{k}": sum(t["category"] == k for t in truth) for k in DEFAULT_MIX}
        for label in ("is_hallucinated", "is_unsafe_prompt", "is_unsafe_response", "has_pii", "is_refusal"):
            counts[label] = sum(bool(t[label]) for t in truth)
        end = pd.Timestamp(cfg.start) + timedelta(hours=cfg.hours)
        meta = {"traffic": str(out), "format": cfg.format, "schema": cfg.schema_, "records": len(records),
                "start": iso(cfg.start), "end": iso(end), "events": [e.to_dict() for e in cfg.events],
                "counts": counts, "malformed": sum(b is not None for b in bad),
                "config": json.loads(cfg.model_dump_json(by_alias=True, exclude={"events"}))}
        events_path.write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    except (OSError, sqlite3.DatabaseError) as exc:
        raise OutputError(f"cannot write synthetic traffic to {out}: {exc}") from exc
    return SynthResult(out, truth_path, events_path, len(records), meta["malformed"], counts, meta["start"], meta["end"])


def _write(cfg: SynthConfig, out: Path, rows: list[dict[str, Any]], bad: list[str | None],
           mrng: random.Random, times: list[int]) -> list[int | None]:
    """Write rows; returns each record's (first) line number for line-based formats."""
    lines: list[int | None] = []
    if cfg.format == "jsonl":
        with open(out, "wb") as fh:
            for i, (row, kind) in enumerate(zip(rows, bad, strict=True)):
                data = json.dumps(row, ensure_ascii=False).encode("utf-8")
                if kind == "truncated_json":
                    data = data[: max(1, len(data) // 2)]
                elif kind == "non_utf8":
                    data = _inject(data, mrng)
                fh.write(data + b"\n")
                lines.append(i + 1)
        return lines
    flat = [_tabular(_leaves(r), cfg.format) for r in rows]
    header = list(dict.fromkeys(k for r in flat for k in r))
    if cfg.format == "csv":
        import csv

        line = 2
        with open(out, "wb") as fh:
            buf = io.StringIO()
            csv.writer(buf, lineterminator="\n").writerow(header)
            fh.write(buf.getvalue().encode("utf-8"))
            for r, kind in zip(flat, bad, strict=True):
                buf = io.StringIO()
                values = ["" if r.get(k) is None else r.get(k) for k in header]
                csv.writer(buf, lineterminator="\n").writerow([*values, "x", "y"] if kind == "wrong_field_count" else values)
                data = buf.getvalue().encode("utf-8")
                fh.write(_inject(data, mrng) if kind == "non_utf8" else data)
                lines.append(line)
                line += buf.getvalue().count("\n")
        return lines
    frame = pd.DataFrame.from_records(flat, columns=header)
    if cfg.format == "parquet":
        from evalmon.monitor.sources.parquet import write_partitioned

        if cfg.schema_ == "plain":
            frame["timestamp"] = pd.to_datetime(frame["timestamp"], utc=True, format="ISO8601")
        days = pd.Series(pd.to_datetime(times, unit="ns", utc=True).strftime("%Y-%m-%d"))
        for old in out.glob("*=*/part-0.parquet") if out.is_dir() else []:
            old.unlink()
        write_partitioned(frame, out, days)
        return [None] * len(rows)
    with sqlite3.connect(out) as con:
        q = '"{}"'.format
        con.execute(f"DROP TABLE IF EXISTS {q(cfg.table)}")
        clean = frame[[b is None for b in bad]]  # column types from rows without injected problems
        types = {k: ("INTEGER" if pd.api.types.is_integer_dtype(clean[k]) else
                     "REAL" if pd.api.types.is_float_dtype(clean[k]) else "TEXT") for k in header}
        con.execute(f"CREATE TABLE {q(cfg.table)} ({', '.join(f'{q(k)} {types[k]}' for k in header)})")
        con.executemany(f"INSERT INTO {q(cfg.table)} VALUES ({', '.join('?' * len(header))})",
                        [tuple(r.get(k) for k in header) for r in flat])
        ts_col = ".".join(FIELDS[cfg.schema_]["timestamp"])
        con.execute(f"CREATE INDEX {q(cfg.table + '_ts')} ON {q(cfg.table)} ({q(ts_col)})")
    con.close()
    return [None] * len(rows)


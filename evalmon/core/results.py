"""The result of a suite run: what reports, MLflow, compare and gate consume.

``reports/<run_id>/results.json`` is ``RunResult.model_dump_json()``; ``samples.jsonl.gz`` holds one
``SampleRecord`` per document. Both are schema-versioned.
"""

from __future__ import annotations

import contextlib
import errno
import gzip
import json
import os
import re
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, field_validator, model_validator

from evalmon.core.errors import OutputError
from evalmon.core.lm import EngineStats

SCHEMA_VERSION = 1
RESULTS_FILE = "results.json"
SAMPLES_FILE = "samples.jsonl.gz"
#: a sample's prompt text keeps its last characters (few-shot prompts end with the question asked)
PROMPT_TEXT_CHARS = 2000
_CLIPPED = re.compile(r"\[… \d+ chars cut\] ")
REPORT_FILE = "report.html"
SUMMARY_FILE = "summary.md"


class MetricValue(BaseModel):
    value: float
    stderr: float | None = None
    ci_low: float | None = None  # 95% confidence interval; how it was computed: ``ci_method``
    ci_high: float | None = None
    higher_is_better: bool = True
    # wilson | bootstrap BCa | bootstrap percentile | normal (value ± 1.96·stderr); None: not recorded
    # (results written before the method was recorded used the normal approximation)
    ci_method: str | None = None

    @field_validator("value", mode="before")
    @classmethod
    def _undefined(cls, v: Any) -> Any:
        """An undefined value (NaN) is written as JSON ``null`` and read back as NaN."""
        return float("nan") if v is None else v

    @field_validator("stderr")
    @classmethod
    def _no_negative_stderr(cls, v: float | None) -> float | None:
        """A standard error is ≥ 0 (NaN: undefined); a negative one (an edited or foreign results file) would
        invert every interval and test built on it."""
        if v is not None and v < 0:
            raise ValueError(f"stderr {v} is negative")
        return v

    @model_validator(mode="after")
    def _ordered_interval(self) -> MetricValue:
        if self.ci_low is not None and self.ci_high is not None and self.ci_low > self.ci_high:
            raise ValueError(f"ci_low {self.ci_low} is above ci_high {self.ci_high}")
        return self

    @classmethod
    def with_ci(cls, value: float, stderr: float | None, higher_is_better: bool = True, *,
                ci: tuple[float, float] | None = None, ci_method: str | None = None) -> MetricValue:
        """``ci``: bounds computed by ``evalmon.metrics.intervals`` (named by ``ci_method``); without them
        the normal approximation value ± 1.96·stderr (``ci_method="normal"``)."""
        if ci is not None:
            return cls(value=value, stderr=stderr, ci_low=ci[0], ci_high=ci[1], ci_method=ci_method,
                       higher_is_better=higher_is_better)
        if stderr is None:
            return cls(value=value, higher_is_better=higher_is_better)
        return cls(value=value, stderr=stderr, ci_low=value - 1.96 * stderr, ci_high=value + 1.96 * stderr,
                   ci_method="normal", higher_is_better=higher_is_better)


class TaskTiming(BaseModel):
    seconds: float = 0.0
    requests: int = 0  # loglikelihood requests the task needed
    unique_requests: int = 0  # after dedupe
    cached: int = 0  # served from the response cache
    computed: int = 0  # forwarded through the model in this run
    tokens: int = 0  # tokens forwarded for computed requests (shared prefixes counted once when packed)
    padded_tokens: int = 0  # positions computed including padding (plain batching pads rows)
    padding_waste: float = 0.0  # 1 - tokens / padded_tokens
    requests_per_s: float = 0.0
    tokens_per_s: float = 0.0

    @classmethod
    def from_stats(cls, stats: EngineStats) -> TaskTiming:
        """The task's timing from the engine's counts (rates over ``stats.seconds``; rounded for reading)."""
        secs = stats.seconds
        return cls(seconds=round(secs, 4), requests=stats.requests, unique_requests=stats.unique,
                   cached=stats.cached, computed=stats.computed, tokens=stats.tokens,
                   padded_tokens=stats.padded_tokens,
                   padding_waste=round(1 - stats.tokens / stats.padded_tokens, 4) if stats.padded_tokens else 0.0,
                   requests_per_s=round(stats.requests / secs, 2) if secs > 0 else 0.0,
                   tokens_per_s=round(stats.tokens / secs, 2) if secs > 0 else 0.0)


class TaskResult(BaseModel):
    name: str
    n: int
    num_fewshot: int
    source: str
    config_hash: str
    config: dict[str, Any] = Field(default_factory=dict)
    metrics: dict[str, MetricValue]
    metric_kinds: dict[str, str] = Field(default_factory=dict)  # binary | continuous
    lm_eval_task: str | None = None
    timing: TaskTiming = Field(default_factory=TaskTiming)
    notes: dict[str, str] = Field(default_factory=dict)  # metric -> why it is NaN / how to read it
    curves: dict[str, Any] = Field(default_factory=dict)  # plot points (PR curve, reliability diagram)


class GroupResult(BaseModel):
    name: str
    n: int
    members: list[str]
    aggregation: str = "micro (weighted by size), pooled stderr — as lm-eval's weight_by_size"
    metrics: dict[str, MetricValue]


class Provenance(BaseModel):
    evalmon_version: str
    lm_eval_version: str | None = None
    torch_version: str | None = None
    transformers_version: str | None = None
    peft_version: str | None = None
    python_version: str
    platform: str
    hostname: str
    git_commit: str | None = None
    git_dirty: bool | None = None
    command: str | None = None
    seed: int = 1234


class RunResult(BaseModel):
    schema_version: int = SCHEMA_VERSION
    run_id: str
    suite_name: str
    suite_hash: str
    suite_path: str | None = None
    suite_config: dict[str, Any] = Field(default_factory=dict)
    started_at: str
    finished_at: str | None = None
    status: str = "running"  # running | finished | interrupted | failed
    error: str | None = None  # failed: "<Type>: <message>" (one line); interrupted: which signal stopped it
    provenance: Provenance
    model: dict[str, Any]  # ModelFingerprint.to_dict()
    tasks: dict[str, TaskResult] = Field(default_factory=dict)
    groups: dict[str, GroupResult] = Field(default_factory=dict)
    mlflow: dict[str, Any] = Field(default_factory=dict)  # tracking_uri, experiment_id, run_id, status
    # many-adapter runs (docs/adapters.md): the suite run holds the ranked adapter table (``variants``,
    # ``ranking``, ``rows``); each adapter's run (``adapters/<name>/``) its ``variant`` and parent ids
    adapters: dict[str, Any] = Field(default_factory=dict, exclude_if=lambda v: not v)

    def flat_metrics(self) -> dict[str, float]:
        """``task/metric`` and ``task/metric_stderr`` for every task and group (MLflow metric names)."""
        out: dict[str, float] = {}
        for name, res in [*self.tasks.items(), *self.groups.items()]:
            for metric, mv in res.metrics.items():
                out[f"{name}/{metric}"] = mv.value
                if mv.stderr is not None:
                    out[f"{name}/{metric}_stderr"] = mv.stderr
        return out

    def save(self, run_dir: Path) -> Path:
        run_dir.mkdir(parents=True, exist_ok=True)
        path = run_dir / RESULTS_FILE
        text = self.model_dump_json(indent=2)
        atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))
        return path

    @classmethod
    def load(cls, path: Path) -> RunResult:
        path = Path(path)
        if path.is_dir():
            path = path / RESULTS_FILE
        return cls.model_validate_json(path.read_text(encoding="utf-8"))


class SampleRecord(BaseModel):
    """One scored document: what paired gates need."""

    task: str
    doc_id: str
    prompt_hash: str
    target: int | str | None = None
    choices: list[str] = Field(default_factory=list)
    loglikelihoods: list[float] = Field(default_factory=list)
    is_greedy: list[bool] = Field(default_factory=list)
    outputs: list[str] = Field(default_factory=list)  # generations (generative tasks)
    scores: dict[str, float] = Field(default_factory=dict)  # per-document values of mean metrics
    items: dict[str, Any] = Field(default_factory=dict)  # per-document inputs of corpus metrics
    extra: dict[str, Any] = Field(default_factory=dict)  # task-specific (e.g. filtered answer)
    #: the first request's prompt text (its tail when long: ``PROMPT_TEXT_CHARS``); absent when the suite
    #: opted out (``samples: {text: false}`` / ``--no-sample-text``) — then the file has no "prompt" key
    prompt: str | None = Field(None, exclude_if=lambda v: v is None)

    @field_validator("scores", "loglikelihoods", mode="before")
    @classmethod
    def _undefined(cls, v: Any) -> Any:
        """NaN is written as JSON ``null``; read it back as NaN (so integrity checks can count it)."""
        if isinstance(v, dict):
            return {k: float("nan") if x is None else x for k, x in v.items()}
        if isinstance(v, list):
            return [float("nan") if x is None else x for x in v]
        return v


def clip_prompt(text: str, limit: int = PROMPT_TEXT_CHARS) -> str:
    """``text``'s last ``limit`` characters, prefixed by how many were cut (``[… 1234 chars cut] …``);
    a text clipped before is returned as it is."""
    done = _CLIPPED.match(text)
    if len(text) <= limit or (done is not None and len(text) - done.end() <= limit):
        return text
    return f"[… {len(text) - limit} chars cut] " + text[-limit:]


_NO_SPACE = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}


def write_error(path: Path, exc: OSError) -> OutputError:
    """The one-line ``OutputError`` for a failed write of ``path`` (disk full says what to do)."""
    if exc.errno in _NO_SPACE:
        return OutputError(f"cannot write {path}: {exc.strerror or 'no space left on device'}",
                           hint="free space and rerun (cached requests are kept)")
    return OutputError(f"cannot write {path}: {exc.strerror or exc}",
                       hint="check the output directory's permissions and free space, then rerun "
                            "(cached requests are kept)")


def atomic_write(path: Path, write: Callable[[Path], object]) -> None:
    """``write(tmp)`` then rename over ``path``: a reader sees the old file or the whole new one, never a
    truncated one. A failed write (disk full, …) removes the temporary file and raises ``OutputError``."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise write_error(path, exc) from None


def write_samples(path: Path, samples: Iterable[SampleRecord]) -> int:
    """Write ``samples.jsonl.gz`` atomically (see ``atomic_write``); returns the number of records."""
    records = list(samples)

    def write(tmp: Path) -> None:
        with gzip.open(tmp, "wt", encoding="utf-8") as fh:
            for s in records:
                fh.write(s.model_dump_json() + "\n")

    atomic_write(path, write)
    return len(records)


def read_samples(path: Path) -> Iterator[SampleRecord]:
    path = Path(path)
    if path.is_dir():
        path = path / SAMPLES_FILE
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                yield SampleRecord.model_validate(json.loads(line))

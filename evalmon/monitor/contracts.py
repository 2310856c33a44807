"""Monitor pipeline contracts: Source → Records (canonical frame) → Signals → Summary → Drift/Checks.

Records are a pandas DataFrame with the canonical columns below (plus signal columns). The stages
(``pipeline.py``) are pure functions of one partition of one window — a source reads window by window,
partition by partition (``sources.base.PartitionedSource``) — and produce mergeable summaries
(``summary.py``), so an executor (``executors/``) runs them on this machine or per partition elsewhere
(Spark ``mapInPandas``) and merges the results.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

# Canonical record columns (internal names) live in evalmon.core.records; monitor code imports them from
# here or from there alike. OpenTelemetry GenAI / OpenInference / MLflow trace aliases map onto them.
from evalmon.core.records import (  # re-exported (see __all__)
    ARRIVAL,
    CANONICAL_COLUMNS,
    CONTEXTS,
    INPUT_TOKENS,
    LATENCY_MS,
    MODEL,
    OUTPUT_TOKENS,
    PROMPT,
    REQUEST_ID,
    REQUIRED_COLUMNS,
    RESPONSE,
    SAMPLES,
    SESSION_ID,
    TIMESTAMP,
    TRACE_ID,
)

if TYPE_CHECKING:
    import pandas as pd


@dataclass(frozen=True)
class QuarantinedRecord:
    """A line/row that could not become a record: kept with the reason, never silently dropped."""

    source: str  # file path / table / experiment
    location: str  # "line 17", "row 3", "trace tr-abc"
    reason: str
    raw: str  # the raw text (truncated to a few KB)


@dataclass
class SourceBatch:
    """What a read returns. Every record of [start, end) is in ``frame`` or in ``quarantined``;
    ``quarantined_times[i]`` is the time record i counts on (its window), ``None`` for an *unplaced*
    record (no usable time: every read returns it, whatever the range). A source that gives no times
    (an empty list) leaves all its quarantined records unplaced."""

    frame: pd.DataFrame  # canonical columns, sorted by timestamp
    quarantined: list[QuarantinedRecord] = field(default_factory=list)
    stats: dict[str, Any] = field(default_factory=dict)  # rows_read, files, ...
    quarantined_times: list[pd.Timestamp | None] = field(default_factory=list)

    def placed_times(self) -> list[pd.Timestamp | None]:
        """One time (or None) per quarantined record, whatever the source filled in."""
        times = list(self.quarantined_times)
        return times if len(times) == len(self.quarantined) else [None] * len(self.quarantined)


@runtime_checkable
class Source(Protocol):
    """Reads logged traffic in [start, end) (None = unbounded), normalised to canonical columns. A source
    that can also read one partition at a time implements ``sources.base.PartitionedSource``."""

    name: str

    def read(self, start: datetime | None = None, end: datetime | None = None) -> SourceBatch: ...


@runtime_checkable
class Signal(Protocol):
    """A per-record signal: a pure function of a batch of records → new columns (same index).

    Column names are prefixed by the signal name (``text.response_chars``, ``pii.any``,
    ``hallucination.unsupported_ratio``, ``safety.unsafe``, ...). Boolean "rate" signals are
    0/1 floats so a window's mean is the rate.

    Optional members the harness uses when present: ``inputs`` (the columns the cache keys on),
    ``embedding_fields`` / ``embedding_texts(frame)`` (texts for the one shared embedding pass) and
    ``prepare(frame)`` — work that reads no embedding (pii's spaCy NER), run in a second thread during that
    pass on the records ``compute`` will get; ``compute`` must give the same columns with or without it.
    """

    name: str
    columns: tuple[str, ...]
    version: str  # bump when the numbers change; part of the per-record cache key

    def compute(self, frame: pd.DataFrame) -> pd.DataFrame: ...


__all__ = [
    "ARRIVAL", "CANONICAL_COLUMNS", "CONTEXTS", "INPUT_TOKENS", "LATENCY_MS", "MODEL", "OUTPUT_TOKENS", "PROMPT",
    "REQUEST_ID", "REQUIRED_COLUMNS", "RESPONSE", "SAMPLES", "SESSION_ID", "TIMESTAMP", "TRACE_ID",
    "QuarantinedRecord", "Signal", "Source", "SourceBatch",
]

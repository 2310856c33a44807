"""The windowed read contract of sources, and shared helpers: window bounds, merging parts, placing
quarantined rows in windows.

A quarantined record counts on the window of its placed time; one with no time (``None``, *unplaced*) is
returned by every read, so it is reported by every run that reads its source instead of vanishing.

Windowed reads (``PartitionedSource``): the monitor reads one window at a time, partition by partition
(a file, a Parquet ``dt=`` fragment, a table), so memory follows a window, not the span a run covers.
``partitions(start, end)`` names the partitions that may hold records of [start, end) (or unplaced
records, which every read returns); ``read_partition(p, start, end)`` is ``read(start, end)`` restricted
to ``p``. Its ``arrival`` column is ordered as in a read of the whole source, so a window's partitions
concatenated and sorted by (timestamp, arrival) are the rows ``read(start, end)`` returns, in its order.
A source with only ``read`` is one partition (``WHOLE``); ``partitions_of`` / ``read_partition`` /
``earliest_of`` work with both.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

import pandas as pd

from evalmon.core.errors import ConfigError
from evalmon.monitor.contracts import ARRIVAL, TIMESTAMP, QuarantinedRecord, Source, SourceBatch
from evalmon.monitor.schema import Normalized, empty_frame, truncate_raw

WHOLE = "*"  # the one partition of a source that reads only as a whole


@runtime_checkable
class PartitionedSource(Protocol):
    """A source that reads one partition of one window at a time (see the module docstring)."""

    name: str

    def read(self, start: datetime | None = None, end: datetime | None = None) -> SourceBatch: ...

    def partitions(self, start: datetime | None, end: datetime | None) -> list[str]: ...

    def read_partition(self, partition: str, start: datetime | None, end: datetime | None) -> SourceBatch: ...


def partitions_of(src: Source, start: datetime | None, end: datetime | None) -> list[str]:
    """The partitions of ``src`` that may hold records of [start, end) (``[WHOLE]`` for a plain source)."""
    return list(src.partitions(start, end)) if isinstance(src, PartitionedSource) else [WHOLE]


def read_partition(src: Source, partition: str, start: datetime | None, end: datetime | None) -> SourceBatch:
    """``src``'s records of [start, end) in ``partition`` (placed quarantined ones + the unplaced)."""
    if partition != WHOLE and isinstance(src, PartitionedSource):
        return src.read_partition(partition, start, end)
    return src.read(start, end)


def earliest_of(src: Source, end: datetime) -> datetime | None:
    """The earliest record time before ``end``: the source's own ``earliest`` when it has one (an index),
    else one partition at a time (memory: one partition)."""
    own = getattr(src, "earliest", None)
    if callable(own):
        return own(end)
    best: pd.Timestamp | None = None
    for p in partitions_of(src, None, end):
        frame = read_partition(src, p, None, end).frame
        if len(frame):
            t = frame[TIMESTAMP].min()
            best = t if best is None or t < best else best
    return None if best is None else best.floor("us").to_pydatetime()


def to_utc(value: datetime | None) -> pd.Timestamp | None:
    """Window bound → UTC timestamp; naive bounds are UTC."""
    if value is None:
        return None
    ts = pd.Timestamp(value)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def check_window(start: datetime | None, end: datetime | None) -> tuple[pd.Timestamp | None, pd.Timestamp | None]:
    lo, hi = to_utc(start), to_utc(end)
    if lo is not None and hi is not None and lo > hi:
        raise ConfigError(f"window start {lo.isoformat()} is after its end {hi.isoformat()}")
    return lo, hi


def in_window(t: pd.Timestamp | None, lo: pd.Timestamp | None, hi: pd.Timestamp | None) -> bool:
    if t is None:
        return lo is None and hi is None
    return (lo is None or t >= lo) and (hi is None or t < hi)


@dataclass
class Part:
    """One parsed unit (a file, a query result): normalized rows + quarantined rows with their times."""

    name: str
    norm: Normalized
    pre_quarantined: list[QuarantinedRecord] = field(default_factory=list)
    pre_times: list[pd.Timestamp | None] = field(default_factory=list)
    stats: dict[str, Any] = field(default_factory=dict)


def rows_in_window(frame: pd.DataFrame, lo: pd.Timestamp | None, hi: pd.Timestamp | None) -> pd.DataFrame:
    """The rows of a canonical frame whose timestamp lies in ``[lo, hi)`` (an open end keeps everything)."""
    if not len(frame) or (lo is None and hi is None):
        return frame
    ts = frame[TIMESTAMP]
    mask = pd.Series(True, index=frame.index)
    if lo is not None:
        mask &= ts >= lo
    if hi is not None:
        mask &= ts < hi
    return frame[mask]


def place(bad_lines: Sequence[int], good_lines: Sequence[int], norm: Normalized) -> list[pd.Timestamp | None]:
    """Time of each unparseable line = the effective time of the nearest earlier parsed line (else the
    first parsed line, else ``None``: unplaced)."""
    times = norm.row_times if norm.row_times is not None else pd.Series([], dtype="datetime64[ns, UTC]")
    out: list[pd.Timestamp | None] = []
    for line in bad_lines:
        j = bisect.bisect_left(good_lines, line) - 1
        t = times.iloc[max(j, 0)] if len(times) else pd.NaT
        out.append(None if pd.isna(t) else t)
    return out


def quarantine(source: str, location: str, reason: str, raw: str) -> QuarantinedRecord:
    return QuarantinedRecord(source=source, location=location, reason=reason, raw=truncate_raw(raw))


def merge(parts: Sequence[Part], start: datetime | None, end: datetime | None,
          stats: dict[str, Any] | None = None) -> SourceBatch:
    """Concatenate parts, keep [start, end) (quarantined records: placed in it, or unplaced), sort by
    (timestamp, arrival), add summed stats."""
    lo, hi = check_window(start, end)
    frames: list[pd.DataFrame] = []
    quarantined: list[QuarantinedRecord] = []
    q_times: list[pd.Timestamp | None] = []
    totals: dict[str, Any] = {"rows_read": 0, "out_of_order": 0, "request_ids_generated": 0,
                              "invalid_utf8": 0, "invalid_unicode_replaced": 0, "timestamps_dropped": 0,
                              "parts": len(parts), "unplaced": 0}
    tz_counts: dict[str, int] = {}
    offset = 0
    for part in parts:
        frame = part.norm.frame
        if len(frame):
            frame = frame.assign(**{ARRIVAL: frame[ARRIVAL] + offset})
            mask = pd.Series(True, index=frame.index)
            if lo is not None:
                mask &= frame[TIMESTAMP] >= lo
            if hi is not None:
                mask &= frame[TIMESTAMP] < hi
            frames.append(frame[mask])
        offset += int(part.norm.stats.get("rows_read", 0))
        for rec, t in zip([*part.pre_quarantined, *part.norm.quarantined],
                          [*part.pre_times, *part.norm.quarantined_times], strict=True):
            if t is None or in_window(t, lo, hi):
                quarantined.append(rec)
                q_times.append(t)
                totals["unplaced"] += t is None
        for key in ("rows_read", "out_of_order", "request_ids_generated", "invalid_unicode_replaced",
                    "timestamps_dropped"):
            totals[key] += int(part.norm.stats.get(key, 0))
        totals["rows_read"] += len(part.pre_quarantined)
        totals["invalid_utf8"] += int(part.stats.get("invalid_utf8", 0))
        for k, v in part.norm.stats.get("timezones", {}).items():
            tz_counts[k] = tz_counts.get(k, 0) + int(v)
    nonempty = [f for f in frames if len(f)]
    frame = pd.concat(nonempty, ignore_index=True) if nonempty else empty_frame()
    if len(nonempty) > 1:
        frame = frame.sort_values([TIMESTAMP, ARRIVAL], kind="mergesort").reset_index(drop=True)
    labels = [k for k, v in tz_counts.items() if k != "epoch" and v > 0]
    totals.update({"rows": len(frame), "quarantined": len(quarantined), "timezones": tz_counts,
                   "mixed_timezones": len(labels) > 1,
                   "window": [None if lo is None else lo.isoformat(), None if hi is None else hi.isoformat()]})
    totals.update(stats or {})
    return SourceBatch(frame=frame, quarantined=quarantined, stats=totals, quarantined_times=q_times)

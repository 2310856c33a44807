"""An index of a parsed log file on disk, so windows read only their own records (bounded memory).

A file is parsed once, ``CHUNK_RECORDS`` records at a time; each chunk's canonical frame is pickled into
a temporary folder (deleted with the index) with its time range, and only per-record times (8 bytes per
record) and the quarantined records stay in memory. A windowed read loads the chunks whose time range
meets the window. The result equals a whole-file parse cut to the window: a quarantined record without a
usable time of its own takes its neighbour's time over the whole file (as ``place_by_neighbour`` does),
never just within its chunk, and ``arrival`` numbers records as the whole-file parse does.
"""

from __future__ import annotations

import pickle
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from evalmon.monitor.contracts import ARRIVAL, TIMESTAMP, QuarantinedRecord
from evalmon.monitor.schema import Normalized, empty_frame
from evalmon.monitor.sources.base import rows_in_window

CHUNK_RECORDS = 10_000


@dataclass(frozen=True)
class _Chunk:
    path: Path
    rows: int
    first: pd.Timestamp | None  # earliest / latest timestamp of its rows
    last: pd.Timestamp | None

    def meets(self, lo: pd.Timestamp | None, hi: pd.Timestamp | None) -> bool:
        if not self.rows:
            return False
        return (hi is None or self.first < hi) and (lo is None or self.last >= lo)  # type: ignore[operator]


def _ns(times: pd.Series) -> np.ndarray:
    return pd.DatetimeIndex(times).asi8 if len(times) else np.empty(0, dtype=np.int64)


class SpillIndex:
    """``add`` each normalized chunk (normalized without neighbour placement, ``arrival_offset`` = records
    before it), then ``finish`` with the unparseable lines; then ``read`` / ``meets`` / ``earliest``."""

    def __init__(self) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="evalmon-index-")
        self.chunks: list[_Chunk] = []
        self.records = 0  # parsed records (what ``arrival`` numbers)
        self._ts: list[np.ndarray] = []  # per record, input order: its own time (ns; NaT when none)
        self._lines: list[np.ndarray] = []  # per record: its line number
        self._bad: list[tuple[int, QuarantinedRecord]] = []  # (record index, record) quarantined by normalize
        self.quarantined: list[QuarantinedRecord] = []
        self.quarantined_times: list[pd.Timestamp | None] = []
        self.timestamps_dropped = 0  # time values that could not be read, under relaxed_fields (the whole file)

    def add(self, norm: Normalized, lines: Sequence[int]) -> None:
        n = len(lines)
        self.timestamps_dropped += int(norm.stats.get("timestamps_dropped", 0))
        row_times = norm.row_times if norm.row_times is not None else pd.Series([], dtype="datetime64[ns, UTC]")
        self._ts.append(_ns(row_times) if n else np.empty(0, dtype=np.int64))
        self._lines.append(np.asarray(lines, dtype=np.int64))
        frame = norm.frame
        good = set((frame[ARRIVAL].to_numpy() - self.records).tolist()) if len(frame) else set()
        bad = [i for i in range(n) if i not in good]  # normalize quarantines in input order
        self._bad.extend((self.records + i, rec) for i, rec in zip(bad, norm.quarantined, strict=True))
        path = Path(self._dir.name) / f"{len(self.chunks):06d}.pkl"
        with open(path, "wb") as fh:
            pickle.dump(frame, fh, protocol=pickle.HIGHEST_PROTOCOL)
        ts = frame[TIMESTAMP]
        self.chunks.append(_Chunk(path, len(frame), ts.min() if len(frame) else None,
                                  ts.max() if len(frame) else None))
        self.records += n

    def finish(self, bad_lines: Sequence[int], pre_quarantined: Sequence[QuarantinedRecord]) -> None:
        """Place every quarantined record: its own time, else the nearest earlier record's (else the first
        later one's) over the whole file; an unparseable line takes the time of the record before it."""
        ts = np.concatenate(self._ts) if self._ts else np.empty(0, dtype=np.int64)
        lines = np.concatenate(self._lines) if self._lines else np.empty(0, dtype=np.int64)
        placed = pd.Series(pd.to_datetime(ts, utc=True)).ffill().bfill()

        def at(i: int) -> pd.Timestamp | None:
            t = placed.iloc[i]
            return None if pd.isna(t) else t

        pre = [at(max(int(np.searchsorted(lines, line, side="left")) - 1, 0)) if len(lines) else None
               for line in bad_lines]
        self.quarantined = [*pre_quarantined, *(rec for _, rec in self._bad)]
        self.quarantined_times = [*pre, *(at(i) for i, _ in self._bad)]
        self._ts, self._lines, self._bad = [], [], []

    def meets(self, lo: pd.Timestamp | None, hi: pd.Timestamp | None) -> bool:
        """Whether a read of [lo, hi) returns anything (records, placed or unplaced quarantined ones)."""
        return any(c.meets(lo, hi) for c in self.chunks) or any(
            t is None or ((lo is None or t >= lo) and (hi is None or t < hi)) for t in self.quarantined_times)

    def earliest(self, end: pd.Timestamp | None) -> pd.Timestamp | None:
        firsts = [c.first for c in self.chunks if c.rows and (end is None or c.first < end)]
        return min(firsts) if firsts else None

    def read(self, lo: pd.Timestamp | None, hi: pd.Timestamp | None, arrival_offset: int
             ) -> tuple[pd.DataFrame, list[QuarantinedRecord], list[pd.Timestamp | None]]:
        frames = []
        for chunk in self.chunks:
            if not chunk.meets(lo, hi):
                continue
            with open(chunk.path, "rb") as fh:
                frame = pickle.load(fh)  # written by this index only
            frames.append(rows_in_window(frame, lo, hi))
        frames = [f for f in frames if len(f)]
        if frames:
            frame = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
            frame = frame.sort_values([TIMESTAMP, ARRIVAL], kind="mergesort").reset_index(drop=True)
            frame[ARRIVAL] = frame[ARRIVAL] + arrival_offset
        else:
            frame = empty_frame()
        keep = [i for i, t in enumerate(self.quarantined_times)
                if t is None or ((lo is None or t >= lo) and (hi is None or t < hi))]
        return frame, [self.quarantined[i] for i in keep], [self.quarantined_times[i] for i in keep]

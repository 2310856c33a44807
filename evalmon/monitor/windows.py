"""Tumbling windows over the timestamp column (the mergeable per-window summaries are in ``summary.py``).

Durations, ``Window`` and the epoch-aligned window arithmetic are pure stdlib and live in
``evalmon.core.timewindows`` (the config layer parses ``window.size`` with them); they are re-exported here.
This module adds ``split``: a canonical frame cut into those windows.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

import numpy as np

from evalmon.core.timewindows import EPOCH, Window, as_utc, parse_duration, window_of, windows_between

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["EPOCH", "Window", "as_utc", "parse_duration", "split", "window_of", "windows_between"]


def split(frame: pd.DataFrame, windows: Sequence[Window], ts_col: str) -> Iterator[tuple[Window, pd.DataFrame]]:
    """Yield ``(window, rows in it)`` for each window (empty frames included), using binary search on
    the timestamp column (the frame is sorted by it here if it is not already)."""
    if not frame[ts_col].is_monotonic_increasing:
        frame = frame.sort_values(ts_col, kind="stable")
    ts = frame[ts_col].to_numpy(dtype="datetime64[ns]") if len(frame) else np.array([], "datetime64[ns]")
    for w in windows:
        bounds = np.array([w.start.replace(tzinfo=None), w.end.replace(tzinfo=None)], dtype="datetime64[ns]")
        lo, hi = np.searchsorted(ts, bounds)
        yield w, frame.iloc[lo:hi]

"""Durations and tumbling time windows (pure stdlib): what the monitor YAML and the window loop share.

``parse_duration`` reads ``15m`` / ``1h`` / ``2h30m`` once, at the config boundary; ``as_utc`` makes every
time aware and UTC. Windows are aligned to the Unix epoch (a ``1h`` window always starts on the hour,
UTC), so a window's ``index`` — ``(start - epoch) // size`` — is stable across runs, processes and
backfills; it is the MLflow ``step`` of the window's metrics. Splitting a frame into windows (pandas)
is ``evalmon.monitor.windows.split``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from evalmon.core.errors import ConfigError

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_DURATION_RE = re.compile(r"(\d+)\s*([smhdw])")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
MAX_DURATION_S = 100 * 366 * 86400  # a window, delay or horizon longer than this is a typo (and overflows dates)


def parse_duration(text: str | int | float | timedelta) -> timedelta:
    """``"15m"``, ``"1h"``, ``"1d"``, ``"2h30m"``, ``"1w"`` or seconds → ``timedelta``."""
    if isinstance(text, timedelta):
        return text
    if isinstance(text, int | float) and not isinstance(text, bool):
        seconds = float(text)
    else:
        s = str(text).strip().lower()
        parts = _DURATION_RE.findall(s)
        if not parts or _DURATION_RE.sub("", s).strip():
            raise ConfigError(f"invalid duration {text!r}", hint="write e.g. 15m, 1h, 1d or 2h30m")
        seconds = sum(int(n) * _UNIT_S[u] for n, u in parts)
    if not math.isfinite(seconds) or abs(seconds) > MAX_DURATION_S:  # OverflowError in timedelta / date math
        raise ConfigError(f"invalid duration {text!r}: longer than 100 years",
                          hint="write e.g. 15m, 1h, 1d or 2h30m")
    return timedelta(seconds=seconds)


def as_utc(value: datetime | str | Any) -> datetime:
    """A timezone-aware UTC ``datetime`` from a datetime, pandas Timestamp or ISO string (naive = UTC)."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    if hasattr(value, "to_pydatetime"):
        value = value.to_pydatetime()
    if not isinstance(value, datetime):
        raise TypeError(f"not a datetime: {value!r}")
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


@dataclass(frozen=True, order=True)
class Window:
    """``[start, end)`` in UTC; ``index`` counts windows of this size since the epoch."""

    start: datetime
    end: datetime
    index: int

    @property
    def key(self) -> str:
        """Filesystem/tag-friendly id, e.g. ``20240101T090000Z``."""
        return self.start.strftime("%Y%m%dT%H%M%SZ")

    def label(self) -> str:
        return f"[{self.start.isoformat()} — {self.end.isoformat()})"


def window_of(ts: datetime, size: timedelta) -> Window:
    """The window that contains ``ts``."""
    ts = as_utc(ts)
    step = size.total_seconds()
    index = math.floor((ts - EPOCH).total_seconds() / step)
    start = EPOCH + timedelta(seconds=index * step)
    return Window(start, start + size, index)


def windows_between(start: datetime, end: datetime, size: timedelta) -> list[Window]:
    """Every complete window that starts at or after ``floor(start)`` and ends at or before ``end``."""
    start, end = as_utc(start), as_utc(end)
    w = window_of(start, size)
    out: list[Window] = []
    while w.end <= end:
        out.append(w)
        w = Window(w.end, w.end + size, w.index + 1)
    return out

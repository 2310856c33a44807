"""Tumbling windows over the timestamp column, and mergeable per-window summaries.

Windows are aligned to the Unix epoch (a ``1h`` window always starts on the hour, UTC), so a window's
``index`` — ``(start - epoch) // size`` — is stable across runs, processes and backfills; it is the
MLflow ``step`` of the window's metrics.

A ``Summary`` follows the zero / update / merge pattern (like whylogs profiles): counts, sums, sums of
squares, min/max, null counts, category counts and fixed-edge histograms whose edges are fitted once on
the reference (``SummarySpec.fit``). ``update`` folds in a batch, ``merge`` adds two summaries, so the
same code summarises one partition at a time (Spark ``mapInPandas``) and merges the results; ``to_dict``
/ ``from_dict`` ship a summary between processes as JSON. ``metrics()`` turns a summary into the flat
``{name: value}`` dict that goes to MLflow (names in ``metric_names``' docstring).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np

from evalmon.core.errors import ConfigError

if TYPE_CHECKING:
    import pandas as pd

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_DURATION_RE = re.compile(r"(\d+)\s*([smhdw])")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
HIST_BINS = 32  # interior bins (plus one underflow and one overflow bin)
TOP_CATEGORIES = 10  # category shares logged per categorical column (most frequent in the reference)
QUANTILES = (0.5, 0.9, 0.99)


def parse_duration(text: str | int | float | timedelta) -> timedelta:
    """``"15m"``, ``"1h"``, ``"1d"``, ``"2h30m"``, ``"1w"`` or seconds → ``timedelta``."""
    if isinstance(text, timedelta):
        return text
    if isinstance(text, int | float) and not isinstance(text, bool):
        return timedelta(seconds=float(text))
    s = str(text).strip().lower()
    parts = _DURATION_RE.findall(s)
    if not parts or _DURATION_RE.sub("", s).strip():
        raise ConfigError(f"invalid duration {text!r}", hint="write e.g. 15m, 1h, 1d or 2h30m")
    return timedelta(seconds=sum(int(n) * _UNIT_S[u] for n, u in parts))


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


# --------------------------------------------------------------------------- summaries


def _is_binary(values: np.ndarray) -> bool:
    v = values[~np.isnan(values)]
    return v.size > 0 and bool(np.isin(v, (0.0, 1.0)).all())


@dataclass(frozen=True)
class SummarySpec:
    """Which columns a summary covers and the histogram edges (fitted on the reference)."""

    numeric: dict[str, tuple[float, ...]]  # column → interior histogram edges (ascending, unique)
    rates: tuple[str, ...] = ()  # 0/1 columns: their mean is logged as ``rate/<col>``
    categorical: dict[str, tuple[str, ...]] = field(default_factory=dict)  # column → top reference values

    @classmethod
    def fit(cls, reference: pd.DataFrame, numeric: Sequence[str], categorical: Sequence[str] = (),
            bins: int = HIST_BINS) -> SummarySpec:
        """Edges at the reference's quantiles (so each bin holds ~1/bins of it); binary columns become rates."""
        edges: dict[str, tuple[float, ...]] = {}
        rates: list[str] = []
        for col in numeric:
            values = _numeric(reference, col)
            if _is_binary(values):
                rates.append(col)
            finite = values[np.isfinite(values)]
            qs = np.quantile(finite, np.linspace(0, 1, bins + 1)) if finite.size else np.array([])
            edges[col] = tuple(float(x) for x in np.unique(qs))
        cats: dict[str, tuple[str, ...]] = {}
        for col in categorical:
            counts = reference[col].astype("string").value_counts(dropna=True) if col in reference else None
            cats[col] = tuple(str(x) for x in counts.index[:TOP_CATEGORIES]) if counts is not None else ()
        return cls(numeric=edges, rates=tuple(rates), categorical=cats)

    def to_dict(self) -> dict[str, Any]:
        return {"numeric": {k: list(v) for k, v in self.numeric.items()}, "rates": list(self.rates),
                "categorical": {k: list(v) for k, v in self.categorical.items()}}


def _numeric(frame: pd.DataFrame, col: str) -> np.ndarray:
    import pandas as pd

    if col not in frame:
        return np.full(len(frame), np.nan)
    return pd.to_numeric(frame[col], errors="coerce").to_numpy(dtype=float, na_value=np.nan)


@dataclass
class NumericState:
    n: int = 0  # non-null values
    nulls: int = 0
    total: float = 0.0
    total_sq: float = 0.0
    min: float = math.inf
    max: float = -math.inf
    hist: list[int] = field(default_factory=list)  # len(edges) + 1 bins: (-inf, e0), [e0, e1), …, [e_k, inf)

    def merge(self, other: NumericState) -> NumericState:
        hist = [a + b for a, b in zip(self.hist, other.hist, strict=True)] if self.hist else list(other.hist)
        return NumericState(self.n + other.n, self.nulls + other.nulls, self.total + other.total,
                            self.total_sq + other.total_sq, min(self.min, other.min), max(self.max, other.max),
                            hist)


@dataclass
class Summary:
    """A mergeable summary of one window (or one partition of it)."""

    spec: SummarySpec
    count: int = 0
    numeric: dict[str, NumericState] = field(default_factory=dict)
    categories: dict[str, dict[str, int]] = field(default_factory=dict)  # column → value → count

    @classmethod
    def zero(cls, spec: SummarySpec) -> Summary:
        return cls(spec=spec, numeric={c: NumericState(hist=[0] * (len(e) + 1)) for c, e in spec.numeric.items()},
                   categories={c: {} for c in spec.categorical})

    def update(self, frame: pd.DataFrame) -> Summary:
        """Fold a batch in (in place; returns self)."""
        self.count += len(frame)
        for col, edges in self.spec.numeric.items():
            values = _numeric(frame, col)
            st = self.numeric[col]
            finite = values[np.isfinite(values)]
            st.nulls += int(values.size - finite.size)
            if finite.size:
                st.n += int(finite.size)
                st.total += float(finite.sum())
                st.total_sq += float(np.square(finite).sum())
                st.min, st.max = min(st.min, float(finite.min())), max(st.max, float(finite.max()))
                idx = np.searchsorted(np.asarray(edges, dtype=float), finite, side="right")
                counts = np.bincount(idx, minlength=len(edges) + 1)
                st.hist = [a + int(b) for a, b in zip(st.hist, counts, strict=True)]
        for col in self.spec.categorical:
            if col not in frame or not len(frame):
                continue
            counts = self.categories[col]
            for value, n in frame[col].astype("string").value_counts(dropna=False).items():
                key = "<null>" if value is None or value is np.nan or str(value) == "<NA>" else str(value)
                counts[key] = counts.get(key, 0) + int(n)
        return self

    def merge(self, other: Summary) -> Summary:
        """A new summary of both inputs (same spec)."""
        if other.spec != self.spec:
            raise ValueError("cannot merge summaries built from different specs")
        cats = {c: dict(v) for c, v in self.categories.items()}
        for c, v in other.categories.items():
            for k, n in v.items():
                cats.setdefault(c, {})[k] = cats.get(c, {}).get(k, 0) + n
        return Summary(self.spec, self.count + other.count,
                       {c: self.numeric[c].merge(other.numeric[c]) for c in self.numeric}, cats)

    def quantile(self, col: str, q: float) -> float:
        """Approximate quantile from the fixed-edge histogram (linear within a bin; exact min/max ends)."""
        st, edges = self.numeric[col], self.spec.numeric[col]
        if st.n == 0:
            return math.nan
        bounds = [st.min, *edges, st.max]
        target, seen = q * st.n, 0.0
        for i, c in enumerate(st.hist):
            if c and seen + c >= target:
                lo, hi = max(bounds[i], st.min), min(bounds[i + 1], st.max)
                return float(lo + (hi - lo) * (target - seen) / c) if hi > lo else float(lo)
            seen += c
        return float(st.max)

    def metrics(self) -> dict[str, float]:
        """``records``; per numeric column ``mean/<c>``, ``std/<c>``, ``p50|p90|p99/<c>``, ``max/<c>``,
        ``null_rate/<c>``; per 0/1 column ``rate/<c>``; per categorical column ``share/<c>/<value>``
        for the reference's top values plus ``share/<c>/_other`` and ``distinct/<c>``."""
        out: dict[str, float] = {"records": float(self.count)}
        for col, st in self.numeric.items():
            mean = st.total / st.n if st.n else math.nan
            if col in self.spec.rates:
                out[f"rate/{col}"] = mean
            else:
                var = max(st.total_sq / st.n - mean * mean, 0.0) if st.n else math.nan
                out[f"mean/{col}"] = mean
                out[f"std/{col}"] = math.sqrt(var * st.n / (st.n - 1)) if st.n > 1 else math.nan
                for q in QUANTILES:
                    out[f"p{round(q * 100)}/{col}"] = self.quantile(col, q)
                out[f"max/{col}"] = st.max if st.n else math.nan
            out[f"null_rate/{col}"] = st.nulls / self.count if self.count else math.nan
        for col, top in self.spec.categorical.items():
            counts = self.categories.get(col, {})
            total = sum(counts.values())
            for value in top:
                out[f"share/{col}/{value}"] = counts.get(value, 0) / total if total else math.nan
            other = sum(n for k, n in counts.items() if k not in top)
            out[f"share/{col}/_other"] = other / total if total else math.nan
            out[f"distinct/{col}"] = float(len(counts))
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"spec": self.spec.to_dict(), "count": self.count,
                "numeric": {c: vars(s) | {"min": _jsonable(s.min), "max": _jsonable(s.max)}
                            for c, s in self.numeric.items()},
                "categories": self.categories}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Summary:
        sp = data["spec"]
        spec = SummarySpec(numeric={k: tuple(v) for k, v in sp["numeric"].items()}, rates=tuple(sp["rates"]),
                           categorical={k: tuple(v) for k, v in sp["categorical"].items()})
        numeric = {c: NumericState(**{**s, "min": _float(s["min"]), "max": _float(s["max"])})
                   for c, s in data["numeric"].items()}
        return cls(spec, int(data["count"]), numeric, {c: dict(v) for c, v in data["categories"].items()})


def _jsonable(x: float) -> float | str:
    return x if math.isfinite(x) else ("inf" if x > 0 else "-inf")


def _float(x: float | str) -> float:
    return float(x)


def summarize(frame: pd.DataFrame, spec: SummarySpec) -> Summary:
    return Summary.zero(spec).update(frame)

"""Mergeable summaries of a window (or of one partition of it): the ``zero`` / ``update`` / ``merge`` pattern.

A ``Summary`` holds what a window's metrics are computed from — counts, sums, sums of squares, min/max,
null counts, category counts and fixed-edge histograms whose edges are fitted once on the reference
(``SummarySpec.fit``) — plus a bounded, seeded ``Reservoir`` of raw rows for the statistics that need raw
values (evidently's drift tests). ``update`` folds a batch in, ``merge`` adds two summaries, so the same
code summarises one partition at a time (a file, a Parquet fragment; Spark ``mapInPandas``) and the
partial summaries merge into the window's: counts and rates are exact whatever the partitioning
(whylogs' profile idea). ``to_dict`` / ``from_dict`` ship a summary between processes as JSON;
``metrics()`` is the flat ``{name: value}`` dict that goes to MLflow (names in its docstring).

The reservoir is a *bottom-k* sample: every row gets a key from a seeded hash of its identity (request id,
timestamp, arrival position), and the ``size`` rows with the smallest keys are kept. The sample of a merge
is the sample of the union, so it does not depend on how the window was partitioned. While a window has at
most ``size`` rows (default ``SAMPLE_ROWS`` = 50,000) the sample **is** the window, in the window's row
order (timestamp, then arrival), so evidently sees exactly the rows it would see on the raw frame; above
that, drift is computed on a seeded sample of ``size`` rows (same seed, same rows).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from evalmon.monitor.contracts import ARRIVAL, REQUEST_ID, TIMESTAMP

if TYPE_CHECKING:
    import pandas as pd

HIST_BINS = 32  # interior bins (plus one underflow and one overflow bin)
TOP_CATEGORIES = 10  # category shares logged per categorical column (most frequent in the reference)
QUANTILES = (0.5, 0.9, 0.99)
SAMPLE_ROWS = 50_000  # reservoir rows per summary: a window up to this size is sampled whole
_KEY, _SEQ = "__evalmon_key", "__evalmon_seq"  # reservoir bookkeeping columns
_IDENTITY = (REQUEST_ID, TIMESTAMP, ARRIVAL)  # what a row's sampling key is hashed from (those present)


def is_signal_column(col: str) -> bool:
    """Signal columns are named ``<signal>.<name>``; canonical record columns have no dot."""
    return "." in col


def _is_binary(values: np.ndarray) -> bool:
    v = values[~np.isnan(values)]
    return v.size > 0 and bool(np.isin(v, (0.0, 1.0)).all())


def _numeric(frame: pd.DataFrame, col: str) -> np.ndarray:
    import pandas as pd

    if col not in frame:
        return np.full(len(frame), np.nan)
    return pd.to_numeric(frame[col], errors="coerce").to_numpy(dtype=float, na_value=np.nan)


@dataclass(frozen=True)
class SummarySpec:
    """Which columns a summary covers, the histogram edges (fitted on the reference) and the reservoir:
    which columns its rows keep (``sample``; none = no reservoir), how many rows and the seed."""

    numeric: dict[str, tuple[float, ...]]  # column → interior histogram edges (ascending, unique)
    rates: tuple[str, ...] = ()  # 0/1 columns: their mean is logged as ``rate/<col>``
    categorical: dict[str, tuple[str, ...]] = field(default_factory=dict)  # column → top reference values
    sample: tuple[str, ...] = ()
    sample_size: int = SAMPLE_ROWS
    seed: int = 0

    @classmethod
    def fit(cls, reference: pd.DataFrame, numeric: Sequence[str], categorical: Sequence[str] = (),
            bins: int = HIST_BINS, *, sample: Sequence[str] = (), sample_size: int = SAMPLE_ROWS,
            seed: int = 0) -> SummarySpec:
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
        return cls(numeric=edges, rates=tuple(rates), categorical=cats, sample=tuple(sample),
                   sample_size=sample_size, seed=seed)

    def to_dict(self) -> dict[str, Any]:
        return {"numeric": {k: list(v) for k, v in self.numeric.items()}, "rates": list(self.rates),
                "categorical": {k: list(v) for k, v in self.categorical.items()}, "sample": list(self.sample),
                "sample_size": self.sample_size, "seed": self.seed}

    @classmethod
    def from_dict(cls, sp: dict[str, Any]) -> SummarySpec:
        return cls(numeric={k: tuple(v) for k, v in sp["numeric"].items()}, rates=tuple(sp["rates"]),
                   categorical={k: tuple(v) for k, v in sp["categorical"].items()},
                   sample=tuple(sp.get("sample", ())), sample_size=int(sp.get("sample_size", SAMPLE_ROWS)),
                   seed=int(sp.get("seed", 0)))


# --------------------------------------------------------------------------- reservoir


def _mix(h: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: spreads hash bits so a seed reorders every key."""
    with np.errstate(over="ignore"):
        h = (h ^ (h >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        h = (h ^ (h >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return h ^ (h >> np.uint64(31))


def _seed_word(seed: int) -> np.uint64:
    return np.uint64(int.from_bytes(hashlib.blake2b(str(seed).encode(), digest_size=8).digest(), "little"))


def row_keys(frame: pd.DataFrame, seed: int, first_seq: int = 0) -> np.ndarray:
    """A seeded uint64 sampling key per row, from the row's identity columns (request id, timestamp,
    arrival: those present); a frame without them is keyed by position (``first_seq`` + row)."""
    import pandas as pd

    cols = [c for c in _IDENTITY if c in frame.columns]
    if cols:
        ident = frame[cols].copy()
        for c in cols:
            if ident[c].dtype == object:  # ids may be None or non-strings: hash their text
                ident[c] = ident[c].map(lambda v: "" if v is None else str(v))
        h = pd.util.hash_pandas_object(ident, index=False).to_numpy(dtype=np.uint64)
    else:
        h = np.arange(first_seq, first_seq + len(frame), dtype=np.uint64)
    return _mix(h ^ _seed_word(seed))


class Reservoir:
    """A bounded, seeded, mergeable sample of rows (bottom-k by ``row_keys``); see the module docstring.

    Folded-in rows wait in a list and are compacted (concatenated, cut to the ``size`` smallest keys) when
    they reach ``size`` rows or when ``rows`` is read: each row is copied O(1) times instead of once per
    ``update``/``merge`` (a 1M-row basis folded 4k rows at a time was re-concatenated 250 times). The sample
    is the same either way: the bottom-``size`` rows by (key, sequence number) of everything folded in."""

    def __init__(self, columns: tuple[str, ...], size: int = SAMPLE_ROWS, seed: int = 0, seen: int = 0,
                 rows: pd.DataFrame | None = None) -> None:
        self.columns, self.size, self.seed, self.seen = columns, size, seed, seen
        self._rows = rows  # ≤ size rows: columns + ordering columns + key + sequence number
        self._pending: list[pd.DataFrame] = []
        self._pending_rows = 0

    @property
    def rows(self) -> pd.DataFrame | None:
        """The sampled rows (compacted), in no particular order (``frame()`` orders them)."""
        self._settle()
        return self._rows

    def __getstate__(self) -> dict[str, Any]:  # ship compacted rows between processes
        self._settle()
        return dict(self.__dict__)

    @staticmethod
    def _order_cols(frame: pd.DataFrame) -> list[str]:
        return [c for c in (TIMESTAMP, ARRIVAL) if c in frame.columns]

    def update(self, frame: pd.DataFrame, below: int | None = None) -> Reservoir:
        """Fold a batch of rows in (in place; returns self). ``below``: the ``bound`` of a reservoir of rows
        that come *before* these (a Spark fit job's earlier cells): rows keyed at or above it are dropped
        here, since they cannot get into the merge of the two — it holds the same rows either way."""
        if not self.columns or not len(frame):
            self.seen += len(frame)
            return self
        keys = row_keys(frame, self.seed, self.seen)
        seq = np.arange(self.seen, self.seen + len(frame))
        self.seen += len(frame)
        if below is not None:  # keys and sequence numbers first: they do not depend on which rows are kept
            fits = keys < np.uint64(below)
            frame, keys, seq = frame[fits], keys[fits], seq[fits]
            if not len(frame):
                return self
        keep = list(dict.fromkeys([*(c for c in self.columns if c in frame.columns), *self._order_cols(frame)]))
        self._absorb(frame[keep].assign(**{_KEY: keys, _SEQ: seq}))
        return self

    @property
    def bound(self) -> int | None:
        """The largest key kept once the reservoir is full (``None`` before): a row folded in or merged in
        later gets in only with a smaller key (later rows lose ties: larger sequence numbers)."""
        rows = self.rows
        if rows is None or len(rows) < self.size or not self.size:
            return None
        return int(rows[_KEY].max())

    def _absorb(self, part: pd.DataFrame) -> None:
        if self._rows is not None and len(self._rows) >= self.size:  # only rows that could still get in
            part = part[part[_KEY].to_numpy() < self._rows[_KEY].max()]
        if self._rows is None and not self._pending:
            self._rows = part.reset_index(drop=True) if len(part) > self.size else part
            if len(part) > self.size:
                self._settle(force=True)
            return
        if len(part):
            self._pending.append(part)
            self._pending_rows += len(part)
        if self._pending_rows >= self.size:
            self._settle()

    def _settle(self, force: bool = False) -> None:
        """Concatenate the waiting rows into ``_rows`` and keep the ``size`` smallest (key, sequence)."""
        import pandas as pd

        if not self._pending and not force:
            return
        frames = ([] if self._rows is None else [self._rows]) + self._pending
        rows = frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)
        self._pending, self._pending_rows = [], 0
        if len(rows) > self.size:
            rows = rows.sort_values([_KEY, _SEQ], kind="stable").iloc[:self.size]
        self._rows = rows.reset_index(drop=True)

    def merge(self, other: Reservoir) -> Reservoir:
        """A new reservoir of both inputs' rows (``other``'s come after this one's)."""
        if (other.columns, other.size, other.seed) != (self.columns, self.size, self.seed):
            raise ValueError("cannot merge reservoirs with different columns, sizes or seeds")
        out = Reservoir(self.columns, self.size, self.seed, self.seen, self._rows)
        out._pending, out._pending_rows = list(self._pending), self._pending_rows  # compacted later, once
        theirs = other.rows
        if theirs is not None:
            out._absorb(theirs.assign(**{_SEQ: theirs[_SEQ] + self.seen}))
        out.seen = self.seen + other.seen
        return out

    def frame(self) -> pd.DataFrame:
        """The sampled rows in the data's order (timestamp, arrival, then as folded in), index 0..n-1."""
        import pandas as pd

        if self.rows is None:
            return pd.DataFrame({c: pd.Series(dtype=object) for c in self.columns})
        order = [*self._order_cols(self.rows), _SEQ]
        rows = self.rows.sort_values(order, kind="stable")
        return rows.drop(columns=[c for c in rows.columns if c not in self.columns]).reset_index(drop=True)

    @property
    def complete(self) -> bool:
        """Whether the sample holds every row folded in."""
        return self.seen <= self.size

    def to_dict(self) -> dict[str, Any]:
        rows = None
        if self.rows is not None:
            rows = {c: [_jsonable_cell(v) for v in self.rows[c].tolist()] for c in self.rows.columns
                    if c not in (_KEY, TIMESTAMP)}
            rows[_KEY] = [str(int(k)) for k in self.rows[_KEY].tolist()]  # uint64 does not fit a JSON double
            if TIMESTAMP in self.rows.columns:
                rows[TIMESTAMP] = [None if v is None or v != v else v.isoformat() for v in self.rows[TIMESTAMP]]
        return {"columns": list(self.columns), "size": self.size, "seed": self.seed, "seen": self.seen, "rows": rows}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Reservoir:
        import pandas as pd

        rows = None
        if data.get("rows") is not None:
            raw = dict(data["rows"])
            raw[_KEY] = np.array([int(k) for k in raw[_KEY]], dtype=np.uint64)
            if TIMESTAMP in raw:
                raw[TIMESTAMP] = pd.to_datetime(raw[TIMESTAMP], utc=True)
            rows = pd.DataFrame(raw)
        return cls(tuple(data["columns"]), int(data["size"]), int(data["seed"]), int(data["seen"]), rows)


def _jsonable_cell(v: Any) -> Any:
    if hasattr(v, "isoformat"):
        return v.isoformat()
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None if math.isnan(v) else ("inf" if v > 0 else "-inf")
    return v


# --------------------------------------------------------------------------- summary


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
    sample: Reservoir | None = None  # raw rows of ``spec.sample`` (bounded; see the module docstring)

    @classmethod
    def zero(cls, spec: SummarySpec) -> Summary:
        return cls(spec=spec, numeric={c: NumericState(hist=[0] * (len(e) + 1)) for c, e in spec.numeric.items()},
                   categories={c: {} for c in spec.categorical},
                   sample=Reservoir(spec.sample, spec.sample_size, spec.seed))

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
        if self.sample is None:
            self.sample = Reservoir(self.spec.sample, self.spec.sample_size, self.spec.seed, seen=self.count - len(frame))
        self.sample.update(frame)
        return self

    def merge(self, other: Summary) -> Summary:
        """A new summary of both inputs (same spec)."""
        if other.spec != self.spec:
            raise ValueError("cannot merge summaries built from different specs")
        cats = {c: dict(v) for c, v in self.categories.items()}
        for c, v in other.categories.items():
            for k, n in v.items():
                cats.setdefault(c, {})[k] = cats.get(c, {}).get(k, 0) + n
        empty = Reservoir(self.spec.sample, self.spec.sample_size, self.spec.seed)
        sample = (self.sample or empty).merge(other.sample or empty)
        return Summary(self.spec, self.count + other.count,
                       {c: self.numeric[c].merge(other.numeric[c]) for c in self.numeric}, cats, sample)

    def rows(self) -> pd.DataFrame:
        """The reservoir's rows (the whole window while it has at most ``spec.sample_size`` rows)."""
        return (self.sample or Reservoir(self.spec.sample, self.spec.sample_size, self.spec.seed)).frame()

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
        ``null_rate/<c>``; per signal column (``<signal>.<name>``) ``coverage/<c>``: the share of records the
        signal could score (a NaN output = not scored); per 0/1 column ``rate/<c>``; per categorical column ``share/<c>/<value>``
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
            if is_signal_column(col):  # from n and count, so it merges exactly like every other metric
                out[f"coverage/{col}"] = st.n / self.count if self.count else math.nan
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
                "categories": self.categories, "sample": None if self.sample is None else self.sample.to_dict()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Summary:
        numeric = {c: NumericState(**{**s, "min": float(s["min"]), "max": float(s["max"])})
                   for c, s in data["numeric"].items()}
        sample = Reservoir.from_dict(data["sample"]) if data.get("sample") else None
        return cls(SummarySpec.from_dict(data["spec"]), int(data["count"]), numeric,
                   {c: dict(v) for c, v in data["categories"].items()}, sample)


def _jsonable(x: float) -> float | str:
    return x if math.isfinite(x) else ("inf" if x > 0 else "-inf")


def summarize(frame: pd.DataFrame, spec: SummarySpec) -> Summary:
    return Summary.zero(spec).update(frame)

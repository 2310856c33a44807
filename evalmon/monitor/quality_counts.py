"""The window's quality checks as mergeable counts: what each (window, partition) cell contributes to
``quality.check_quality``'s report, merged on the driver (the Spark executor; the local executor validates
the window's records with great-expectations directly).

Per expectation a cell keeps only counts and a few examples — element, missing and unexpected counts for
``not_null``/``between`` (great-expectations' map expectations: nulls are missing for ``between``), for
``unique`` a 64-bit hash and an arrival-order key per non-null value (the duplicates of a window may lie in
different partitions: exact up to hash collisions, p ≈ n²/2⁶⁵), for ``increasing`` the unexpected steps inside
the cell plus its first and last (arrival, value) so the steps between cells are counted at the merge (cells
hold disjoint arrival ranges: a file's records are contiguous in arrival order). ``report`` rebuilds the
``QualityReport`` great-expectations would give on the merged window: the same counts, percentages,
``mostly`` decisions (great-expectations' ``_mostly_success``) and examples (the first five unexpected values
in arrival order; for ``unique``, values of duplicates that share a cell — a duplicate across cells is shown by
its hash). ``tests/monitor/test_quality_counts.py`` checks them against great-expectations on the same frames.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from evalmon.config.quality import QualityConfig
from evalmon.monitor.contracts import ARRIVAL
from evalmon.monitor.quality import ExpectationResult, QualityReport, quarantined_fraction

if TYPE_CHECKING:
    import pandas as pd

EXAMPLES = 5  # examples kept per expectation (quality.py keeps 5 of great-expectations' 20)
_NOT_NUMERIC = "column values are not numeric: the range check cannot compare them"


@dataclass
class Check:
    """One expectation's mergeable state over some rows (``considered`` = rows it judged)."""

    considered: int = 0
    unexpected: int = 0
    missing: int = 0
    examples: list[tuple[float, Any]] = field(default_factory=list)  # (arrival order, value), first ones
    error: str | None = None

    def merge(self, other: Check) -> Check:
        ex = sorted([*self.examples, *other.examples], key=lambda e: e[0])[:EXAMPLES]
        return Check(self.considered + other.considered, self.unexpected + other.unexpected,
                     self.missing + other.missing, ex, self.error or other.error)


@dataclass
class Uniques:
    """Non-null values of a column as (hash, arrival order); ``values``: text of within-cell duplicates."""

    missing: int = 0
    hashes: np.ndarray = field(default_factory=lambda: np.empty(0, np.uint64))
    order: np.ndarray = field(default_factory=lambda: np.empty(0, float))
    values: dict[int, str] = field(default_factory=dict)

    def merge(self, other: Uniques) -> Uniques:
        return Uniques(self.missing + other.missing, np.concatenate([self.hashes, other.hashes]),
                       np.concatenate([self.order, other.order]), {**self.values, **other.values})

    def check(self) -> Check:
        _, inverse, counts = np.unique(self.hashes, return_inverse=True, return_counts=True)
        dup = counts[inverse] > 1
        first = np.argsort(self.order[dup], kind="stable")[:EXAMPLES]
        ex = [(float(self.order[dup][i]), self.values.get(int(self.hashes[dup][i]),
                                                          f"<hash {int(self.hashes[dup][i]):016x}>")) for i in first]
        return Check(len(self.hashes), int(dup.sum()), self.missing, ex)


@dataclass
class Steps:
    """Values in arrival order: the decreasing steps inside each cell, and each cell's first and last
    (arrival, value) — the steps between cells are counted once all cells are in (``check``)."""

    inside: Check = field(default_factory=Check)
    ends: list[tuple[tuple[float, Any], tuple[float, Any]]] = field(default_factory=list)

    def merge(self, other: Steps) -> Steps:
        return Steps(self.inside.merge(other.inside), [*self.ends, *other.ends])

    def check(self) -> Check:
        out = Check(self.inside.considered, self.inside.unexpected, self.inside.missing, list(self.inside.examples))
        ends = sorted(self.ends, key=lambda e: e[0][0])
        for (_, last), (first, _) in itertools.pairwise(ends):
            if first[1] < last[1]:
                out.unexpected += 1
                out.examples.append(first)
        out.examples = sorted(out.examples, key=lambda e: e[0])[:EXAMPLES]
        return out


@dataclass
class QualityCounts:
    """A mergeable summary of the quality expectations over some of a window's records."""

    rows: int = 0
    columns: frozenset[str] = frozenset()
    checks: dict[str, Check] = field(default_factory=dict)  # not_null.<c>, between.<c>
    uniques: dict[str, Uniques] = field(default_factory=dict)  # unique.<c>
    steps: dict[str, Steps] = field(default_factory=dict)  # increasing.<c>

    def merge(self, other: QualityCounts) -> QualityCounts:
        def join(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
            return {k: a[k].merge(b[k]) if k in a and k in b else a.get(k, b.get(k)) for k in {**a, **b}}

        return QualityCounts(self.rows + other.rows, self.columns | other.columns, join(self.checks, other.checks),
                             join(self.uniques, other.uniques), join(self.steps, other.steps))

    def report(self, cfg: QualityConfig, *, quarantined: int = 0) -> QualityReport:
        """What ``check_quality`` reports on the merged records (same order of expectations)."""
        report = QualityReport(rows=self.rows)
        if not cfg.enabled:
            return report
        present = self.columns
        for col in cfg.required_columns:
            ok = col in present
            report.expectations.append(ExpectationResult(
                f"exists.{col}", "expect_column_to_exist", col, ok, 0 if ok else self.rows, None,
                {} if ok else {"missing_column": col}))
        for col in cfg.not_null:
            if col in present:
                c = self.checks.get(f"not_null.{col}", Check())
                report.expectations.append(_result(f"not_null.{col}", "expect_column_values_to_not_be_null", col,
                                                   c, cfg.not_null_mostly, self.rows, nulls_count=True))
        for col, spec in cfg.ranges.items():
            if col in present:
                report.expectations.append(_result(f"between.{col}", "expect_column_values_to_be_between", col,
                                                   self.checks.get(f"between.{col}", Check()), spec.mostly, self.rows))
        for col in cfg.unique:
            if col in present:
                u = self.uniques.get(f"unique.{col}", Uniques())
                report.expectations.append(_result(f"unique.{col}", "expect_column_values_to_be_unique", col,
                                                   u.check(), cfg.unique_mostly, self.rows))
        if cfg.increasing and cfg.increasing in present:
            s = self.steps.get(f"increasing.{cfg.increasing}", Steps())
            report.expectations.append(_result(f"increasing.{cfg.increasing}", "expect_column_values_to_be_increasing",
                                               cfg.increasing, s.check(), cfg.increasing_mostly, self.rows))
        if cfg.max_quarantined_fraction is not None:
            report.expectations.append(quarantined_fraction(report.rows, quarantined, cfg.max_quarantined_fraction))
        return report


def _result(name: str, kind: str, col: str, c: Check, mostly: float, rows: int, *,
            nulls_count: bool = False) -> ExpectationResult:
    details: dict[str, Any] = {}
    if c.examples:
        details["examples"] = [str(v)[:80] for _, v in c.examples]
    if c.missing:
        details["missing_count"] = c.missing
    if c.error:  # as great-expectations reports it: failed, no count, no details
        return ExpectationResult(name, kind, col, False, 0, None, {})
    considered = rows if nulls_count else c.considered
    pct = 100.0 * c.unexpected / considered if considered else None
    success = True if not considered else (float(considered) - float(c.unexpected)) / float(considered) >= mostly
    return ExpectationResult(name, kind, col, success, c.unexpected, pct, details)


def _order(frame: pd.DataFrame) -> np.ndarray:
    if ARRIVAL in frame.columns:
        return frame[ARRIVAL].to_numpy(dtype=float, na_value=np.nan)
    return np.arange(len(frame), dtype=float)


def quality_counts(records: pd.DataFrame, cfg: QualityConfig) -> QualityCounts:
    """One cell's counts (its records in any order: arrival order is taken from the ``arrival`` column)."""
    import pandas as pd

    out = QualityCounts(rows=len(records), columns=frozenset(map(str, records.columns)))
    if not cfg.enabled:
        return out
    used = [c for c in dict.fromkeys([*cfg.not_null, *cfg.ranges, *cfg.unique, *([cfg.increasing] if cfg.increasing else []),
                                      ARRIVAL]) if c in out.columns]
    frame = records[used]  # only the checked columns are reordered (not the texts)
    frame = frame.sort_values(ARRIVAL, kind="mergesort") if ARRIVAL in frame.columns else frame
    order = _order(frame)
    for col in cfg.not_null:
        if col in out.columns:
            null = frame[col].isna().to_numpy()
            out.checks[f"not_null.{col}"] = Check(len(frame), int(null.sum()), 0,
                                                  [(float(o), None) for o in order[null][:EXAMPLES]])
    for col, spec in cfg.ranges.items():
        if col not in out.columns:
            continue
        s = frame[col]
        if not (pd.api.types.is_numeric_dtype(s) or s.isna().all()):
            out.checks[f"between.{col}"] = Check(error=_NOT_NUMERIC)
            continue
        v = s.to_numpy(dtype=float, na_value=np.nan)
        missing = np.isnan(v)
        bad = ~missing & (((v < spec.min) if spec.min is not None else False)
                          | ((v > spec.max) if spec.max is not None else False))
        first = np.flatnonzero(bad)[:EXAMPLES]  # the column's own values (an int stays an int in the text)
        out.checks[f"between.{col}"] = Check(int((~missing).sum()), int(bad.sum()), int(missing.sum()),
                                             list(zip(order[first].tolist(), s.iloc[first].tolist(), strict=True)))
    for col in cfg.unique:
        if col in out.columns:
            out.uniques[f"unique.{col}"] = _uniques(frame[col], order)
    if cfg.increasing and cfg.increasing in out.columns:
        out.steps[f"increasing.{cfg.increasing}"] = _steps(frame[cfg.increasing], order)
    return out


def _uniques(s: pd.Series, order: np.ndarray) -> Uniques:
    import pandas as pd

    keep = s.notna().to_numpy()
    values = s[keep]
    try:
        hashes = pd.util.hash_pandas_object(values, index=False).to_numpy(dtype=np.uint64)
    except TypeError:  # list/dict cells (never validated): hashed by their text, as quality.py compares them
        values = values.map(lambda v: str(v) if isinstance(v, (list, dict)) else v)
        hashes = pd.util.hash_pandas_object(values, index=False).to_numpy(dtype=np.uint64)
    _, inverse, counts = np.unique(hashes, return_inverse=True, return_counts=True)
    dup = np.flatnonzero(counts[inverse] > 1)[: 4 * EXAMPLES]
    return Uniques(int((~keep).sum()), hashes, order[keep], {int(hashes[i]): values.iloc[i] for i in dup})


def _steps(s: pd.Series, order: np.ndarray) -> Steps:
    keep = s.notna().to_numpy()
    values, at = s[keep], order[keep]
    if not len(values):
        return Steps(Check(0, 0, int((~keep).sum())))
    arr = getattr(values.array, "asi8", None)  # datetimes as int64 (same order; no Timestamp per record)
    arr = values.to_numpy() if arr is None else arr
    down = np.flatnonzero(arr[1:] < arr[:-1]) + 1
    ex = [(float(at[i]), values.iloc[i]) for i in down[:EXAMPLES]]
    return Steps(Check(len(values), len(down), int((~keep).sum()), ex),
                 [((float(at[0]), values.iloc[0]), (float(at[-1]), values.iloc[-1]))])


__all__ = ["Check", "QualityCounts", "Steps", "Uniques", "quality_counts"]

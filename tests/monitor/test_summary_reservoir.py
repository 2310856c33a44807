"""The reservoir's sample is the bottom-``size`` rows by (seeded key, sequence) of everything folded in, however
the rows arrive (many small updates, merge chains, pickling between processes) — the lazy compaction that keeps
a 1M-row basis from being re-concatenated per update must not change which rows are kept or their order."""

from __future__ import annotations

import pickle
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from evalmon.monitor.summary import Reservoir, row_keys

T0 = datetime(2026, 11, 1, tzinfo=UTC)


def _frame(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    ts = pd.to_datetime([T0 + timedelta(seconds=float(s)) for s in np.sort(rng.uniform(0, 3600, n))], utc=True)
    return pd.DataFrame({"request_id": [f"r{i}" for i in range(n)], "timestamp": ts, "arrival": np.arange(n),
                         "x": rng.normal(size=n), "model": rng.choice(["a", "b", None], n)})


def _expected(frame: pd.DataFrame, size: int, seed: int) -> pd.DataFrame:
    """The definition: the ``size`` smallest keys of the whole frame, in the data's order."""
    keys = row_keys(frame, seed)
    keep = np.sort(np.argsort(keys, kind="stable")[:size])
    return frame.iloc[keep][["x", "model"]].reset_index(drop=True)


@pytest.mark.parametrize(("size", "parts"), [(40, 8), (300, 3), (600, 2), (7, 12)])
def test_reservoir_is_the_bottom_k_of_the_union(size: int, parts: int) -> None:
    df = _frame(400, seed=size)
    chunks = np.array_split(np.arange(len(df)), parts)
    by_update = Reservoir(("x", "model"), size=size, seed=3)
    for c in chunks:
        by_update.update(df.iloc[c])
    by_merge = Reservoir(("x", "model"), size=size, seed=3)
    for c in chunks:  # a merge chain (the Spark driver's fit pass), each part shipped through pickle
        part = pickle.loads(pickle.dumps(Reservoir(("x", "model"), size=size, seed=3).update(df.iloc[c])))
        by_merge = by_merge.merge(part)
    want = _expected(df, size, 3)
    for res in (by_update, by_merge, pickle.loads(pickle.dumps(by_update))):
        assert res.seen == len(df) and res.complete == (len(df) <= size)
        pd.testing.assert_frame_equal(res.frame(), want)
        assert res.rows is not None and len(res.rows) == min(size, len(df))


def _fit_pass(cells: list[pd.DataFrame], size: int, per_job: int, prune: bool) -> tuple[Reservoir, int]:
    """The Spark fit pass's driver loop: jobs of ``per_job`` cells, each cell its own reservoir, merged in cell
    order; with ``prune`` a job's cells get the reservoir's bound after the earlier jobs. Returns the merged
    reservoir and the rows the cells shipped."""
    res: Reservoir | None = None
    shipped = 0
    for j in range(0, len(cells), per_job):
        below = None if (res is None or not prune) else res.bound
        for cell in cells[j:j + per_job]:
            r = pickle.loads(pickle.dumps(Reservoir(("x", "model"), size, 5).update(cell, below)))
            shipped += 0 if r.rows is None else len(r.rows)
            res = r if res is None else res.merge(r)
    assert res is not None
    return res, shipped


@pytest.mark.parametrize("identity", [True, False])
@pytest.mark.parametrize(("size", "per_job"), [(150, 2), (40, 3), (500, 4)])
def test_pruning_cells_below_the_bound_keeps_the_same_rows(identity: bool, size: int, per_job: int) -> None:
    """Cells that drop rows keyed at or above the earlier jobs' bound give the same sample (rows, order, seen)
    as cells that ship everything — also with tied keys (position-keyed cells all start at 0) — and ship less."""
    df = _frame(1200, seed=size)
    if not identity:
        df = df.drop(columns=["request_id", "timestamp", "arrival"])
    cells = [df.iloc[c] for c in np.array_split(np.arange(len(df)), 12)]
    whole, shipped_whole = _fit_pass(cells, size, per_job, prune=False)
    pruned, shipped_pruned = _fit_pass(cells, size, per_job, prune=True)
    pd.testing.assert_frame_equal(pruned.frame(), whole.frame())
    assert pruned.seen == whole.seen == len(df)
    if identity:
        pd.testing.assert_frame_equal(pruned.frame(), _expected(df, size, 5))
    if size < 500:  # a bound exists after the first job: later cells ship only rows that can still get in
        assert shipped_pruned < shipped_whole * 0.8


def test_bound_is_the_largest_kept_key_once_full() -> None:
    df = _frame(100)
    r = Reservoir(("x",), size=30, seed=1)
    assert r.update(df.iloc[:20]).bound is None  # not full: any row can get in
    r.update(df.iloc[20:])
    assert r.bound == int(np.sort(row_keys(df, 1))[29])
    assert r.update(df.iloc[:0], below=0).seen == 100

"""Quality as mergeable counts (the Spark executor's path) gives great-expectations' report on the whole window:
each partition's counts merged in any order equal ``check_quality`` on the concatenated records."""

from __future__ import annotations

import pickle
import random

import numpy as np
import pandas as pd
import pytest

from evalmon.monitor.contracts import ARRIVAL
from evalmon.monitor.quality import QualityConfig, QualityReport, RangeSpec, check_quality
from evalmon.monitor.quality_counts import QualityCounts, quality_counts

pytestmark = pytest.mark.accuracy  # great-expectations is the reference (its import alone takes seconds)


def window(n: int = 300) -> pd.DataFrame:
    rng = np.random.default_rng(1)
    ts = pd.date_range("2026-11-01", periods=n, freq="7s", tz="UTC")
    f = pd.DataFrame({"request_id": [f"r{i}" for i in range(n)], "timestamp": ts, "model": "m",
                      "prompt": [f"p{i}" for i in range(n)], "response": [f"a{i}" for i in range(n)],
                      "latency_ms": rng.lognormal(5, 0.3, n), "input_tokens": rng.integers(1, 50, n),
                      "output_tokens": rng.integers(0, 90, n).astype(float), ARRIVAL: np.arange(n, dtype=float)})
    f.loc[[3, 150, 151], "prompt"] = None
    f.loc[[4], "response"] = None
    f.loc[[5, 160], "latency_ms"] = -12.5
    f.loc[[6, 7], "latency_ms"] = np.nan
    f.loc[[8, 280], "input_tokens"] = -1
    f.loc[9, "output_tokens"] = np.nan
    f.loc[20, "request_id"] = "r19"  # a duplicate inside one partition
    f.loc[250, "request_id"] = "r30"  # and one across partitions
    f.loc[[40, 41], "request_id"] = None
    f.loc[70, ARRIVAL] = 140.5  # logged late: out of order inside a partition …
    f.loc[99, ARRIVAL] = 100.5  # … and across the boundary of two partitions (100 starts the next one)
    return f


def parts(frame: pd.DataFrame, k: int) -> list[pd.DataFrame]:
    """Contiguous arrival ranges (as files are), each in time order (as a partition's read is)."""
    by_arrival = frame.sort_values(ARRIVAL, kind="mergesort")
    return [p.sort_values("timestamp", kind="mergesort") for p in np.array_split(by_arrival, k)]


def merged(frame: pd.DataFrame, cfg: QualityConfig, k: int, seed: int) -> QualityCounts:
    cells = [pickle.loads(pickle.dumps(quality_counts(p, cfg))) for p in parts(frame, k)]  # shipped as bytes
    random.Random(seed).shuffle(cells)  # merge order does not matter
    out = QualityCounts()
    for c in cells:
        out = out.merge(c)
    return out


def same(got: QualityReport, want: QualityReport, *, cross_cell: bool) -> None:
    """Equal reports (percentages to float precision). ``cross_cell``: the request-id duplicate across cells
    is shown by its hash (the first two examples, a duplicate inside a cell, are values)."""
    g_all, w_all = got.to_dict(), want.to_dict()
    assert {k: v for k, v in g_all.items() if k != "expectations"} == {
        k: v for k, v in w_all.items() if k != "expectations"}
    assert [e["name"] for e in g_all["expectations"]] == [e["name"] for e in w_all["expectations"]]
    for g, w in zip(g_all["expectations"], w_all["expectations"], strict=True):
        if g["name"] == "unique.request_id" and cross_cell and w["details"].get("examples"):
            assert g["details"]["examples"][:2] == w["details"]["examples"][:2]
            assert sum(x.startswith("<hash ") for x in g["details"]["examples"]) == 2
            g["details"].pop("examples"), w["details"].pop("examples")
        gp, wp = g.pop("unexpected_percent"), w.pop("unexpected_percent")
        assert (gp is None) == (wp is None) and (gp is None or gp == pytest.approx(wp, rel=1e-12)), g["name"]
        assert g == w


@pytest.mark.parametrize("k", [1, 3, 7])
def test_merged_counts_equal_great_expectations(k: int) -> None:
    f = window()
    cfgs = [QualityConfig(max_quarantined_fraction=0.01),
            QualityConfig(not_null_mostly=0.98, unique_mostly=0.99, increasing_mostly=0.99,
                          ranges={"latency_ms": RangeSpec(min=0, max=400, mostly=0.9),
                                  "input_tokens": RangeSpec(min=0, mostly=0.995)})]
    for cfg in cfgs:
        same(merged(f, cfg, k, seed=k).report(cfg, quarantined=4), check_quality(f, cfg, quarantined=4),
             cross_cell=k > 1)
    assert not check_quality(f, cfgs[0]).success  # the frame does exercise every failure


def test_missing_columns_empty_windows_and_non_numeric_ranges() -> None:
    f = window().drop(columns=["response"])
    cfg = QualityConfig()
    same(merged(f, cfg, 3, 0).report(cfg), check_quality(f, cfg), cross_cell=True)
    empty = window().iloc[:0]
    same(merged(empty, cfg, 2, 0).report(cfg), check_quality(empty, cfg), cross_cell=False)
    text = window().assign(latency_ms="fast")
    got = {e.name: e for e in merged(text, cfg, 2, 0).report(cfg).expectations}
    want = {e.name: e for e in check_quality(text, cfg).expectations}
    assert got["between.latency_ms"] == want["between.latency_ms"] and not want["between.latency_ms"].success

"""The monitor pipeline over (window, partition): mergeable summaries, windowed source reads, the local
executor's bounded memory and the all-quarantined stop (no evidently/MLflow server: fast)."""

from __future__ import annotations

import gzip
import itertools
import json
import math
import random
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from evalmon.config.monitor import load_monitor_text
from evalmon.core.errors import DataError
from evalmon.monitor.runner import run_monitor
from evalmon.monitor.schedule import WatermarkStore
from evalmon.monitor.sources import build_source, spill
from evalmon.monitor.sources.base import partitions_of, read_partition
from evalmon.monitor.summary import Reservoir, Summary, SummarySpec, summarize

T0 = datetime(2026, 11, 1, tzinfo=UTC)
HOUR = timedelta(hours=1)


def _frame(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    lat = rng.lognormal(4.5, 0.4, n)
    lat[::17] = np.nan
    ts = pd.to_datetime(T0, utc=True) + pd.to_timedelta(np.sort(rng.uniform(0, 3600, n)), unit="s")
    return pd.DataFrame({"request_id": [f"r{i}" for i in range(n)], "timestamp": ts, "arrival": np.arange(n),
                         "latency_ms": lat, "pii.any": (rng.random(n) < 0.2).astype(float),
                         "model": rng.choice(["a", "b", "c", None], n)})


def _spec(frame: pd.DataFrame, sample_size: int) -> SummarySpec:
    return SummarySpec.fit(frame, ["latency_ms", "pii.any"], ["model"], sample=("latency_ms", "model"),
                           sample_size=sample_size, seed=3)


@pytest.mark.parametrize("sample_size", [10_000, 40])  # the whole window / a seeded sample of it
def test_summary_merge_equals_the_summary_of_the_concatenation(sample_size: int) -> None:
    df = _frame(300)
    spec = _spec(_frame(500, seed=1), sample_size)
    whole = summarize(df, spec)
    rng = np.random.default_rng(5)
    cut = np.sort(rng.choice(np.arange(1, len(df)), 2, replace=False))
    shuffled = df.sample(frac=1, random_state=2)  # partitions need not be contiguous in time
    parts = [summarize(shuffled.iloc[a:b], spec) for a, b in itertools.pairwise([0, *cut, len(df)])]
    merged = parts[2].merge(parts[0]).merge(parts[1])
    assert merged.count == whole.count == len(df)
    for col, st in whole.numeric.items():  # counts, histograms, min/max exact; sums up to float rounding
        got = merged.numeric[col]
        assert (got.n, got.nulls, got.hist, got.min, got.max) == (st.n, st.nulls, st.hist, st.min, st.max), col
        assert got.total == pytest.approx(st.total, rel=1e-12)
    assert merged.categories == whole.categories
    a, b = whole.metrics(), merged.metrics()
    assert a.keys() == b.keys()
    for k in a:
        exact = k.startswith(("records", "rate/", "share/", "distinct/", "null_rate/", "p50/", "p90/", "p99/", "max/"))
        assert (math.isnan(a[k]) and math.isnan(b[k])) or (a[k] == b[k] if exact else a[k] == pytest.approx(b[k])), k
    rows, merged_rows = whole.rows(), merged.rows()
    pd.testing.assert_frame_equal(merged_rows, rows)  # the same sample whatever the partitioning
    if sample_size >= len(df):  # the sample is the window itself, in its order
        pd.testing.assert_frame_equal(rows, df[["latency_ms", "model"]].reset_index(drop=True))
    else:
        assert len(rows) == sample_size and set(rows.index) == set(range(sample_size))
        assert not whole.sample.complete  # type: ignore[union-attr]
        other = summarize(df, SummarySpec.fit(df, ["latency_ms"], sample=("latency_ms", "model"), sample_size=40,
                                               seed=4))
        assert not other.rows()["latency_ms"].equals(rows["latency_ms"])  # another seed, another sample
    again = Summary.from_dict(json.loads(json.dumps(merged.to_dict())))
    assert again.metrics() == pytest.approx(b, nan_ok=True) and again.count == merged.count
    assert list(again.rows()["model"]) == list(merged_rows["model"])


def test_reservoir_merge_order_and_mismatch() -> None:
    plain = pd.DataFrame({"x": [3.0, 1.0, 2.0]})  # no identity columns: kept in the order folded in
    r = Reservoir(("x",), size=10).update(plain.iloc[:2]).merge(Reservoir(("x",), size=10).update(plain.iloc[2:]))
    assert list(r.frame()["x"]) == [3.0, 1.0, 2.0] and r.seen == 3 and r.complete
    with pytest.raises(ValueError, match="different"):
        r.merge(Reservoir(("x",), size=5))


# --------------------------------------------------------------------------- windowed source reads


def _messy_rows(n: int, seed: int) -> list[Any]:
    rnd = random.Random(seed)
    rows: list[Any] = []
    for i in range(n):
        t = T0 + timedelta(minutes=rnd.uniform(0, 300))
        r: Any = {"request_id": f"r{i}", "timestamp": t.isoformat(), "prompt": f"p{i}", "response": f"a{i}",
                  "latency_ms": round(rnd.random() * 100, 3)}
        k = rnd.random()
        if k < 0.05:
            r = '{"broken'
        elif k < 0.1:
            r.pop("timestamp")
        elif k < 0.13:
            r["timestamp"] = "garbage"
        elif k < 0.16:
            r.pop("response")
        rows.append(r)
    return rows


def _write(path: Path, rows: list[Any]) -> None:
    text = "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows)
    path.write_bytes(gzip.compress(text.encode())) if path.suffix == ".gz" else path.write_text(text)


def test_windowed_file_reads_equal_whole_reads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(spill, "CHUNK_RECORDS", 7)  # many chunks per file
    import evalmon.monitor.sources.files as files

    monkeypatch.setattr(files, "CHUNK_RECORDS", 7)
    rows = _messy_rows(150, seed=1)
    (tmp_path / "d").mkdir()
    _write(tmp_path / "d" / "a.jsonl", ['{"nope', *rows[:60]])  # an unparseable first line: placed by the next
    _write(tmp_path / "d" / "b.jsonl.gz", rows[60:100])
    _write(tmp_path / "d" / "c.jsonl", rows[100:])
    pd.DataFrame([r for r in rows if isinstance(r, dict)]).to_csv(tmp_path / "t.csv", index=False)
    for cfg in ({"kind": "jsonl", "path": str(tmp_path / "d")}, {"kind": "csv", "path": str(tmp_path / "t.csv")}):
        src = build_source(cfg)
        bounds = [T0 + h * HOUR for h in range(-1, 7)]
        for lo, hi in [(None, None), *itertools.pairwise(bounds)]:
            whole = src.read(lo, hi)
            parts = [read_partition(src, p, lo, hi) for p in partitions_of(src, lo, hi)]
            frames = [b.frame for b in parts if len(b.frame)]
            got = (pd.concat(frames, ignore_index=True).sort_values(["timestamp", "arrival"], kind="mergesort")
                   .reset_index(drop=True) if frames else whole.frame.iloc[:0])
            pd.testing.assert_frame_equal(got, whole.frame, check_dtype=False, obj=f"{cfg['kind']} {lo}")

            def quarantined(batches: list[Any]) -> list[tuple[str, ...]]:
                return sorted((q.source, q.location, q.reason, str(t)) for b in batches
                              for q, t in zip(b.quarantined, b.placed_times(), strict=True))

            assert quarantined(parts) == quarantined([whole]), (cfg["kind"], lo)
        first = src.read().frame["timestamp"].min()
        assert src.earliest(T0 + 10 * HOUR) == first.floor("us").to_pydatetime()  # from the index, no read
        assert src.earliest(first.to_pydatetime()) is None


def test_windowed_parquet_and_sql_reads_equal_whole_reads(tmp_path: Path, benchmarks_dir: Path) -> None:
    from evalmon.traffic.synth import SynthConfig, synthesize

    start = "2026-11-01T21:00Z"  # 6 h over two UTC days: two parquet partitions
    for fmt, name in (("parquet", "pq"), ("sqlite", "t.db")):
        synthesize(SynthConfig(out=tmp_path / name, start=start, hours=6, rate_per_hour=30, seed=2, format=fmt,
                               data_dir=benchmarks_dir))
    pq = build_source({"kind": "parquet", "path": str(tmp_path / "pq")})
    sql = build_source({"kind": "sql", "url": f"sqlite:///{tmp_path / 't.db'}", "table": "traffic"})
    bounds = [pd.Timestamp(start) + h * HOUR for h in range(7)]
    for src in (pq, sql):
        for lo, hi in [(None, None), *itertools.pairwise(bounds)]:
            whole = src.read(lo, hi).frame
            frames = [read_partition(src, p, lo, hi).frame for p in partitions_of(src, lo, hi)]
            got = pd.concat(frames, ignore_index=True).sort_values(["timestamp", "arrival"], kind="mergesort")
            cols = [c for c in whole.columns if c != "arrival"]  # arrival: the same order, other numbers
            pd.testing.assert_frame_equal(got[cols].reset_index(drop=True), whole[cols].reset_index(drop=True))
    assert len(partitions_of(pq, bounds[0], bounds[1])) == 2 and len(partitions_of(pq, None, None)) == 2  # ±1 day
    far = pd.Timestamp("2026-11-05T00:00Z")
    assert partitions_of(pq, far, far + HOUR) == []  # partition pruning (sources.parquet.partition_days)


# --------------------------------------------------------------------------- the executor


def _traffic(path: Path, hours: int, *, seed: int = 0, files: int = 1) -> pd.DataFrame:
    """JSON lines, hour h with 20 + 15·(h mod 3) records; ``files`` > 1 splits them (arrival order) so
    every window spans several files."""
    rng = np.random.default_rng(seed)
    rows = []
    for h in range(hours):
        n = 20 + 15 * (h % 3)
        for s in np.sort(rng.uniform(0, 3600, n)):
            i = len(rows)
            rows.append({"request_id": f"r{i}", "timestamp": (T0 + h * HOUR + timedelta(seconds=float(s))).isoformat(),
                         "model": str(rng.choice(["m1", "m2"])), "prompt": f"question {i} " * int(rng.integers(1, 6)),
                         "response": "I cannot help." if rng.random() < 0.1 else f"answer {i}",
                         "latency_ms": float(rng.lognormal(5, 0.3)), "input_tokens": int(rng.integers(5, 50))})
    if files == 1:
        _write(path, rows)
    else:
        path.mkdir()
        for k, chunk in enumerate(np.array_split(np.arange(len(rows)), files)):
            _write(path / f"part-{k}.jsonl", [rows[i] for i in chunk])
    return pd.DataFrame(rows)


def _config(tmp_path: Path, source: str, *, name: str = "m", window: str = "", extra: str = "") -> Any:
    return load_monitor_text(textwrap.dedent(f"""\
        name: {name}
        source: {{kind: jsonl, path: {source}}}
        window: {{size: 1h{', ' + window if window else ''}}}
        signals: [{{name: text, language: false}}, usage, {{name: refusal, classifier: false}}]
        drift: {{text_drift: false, html: false}}
        tracking: {{enabled: false}}
        output_dir: out-{name}
        """) + extra, "m.yaml", base_dir=tmp_path)


@pytest.mark.e2e  # over 2 s in the unit lane (make test-fast budget)
def test_a_window_in_three_partitions_gives_the_same_metrics_as_in_one(tmp_path: Path) -> None:
    _traffic(tmp_path / "one.jsonl", 4)
    _traffic(tmp_path / "three", 4, files=3)
    span = (T0, T0 + 4 * HOUR)
    one = run_monitor(_config(tmp_path, "one.jsonl", name="one"), backfill=span, now=T0 + 5 * HOUR)
    three = run_monitor(_config(tmp_path, "three", name="three"), backfill=span, now=T0 + 5 * HOUR)
    assert three.stats is not None and one.stats is not None
    assert three.stats.partitions_read > one.stats.partitions_read  # windows really were read in pieces
    assert [o.records for o in one.windows] == [o.records for o in three.windows] == [20, 35, 50, 20]
    for a, b in zip(one.windows, three.windows, strict=True):
        assert a.metrics.keys() == b.metrics.keys()
        for k, v in a.metrics.items():  # sums may differ in the last bits; counts, rates, drift, quality do not
            exact = not k.startswith(("mean/", "std/"))
            w = b.metrics[k]
            assert (math.isnan(v) and math.isnan(w)) or (v == w if exact else v == pytest.approx(w, rel=1e-12)), k
        same = {k: v for k, v in a.params.items() if k not in ("monitor", "config_hash")}
        assert same == {k: v for k, v in b.params.items() if k not in ("monitor", "config_hash")}
    assert any(k.startswith("drift/") for k in one.windows[2].metrics)  # drift ran (50 records vs the previous 35)


@pytest.mark.e2e  # over 2 s in the unit lane (make test-fast budget)
@pytest.mark.parametrize("reference", ["previous", "fixed"])
def test_memory_follows_a_window_not_the_span(tmp_path: Path, reference: str) -> None:
    frame = _traffic(tmp_path / "t.jsonl", 12)
    extra = ("reference: {kind: fixed, start: '2026-11-01T00:00:00Z', end: '2026-11-01T03:00:00Z'}\n"
             if reference == "fixed" else "")
    res = run_monitor(_config(tmp_path, "t.jsonl", extra=extra), backfill=(T0 + 3 * HOUR, T0 + 12 * HOUR),
                      now=T0 + 13 * HOUR)
    stats = res.stats
    assert stats is not None and len(res.windows) == 9 and res.processed == sum(o.records for o in res.windows)
    biggest = max(o.records for o in res.windows)
    assert stats.max_windows_held == 1  # never two windows' records at once
    assert stats.max_rows_held == biggest == 50 < res.processed  # at most one window's rows, never the span
    assert stats.rows_held == 0 and stats.windows_held == 0
    assert res.processed == len(frame) - 105  # hours 0-2 (20 + 35 + 50 records) are before the span


def test_every_record_quarantined_without_window_start_is_an_error_not_an_empty_source(tmp_path: Path) -> None:
    """No window.start: the windows start at the earliest *usable* record, and there is none. That is a
    misconfigured source (exit 2, the records in the quarantine file), not 'no complete window' and exit 0."""
    rows = [{"request_id": f"r{i}", "timestamp": (T0 + timedelta(minutes=7 * i)).isoformat(), "prompt": i,
             "response": "r"} for i in range(20)]
    _write(tmp_path / "t.jsonl", rows)
    cfg = _config(tmp_path, "t.jsonl")
    with pytest.raises(DataError, match=r"all 20 records read were quarantined.*wrong_type_for_prompt: 20"):
        run_monitor(cfg, now=T0 + 5 * HOUR)
    assert len(next((cfg.run_dir / "quarantine").glob("*.jsonl")).read_text().splitlines()) == 20


def test_every_record_quarantined_stops_before_any_window_is_written(tmp_path: Path) -> None:
    rows = [{"request_id": f"r{i}", "timestamp": (T0 + timedelta(minutes=7 * i)).isoformat(), "prompt": i,
             "response": "r"} for i in range(20)]  # a time each, but prompt is a number: every record quarantined
    _write(tmp_path / "t.jsonl", rows)
    cfg = _config(tmp_path, "t.jsonl", window="start: '2026-11-01T00:00:00Z'")  # 3 windows, each quarantine only
    with pytest.raises(DataError, match=r"all 20 records read were quarantined.*wrong_type_for_prompt: 20"):
        run_monitor(cfg, now=T0 + 5 * HOUR)
    assert not (cfg.run_dir / "windows").exists()  # nothing half-processed
    assert len(next((cfg.run_dir / "quarantine").glob("*.jsonl")).read_text().splitlines()) == 20
    with WatermarkStore(cfg.state_path) as store:
        assert store.get(cfg.name) is None  # the next run (with the mapping fixed) starts from the same place

"""Data quality (great-expectations) on canonical frames, and the quarantine file + summary."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from evalmon.monitor.contracts import ARRIVAL, QuarantinedRecord
from evalmon.monitor.quality import QualityConfig, RangeSpec, check_quality
from evalmon.monitor.quarantine import read_quarantine, summarize, write_quarantine


def frame(n: int = 200) -> pd.DataFrame:
    ts = pd.date_range("2026-11-01", periods=n, freq="1min", tz="UTC")
    return pd.DataFrame({"request_id": [f"r{i}" for i in range(n)], "timestamp": ts, "model": "m",
                         "prompt": [f"p{i}" for i in range(n)], "response": [f"r{i}" for i in range(n)],
                         "contexts": [[] for _ in range(n)], "latency_ms": np.linspace(100, 900, n),
                         "input_tokens": 10.0, "output_tokens": 20.0, ARRIVAL: np.arange(n)})


def by_name(report) -> dict[str, tuple[bool, int]]:  # type: ignore[no-untyped-def]
    return {e.name: (e.success, e.unexpected_count) for e in report.expectations}


def test_clean_window_passes_and_problems_are_counted_per_expectation() -> None:
    clean = check_quality(frame())
    assert clean.success and clean.failed == 0 and clean.rows == 200
    assert {"exists.request_id", "not_null.prompt", "between.latency_ms", "unique.request_id",
            "increasing.timestamp"} <= set(by_name(clean))
    bad = frame()
    bad.loc[3, "prompt"] = None
    bad.loc[4, "response"] = None
    bad.loc[5, "latency_ms"] = -12.0
    bad.loc[6, "output_tokens"] = -1.0
    bad.loc[8, "request_id"] = "r7"
    # logged out of order: row 10 arrived after row 20 (frames are sorted by time; arrival keeps the log order)
    bad.loc[10, ARRIVAL] = 20.5
    report = check_quality(bad, quarantined=2)
    got = by_name(report)
    assert got["not_null.prompt"] == (False, 1) and got["not_null.response"] == (False, 1)
    assert got["between.latency_ms"] == (False, 1) and got["between.output_tokens"] == (False, 1)
    assert got["unique.request_id"] == (False, 2) and got["increasing.timestamp"] == (False, 1)
    assert got["between.input_tokens"] == (True, 0) and report.failed == 6 and not report.success
    d = report.to_dict()
    json.dumps(d)  # JSON-ready for artifacts
    latency = next(e for e in d["expectations"] if e["name"] == "between.latency_ms")
    assert latency["expectation"] == "expect_column_values_to_be_between" and latency["details"]["examples"] == ["-12.0"]
    assert report.metrics()["quality.failed"] == 6.0 and report.metrics()["quality.unique.request_id.unexpected"] == 2.0


def test_thresholds_missing_columns_and_empty_windows() -> None:
    f = frame()
    f.loc[:1, "latency_ms"] = -1.0  # 1 % bad
    lenient = QualityConfig(ranges={"latency_ms": RangeSpec(min=0, mostly=0.98)}, max_quarantined_fraction=0.05)
    report = check_quality(f, lenient, quarantined=20)
    assert by_name(report)["between.latency_ms"] == (True, 2)
    assert by_name(report)["quarantined.fraction"] == (False, 20)  # 20 / 220 > 5 %
    missing = check_quality(f.drop(columns=["response"]))
    assert by_name(missing)["exists.response"] == (False, 200) and "not_null.response" not in by_name(missing)
    assert check_quality(frame().iloc[:0]).success
    assert check_quality(f, QualityConfig(enabled=False)).expectations == []
    with pytest.raises(ValueError):
        QualityConfig(not_null_mostly=1.5)


def test_quarantine_file_and_summary(tmp_path: Path) -> None:
    recs = [QuarantinedRecord("a.jsonl", "line 2", "unparseable JSON: Expecting value at column 1", "{oops"),
            QuarantinedRecord("a.jsonl", "line 9", "unparseable timestamp: 'x'; missing required field: response", "{}"),
            QuarantinedRecord("b.csv", "line 4", "unparseable JSON: Unterminated string", "{\"a")]
    path = tmp_path / "q" / "quarantine.jsonl"
    assert write_quarantine(recs, path) == 3 and write_quarantine(recs[:1], path, append=True) == 1
    lines = [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines()]
    assert set(lines[0]) == {"source", "location", "reason", "raw"} and len(lines) == 4
    assert read_quarantine(path)[:3] == recs
    assert summarize(recs) == {"total": 3, "by_reason": {"unparseable JSON": 2, "unparseable timestamp": 1},
                               "by_source": {"a.jsonl": 2, "b.csv": 1}}

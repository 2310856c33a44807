"""Tumbling windows, mergeable summaries and the monitor YAML (no evidently, no MLflow: fast)."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pytest

from evalmon.config.monitor import load_monitor, load_monitor_text
from evalmon.core.errors import ConfigError
from evalmon.monitor.summary import Summary, SummarySpec, summarize
from evalmon.monitor.windows import parse_duration, split, window_of, windows_between

T0 = datetime(2024, 3, 1, tzinfo=UTC)


def frame(n: int = 2000, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    secs = np.sort(rng.uniform(0, 4 * 3600, n))
    lat = rng.lognormal(4.5, 0.4, n)
    lat[::97] = np.nan
    return pd.DataFrame({
        "timestamp": pd.to_datetime([T0 + timedelta(seconds=float(s)) for s in secs], utc=True),
        "latency_ms": lat, "pii.any": (rng.random(n) < 0.1).astype(float),
        "model": rng.choice(["m-a", "m-b", "m-c"], n, p=[0.6, 0.3, 0.1])})


def test_durations_and_epoch_aligned_windows() -> None:
    assert parse_duration("15m") == timedelta(minutes=15)
    assert parse_duration("2h30m") == timedelta(hours=2, minutes=30)
    assert parse_duration("1d") == timedelta(days=1)
    with pytest.raises(ConfigError, match="invalid duration"):
        parse_duration("1 fortnight")
    w = window_of(datetime(2024, 3, 1, 9, 47, tzinfo=UTC), timedelta(minutes=15))
    assert (w.start, w.end) == (datetime(2024, 3, 1, 9, 45, tzinfo=UTC), datetime(2024, 3, 1, 10, 0, tzinfo=UTC))
    assert w.index == int(w.start.timestamp()) // 900 and w.key == "20240301T094500Z"
    # another time zone, same instant → same window
    cet = datetime(2024, 3, 1, 10, 47, tzinfo=ZoneInfo("Europe/Paris"))
    assert window_of(cet, timedelta(minutes=15)) == w
    # only complete windows: [09:00, 12:30) with 1h → 09, 10, 11 (12:00-13:00 is not complete)
    ws = windows_between(datetime(2024, 3, 1, 9, 20, tzinfo=UTC), datetime(2024, 3, 1, 12, 30, tzinfo=UTC),
                         timedelta(hours=1))
    assert [x.start.hour for x in ws] == [9, 10, 11]
    assert [x.index for x in ws] == list(range(ws[0].index, ws[0].index + 3))


def test_split_covers_every_row_once_and_yields_empty_windows() -> None:
    df = frame()
    shuffled = df.sample(frac=1, random_state=1)  # split sorts when needed
    ws = windows_between(T0 - timedelta(hours=1), T0 + timedelta(hours=5), timedelta(hours=1))
    parts = list(split(shuffled, ws, "timestamp"))
    assert len(parts[0][1]) == 0 and len(parts[-1][1]) == 0  # before / after the data
    assert sum(len(p) for _, p in parts) == len(df)
    for w, p in parts:
        assert ((p.timestamp >= pd.Timestamp(w.start)) & (p.timestamp < pd.Timestamp(w.end))).all()


def test_summaries_merge_like_one_pass_and_roundtrip_json() -> None:
    df = frame()
    ref = frame(3000, seed=7)
    spec = SummarySpec.fit(ref, ["latency_ms", "pii.any"], ["model"])
    assert spec.rates == ("pii.any",) and spec.categorical["model"][0] == "m-a"
    whole = summarize(df, spec)
    parts = [summarize(df.iloc[i::3], spec) for i in range(3)]  # three "partitions"
    merged = parts[0].merge(parts[1]).merge(parts[2])
    a, b = whole.metrics(), merged.metrics()
    assert a.keys() == b.keys()
    for k in a:
        assert (math.isnan(a[k]) and math.isnan(b[k])) or a[k] == pytest.approx(b[k], rel=1e-9), k
    again = Summary.from_dict(json.loads(json.dumps(merged.to_dict())))
    assert again.metrics() == pytest.approx(b, nan_ok=True)
    # exact moments, histogram quantiles within a bin of the truth
    lat = df.latency_ms.dropna()
    assert a["records"] == len(df) and a["mean/latency_ms"] == pytest.approx(lat.mean())
    assert a["std/latency_ms"] == pytest.approx(lat.std())
    assert a["null_rate/latency_ms"] == pytest.approx(df.latency_ms.isna().mean())
    assert a["p90/latency_ms"] == pytest.approx(lat.quantile(0.9), rel=0.03)
    assert a["p50/latency_ms"] == pytest.approx(lat.median(), rel=0.03)
    assert a["rate/pii.any"] == pytest.approx(df["pii.any"].mean())
    assert a["share/model/m-a"] == pytest.approx((df.model == "m-a").mean())
    with pytest.raises(ValueError, match="different specs"):
        whole.merge(summarize(df, SummarySpec.fit(df, ["latency_ms"])))


def test_empty_and_one_class_windows_summarise() -> None:
    spec = SummarySpec.fit(frame(), ["latency_ms", "pii.any"], ["model"])
    empty = summarize(frame().iloc[:0], spec).metrics()
    assert empty["records"] == 0 and math.isnan(empty["mean/latency_ms"]) and math.isnan(empty["rate/pii.any"])
    one = frame().assign(model="m-b")
    m = summarize(one, spec).metrics()
    assert m["share/model/m-b"] == 1.0 and m["distinct/model"] == 1


MONITOR = """\
name: traffic
source:
  kind: jsonl
  path: logs/*.jsonl
columns: {prompt: question}
window: {size: 15m, delay: 5m}
reference: {kind: fixed, start: "2024-03-01T00:00:00Z", end: "2024-03-02T00:00:00+01:00"}
drift: {methods: {latency_ms: psi}}
alerts:
  rules:
    - {metric: rate/safety.unsafe, op: ">", value: 0.1}
  webhook: {url: "http://127.0.0.1:9/hook", timeout_s: 2}
state: {path: state/wm.sqlite}
"""


def test_monitor_yaml_loads_and_resolves_paths(tmp_path: Path) -> None:
    p = tmp_path / "m.yaml"
    p.write_text(MONITOR)
    cfg = load_monitor(p)
    assert cfg.source.columns == {"prompt": "question"}  # top-level columns merged into the source
    assert cfg.reference.end == datetime(2024, 3, 1, 23, tzinfo=UTC)
    assert cfg.state_path == tmp_path / "state" / "wm.sqlite"
    assert cfg.experiment == "monitor-traffic" and cfg.alerts.rules[0].label == "rate/safety.unsafe > 0.1"


@pytest.mark.parametrize(("edit", "expected"), [
    (("size: 15m", "size: 15 minutes"), r"m.yaml:6: window.size: '15 minutes' is not a duration"),
    (("window:", "windw:"), r"m.yaml:6: windw: unknown key 'windw' \(did you mean: window\?\)"),
    (('op: ">"', 'op: "=>"'), r"m.yaml:11: alerts.rules.0.op: must be one of"),
    (("kind: fixed, ", "kind: fixed, end: null, "), r"m.yaml:7: reference"),
    (("http://127.0.0.1:9/hook", "ftp://x"), r"m.yaml:12: alerts.webhook.url"),
])
def test_monitor_yaml_errors_name_file_line_key(edit: tuple[str, str], expected: str) -> None:
    text = MONITOR.replace(*edit)
    if "end: null" in text:
        text = text.replace(', end: "2024-03-02T00:00:00+01:00"', "")
    with pytest.raises(ConfigError, match=expected):
        load_monitor_text(text, "m.yaml")

"""``evalmon traffic synth``: real benchmark text, Poisson arrivals, injected events, truth alongside."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from cli_util import Background, assert_user_error, run_cli, show
from pydantic import ValidationError

from evalmon.core.errors import ConfigError, EvalmonError
from evalmon.monitor.sources import build_source
from evalmon.traffic.events import parse_event, parse_time
from evalmon.traffic.synth import SynthConfig, parse_rate, synthesize

START = "2026-11-01T00:00Z"
EVENTS = ["latency_regression@2026-11-01T06:00Z+3h[factor=3]", "hallucination_rise@2026-11-01T12:00Z[rate=0.6]",
          "new_model_version@2026-11-01T18:00Z[model=gpt-4]", "length_shift@2026-11-01T18:00Z",
          "topic_shift@2026-11-01T12:00Z[to=coding;share=0.9]", "unsafe_rise@2026-11-01T20:00Z+2h",
          "pii_leak@2026-11-01T20:00Z+2h"]


def cfg(tmp: Path, data: Path, **kw: object) -> SynthConfig:
    base: dict[str, object] = {"out": tmp / "traffic.jsonl", "start": START, "hours": 2, "rate_per_hour": 150,
                               "seed": 1, "data_dir": data}
    base.update(kw)
    return SynthConfig(**base)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def day(tmp_path_factory: pytest.TempPathFactory, benchmarks_dir: Path):  # type: ignore[no-untyped-def]
    tmp = tmp_path_factory.mktemp("synth")
    res = synthesize(cfg(tmp, benchmarks_dir, hours=24, rate_per_hour=150, events=EVENTS))
    truth = pd.read_json(res.truth, lines=True)
    batch = build_source({"kind": "jsonl", "path": str(res.traffic)}).read()
    frame = batch.frame.merge(truth, on="request_id", suffixes=("", "_truth"))
    frame["hour"] = frame["timestamp"].dt.hour
    return res, truth, batch, frame


def test_same_seed_same_bytes_other_seed_differs(tmp_path: Path, benchmarks_dir: Path) -> None:
    a = synthesize(cfg(tmp_path / "a", benchmarks_dir, malformed_rate=0.05))
    b = synthesize(cfg(tmp_path / "b", benchmarks_dir, malformed_rate=0.05))
    c = synthesize(cfg(tmp_path / "c", benchmarks_dir, seed=2))
    assert a.traffic.read_bytes() == b.traffic.read_bytes()
    assert a.truth.read_bytes() == b.truth.read_bytes()
    assert a.traffic.read_bytes() != c.traffic.read_bytes()
    assert 200 < a.records < 400  # Poisson: 2 h × 150/h


def test_records_are_real_text_with_plausible_numbers_and_no_labels(day) -> None:  # type: ignore[no-untyped-def]
    res, truth, batch, frame = day
    assert batch.quarantined == [] and len(frame) == res.records == len(truth)
    first = json.loads(res.traffic.read_text(encoding="utf-8").splitlines()[0])
    assert not {"is_hallucinated", "is_unsafe_prompt", "has_pii", "events", "category"} & set(first)
    assert set(truth["category"]) == {"chat", "rag", "safety", "enterprise"}
    assert set(truth["source_dataset"]) == {"mt_bench", "halueval_qa", "hh_rlhf", "simple_safety_tests", "enterprise_pii"}
    rag = frame[frame.category == "rag"]
    assert rag["contexts"].map(len).min() >= 1 and frame[frame.category == "chat"]["contexts"].map(len).max() == 0
    assert (frame["latency_ms"] > 0).all() and (frame["output_tokens"] >= 1).all()
    assert frame["output_tokens"].corr(frame["latency_ms"]) > 0.5  # latency grows with length
    gaps = frame["timestamp"].diff().dt.total_seconds().dropna()
    assert abs(gaps.mean() - 24.0) < 3.0  # 150/h → mean gap 24 s (exponential)
    assert frame[frame.is_refusal]["response"].str.len().max() < 200


def test_events_are_visible_in_the_traffic_and_listed_with_windows(day) -> None:  # type: ignore[no-untyped-def]
    res, truth, _, f = day
    rag = f[f.category == "rag"]
    before, after = rag[rag.hour < 12], rag[rag.hour >= 12]
    assert before["is_hallucinated"].mean() < 0.15 < 0.45 < after["is_hallucinated"].mean()
    lat = f[f.hour < 12].groupby(f.hour.between(6, 8))["latency_ms"].median()  # later events change lengths
    assert 2.2 < lat[True] / lat[False] < 4.0
    late = f[f.category == "chat"].groupby(f.hour >= 18)["response"].agg(lambda r: r.str.len().mean())
    assert late[True] > 1.6 * late[False]  # length_shift (and a wordier model)
    assert set(f[f.hour < 18]["model"]) == {"vicuna-13b-v1.3"} and set(f[f.hour >= 18]["model"]) == {"gpt-4"}
    chat = f[f.category == "chat"]
    assert (chat[chat.hour < 12]["source_id"].astype(int).between(121, 130)).mean() < 0.2  # MT-Bench coding = 121-130
    assert (chat[(chat.hour >= 12) & (chat.hour < 18)]["source_id"].astype(int).between(121, 130)).mean() > 0.8
    window = f.hour.between(20, 21)
    assert f[window]["is_unsafe_prompt"].mean() > 0.2 > f[~window]["is_unsafe_prompt"].mean()
    assert f[window]["has_pii"].mean() > 2 * f[~window]["has_pii"].mean()
    meta = json.loads(res.events.read_text(encoding="utf-8"))
    assert [(e["name"], e["start"], e["end"]) for e in meta["events"]][:2] == [
        ("latency_regression", "2026-11-01T06:00:00Z", "2026-11-01T09:00:00Z"),
        ("hallucination_rise", "2026-11-01T12:00:00Z", None)]
    tagged = truth[truth["events"].map(lambda e: "latency_regression" in e)]
    ts = pd.to_datetime(tagged["timestamp"], utc=True)
    assert ts.min().hour == 6 and ts.max() < pd.Timestamp("2026-11-01T09:00Z")


def test_otel_and_openinference_fields_read_back_to_the_same_records(tmp_path: Path, benchmarks_dir: Path) -> None:
    frames = {}
    for schema in ("plain", "otel", "openinference"):
        res = synthesize(cfg(tmp_path / schema, benchmarks_dir, schema=schema, hours=1))
        frames[schema] = build_source({"kind": "jsonl", "path": str(res.traffic)}).read().frame
    cols = ["request_id", "timestamp", "model", "prompt", "response", "contexts", "input_tokens", "output_tokens"]
    for schema in ("otel", "openinference"):
        pd.testing.assert_frame_equal(frames[schema][cols], frames["plain"][cols])
        assert (frames[schema]["latency_ms"] - frames["plain"]["latency_ms"]).abs().max() < 1.0
    line = json.loads((tmp_path / "otel" / "traffic.jsonl").read_text(encoding="utf-8").splitlines()[0])
    assert "gen_ai.input.messages" in line["attributes"] and "start_time_unix_nano" in line


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_malformed_lines_match_the_truth(tmp_path: Path, benchmarks_dir: Path, fmt: str) -> None:
    res = synthesize(cfg(tmp_path, benchmarks_dir, malformed_rate=0.1, format=fmt, out=tmp_path / f"t.{fmt}"))
    truth = pd.read_json(res.truth, lines=True)
    bad = truth[truth["malformed"].notna()]
    kinds = {"jsonl": {"truncated_json", "missing_response", "bad_timestamp", "non_utf8", "wrong_type_prompt"},
             "csv": {"missing_response", "bad_timestamp", "non_utf8", "wrong_field_count"}}
    assert res.malformed == len(bad) > 10 and set(bad["malformed"]) == kinds[fmt]
    batch = build_source({"kind": fmt, "path": str(res.traffic)}).read()
    assert sorted(int(q.location.split()[1]) for q in batch.quarantined) == sorted(bad["line"])
    assert len(batch.frame) + len(batch.quarantined) == res.records


def test_bad_options_are_one_line_errors(tmp_path: Path, benchmarks_dir: Path) -> None:
    assert parse_rate("5/min") == 300 and parse_rate("1000/d") == pytest.approx(41.666, rel=1e-3)
    ev = parse_event("latency_regression@2026-11-02T00:00+01:00+90m[factor=2]")
    assert ev.start.isoformat() == "2026-11-01T23:00:00+00:00" and ev.params == {"factor": "2"}
    assert (ev.end - ev.start).total_seconds() == 5400  # type: ignore[operator]
    for bad in ("spike@2026-11-01T00:00Z", "latency_regression@yesterday", "pii_leak@2026-11-01T00:00Z[rate]"):
        with pytest.raises(ConfigError):
            parse_event(bad)
    with pytest.raises(EvalmonError, match="nowhere"):
        synthesize(cfg(tmp_path, tmp_path / "nowhere"))
    with pytest.raises(EvalmonError, match="gpt-5"):
        synthesize(cfg(tmp_path, benchmarks_dir, events=["new_model_version@2026-11-01T01:00Z[model=gpt-5]"]))


def test_event_parameters_are_checked_and_events_must_touch_the_traffic(tmp_path: Path, benchmarks_dir: Path) -> None:
    """A hostile walk: factor=-3 gave negative latencies, rate=1.5 / share=-0.5 were taken as is, a misspelt key
    (unsafe_rise[rate=2]) was ignored, factor=1e400 / share=nan were internal errors, an event after the traffic
    was listed as injected though it touched no record, and +0h was accepted."""
    at = "@2026-11-01T00:30Z+30m"
    for spec, says in ((f"latency_regression{at}[factor=-3]", "outside"), (f"latency_regression{at}[factor=1e400]",
                       "outside"), (f"hallucination_rise{at}[rate=1.5]", "outside"),
                       (f"unsafe_rise{at}[share=-0.5]", "outside"), (f"pii_leak{at}[share=nan]", "outside"),
                       (f"topic_shift{at}[to=coding;share=2]", "outside"), (f"unsafe_rise{at}[rate=2]", "no parameter"),
                       (f"topic_shift{at}[topic=zzz]", "no parameter"), (f"no_contexts{at}[x=1]", "parameters: none"),
                       (f"latency_regression{at}[factor=3;factor=5]", "twice"),
                       ("latency_regression@2026-11-01T00:30Z+0h", "empty")):
        with pytest.raises(ConfigError, match=says):
            parse_event(spec)
    assert parse_event(f"unsafe_rise{at}[share=1;harmful_rate=0]").params == {"share": "1", "harmful_rate": "0"}
    with pytest.raises(ValidationError, match="does not overlap"):  # the CLI prints it as one line
        cfg(tmp_path, benchmarks_dir, events=["latency_regression@2030-01-01T00:00Z+1h"])
    with pytest.raises(ValidationError, match="does not overlap"):
        cfg(tmp_path, benchmarks_dir, events=["latency_regression@2026-10-31T00:00Z+1h"])
    for out, fmt in (("t.parquet", "jsonl"), ("t.jsonl.gz", "jsonl"), ("t.csv", "sqlite")):
        with pytest.raises(ValidationError, match="--out"):
            cfg(tmp_path, benchmarks_dir, out=tmp_path / out, format=fmt)


def test_sidecars_of_another_traffic_file_are_not_overwritten(tmp_path: Path, benchmarks_dir: Path) -> None:
    """t.jsonl and t.csv share t.truth.jsonl / t.events.json: the second run paired its traffic with the first's
    ground truth (or the other way round) without a word."""
    first = synthesize(cfg(tmp_path, benchmarks_dir, out=tmp_path / "t.jsonl", hours=0.2, seed=3))
    truth = first.truth.read_bytes()
    with pytest.raises(ConfigError, match=r"ground truth of t\.jsonl"):
        synthesize(cfg(tmp_path, benchmarks_dir, out=tmp_path / "t.csv", format="csv", hours=0.2))
    assert first.truth.read_bytes() == truth and not (tmp_path / "t.csv").exists()
    assert synthesize(cfg(tmp_path, benchmarks_dir, out=tmp_path / "t.jsonl", hours=0.2, seed=3)).records > 0
    days = [synthesize(cfg(tmp_path, benchmarks_dir, out=tmp_path / f"day.2026-11-0{d}.jsonl", hours=0.2, seed=d))
            for d in (1, 2)]  # dated names: each its own sidecars (they were both day.truth.jsonl)
    assert [r.truth.name for r in days] == ["day.2026-11-01.truth.jsonl", "day.2026-11-02.truth.jsonl"]
    assert all(json.loads(r.events.read_text())["traffic"] == str(r.traffic) for r in days)
    # a file or folder it did not write is never replaced (a parquet run removed another day's partition)
    (tmp_path / "mine.db").write_text("hello")
    (tmp_path / "pq" / "dt=2026-10-01").mkdir(parents=True)
    (tmp_path / "pq" / "dt=2026-10-01" / "part-0.parquet").write_bytes(b"PAR1")
    for out, fmt in (("mine.db", "sqlite"), ("pq", "parquet")):
        with pytest.raises(ConfigError, match="not written by traffic synth"):
            synthesize(cfg(tmp_path, benchmarks_dir, out=tmp_path / out, format=fmt, hours=0.2))
    assert (tmp_path / "mine.db").read_text() == "hello" and (tmp_path / "pq" / "dt=2026-10-01").is_dir()
    with pytest.raises(ConfigError, match="no record"):
        synthesize(cfg(tmp_path, benchmarks_dir, out=tmp_path / "few.jsonl", hours=0.01, rate_per_hour=1))
    for start in ("now", "today", "", "NaT"):
        with pytest.raises(ConfigError, match="not an ISO-8601 time"):
            parse_time(start)


def test_cli_writes_traffic_and_reports_errors_in_one_line(tmp_path: Path, benchmarks_dir: Path) -> None:
    args = ["traffic", "synth", "--out", "t.csv", "--start", START, "--hours", "1", "--rate", "60/h",
            "--format", "csv", "--seed", "3", "--data-dir", str(benchmarks_dir),
            "--event", "hallucination_rise@2026-11-01T00:30Z"]
    proc = run_cli(tmp_path, *args)
    assert proc.returncode == 0, show(proc)
    assert (tmp_path / "t.csv").is_file() and (tmp_path / "t.truth.jsonl").is_file() and "records" in proc.stdout
    assert_user_error(run_cli(tmp_path, *args[:-1], "spike@2026-11-01T00:30Z"), "unknown event", "spike")


def test_out_of_range_times_and_negative_seed_are_one_line_errors(tmp_path: Path, benchmarks_dir: Path) -> None:
    """Times beyond int64 nanoseconds and a negative seed were internal errors (OverflowError/ValueError)."""
    base = ["traffic", "synth", "--out", "t.jsonl", "--rate", "5/h", "--data-dir", str(benchmarks_dir)]
    cases = {("--start", "9999-12-31T23:00Z", "--hours", "5"): ("--start", "--hours", "2262"),
             ("--start", "1600-01-01T00:00Z"): ("--start", "1677"),
             ("--start", START, "--hours", "1e12"): ("--hours",),
             ("--start", START, "--seed", "-1"): ("--seed",),
             ("--start", START, "--event", "pii_leak@9999-01-01T00:00Z"): ("--event", "pii_leak"),
             ("--start", START, "--event", "pii_leak@2026-11-01T00:00Z+999999999999d"): ("duration", "out of range")}
    procs = {args: Background(tmp_path, *base, *args) for args in cases}  # started together: two cores
    for args, needles in cases.items():
        assert_user_error(procs[args].result(), *needles)
    assert not (tmp_path / "t.jsonl").exists()

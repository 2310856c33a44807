"""Traffic sources → canonical frames: every kind on synthetic traffic, windows, and the bad-input list."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from evalmon.core.errors import ConfigError, DataError
from evalmon.monitor.contracts import ARRIVAL, CANONICAL_COLUMNS
from evalmon.monitor.sources import build_source
from evalmon.traffic.synth import SynthConfig, synthesize

COLS = ["request_id", "timestamp", "model", "prompt", "response", "contexts", "latency_ms", "input_tokens",
        "output_tokens"]
START = "2026-11-01T21:00Z"  # 6 h over two UTC days → two parquet partitions


@pytest.fixture(scope="module")
def traffic(tmp_path_factory: pytest.TempPathFactory, benchmarks_dir: Path) -> dict[str, dict[str, object]]:
    tmp = tmp_path_factory.mktemp("sources")
    out = {"jsonl": "t.jsonl", "csv": "t.csv", "parquet": "pq", "sqlite": "t.db"}
    cfgs: dict[str, dict[str, object]] = {}
    for fmt, name in out.items():
        synthesize(SynthConfig(out=tmp / fmt / name, start=START, hours=6, rate_per_hour=60, seed=5, format=fmt,
                               data_dir=benchmarks_dir))
        cfgs[fmt] = {"kind": fmt, "path": str(tmp / fmt / name)}
    cfgs["sqlite"] = {"kind": "sql", "url": f"sqlite:///{tmp / 'sqlite' / 't.db'}", "table": "traffic"}
    synthesize(SynthConfig(out=tmp / "otel" / "t.csv", start=START, hours=6, rate_per_hour=60, seed=5, format="csv",
                           schema="otel", data_dir=benchmarks_dir))
    cfgs["csv_otel"] = {"kind": "csv", "path": str(tmp / "otel" / "t.csv")}
    import duckdb

    con = duckdb.connect(str(tmp / "t.duckdb"))
    con.execute(f"CREATE TABLE traffic AS SELECT * EXCLUDE (dt) FROM read_parquet('{tmp / 'parquet' / 'pq'}/**/*.parquet',"
                " hive_partitioning=true)")
    con.close()
    cfgs["duckdb"] = {"kind": "sql", "url": f"duckdb:///{tmp / 't.duckdb'}", "table": "traffic"}
    return cfgs


def _jsonl(path: Path, rows: list[object]) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8")
    return path


def test_every_source_kind_reads_the_same_canonical_records(traffic) -> None:  # type: ignore[no-untyped-def]
    ref = build_source(traffic["jsonl"]).read()
    assert len(ref.frame) > 250 and ref.quarantined == [] and list(ref.frame.columns) == [*CANONICAL_COLUMNS, ARRIVAL]
    assert str(ref.frame["timestamp"].dtype) == "datetime64[ns, UTC]" and ref.frame["timestamp"].is_monotonic_increasing
    for kind in ("csv", "parquet", "sqlite", "duckdb", "csv_otel"):
        batch = build_source(traffic[kind]).read()
        assert batch.quarantined == [], kind
        pd.testing.assert_frame_equal(batch.frame[COLS], ref.frame[COLS], check_exact=False, rtol=1e-9, obj=kind)


def test_windowed_reads_return_only_start_to_end(traffic) -> None:  # type: ignore[no-untyped-def]
    lo, hi = pd.Timestamp("2026-11-01T22:00Z"), pd.Timestamp("2026-11-01T23:00Z")
    full = build_source(traffic["jsonl"]).read().frame
    expected = set(full[(full.timestamp >= lo) & (full.timestamp < hi)]["request_id"])
    assert 30 < len(expected) < 100
    for kind in ("jsonl", "csv", "parquet", "sqlite", "duckdb"):
        batch = build_source(traffic[kind]).read(lo.to_pydatetime(), hi.to_pydatetime())
        assert set(batch.frame["request_id"]) == expected, kind
        assert batch.stats["window"] == [lo.isoformat(), hi.isoformat()]
    pq = build_source(traffic["parquet"])
    assert pq.read().stats["files"] == 2 and pq.read(lo, hi).stats["files"] == 2  # the day after is read too
    later = pq.read(pd.Timestamp("2026-11-05T00:00Z"), pd.Timestamp("2026-11-06T00:00Z"))
    assert len(later.frame) == 0 and later.stats["files"] == 0  # partition pruning
    with pytest.raises(ConfigError):
        pq.read(hi, lo)


def test_window_bounds_are_start_inclusive_end_exclusive(tmp_path: Path) -> None:
    times = ["2026-11-01T00:59:59.999Z", "2026-11-01T01:00:00Z", "2026-11-01T01:59:59.999Z", "2026-11-01T02:00:00Z"]
    rows = [{"request_id": str(i), "timestamp": t, "prompt": "p", "response": "r"} for i, t in enumerate(times)]
    src = build_source({"kind": "jsonl", "path": str(_jsonl(tmp_path / "b.jsonl", rows))})
    assert list(src.read(pd.Timestamp("2026-11-01T01:00Z"), pd.Timestamp("2026-11-01T02:00Z")).frame["request_id"]) == ["1", "2"]
    import sqlalchemy as sa

    pd.DataFrame(rows).to_sql("logs", sa.create_engine(f"sqlite:///{tmp_path / 'b.db'}"), index=False)
    sql = build_source({"kind": "sql", "url": "sqlite:///b.db", "table": "logs"}, base_dir=tmp_path)
    assert list(sql.read(pd.Timestamp("2026-11-01T01:00Z"), pd.Timestamp("2026-11-01T02:00Z")).frame["request_id"]) == ["1", "2"]
    query = build_source({"kind": "sql", "url": "sqlite:///b.db", "query": "SELECT * FROM logs WHERE request_id != '2'"},
                         base_dir=tmp_path)
    assert list(query.read(pd.Timestamp("2026-11-01T01:00Z"), pd.Timestamp("2026-11-01T02:00Z")).frame["request_id"]) == ["1"]


def test_unparseable_json_lines_are_quarantined_with_line_numbers(tmp_path: Path) -> None:
    ok = {"timestamp": "2026-11-01T00:00:00Z", "prompt": "p", "response": "r"}
    path = _jsonl(tmp_path / "t.jsonl", [ok, '{"timestamp": "2026-11-01T00:01:00Z", "prompt": "p"', "[1, 2]", "", ok])
    batch = build_source({"kind": "jsonl", "path": str(path)}).read()
    assert len(batch.frame) == 2 and batch.stats["rows_read"] == 4
    assert [(q.location, q.reason.split(":")[0]) for q in batch.quarantined] == [
        ("line 2", "unparseable JSON"), ("line 3", "JSON line is not an object (got list)")]
    assert batch.quarantined[0].raw.startswith('{"timestamp"')


def test_missing_required_fields_quarantine_rows_or_name_the_mapping(tmp_path: Path) -> None:
    rows = [{"timestamp": "2026-11-01T00:00:00Z", "prompt": "p"}, {"prompt": "p", "response": "r"},
            {"timestamp": "2026-11-01T00:00:01Z", "response": "r", "prompt": 42},
            {"timestamp": "2026-11-01T00:00:02Z", "prompt": "p", "response": "r", "latency_ms": "fast"},
            {"timestamp": "2026-11-01T00:00:03Z", "prompt": "p", "response": "r"}]
    batch = build_source({"kind": "jsonl", "path": str(_jsonl(tmp_path / "t.jsonl", rows))}).read()
    assert len(batch.frame) == 1 and len(batch.frame["request_id"].iloc[0]) == 16  # generated id
    assert [q.reason for q in batch.quarantined] == [
        "missing required field: response", "timestamp.missing",  # issue #10: one reason name per timestamp fault
        "wrong type for prompt: expected text, got int", "wrong type for latency_ms: fast"]
    csv = tmp_path / "t.csv"
    csv.write_text("when,q,a\n2026-11-01T00:00:00Z,q,a\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"no column for required field\(s\) timestamp, prompt, response .*columns:"):
        build_source({"kind": "csv", "path": str(csv)}).read()
    csv.write_text("when,q,a,tier\n2026-11-01T00:00:00Z,q,a,gold\n", encoding="utf-8")
    mapped = build_source({"kind": "csv", "path": str(csv), "keep": ["tier"],
                           "columns": {"timestamp": "when", "prompt": "q", "response": "a"}}).read()
    assert mapped.frame[["prompt", "response", "tier"]].values.tolist() == [["q", "a", "gold"]]
    with pytest.raises(ConfigError, match="promt"):
        build_source({"kind": "csv", "path": str(csv), "columns": {"promt": "q"}})


def test_out_of_order_and_mixed_time_zones_are_converted_and_counted(tmp_path: Path) -> None:
    ts = ["2026-11-01T10:00:00Z", "2026-11-01T12:30:00+02:00", "2026-11-01T04:00:00-05:00",
          "2026-11-01 11:00:00", 1793523600, 1793523600500]
    rows = [{"request_id": str(i), "timestamp": t, "prompt": "p", "response": "r"} for i, t in enumerate(ts)]
    src = build_source({"kind": "jsonl", "path": str(_jsonl(tmp_path / "t.jsonl", rows)), "assume_timezone": "Europe/Berlin"})
    batch = src.read()
    f = batch.frame
    assert f["timestamp"].is_monotonic_increasing
    got = dict(zip(f["request_id"], f["timestamp"].dt.strftime("%H:%M:%S.%f").str[:12], strict=True))
    assert got == {"0": "10:00:00.000", "1": "10:30:00.000", "2": "09:00:00.000", "3": "10:00:00.000",
                   "4": "09:00:00.000", "5": "09:00:00.500"}
    assert batch.stats["mixed_timezones"] and batch.stats["out_of_order"] == 4
    assert batch.stats["timezones"] == {"+00:00": 1, "+02:00": 1, "-05:00": 1, "naive": 1, "epoch": 2}
    assert sorted(f[ARRIVAL]) == list(range(6))  # arrival order is kept for the quality check


def test_huge_single_record_is_read_from_jsonl_and_csv(tmp_path: Path) -> None:
    big = "word " * 200_000  # 1 MB response
    row = {"timestamp": "2026-11-01T00:00:00Z", "prompt": "p", "response": big}
    assert len(build_source({"kind": "jsonl", "path": str(_jsonl(tmp_path / "t.jsonl", [row]))}).read()
               .frame["response"].iloc[0]) == len(big)
    pd.DataFrame([row]).to_csv(tmp_path / "t.csv", index=False)
    batch = build_source({"kind": "csv", "path": str(tmp_path / "t.csv")}).read()
    assert batch.quarantined == [] and batch.frame["response"].iloc[0] == big


def test_csv_quote_that_never_closes_loses_one_line_not_the_rest_of_the_file(tmp_path: Path) -> None:
    """Python's lenient csv reader let a quoted field opened on line 4 run to the end of the file: 100 rows in, 3
    scored and the other 97 glued into one response, with nothing quarantined (QA walk, session 16). Now the opening
    line is quarantined alone and the lines after it are read again; text after a closing quote is an error too."""
    lines = ["timestamp,prompt,response"]
    lines += [f"2026-11-01T00:{i // 60:02d}:{i % 60:02d}Z,p{i},r{i}" for i in range(100)]
    lines[3] = '2026-11-01T00:00:02Z,p2,"closed"then text'
    lines[50] = '2026-11-01T00:00:49Z,p49,"oops never closed'
    (tmp_path / "t.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    batch = build_source({"kind": "csv", "path": str(tmp_path / "t.csv")}).read()
    assert [q.location for q in batch.quarantined] == ["line 4", "line 51"]
    assert "never closes" in batch.quarantined[1].reason and batch.quarantined[1].raw == lines[50]
    assert len(batch.frame) == 98 and set(batch.frame["response"]) == {f"r{i}" for i in range(100)} - {"r2", "r49"}
    # a stray quote that a later quote "closes": the opening line alone is left out, not the 46 between
    rows = [f"2026-11-01T00:00:{i:02d}Z,p{i},r{i}" for i in range(49)]
    rows[9] = '2026-11-01T00:00:09Z,p9,"stray'
    rows.append('2026-11-01T00:00:49Z,p49,"closed"then text')
    (tmp_path / "t.csv").write_text("\n".join(["timestamp,prompt,response", *rows]) + "\n", encoding="utf-8")
    batch = build_source({"kind": "csv", "path": str(tmp_path / "t.csv")}).read()
    assert [q.location for q in batch.quarantined] == ["line 11", "line 51"]
    assert "runs to line 51" in batch.quarantined[0].reason and len(batch.frame) == 48
    # a quoted field that spans lines and closes is one row, as before
    (tmp_path / "m.csv").write_text('timestamp,prompt,response\n2026-11-01T00:00:00Z,p,"two\nlines"\n'
                                    "2026-11-01T00:00:01Z,q,r\n", encoding="utf-8")
    ok = build_source({"kind": "csv", "path": str(tmp_path / "m.csv")}).read()
    assert ok.quarantined == [] and ok.frame["response"].tolist() == ["two\nlines", "r"]


def test_non_utf8_bytes_are_quarantined_or_replaced(tmp_path: Path) -> None:
    good = b'{"timestamp": "2026-11-01T00:00:00Z", "prompt": "p", "response": "fine"}\n'
    bad = b'{"timestamp": "2026-11-01T00:00:01Z", "prompt": "caf\xe9", "response": "r"}\n'
    (tmp_path / "t.jsonl").write_bytes(good + bad)
    batch = build_source({"kind": "jsonl", "path": str(tmp_path / "t.jsonl")}).read()
    assert len(batch.frame) == 1 and batch.stats["invalid_utf8"] == 1
    assert batch.quarantined[0].location == "line 2" and batch.quarantined[0].reason.startswith("invalid UTF-8: byte 0xe9")
    kept = build_source({"kind": "jsonl", "path": str(tmp_path / "t.jsonl"), "invalid_utf8": "replace"}).read()
    assert kept.quarantined == [] and kept.frame["prompt"].iloc[1] == "caf\ufffd"
    (tmp_path / "t.csv").write_bytes(b"timestamp,prompt,response\n2026-11-01T00:00:00Z,p,r\n2026-11-01T00:00:01Z,caf\xe9,r\n")
    csv = build_source({"kind": "csv", "path": str(tmp_path / "t.csv")}).read()
    assert len(csv.frame) == 1 and [q.location for q in csv.quarantined] == ["line 3"]


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le"])
def test_a_utf16_file_is_one_error_naming_the_encoding(tmp_path: Path, encoding: str) -> None:
    """Was "all 6 records quarantined … a NUL byte" for a 5-record file (QA walk, session 16): every line of a
    UTF-16 file reads as binary data. With a byte-order mark or without, it is one error saying how to re-encode."""
    text = '{"timestamp": "2026-11-01T00:00:00Z", "prompt": "p", "response": "r"}\n' * 5
    (tmp_path / "t.jsonl").write_bytes(text.encode(encoding))
    with pytest.raises(DataError, match="is UTF-16 text, not UTF-8") as exc:
        build_source({"kind": "jsonl", "path": str(tmp_path / "t.jsonl")}).read()
    assert "iconv -f UTF-16 -t UTF-8 t.jsonl > t.utf8.jsonl" in exc.value.one_line()


def test_lone_surrogates_from_json_escapes_are_replaced_and_counted(tmp_path: Path) -> None:
    """A JSON "\\ud800" (half of an emoji cut by a UTF-16 logger) decodes to a lone surrogate, which every tokenizer
    refused with a TypeError ("internal error" for the whole monitor / `signals score`), and Parquet and MLflow refuse
    too. The source keeps the record with U+FFFD in its place and counts it."""
    lines = ['{"timestamp": "2026-11-01T00:00:00Z", "prompt": "hi \\ud800 there", "response": "ok \\udfff",'
             ' "contexts": ["doc \\ud83d"], "model": "m\\udc80"}',
             '{"timestamp": "2026-11-01T00:00:01Z", "prompt": "smile \\ud83d\\ude00", "response": "fine"}']
    (tmp_path / "t.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    batch = build_source({"kind": "jsonl", "path": str(tmp_path / "t.jsonl")}).read()
    assert batch.quarantined == [] and batch.stats["invalid_unicode_replaced"] == 4
    row, pair = batch.frame.iloc[0], batch.frame.iloc[1]
    assert (row["prompt"], row["response"], row["contexts"], row["model"]) == (
        "hi \ufffd there", "ok \ufffd", ["doc \ufffd"], "m\ufffd")
    assert pair["prompt"] == "smile \U0001F600"  # an escaped pair is one character, left alone
    batch.frame[["prompt", "response"]].to_parquet(tmp_path / "t.parquet")  # raised on a lone surrogate


def test_missing_paths_and_tables_are_one_line_data_errors(tmp_path: Path) -> None:
    for cfg in ({"kind": "jsonl", "path": "nope/traffic.jsonl"}, {"kind": "csv", "path": "nope/*.csv"},
                {"kind": "parquet", "path": "nope/pq/*.parquet"}):
        with pytest.raises(DataError, match=r"source path does not exist: .*nope") as err:
            build_source(cfg, base_dir=tmp_path).read()
        assert "\n" not in str(err.value)
    (tmp_path / "empty").mkdir()
    for path in ("empty", "empty/*.jsonl"):  # a folder or glob with no file: a misconfiguration, not "no traffic"
        with pytest.raises(DataError, match=r"holds no \.jsonl|matches no files"):
            build_source({"kind": "jsonl", "path": path}, base_dir=tmp_path).read()
    import sqlalchemy as sa

    pd.DataFrame({"x": [1]}).to_sql("other", sa.create_engine(f"sqlite:///{tmp_path / 'db.sqlite'}"), index=False)
    with pytest.raises(DataError) as err:
        build_source({"kind": "sql", "url": "sqlite:///db.sqlite", "table": "traffic"}, base_dir=tmp_path).read()
    msg = str(err.value)
    assert "'traffic' not found" in msg and "db.sqlite" in msg and "tables: other" in msg
    assert "\n" not in msg and "Traceback" not in msg and "sqlalchemy" not in msg.lower()
    with pytest.raises(ConfigError, match="exactly one of"):
        build_source({"kind": "sql", "url": "sqlite://", "table": "a", "query": "select 1"})


def _mlflow_db(target: Path) -> str:
    """A fresh sqlite tracking DB: MLflow's ~40 migrations run once per machine (a copied template)."""
    import os
    import shutil
    import tempfile

    import mlflow

    template = Path(tempfile.gettempdir()) / f"evalmon-test-mlflow-{mlflow.__version__}.db"
    if not template.exists():
        from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

        scratch = target.parent / "template.db"
        SqlAlchemyStore(f"sqlite:///{scratch}", (target.parent / "template-artifacts").as_uri()).engine.dispose()
        os.replace(shutil.copy(scratch, f"{template}.{os.getpid()}"), template)
    shutil.copy(template, target)
    return f"sqlite:///{target}"


@pytest.mark.e2e  # over 2 s in the unit lane (make test-fast budget)
def test_mlflow_traces_read_back_with_trace_ids_and_windows(tmp_path: Path) -> None:
    import mlflow

    from evalmon.monitor.sources.mlflow_traces import log_traces

    uri = _mlflow_db(tmp_path / "mlflow.db")
    at = pd.to_datetime(["2026-11-01T00:10Z", "2026-11-01T00:40Z", "2026-11-01T01:10Z", "2026-11-01T01:40Z"], utc=True)
    frame = pd.DataFrame({"request_id": ["r0", "r1", "r2", "r3"], "timestamp": at, "model": "m-1",
                          "prompt": [f"question {i}" for i in range(4)], "response": [f"answer {i}" for i in range(4)],
                          "contexts": [[], ["passage a", "passage b"], [], []], "latency_ms": [120.0, 250.0, 80.0, 60.0],
                          "input_tokens": [3, 4, 5, 6], "output_tokens": [7, 8, 9, 10]})
    from evalmon.config.tracking import using_tracking_uri

    with using_tracking_uri(uri):  # (mlflow.set_tracking_uri alone leaves $MLFLOW_TRACKING_URI set)
        exp_id = mlflow.create_experiment("traffic", artifact_location=(tmp_path / "artifacts").as_uri())
        ids = log_traces(frame, experiment_id=exp_id)
        plain = mlflow.start_span_no_context("fn", inputs={"prompt": "plain question"}, experiment_id=exp_id,
                                             start_time_ns=pd.Timestamp("2026-11-01T03:00Z").value)
        plain.set_outputs("plain answer")
        plain.end(end_time_ns=pd.Timestamp("2026-11-01T03:00:01Z").value)
        mlflow.flush_trace_async_logging()
    src = build_source({"kind": "mlflow_traces", "tracking_uri": uri, "experiment": "traffic"})
    batch = src.read()
    assert batch.quarantined == [] and len(batch.frame) == 5
    assert set(batch.frame["trace_id"]) == {*ids, plain.trace_id}
    last = batch.frame.iloc[-1]
    assert (last["prompt"], last["response"], last["latency_ms"]) == ("plain question", "plain answer", 1000.0)
    win = src.read(pd.Timestamp("2026-11-01T00:30Z"), pd.Timestamp("2026-11-01T01:30Z")).frame
    assert list(win["request_id"]) == ["r1", "r2"] and list(win["trace_id"]) == ids[1:3]
    assert win.iloc[0][["prompt", "response", "model", "latency_ms", "input_tokens", "output_tokens"]].tolist() == [
        "question 1", "answer 1", "m-1", 250.0, 4.0, 8.0]
    assert win.iloc[0]["contexts"] == ["passage a", "passage b"]
    with pytest.raises(DataError, match="experiment 'nope' not found"):
        build_source({"kind": "mlflow_traces", "tracking_uri": uri, "experiment": "nope"}).read()
    # max_results caps a read: a window with more traces than the cap lost the rest without a word (never counted)
    capped = build_source({"kind": "mlflow_traces", "tracking_uri": uri, "experiment": "traffic", "max_results": 2})
    with pytest.raises(DataError, match=r"more than source\.max_results=2"):
        capped.read()
    assert len(capped.read(pd.Timestamp("2026-11-01T00:30Z"), pd.Timestamp("2026-11-01T01:30Z")).frame) == 2


def test_an_integer_beyond_any_float_is_a_wrong_type_not_an_internal_error(tmp_path: Path) -> None:
    """JSON integers have no size limit: ``latency_ms: 1e400`` written as 401 digits made pandas raise
    OverflowError while building the frame (``internal error`` for the whole file). It is one bad field."""
    ok = {"timestamp": "2026-11-01T00:10:00Z", "prompt": "p", "response": "r", "latency_ms": 5}
    huge = "1" + "0" * 400
    path = _jsonl(tmp_path / "t.jsonl", [ok, json.dumps({**ok, "latency_ms": 0}).replace(": 0}", f": {huge}}}"),
                                         json.dumps({**ok, "extra": 0}).replace(": 0}", f": -{huge}}}")])
    batch = build_source({"kind": "jsonl", "path": str(path)}).read()
    assert len(batch.frame) == 2 and batch.frame["latency_ms"].tolist() == [5.0, 5.0]
    assert [q.reason for q in batch.quarantined] == [f"wrong type for latency_ms: {huge[:40]}"]
    assert batch.quarantined[0].location == "line 2"


def test_parquet_partitions_that_disagree_on_types_are_each_read_by_their_own_schema(tmp_path: Path) -> None:
    """A folder whose later ``dt=`` partition logs the time as epoch ms and latency as text (one of them
    ``"slow"``) and lacks ``model``: each file is normalised on its own (the bad latency quarantined), not cast
    to the first file's schema — that was ``internal error: ArrowNotImplementedError`` (timestamp vs int64),
    or a DataError for the whole folder (string → double)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    times = pd.to_datetime(["2026-11-01T22:10Z", "2026-11-01T23:20Z", "2026-11-02T00:10Z", "2026-11-02T01:30Z",
                            "2026-11-02T01:40Z"], utc=True)
    day1 = pd.DataFrame({"timestamp": times[:2], "model": "m", "prompt": "p", "response": "r",
                         "latency_ms": [1.0, 2.0]})
    day2 = pd.DataFrame({"timestamp": times[2:].astype("int64") // 10**6, "prompt": "p", "response": "r",
                         "latency_ms": ["3", "slow", "5.5"], "input_tokens": [1.5, 2.0, 3.0]})
    for day, frame in (("2026-11-01", day1), ("2026-11-02", day2)):
        (tmp_path / "pq" / f"dt={day}").mkdir(parents=True)
        pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), tmp_path / "pq" / f"dt={day}" / "p.parquet")
    src = build_source({"kind": "parquet", "path": str(tmp_path / "pq")})
    whole = src.read()
    assert whole.frame["timestamp"].tolist() == [times[0], times[1], times[2], times[4]]
    assert whole.frame["latency_ms"].tolist() == [1.0, 2.0, 3.0, 5.5]
    assert [q.reason for q in whole.quarantined] == ["wrong type for latency_ms: slow"]
    lo, hi = pd.Timestamp("2026-11-02T01:00Z"), pd.Timestamp("2026-11-02T02:00Z")
    parts = [src.read_partition(p, lo, hi) for p in src.partitions(lo, hi)]  # type: ignore[attr-defined]
    assert sum(len(b.frame) for b in parts) == 1 and sum(len(b.quarantined) for b in parts) == 1


def test_sqlite_blobs_in_a_number_or_text_column_are_wrong_types(tmp_path: Path) -> None:
    """SQLite stores whatever it is given: a BLOB (``X'00ff'``) in ``input_tokens`` made the wrong-type message
    decode the bytes as UTF-8 — ``internal error: UnicodeDecodeError`` for the whole table."""
    import sqlite3

    con = sqlite3.connect(tmp_path / "t.db")
    con.execute("CREATE TABLE traffic (timestamp TEXT, prompt TEXT, response TEXT, input_tokens INTEGER)")
    con.executemany("INSERT INTO traffic VALUES (?, ?, ?, ?)", [
        ("2026-11-01T00:10:00Z", "p", "r", 3), ("2026-11-01T00:20:00Z", "p", "r", b"\x00\xff"),
        ("2026-11-01T00:30:00Z", b"\xff\xfeA", "r", 4)])
    con.commit()
    con.close()
    batch = build_source({"kind": "sql", "url": f"sqlite:///{tmp_path / 't.db'}", "table": "traffic"}).read()
    assert batch.frame["input_tokens"].tolist() == [3.0, 4.0]
    assert batch.frame["prompt"].tolist() == ["p", "\ufffd\ufffdA"]  # a text BLOB: decoded, bad bytes replaced
    assert [q.reason for q in batch.quarantined] == ["wrong type for input_tokens: b'\\x00\\xff'"]


def test_sqlite_text_that_is_not_utf8_is_replaced_and_counted_not_fatal_for_the_table(tmp_path: Path) -> None:
    """One TEXT value with a byte that is not UTF-8 (``CAST(X'66ff6f' AS TEXT)``: a latin-1 logger) made sqlite3
    raise for the whole read — exit 2 "Could not decode to UTF-8 column 'prompt'", every other row lost with it.
    It is kept with U+FFFD in place of the byte and counted, as a lone surrogate in JSON is."""
    import sqlite3

    con = sqlite3.connect(tmp_path / "t.db")
    con.execute("CREATE TABLE traffic (timestamp TEXT, prompt TEXT, response TEXT)")
    con.execute("INSERT INTO traffic VALUES ('2026-11-01T00:10:00Z', 'p', 'r'), "
                "('2026-11-01T00:20:00Z', CAST(X'66ff6f' AS TEXT), 'r'), ('2026-11-01T00:30:00Z', 'q', 'r')")
    con.commit()
    con.close()
    batch = build_source({"kind": "sql", "url": f"sqlite:///{tmp_path / 't.db'}", "table": "traffic"}).read()
    assert batch.frame["prompt"].tolist() == ["p", "f\ufffdo", "q"] and batch.quarantined == []
    assert batch.stats["invalid_unicode_replaced"] == 1
    con = sqlite3.connect(tmp_path / "t.db")
    con.execute("DELETE FROM traffic")
    con.commit()
    con.close()
    empty = build_source({"kind": "sql", "url": f"sqlite:///{tmp_path / 't.db'}", "table": "traffic"}).read()
    assert len(empty.frame) == 0 and empty.stats["invalid_unicode_replaced"] == 0


@pytest.mark.parametrize("path", ["logs", "logs/*.jsonl", "logs/**/*.jsonl"])
def test_a_file_reached_by_two_names_is_read_once(tmp_path: Path, path: str) -> None:
    """A log folder with ``current.jsonl -> app-2026-11-01.jsonl`` (rotation) or a hard link: each name was read as
    its own file, every record counted twice in its window."""
    logs = tmp_path / "logs"
    logs.mkdir()
    rows = [{"timestamp": f"2026-11-01T00:1{i}:00Z", "prompt": "p", "response": "r"} for i in range(3)]
    _jsonl(logs / "app-2026-11-01.jsonl", rows)
    (logs / "current.jsonl").symlink_to("app-2026-11-01.jsonl")
    (logs / "hard.jsonl").hardlink_to(logs / "app-2026-11-01.jsonl")
    _jsonl(logs / "other.jsonl", rows[:1])
    src = build_source({"kind": "jsonl", "path": path}, tmp_path)
    batch = src.read()
    assert len(batch.frame) == 4 and batch.stats["files"] == 2
    assert src.partitions(None, None) == [str(logs / "app-2026-11-01.jsonl"), str(logs / "other.jsonl")]  # type: ignore[attr-defined]


def test_parquet_pruning_keeps_partitions_a_day_off_and_ones_that_are_no_date(tmp_path: Path) -> None:
    """Partition pruning compared ``dt`` with the window's UTC dates: a dataset partitioned by local or ingestion date
    (``dt=2026-11-02`` holding 2026-11-01T23:50Z) or with a partition that is no date (``dt=backfill``) lost those
    records from every window — a whole read had them, each window's read did not."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    for day, times in (("2026-11-01", ["2026-11-01T22:10Z", "2026-11-01T23:10Z"]),
                       ("2026-11-02", ["2026-11-01T23:50Z", "2026-11-02T00:10Z"]), ("backfill", ["2026-11-01T23:20Z"]),
                       ("2026-11-05", ["2026-11-05T10:00Z"])):
        frame = pd.DataFrame({"timestamp": pd.to_datetime(times, utc=True), "prompt": "p", "response": "r"})
        (tmp_path / "pq" / f"dt={day}").mkdir(parents=True)
        pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), tmp_path / "pq" / f"dt={day}" / "p.parquet")
    src = build_source({"kind": "parquet", "path": str(tmp_path / "pq")})
    lo, hi = pd.Timestamp("2026-11-01T23:00Z"), pd.Timestamp("2026-11-02T00:00Z")
    want = pd.to_datetime(["2026-11-01T23:10Z", "2026-11-01T23:20Z", "2026-11-01T23:50Z"], utc=True).tolist()
    assert sorted(src.read(lo, hi).frame["timestamp"]) == want
    parts = src.partitions(lo, hi)  # type: ignore[attr-defined]
    assert not any("2026-11-05" in p for p in parts)  # still pruned: days away from the window
    windowed = pd.concat([src.read_partition(p, lo, hi).frame for p in parts])  # type: ignore[attr-defined]
    assert sorted(windowed["timestamp"]) == want


def test_sql_query_ending_in_a_line_comment_still_reads(tmp_path: Path) -> None:
    """``query: "SELECT * FROM traffic -- all rows"``: wrapped as a subquery, the comment swallowed the closing
    parenthesis — "SQL source … (query): incomplete input", a valid query refused."""
    import sqlite3

    con = sqlite3.connect(tmp_path / "t.db")
    con.execute("CREATE TABLE traffic (timestamp TEXT, prompt TEXT, response TEXT)")
    con.execute("INSERT INTO traffic VALUES ('2026-11-01T00:10:00Z', 'p', 'r')")
    con.commit()
    con.close()
    src = build_source({"kind": "sql", "url": f"sqlite:///{tmp_path / 't.db'}",
                        "query": "SELECT * FROM traffic -- all rows"})
    assert len(src.read().frame) == 1

"""Issue #10, monitors: nothing vanishes. Every record a run reads is processed or quarantined with a reason.

- one timestamp routine for every source (``evalmon.monitor.timeparse``): a table of inputs → times/reasons;
- SQL rows with another timestamp layout, NULL or garbage are parsed or quarantined, never dropped;
- ``read = processed + quarantined (by reason)`` is printed per run and logged per window, on the window
  the record's time says (or the ``unplaced`` bucket);
- ``timestamp: 0`` does not start a runaway; more than ``window.max_windows_per_run`` windows is exit 2
  before any window folder exists;
- a truncated ``.jsonl.gz`` or a random-bytes file is exit 2 naming the file and the offset (not 130),
  or, with ``on_corrupt: quarantine``, the readable part is processed and the rest quarantined;
- a monitor name is never a path (``..``).

Most runs are the real ``evalmon monitor`` CLI in a subprocess (tracking off, drift off: ~2 s each).
"""

from __future__ import annotations

import gzip
import json
import random
import re
import sqlite3
import subprocess
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from cli_util import assert_no_traceback, assert_user_error, run_cli, show

from evalmon.monitor.timeparse import IMPLAUSIBLE, MISSING, UNPARSEABLE, Plausible, parse_time, parse_times

ACCOUNT = re.compile(r"(\d+) records read = (\d+) processed \+ (\d+) quarantined")
FAST_S = 90  # a runaway (one folder per hour since 1970) would take far longer: the test fails on timeout


def _monitor(root: Path, source: str, *, name: str = "m", window: str = "", extra: str = "") -> Path:
    path = root / "m.yaml"
    path.write_text(textwrap.dedent(f"""\
        name: "{name}"
        source: {source}
        window: {{size: 1h{', ' + window if window else ''}}}
        drift: {{enabled: false}}
        quality: {{enabled: false}}
        tracking: {{enabled: false}}
        output_dir: out
        """) + extra, encoding="utf-8")
    return path


def _jsonl(path: Path, rows: list[Any]) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8")
    return path


def _windows(root: Path, name: str = "m") -> dict[str, dict[str, float]]:
    """Window key → metrics from each window.json (what the MLflow run of the window holds)."""
    out = {}
    for f in sorted((root / "out" / name / "windows").glob("*/window.json")):
        out[f.parent.name] = json.loads(f.read_text(encoding="utf-8"))["metrics"]
    return out


def _accounting(proc: subprocess.CompletedProcess[str]) -> tuple[int, int, int]:
    m = ACCOUNT.search(proc.stdout)
    assert m, show(proc)
    read, processed, quarantined = map(int, m.groups())
    assert read == processed + quarantined, show(proc)
    return read, processed, quarantined


def _rec(ts: Any, rid: str) -> dict[str, Any]:
    return {"request_id": rid, "timestamp": ts, "prompt": f"question {rid}", "response": f"answer {rid}"}


# ------------------------------------------------------------------------------- the one timestamp routine

NOW = pd.Timestamp("2026-11-05T12:00:00Z")


@pytest.mark.parametrize(("value", "expected"), [
    ("2026-11-01T01:30:00Z", "2026-11-01T01:30:00+00:00"),
    ("2026-11-01 01:30:00", "2026-11-01T01:30:00+00:00"),  # no T, naive = UTC (assume_timezone default)
    ("2026-11-01T03:30:00+02:00", "2026-11-01T01:30:00+00:00"),
    ("2026-11-01T01:30:00.250-0100", "2026-11-01T02:30:00.250000+00:00"),
    ("2026-11-01", "2026-11-01T00:00:00+00:00"),
    (1793496600, "2026-11-01T01:30:00+00:00"),  # epoch seconds (|v| < 1e11)
    (1793496600.5, "2026-11-01T01:30:00.500000+00:00"),
    (1793496600123, "2026-11-01T01:30:00.123000+00:00"),  # ms (< 1e14)
    (1793496600123456, "2026-11-01T01:30:00.123456+00:00"),  # µs (< 1e17)
    (1793496600123456789, "2026-11-01T01:30:00.123456789+00:00"),  # ns
    ("1793496600", "2026-11-01T01:30:00+00:00"),  # numeric strings are epochs too
    (datetime(2026, 11, 1, 1, 30), "2026-11-01T01:30:00+00:00"),  # naive datetime = UTC
    (datetime(2026, 11, 1, 2, 30, tzinfo=UTC) - timedelta(hours=1), "2026-11-01T01:30:00+00:00"),
    (pd.Timestamp("2026-11-01T01:30:00", tz="Europe/Berlin"), "2026-11-01T00:30:00+00:00"),
    (None, MISSING), (float("nan"), MISSING), ("", MISSING), ("  ", MISSING),
    ("garbage", UNPARSEABLE), ("2026-13-45T00:00:00Z", UNPARSEABLE), (True, UNPARSEABLE), ([1], UNPARSEABLE),
    (float("inf"), UNPARSEABLE), (10**30, UNPARSEABLE),
    (0, IMPLAUSIBLE), (-1, IMPLAUSIBLE), ("1999-12-31T23:59:59Z", IMPLAUSIBLE),  # before 2000-01-01
    ("2026-11-07T00:00:00Z", IMPLAUSIBLE),  # more than a day after NOW
])
def test_timestamp_routine_accepts_iso_epochs_datetimes_and_names_the_reason(value: Any, expected: str) -> None:
    ts, reason = parse_time(value, now=NOW)
    if expected.startswith("timestamp."):
        assert ts is None and reason is not None and reason.split(":")[0] == expected, (value, ts, reason)
    else:
        assert reason is None and ts is not None and ts.isoformat() == expected, (value, ts, reason)


def test_timestamp_routine_vectorised_units_zones_and_bounds() -> None:
    raw = pd.Series(["2026-11-01T01:30:00Z", "2026-11-01 03:30:00", None, "x", 1793496600, -1], dtype=object)
    parsed = parse_times(raw, tz="Europe/Berlin", now=NOW)
    assert [None if pd.isna(t) else t.isoformat() for t in parsed.times] == [
        "2026-11-01T01:30:00+00:00", "2026-11-01T02:30:00+00:00", None, None, "2026-11-01T01:30:00+00:00", None]
    assert [r and r.split(":")[0] for r in parsed.reasons] == [None, None, MISSING, UNPARSEABLE, None, IMPLAUSIBLE]
    assert parse_times(pd.Series([1793496600123]), unit="ms", now=NOW).times.iloc[0] == pd.Timestamp(
        "2026-11-01T01:30:00.123Z")
    # beside a float in the same column, an integer epoch stays exact (it was …00.123000064: float64's 256 ns steps)
    mixed = parse_times(pd.Series([1793496600123, "1793496600123", 1793496600.5], dtype=object), now=NOW).times
    assert mixed.tolist() == [pd.Timestamp("2026-11-01T01:30:00.123Z")] * 2 + [pd.Timestamp("2026-11-01T01:30:00.5Z")]
    wide = Plausible(not_before=pd.Timestamp("1960-01-01", tz="UTC"))
    assert parse_time(0, plausible=wide, now=NOW) == (pd.Timestamp(0, tz="UTC"), None)
    typed = parse_times(pd.Series(pd.to_datetime(["2026-11-01T01:30:00", "1970-01-01T00:00:00", None])), now=NOW)
    assert [r and r.split(":")[0] for r in typed.reasons] == [None, IMPLAUSIBLE, MISSING]



def test_naive_datetimes_in_a_dst_change_are_unparseable_rows_not_an_internal_error() -> None:
    """An object column of naive ``datetime`` values (a SQL TIMESTAMP column that also holds a 9999-12-31 sentinel
    pandas cannot hold as datetime64) with ``assume_timezone: Europe/Berlin``: a time in the hour that repeats
    (2026-10-25 02:30) or is skipped (2026-03-29 02:30) raised pytz's AmbiguousTimeError / NonExistentTimeError, which
    is no ValueError — ``internal error`` for the whole read. Each is one row's reason, as in the vectorised path."""
    raw = pd.Series([datetime(2026, 10, 25, 1, 30), datetime(2026, 10, 25, 2, 30), datetime(2026, 3, 29, 2, 30),
                     datetime(9999, 12, 31), "2026-10-25 02:30:00"], dtype=object)
    parsed = parse_times(raw, tz="Europe/Berlin", now=NOW)
    assert parsed.times.iloc[0] == pd.Timestamp("2026-10-24T23:30:00Z")
    assert [r and r.split(":")[0] for r in parsed.reasons] == [None, UNPARSEABLE, UNPARSEABLE, UNPARSEABLE,
                                                              UNPARSEABLE]


# ------------------------------------------------------------------------------- SQL: nothing dropped


def test_sql_mixed_timestamp_formats_null_and_garbage_are_all_accounted(tmp_path: Path, mlflow_server: str) -> None:
    rows = [("a0", "2026-11-01T20:10:00Z"), ("a1", "2026-11-01T20:40:00Z"),
            ("b0", "2026-11-01 21:30:00"),  # another layout among …T…Z rows: window 21:00, not lost
            ("b1", "2026-11-01T21:45:00+00:00"), ("n0", None), ("g0", "garbage"), ("c0", "2026-11-01T22:05:00Z"),
            ("z0", "1969-12-31T23:59:59Z")]
    con = sqlite3.connect(tmp_path / "t.db")
    con.execute("CREATE TABLE logs (request_id TEXT, timestamp TEXT, prompt TEXT, response TEXT)")
    con.executemany("INSERT INTO logs VALUES (?, ?, 'p', 'r')", rows)
    con.commit()
    con.close()
    _monitor(tmp_path, "{kind: sql, url: 'sqlite:///t.db', table: logs}",
             window='start: "2026-11-01T20:00:00Z", end: "2026-11-01T22:00:00Z"')
    first = run_cli(tmp_path, "monitor", "m.yaml")
    assert first.returncode == 0, show(first)
    w = _windows(tmp_path)
    assert [m["records"] for m in w.values()] == [2, 2], w  # b0 is in its hour: the watermark passes no lost row
    assert _accounting(first) == (7, 4, 3)  # + NULL, garbage, 1969: unplaced (no usable time)
    assert "timestamp.missing 1" in first.stdout and "timestamp.unparseable 1" in first.stdout, show(first)
    assert "timestamp.implausible 1" in first.stdout and "3 unplaced" in first.stdout, show(first)
    qfile = next((tmp_path / "out" / "m" / "quarantine").glob("*.jsonl"))
    assert sorted(json.loads(x)["reason"].split(":")[0] for x in qfile.read_text().splitlines()) == [
        IMPLAUSIBLE, MISSING, UNPARSEABLE]

    # the next hour, logged to a real MLflow server: per-window accounting metrics + the unplaced bucket
    (tmp_path / "m.yaml").write_text((tmp_path / "m.yaml").read_text().replace("2026-11-01T22:00:00Z",
                                                                               "2026-11-01T23:00:00Z")
                                     .replace("tracking: {enabled: false}",
                                              f"tracking: {{uri: '{mlflow_server}', experiment: integrity-sql}}"))
    second = run_cli(tmp_path, "monitor", "m.yaml")
    assert second.returncode == 0 and _accounting(second) == (4, 1, 3), show(second)
    from mlflow import MlflowClient

    client = MlflowClient(mlflow_server)
    exp = client.get_experiment_by_name("integrity-sql")
    (run,) = client.search_runs([exp.experiment_id], filter_string="tags.`evalmon.window_id` = 'm/20261101T220000Z'")
    got = run.data.metrics
    assert got["records/read"] == 1 and got["records/processed"] == 1 and got["records/quarantined"] == 0
    assert got["records/unplaced"] == 3 and got["records/unplaced/timestamp.missing"] == 1, got
    assert got["records/unplaced/timestamp.unparseable"] == 1 and got["records/unplaced/timestamp.implausible"] == 1


def test_typed_sql_and_parquet_pushdown_still_return_null_and_implausible_rows(tmp_path: Path) -> None:
    import duckdb
    import pyarrow as pa
    import pyarrow.parquet as pq

    from evalmon.monitor.sources import build_source

    ts = [datetime(2026, 11, 1, 0, 10), None, datetime(1970, 1, 1), datetime(2026, 11, 1, 5)]
    frame = pd.DataFrame({"request_id": ["a", "n", "z", "late"], "timestamp": ts, "prompt": "p", "response": "r"})
    con = duckdb.connect(str(tmp_path / "t.duckdb"))
    con.execute("CREATE TABLE logs AS SELECT request_id, CAST(timestamp AS TIMESTAMP) AS timestamp, prompt, "
                "response FROM frame")
    con.close()
    pq.write_table(pa.Table.from_pandas(frame.assign(timestamp=pd.to_datetime(frame.timestamp, utc=True)),
                                        preserve_index=False), tmp_path / "t.parquet")
    lo, hi = datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 11, 1, 1, tzinfo=UTC)
    for cfg in ({"kind": "sql", "url": "duckdb:///t.duckdb", "table": "logs"},
                {"kind": "parquet", "path": "t.parquet"}):
        batch = build_source(cfg, base_dir=tmp_path).read(lo, hi)
        assert list(batch.frame["request_id"]) == ["a"], cfg
        assert sorted(q.reason.split(":")[0] for q in batch.quarantined) == [IMPLAUSIBLE, MISSING], cfg
        assert batch.quarantined_times == [None, None], cfg  # unplaced: no usable time of their own


# ------------------------------------------------------------------------------- JSONL: per-window accounting


def test_jsonl_no_known_field_and_negative_timestamps_count_on_their_window(tmp_path: Path) -> None:
    _jsonl(tmp_path / "t.jsonl", [
        _rec("2026-11-01T00:10:00Z", "a"), {"foo": 1},  # no known field → quarantined on 00:00
        _rec("2026-11-01T01:10:00Z", "b"), _rec(-1, "neg"), {},  # 1969 and an empty object → on 01:00
        _rec("2026-11-01T02:10:00Z", "c"), "not json",  # → on 02:00
    ])
    _monitor(tmp_path, "{kind: jsonl, path: t.jsonl}", window='start: "2026-11-01T00:00:00Z", '
                                                              'end: "2026-11-01T03:00:00Z"')
    proc = run_cli(tmp_path, "monitor", "m.yaml")
    assert proc.returncode == 0, show(proc)
    assert _accounting(proc) == (7, 3, 4)
    w = _windows(tmp_path)
    assert [(m["records/read"], m["records/processed"], m["records/quarantined"]) for m in w.values()] == [
        (2, 1, 1), (3, 1, 2), (2, 1, 1)], w
    assert w["20261101T010000Z"]["records/quarantined/timestamp.implausible"] == 1
    assert w["20261101T010000Z"]["records/quarantined/record.no_known_field"] == 1
    assert w["20261101T000000Z"]["records/quarantined/record.no_known_field"] == 1
    qfile = next((tmp_path / "out" / "m" / "quarantine").glob("*.jsonl"))
    reasons = [json.loads(x)["reason"] for x in qfile.read_text().splitlines()]
    assert len(reasons) == 4 and sum(r.startswith(IMPLAUSIBLE) for r in reasons) == 1, reasons


# ------------------------------------------------------------------------------- late records


def test_a_record_that_lands_behind_the_watermark_is_reported_with_its_backfill(tmp_path: Path) -> None:
    """A record logged after its window was processed (window.delay 0s, a lagging writer) was in no later count:
    the next --once run read only the windows after the watermark and said nothing."""
    traffic = _jsonl(tmp_path / "t.jsonl", [_rec("2026-11-01T00:10:00Z", "a"), _rec("2026-11-01T01:10:00Z", "b")])
    _monitor(tmp_path, "{kind: jsonl, path: t.jsonl}", window='start: "2026-11-01T00:00:00Z", '
                                                              'end: "2026-11-01T02:00:00Z"')
    assert (proc := run_cli(tmp_path, "monitor", "m.yaml")).returncode == 0, show(proc)
    with traffic.open("a", encoding="utf-8") as fh:  # late: 01:30 (behind the watermark), and the next hour's
        fh.writelines(json.dumps(r) + "\n" for r in (_rec("2026-11-01T01:30:00Z", "late"),
                                                      _rec("2026-11-01T02:10:00Z", "c")))
    _monitor(tmp_path, "{kind: jsonl, path: t.jsonl}", window='start: "2026-11-01T00:00:00Z", '
                                                              'end: "2026-11-01T03:00:00Z"')
    proc = run_cli(tmp_path, "monitor", "m.yaml")
    assert proc.returncode == 0, show(proc)
    late = [ln for ln in proc.stdout.splitlines() if "arrived after the window was processed" in ln]
    assert len(late) == 1 and "2026-11-01T01:00:00+00:00" in late[0] and "now holds 2 records, 1 more" in late[0]
    assert "--backfill 2026-11-01T01:00:00+00:00 2026-11-01T02:00:00+00:00" in late[0], late
    assert _windows(tmp_path)["20261101T020000Z"]["records"] == 1
    proc = run_cli(tmp_path, "monitor", "m.yaml", "--backfill", "2026-11-01T01:00:00+00:00", "2026-11-01T02:00:00+00:00")
    assert proc.returncode == 0 and _windows(tmp_path)["20261101T010000Z"]["records"] == 2, show(proc)
    _monitor(tmp_path, "{kind: jsonl, path: t.jsonl}", window='start: "2026-11-01T00:00:00Z", '
                                                              'end: "2026-11-01T03:00:00Z", late_check: 3')
    proc = run_cli(tmp_path, "monitor", "m.yaml")  # nothing new, nothing late once backfilled
    assert proc.returncode == 0 and "arrived after" not in proc.stdout, show(proc)


# ------------------------------------------------------------------------------- runaway windows


def test_epoch_zero_record_is_quarantined_not_a_runaway(tmp_path: Path) -> None:
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    z = lambda t: t.strftime("%Y-%m-%dT%H:%M:%SZ")  # noqa: E731
    _jsonl(tmp_path / "t.jsonl", [_rec(0, "zero"), _rec(z(hour - timedelta(minutes=150)), "a"),
                                  _rec(z(hour - timedelta(minutes=90)), "b")])
    _monitor(tmp_path, "{kind: jsonl, path: t.jsonl}")  # no window.start: the data's first plausible time
    proc = run_cli(tmp_path, "monitor", "m.yaml", timeout=FAST_S)
    assert proc.returncode == 0, show(proc)
    assert len(_windows(tmp_path)) in (2, 3)  # hour-3 .. hour-1, not one per hour since 1970
    assert _accounting(proc) == (3, 2, 1) and "timestamp.implausible 1" in proc.stdout, show(proc)


def test_too_many_windows_stop_before_any_window_is_written(tmp_path: Path) -> None:
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    z = lambda t: t.strftime("%Y-%m-%dT%H:%M:%SZ")  # noqa: E731
    _jsonl(tmp_path / "t.jsonl", [_rec("2001-01-01T00:00:00Z", "old"), _rec(z(hour - timedelta(minutes=30)), "a")])
    _monitor(tmp_path, "{kind: jsonl, path: t.jsonl}")
    proc = run_cli(tmp_path, "monitor", "m.yaml", timeout=FAST_S)
    line = assert_user_error(proc, "windows between 2001-01-01T00:00:00+00:00 and ",
                             "exceed window.max_windows_per_run=1000", "window.start", "--backfill")
    assert int(re.search(r"(\d+) windows between", line).group(1)) > 200_000  # type: ignore[union-attr]
    assert not (tmp_path / "out" / "m" / "windows").exists()
    # the limit is configurable, and a backfill over an explicit range stays within it
    _monitor(tmp_path, "{kind: jsonl, path: t.jsonl}", window="max_windows_per_run: 2")
    small = run_cli(tmp_path, "monitor", "m.yaml", "--backfill", z(hour - timedelta(hours=3)), z(hour),
                    timeout=FAST_S)
    assert_user_error(small, "3 windows between", "exceed window.max_windows_per_run=2")
    ok = run_cli(tmp_path, "monitor", "m.yaml", "--backfill", z(hour - timedelta(hours=2)), z(hour), timeout=FAST_S)
    assert ok.returncode == 0 and len(_windows(tmp_path)) == 2, show(ok)
    # window.start before the first plausible time (source.timestamp_min): empty windows only → exit 2
    _monitor(tmp_path, "{kind: jsonl, path: t.jsonl}", window='start: "1970-01-01T00:00:00Z"')
    early = run_cli(tmp_path, "monitor", "m.yaml", timeout=FAST_S)
    assert_user_error(early, "1970-01-01", "source.timestamp_min")


# ------------------------------------------------------------------------------- corrupt input


def _traffic_lines(n: int) -> list[bytes]:
    rng = random.Random(7)
    words = ["alpha", "beta", "gamma", "delta", "omega", "sigma", "kappa", "theta"]
    return [(json.dumps(_rec(f"2026-11-01T{i * 2 // n:02d}:{(i * 7) % 60:02d}:00Z", f"r{i}")
                        | {"response": " ".join(rng.choice(words) + str(rng.randrange(10**6)) for _ in range(30))})
             + "\n").encode() for i in range(n)]


def test_truncated_gzip_is_exit_2_naming_file_and_offset_or_quarantined_by_choice(tmp_path: Path) -> None:
    data = gzip.compress(b"".join(_traffic_lines(400)))
    (tmp_path / "t.jsonl.gz").write_bytes(data[: len(data) * 6 // 10])
    window = 'start: "2026-11-01T00:00:00Z", end: "2026-11-01T02:00:00Z"'
    _monitor(tmp_path, "{kind: jsonl, path: t.jsonl.gz}", window=window)
    proc = run_cli(tmp_path, "monitor", "m.yaml")
    assert proc.returncode != 130 and "aborted" not in proc.stderr, show(proc)
    line = assert_user_error(proc, "t.jsonl.gz", "on_corrupt: quarantine")
    assert re.search(r"byte \d+", line) and re.search(r"line \d+", line), line
    assert not (tmp_path / "out" / "m" / "windows").exists()  # nothing half-processed
    _monitor(tmp_path, "{kind: jsonl, path: t.jsonl.gz, on_corrupt: quarantine}", window=window)
    kept = run_cli(tmp_path, "monitor", "m.yaml")
    assert kept.returncode == 0, show(kept)
    _, processed, quarantined = _accounting(kept)
    assert 100 < processed < 400 and quarantined == 1 and "file.corrupt 1" in kept.stdout, show(kept)


def test_random_bytes_file_fails_or_is_quarantined_never_invisible(tmp_path: Path) -> None:
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "good.jsonl").write_bytes(b"".join(_traffic_lines(20)))
    (tmp_path / "logs" / "junk.jsonl").write_bytes(random.Random(3).randbytes(6000))
    window = 'start: "2026-11-01T00:00:00Z", end: "2026-11-01T02:00:00Z"'
    _monitor(tmp_path, "{kind: jsonl, path: logs}", window=window)
    proc = run_cli(tmp_path, "monitor", "m.yaml")
    line = assert_user_error(proc, "junk.jsonl", "byte ", "on_corrupt: quarantine")
    assert "good.jsonl" not in line
    _monitor(tmp_path, "{kind: jsonl, path: logs, on_corrupt: quarantine}", window=window)
    kept = run_cli(tmp_path, "monitor", "m.yaml")
    assert kept.returncode == 0, show(kept)
    _, processed, quarantined = _accounting(kept)
    assert processed == 20 and quarantined > 0 and "file.corrupt" in kept.stdout and "unplaced" in kept.stdout


# ------------------------------------------------------------------------------- names are not paths


@pytest.mark.parametrize("name", ["..", ".", "a/b", "..\\\\x"])
def test_monitor_name_cannot_leave_output_dir(tmp_path: Path, name: str) -> None:
    root = tmp_path / "root"
    root.mkdir()
    _jsonl(root / "t.jsonl", [_rec("2026-11-01T00:10:00Z", "a")])
    _monitor(root, "{kind: jsonl, path: t.jsonl}", name=name,
             window='start: "2026-11-01T00:00:00Z", end: "2026-11-01T01:00:00Z"')
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    proc = run_cli(root, "monitor", "m.yaml")
    assert_user_error(proc, "m.yaml", "name")
    assert_no_traceback(proc)
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before  # nothing written anywhere


def test_run_pins_the_plausibility_clock_once_for_every_read(tmp_path: Path) -> None:
    """The fit and summary passes (and every Spark cell) read minutes or hours apart: with the wall clock read
    per read, a record near now + timestamp_max_ahead could be windowed by one and quarantined by the other."""
    from evalmon.monitor.sources import build_source, pin_clock

    late = pd.Series(["2026-11-06T12:30:00Z"], dtype=object)
    pinned = Plausible().pinned(NOW)
    assert pinned.bounds()[1] == pd.Timestamp(NOW) + timedelta(days=1)
    assert parse_times(late, plausible=pinned).reasons.iloc[0] is not None  # after NOW + 1 d, whatever the wall
    assert parse_times(late, plausible=Plausible().pinned(NOW + timedelta(hours=1))).reasons.iloc[0] is None
    (tmp_path / "t.jsonl").write_text("")
    src = build_source({"kind": "jsonl", "path": "t.jsonl"}, tmp_path)
    assert src.plausible.now is None  # type: ignore[attr-defined]
    pin_clock(src, NOW)
    assert src.plausible.bounds() == pinned.bounds()  # type: ignore[attr-defined]

"""Hostile-input walk (session 10): each case was a misleading error or a dead end before its fix.

- ``evalmon monitor calibrate`` on a YAML whose ``alerts.thresholds`` file does not exist yet (a copied
  example, a first calibration) or is stale (a rule since removed) refused with "thresholds file not found" /
  "re-run `evalmon monitor calibrate`" — the very command that writes the file: a loop with no way out.
- ``evalmon signals score``: a gzip file named ``.jsonl`` was "binary data (a NUL byte)"; one NUL line stopped
  the whole file with a hint to set ``on_corrupt:`` on a source YAML this command does not have; records left
  out were counted but never said why; ``--column``/``--kind`` mistakes were named ``source.columns`` /
  ``source.kind`` with pydantic's "Value error," and an unrelated "kind is one of …" hint.
- CSV: a ``;``-separated file was "no column for required field(s) … columns are a;b;c" (true, not why);
  ``.tsv`` / ``.ndjson`` files were "cannot tell the format" for ``signals score`` and ``.tsv`` was read
  comma-separated by directory scans; ``delimiter: ';;'`` was ``internal error: TypeError``.
"""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from evalmon.config.monitor import load_monitor
from evalmon.core.errors import ConfigError

MONITOR = """\
name: m
source: {kind: jsonl, path: t.jsonl}
window: {size: 1h}
reference: {kind: fixed, start: 2026-11-01T00:00:00Z, end: 2026-11-01T12:00:00Z}
signals: [usage]
alerts:
  thresholds: m.thresholds.yaml
  rules:
    - {metric: p90/latency_ms, op: ">", value: 20000, name: slow}
    - {metric: records, op: "<", name: traffic drop}   # its value comes from the thresholds file
"""


@pytest.mark.parametrize("thresholds", [
    None,  # not written yet
    "thresholds: {slow: 900.0, gone: 0.5}\n",  # stale: rule 'gone' was removed from the YAML
    "thresholds: [1, 2\n",  # cut short
])
def test_calibrate_loads_a_monitor_whose_thresholds_file_it_is_about_to_rewrite(tmp_path: Path,
                                                                                 thresholds: str | None) -> None:
    (tmp_path / "m.yaml").write_text(MONITOR)
    if thresholds is not None:
        (tmp_path / "m.thresholds.yaml").write_text(thresholds)
    with pytest.raises(ConfigError):  # the monitor itself still refuses it
        load_monitor(tmp_path / "m.yaml")
    cfg = load_monitor(tmp_path / "m.yaml", calibrating=True)
    values = {r.key: r.value for r in cfg.alerts.rules}
    assert values == {"slow": 900.0 if thresholds and "gone" in thresholds else 20000, "traffic drop": None}


def test_calibrate_cli_gets_past_a_missing_thresholds_file(tmp_path: Path) -> None:
    """The CLI loads the monitor for calibration: the next check (--reference-rows) is the one that fails."""
    from evalmon.cli.monitor import calibrate

    (tmp_path / "m.yaml").write_text(MONITOR)
    with pytest.raises(ConfigError) as exc:
        calibrate(config=tmp_path / "m.yaml", false_alarm_rate=0.001, draws=None, out=None,
                  reference_rows=5, dry_run=True)
    assert exc.value.one_line().startswith("--reference-rows: 5 is too few")


def _lines(n: int) -> list[str]:
    return [json.dumps({"request_id": str(i), "timestamp": f"2026-11-01T00:{i:02d}:00Z", "prompt": "hi",
                        "response": "hello", "latency_ms": 10.0}) for i in range(n)]


def test_gzip_named_jsonl_says_so(tmp_path: Path) -> None:
    """One corrupt-file error (or, with ``on_corrupt: quarantine``, one quarantined record) that says what
    the file is — not "binary data (a NUL byte)" at line 1 and garbage lines after it."""
    from evalmon.monitor.sources.files import read_lines

    path = tmp_path / "t.jsonl"
    path.write_bytes(gzip.compress("\n".join(_lines(3)).encode()))
    broken: list[tuple[int, int, str]] = []
    assert list(read_lines(path, lambda *a: broken.append(a))) == []
    assert broken == [(1, 0, "gzip-compressed data in a file not named .gz (rename it t.jsonl.gz)")]
    path.write_bytes(b"\x1f")  # a lone 0x1f is not the magic: read as it is
    assert [raw for _, _, raw in read_lines(path, lambda *a: broken.append(a))] == [b"\x1f"]


def test_signals_score_quarantines_a_nul_line_and_says_why(tmp_path: Path) -> None:
    from evalmon.monitor.signal_scoring import score_file

    lines = _lines(4)
    lines[1] = lines[1][:20] + "\0" + lines[1][20:]
    (tmp_path / "t.jsonl").write_text("\n".join(lines) + "\n")
    result = score_file(tmp_path / "t.jsonl", ["usage"], tmp_path / "s.jsonl", cache_path=tmp_path / "c.sqlite")
    assert (result.records, result.quarantined) == (3, 1)
    assert "NUL byte" in result.why_quarantined
    assert len((tmp_path / "s.jsonl").read_text().splitlines()) == 3


@pytest.mark.parametrize(("kw", "starts"), [
    ({"columns": {"bogus": "prompt"}}, "--column: columns: unknown canonical field(s) bogus"),
    ({"kind": "xml"}, "--kind: unknown source kind 'xml'"),
])
def test_signals_score_names_its_own_options(tmp_path: Path, kw: dict[str, object], starts: str) -> None:
    from evalmon.monitor.signal_scoring import score_file

    (tmp_path / "t.jsonl").write_text("\n".join(_lines(2)) + "\n")
    with pytest.raises(ConfigError) as exc:
        score_file(tmp_path / "t.jsonl", ["usage"], tmp_path / "s.jsonl", **kw)  # type: ignore[arg-type]
    line = exc.value.one_line()
    assert line.startswith(starts) and "Value error" not in line and "kind is one of" not in line


@pytest.mark.e2e  # imports transformers (~2 s)
@pytest.mark.parametrize("config_json", ["{}", '{"model_type": "no-such-arch"}', "{cut"])
def test_safety_classifier_dir_that_is_no_checkpoint_is_a_config_error_when_built(tmp_path: Path,
                                                                                   config_json: str) -> None:
    """Was ``internal error: ValueError: Unrecognized model …`` on the reference's first batch."""
    from evalmon.monitor.signals import build_signals

    (tmp_path / "config.json").write_text(config_json)
    with pytest.raises(ConfigError) as exc:
        build_signals([{"name": "safety", "exemplars": False, "classifier": {"path": str(tmp_path)}}])
    assert exc.value.one_line().startswith(f"signals.safety.classifier.path: {tmp_path} is not a transformers")


def test_usage_tokenizer_that_cannot_load_is_an_error_when_built(tmp_path: Path) -> None:
    """Was accepted silently while every record had token counts, failing only on the first one without."""
    from evalmon.monitor.signals.usage import UsageSignal

    (tmp_path / "tokenizer.json").write_text('{"mean": [1,')
    with pytest.raises(ConfigError, match=r"signals.usage.tokenizers: cannot load .*tokenizer.json"):
        UsageSignal(tokenizers={"*": str(tmp_path)})


def test_backfill_with_nothing_to_do_names_its_range_not_the_watermark(tmp_path: Path) -> None:
    """``--backfill`` that window.end cuts off said "no complete window to process after the watermark …"."""
    from datetime import UTC, datetime

    from evalmon.config.monitor import load_monitor_text
    from evalmon.monitor.runner import _nothing_to_do

    cfg = load_monitor_text("name: m\nsource: {kind: jsonl, path: t.jsonl}\n"
                            "window: {size: 1h, end: 2020-11-01T04:00:00Z}\n", base_dir=tmp_path)
    mark = datetime(2026, 11, 1, 4, tzinfo=UTC)
    span = (datetime(2026, 11, 1, 2, tzinfo=UTC), datetime(2026, 11, 1, 3, tzinfo=UTC))
    note = _nothing_to_do(cfg, mark, span)
    assert "watermark" not in note and "--backfill 2026-11-01T02:00:00+00:00 2026-11-01T03:00:00+00:00" in note
    assert "window.end 2020-11-01T04:00:00+00:00" in note
    assert _nothing_to_do(cfg, mark, None).endswith("after the watermark 2026-11-01T04:00:00+00:00")


@pytest.mark.parametrize("out", ["adir", "file.txt/sub.yaml"])
def test_calibrate_refuses_an_unwritable_out_before_scoring(tmp_path: Path, out: str) -> None:
    """Was ``internal error: FileNotFoundError`` (or IsADirectoryError) after the whole reference had been scored
    and resampled. Here the source does not even exist: the output check comes first."""
    from evalmon.cli.monitor import calibrate
    from evalmon.core.errors import OutputError

    (tmp_path / "m.yaml").write_text(MONITOR)
    (tmp_path / "adir").mkdir()
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(OutputError) as exc:
        calibrate(config=tmp_path / "m.yaml", false_alarm_rate=0.001, draws=None, out=tmp_path / out,
                  reference_rows=None, dry_run=False)
    assert exc.value.one_line().startswith(f"--out {tmp_path / out}: ")


@pytest.mark.parametrize(("entry", "says"), [
    ("{name: safety, thresholds: {jailbreak: high}}", "signals.1: thresholds.jailbreak: expected a number, got 'high'"),
    ("{name: text, language_chars: many}", "signals.1.language_chars: expected an integer, got 'many'"),
])
def test_signal_option_of_the_wrong_type_reads_like_every_other_key(entry: str, says: str) -> None:
    """Was pydantic's "Input should be a valid number, unable to parse string as a number"."""
    from evalmon.config.monitor import load_monitor_text

    text = f"name: m\nsource: {{kind: jsonl, path: t.jsonl}}\nwindow: {{size: 1h}}\nsignals:\n  - usage\n  - {entry}\n"
    with pytest.raises(ConfigError) as exc:
        load_monitor_text(text, "m.yaml")
    assert exc.value.one_line().startswith(f"m.yaml:6: {says}")


def _csv_rows(sep: str) -> str:
    return "\n".join(sep.join(r) for r in (("request_id", "timestamp", "prompt", "response"),
                                           ("1", "2026-11-01T00:00:00Z", "hi", "hello"))) + "\n"


def test_csv_with_another_separator_says_so(tmp_path: Path) -> None:
    from evalmon.core.errors import DataError
    from evalmon.monitor.signal_scoring import score_file

    (tmp_path / "t.csv").write_text(_csv_rows(";"))
    with pytest.raises(DataError) as exc:
        score_file(tmp_path / "t.csv", ["text"], tmp_path / "s.jsonl", cache_path=tmp_path / "c.sqlite")
    assert "looks ';'-separated, not ','-separated" in exc.value.one_line()
    assert "--delimiter ';'" in exc.value.one_line()
    result = score_file(tmp_path / "t.csv", ["text"], tmp_path / "s.jsonl", cache_path=tmp_path / "c.sqlite",
                        delimiter=";")
    assert result.records == 1


@pytest.mark.parametrize(("name", "body"), [("t.tsv", _csv_rows("\t")), ("t.ndjson", json.dumps(
    {"request_id": "1", "timestamp": "2026-11-01T00:00:00Z", "prompt": "hi", "response": "hello"}) + "\n")])
def test_signals_score_reads_tsv_and_ndjson_by_extension(tmp_path: Path, name: str, body: str) -> None:
    from evalmon.monitor.signal_scoring import score_file

    (tmp_path / name).write_text(body)
    result = score_file(tmp_path / name, ["text"], tmp_path / "s.jsonl", cache_path=tmp_path / "c.sqlite")
    assert (result.records, result.quarantined) == (1, 0)


@pytest.mark.parametrize("delimiter", [";;", "", "\n"])
def test_csv_delimiter_that_is_not_one_character_is_a_config_error(tmp_path: Path, delimiter: str) -> None:
    from evalmon.monitor.signal_scoring import score_file

    (tmp_path / "t.csv").write_text(_csv_rows(","))
    with pytest.raises(ConfigError) as exc:
        score_file(tmp_path / "t.csv", ["text"], tmp_path / "s.jsonl", delimiter=delimiter)
    assert exc.value.one_line().startswith(f"--delimiter: {delimiter!r} is not one character")


@pytest.mark.e2e  # imports evidently's stattests (seconds)
def test_unknown_drift_method_is_a_config_error_before_any_record(tmp_path: Path) -> None:
    """Was a per-window "evidently failed" note in drift.json (that column's drift skipped in every window)
    while the console said "drift 0/N columns" and the monitor exited 0."""
    from evalmon.config.monitor import load_monitor_text
    from evalmon.monitor.runner import check_drift_methods

    text = "name: m\nsource: {kind: jsonl, path: t.jsonl}\nwindow: {size: 1h}\ndrift: {methods: %s}\n"
    with pytest.raises(ConfigError) as exc:
        check_drift_methods(load_monitor_text(text % "{latency_ms: pssi}", base_dir=tmp_path))
    assert exc.value.one_line().startswith("drift.methods.latency_ms: unknown drift test 'pssi' (did you mean: psi")
    check_drift_methods(load_monitor_text(text % "{latency_ms: psi, prompt: abs_text_content_drift}",
                                          base_dir=tmp_path))


@pytest.mark.parametrize(("key", "value"), [("size", "99999999999999999999d"), ("delay", "1000000d")])
def test_a_duration_beyond_any_date_is_a_config_error(key: str, value: str) -> None:
    """Was ``internal error: OverflowError`` (Python int too large to convert to C int / date value out of
    range) — at load for the size, on the first run for the delay."""
    from evalmon.config.monitor import load_monitor_text

    with pytest.raises(ConfigError) as exc:
        window = f"{{size: {value}}}" if key == "size" else f"{{size: 1h, {key}: {value}}}"
        load_monitor_text(f"name: m\nsource: {{kind: jsonl, path: t.jsonl}}\nwindow: {window}\n", "m.yaml")
    assert exc.value.one_line().startswith(f"m.yaml:3: window.{key}: '{value}' is longer than 100 years")


def test_parse_duration_refuses_what_timedelta_and_dates_cannot_hold() -> None:
    from datetime import timedelta

    from evalmon.core.timewindows import parse_duration

    assert parse_duration("36500d") == timedelta(days=36500) and parse_duration(90.0) == timedelta(seconds=90)
    for bad in ("99999999999999999999d", 1e30, float("nan"), float("inf")):
        with pytest.raises(ConfigError):
            parse_duration(bad)


@pytest.mark.e2e  # a monitor run (~2 s)
def test_reference_with_every_record_quarantined_says_why(tmp_path: Path) -> None:
    """``columns: {prompt: question}`` on records without ``question``: was only "the fixed span … holds no
    usable record of the source — set reference.start/end to a period with traffic" (it has traffic)."""
    from evalmon.config.monitor import load_monitor_text
    from evalmon.core.errors import DataError
    from evalmon.monitor.runner import run_monitor

    (tmp_path / "t.jsonl").write_text("\n".join(_lines(30)) + "\n")
    cfg = load_monitor_text(
        "name: m\nsource: {kind: jsonl, path: t.jsonl, columns: {prompt: question}}\n"
        "window: {size: 1h, end: 2026-11-01T02:00:00Z}\nsignals: [usage]\ntracking: {enabled: false}\n"
        "reference: {kind: fixed, start: 2026-11-01T00:00:00Z, end: 2026-11-01T01:00:00Z}\n"
        "output_dir: out\nstate: {path: state.sqlite}\n", base_dir=tmp_path)
    with pytest.raises(DataError) as exc:
        run_monitor(cfg, backfill=(datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 11, 1, 1, tzinfo=UTC)))
    assert "(30 quarantined records read; 30 of them: missing required field: prompt)" in exc.value.one_line()
    assert "check source.columns" in exc.value.one_line()


def test_parquet_out_takes_a_field_the_first_batch_never_had(tmp_path: Path) -> None:
    """Was ``internal error: ArrowInvalid: Invalid null value … column model`` at the second row group, leaving a
    Parquet file of the first batch only."""
    import pyarrow.parquet as pq

    from evalmon.monitor.signal_scoring import score_file

    lines = [json.loads(x) for x in _lines(3)]
    lines[1]["model"] = "m1"
    (tmp_path / "t.jsonl").write_text("\n".join(json.dumps(r) for r in lines) + "\n")
    result = score_file(tmp_path / "t.jsonl", ["text"], tmp_path / "s.parquet", batch_size=1,
                        cache_path=tmp_path / "c.sqlite")
    assert result.records == 3
    assert pq.read_table(tmp_path / "s.parquet").column("model").to_pylist() == [None, "m1", None]

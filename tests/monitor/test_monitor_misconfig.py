"""Issue #10 follow-up, monitors: a misconfiguration never silently does nothing, and no secret reaches the console.

- a source glob/folder with no file, a ``columns:`` mapping or ``kind`` that quarantines every record, an
  alert rule on a metric that never exists (or ``value: .nan``), an empty reference → exit 2, one line;
- an alert rule name / webhook URL holding a credential is printed redacted;
- a state path, output dir or name the OS cannot use, a CSV header naming a column twice → exit 2 before
  any record is read (the source in those tests does not exist: reading it would be another error);
- JSON ``Infinity`` latency is quarantined as a wrong type; a UTF-8 byte-order mark is not data.

Runs are the real ``evalmon monitor`` CLI in a subprocess (tracking, quality and drift off unless needed).
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import pytest
from cli_util import assert_user_error, run_cli, show

from evalmon.config.monitor import load_monitor_text
from evalmon.core.errors import ConfigError

WINDOW = 'start: "2026-11-01T00:00:00Z", end: "2026-11-01T02:00:00Z"'


def _monitor(root: Path, source: str, *, name: str = "m", extra: str = "", drift: str = "{enabled: false}") -> Path:
    path = root / "m.yaml"
    path.write_text(textwrap.dedent(f"""\
        name: "{name}"
        source: {source}
        window: {{size: 1h, {WINDOW}}}
        drift: {drift}
        quality: {{enabled: false}}
        tracking: {{enabled: false}}
        """) + extra + ("" if "output_dir:" in extra else "output_dir: out\n"), encoding="utf-8")
    return path


def _rec(ts: str, rid: str, **more: Any) -> dict[str, Any]:
    return {"request_id": rid, "timestamp": ts, "prompt": f"question {rid}", "response": f"answer {rid}", **more}


def _traffic(path: Path, n: int = 6) -> Path:
    path.write_text("".join(json.dumps(_rec(f"2026-11-01T{i % 2:02d}:{10 + i:02d}:00Z", f"r{i}")) + "\n"
                            for i in range(n)), encoding="utf-8")
    return path


# ------------------------------------------------------------------------------- silently nothing → exit 2


def test_glob_or_folder_without_files_is_exit_2(tmp_path: Path) -> None:
    (tmp_path / "logs").mkdir()
    _monitor(tmp_path, "{kind: jsonl, path: logs/*.jsonl}")
    assert_user_error(run_cli(tmp_path, "monitor", "m.yaml"), "logs/*.jsonl", "matches no files")
    _monitor(tmp_path, "{kind: jsonl, path: logs}")
    assert_user_error(run_cli(tmp_path, "monitor", "m.yaml"), "logs", "holds no .jsonl")


def test_every_record_quarantined_is_exit_2_naming_reason_and_mapping(tmp_path: Path) -> None:
    _traffic(tmp_path / "t.jsonl")
    _monitor(tmp_path, "{kind: jsonl, path: t.jsonl}", extra="columns: {timestamp: created_at}\n")
    line = assert_user_error(run_cli(tmp_path, "monitor", "m.yaml"), "all 6 records", "timestamp.missing",
                             "columns")
    qfile = next((tmp_path / "out" / "m" / "quarantine").glob("*.jsonl"))  # still written, and named
    assert str(qfile) in line and len(qfile.read_text().splitlines()) == 6
    (tmp_path / "t.csv").write_text("timestamp,prompt,response\n2026-11-01T00:10:00Z,q,a\n"
                                    "2026-11-01T01:10:00Z,q,a\n", encoding="utf-8")
    _monitor(tmp_path, "{kind: jsonl, path: t.csv}")
    assert_user_error(run_cli(tmp_path, "monitor", "m.yaml"), "all 3 records", "unparseable_json", "source.kind")
    # a cp1252 export: the hint named source.kind and `columns:`, not the encoding and source.invalid_utf8
    (tmp_path / "w.jsonl").write_bytes("".join(json.dumps(_rec("2026-11-01T00:10:00Z", f"r{i}", prompt="café"),
                                                          ensure_ascii=False) + "\n" for i in range(3)).encode("cp1252"))
    _monitor(tmp_path, "{kind: jsonl, path: w.jsonl}")
    line = assert_user_error(run_cli(tmp_path, "monitor", "m.yaml"), "all 3 records", "invalid_utf-8",
                             "source.invalid_utf8: replace", "iconv")
    assert "columns" not in line


def test_alert_metric_that_never_exists_is_exit_2_with_did_you_mean(tmp_path: Path) -> None:
    (tmp_path / "t.jsonl").write_text("".join(json.dumps(_rec(f"2026-11-01T00:{10 + i}:00Z", f"r{i}", model="v1"))
                                              + "\n" for i in range(4)), encoding="utf-8")
    # rules[0]: a model version this run has not seen yet may come later (share/model/… exists): not an error
    _monitor(tmp_path, "{kind: jsonl, path: t.jsonl}", extra=textwrap.dedent("""\
        alerts:
          rules: [{metric: share/model/v2, op: ">", value: 0.5}, {metric: records/procesed, op: ">", value: 0}]
        """))
    assert_user_error(run_cli(tmp_path, "monitor", "m.yaml"), "alerts.rules[1].metric", "'records/procesed'",
                      "did you mean: records/processed")
    for value in (".nan", ".inf"):
        with pytest.raises(ConfigError, match=r"alerts\.rules\.0\.value|value") as exc:
            load_monitor_text(f'name: m\nsource: {{kind: jsonl, path: t.jsonl}}\n'
                              f'alerts: {{rules: [{{metric: records/read, op: ">", value: {value}}}]}}\n')
        assert "finite" in exc.value.one_line()


def test_empty_reference_is_exit_2_naming_the_key(tmp_path: Path) -> None:
    _traffic(tmp_path / "t.jsonl")
    (tmp_path / "ref.jsonl").write_text("", encoding="utf-8")
    _monitor(tmp_path, "{kind: jsonl, path: t.jsonl}", drift="{enabled: true, html: false}",
             extra="reference: {kind: file, path: ref.jsonl}\n")
    assert_user_error(run_cli(tmp_path, "monitor", "m.yaml"), "reference.path", "ref.jsonl", "no usable record")
    _monitor(tmp_path, "{kind: jsonl, path: t.jsonl}", drift="{enabled: true, html: false}",
             extra='reference: {kind: fixed, start: "2025-01-01T00:00:00Z", end: "2025-01-02T00:00:00Z"}\n')
    assert_user_error(run_cli(tmp_path, "monitor", "m.yaml"), "reference", "fixed span", "kind: previous")
    # a reference file that is not there was reported as source.path's (QA walk, session 16)
    _monitor(tmp_path, "{kind: jsonl, path: t.jsonl}", drift="{enabled: true, html: false}",
             extra="reference: {kind: file, path: gone.jsonl}\n")
    proc = run_cli(tmp_path, "monitor", "m.yaml")
    assert_user_error(proc, "reference.path", "gone.jsonl", "does not exist")
    assert "source.path" not in proc.stderr, show(proc)


# ------------------------------------------------------------------------------- secrets on the console


def test_alert_rule_name_and_webhook_url_are_printed_redacted(tmp_path: Path) -> None:
    _traffic(tmp_path / "t.jsonl")
    _monitor(tmp_path, "{kind: jsonl, path: t.jsonl}", extra=textwrap.dedent("""\
        alerts:
          rules: [{metric: records/processed, op: ">", value: 0, name: "lat http://u:S3CRET@x/"}]
        """))
    proc = run_cli(tmp_path, "monitor", "m.yaml")
    assert proc.returncode == 1 and "ALERT" in proc.stdout, show(proc)
    assert "S3CRET" not in proc.stdout + proc.stderr, show(proc)
    _monitor(tmp_path, "{kind: jsonl, path: t.jsonl}", extra='alerts: {webhook: {url: "hooks/S3CRET"}}\n')
    line = assert_user_error(run_cli(tmp_path, "monitor", "m.yaml"), "alerts.webhook.url", "http")
    assert "S3CRET" not in line


# ------------------------------------------------------------------------------- unusable paths, before any read


@pytest.mark.parametrize("case", ["state_dir", "state_proc", "output_file", "long_name"])
def test_unusable_state_output_or_name_is_exit_2_before_reading(tmp_path: Path, case: str) -> None:
    (tmp_path / "sdir").mkdir()
    (tmp_path / "afile").write_text("x", encoding="utf-8")
    extra, needles, name = {
        "state_dir": ("state: {path: sdir}\n", ("state.path", "sdir"), "m"),
        "state_proc": ("state: {path: /proc/evalmon-nope/state.sqlite}\n", ("state.path", "/proc/"), "m"),
        "output_file": ("output_dir: afile\n", ("output_dir", "afile", "not a folder"), "m"),
        "long_name": ("", ("name", "at most 100"), "n" * 150),
    }[case]
    _monitor(tmp_path, "{kind: jsonl, path: missing/t.jsonl}", name=name, extra=extra)  # reading it: another error
    line = assert_user_error(run_cli(tmp_path, "monitor", "m.yaml"), *needles)
    assert "does not exist" not in line


def test_csv_header_naming_a_column_twice_is_a_data_error(tmp_path: Path) -> None:
    (tmp_path / "t.csv").write_text("timestamp,prompt,prompt,response\n2026-11-01T00:10:00Z,q,q2,a\n",
                                    encoding="utf-8")
    _monitor(tmp_path, "{kind: csv, path: t.csv}")
    assert_user_error(run_cli(tmp_path, "monitor", "m.yaml"), "t.csv", "'prompt'", "more than once")


# ------------------------------------------------------------------------------- values that vanished


def test_json_infinity_latency_is_quarantined_and_a_bom_is_not_data(tmp_path: Path) -> None:
    lines = [json.dumps(_rec("2026-11-01T00:10:00Z", "a", latency_ms=12.0)),
             '{"request_id": "b", "timestamp": "2026-11-01T00:20:00Z", "prompt": "q", "response": "r", '
             '"latency_ms": Infinity}',
             json.dumps(_rec("2026-11-01T01:10:00Z", "c", latency_ms=-5.0))]
    (tmp_path / "t.jsonl").write_bytes(b"\xef\xbb\xbf" + "\n".join(lines).encode() + b"\n")
    _monitor(tmp_path, "{kind: jsonl, path: t.jsonl}")
    proc = run_cli(tmp_path, "monitor", "m.yaml")
    assert proc.returncode == 0, show(proc)
    assert "3 records read = 2 processed + 1 quarantined" in proc.stdout, show(proc)
    qfile = next((tmp_path / "out" / "m" / "quarantine").glob("*.jsonl"))
    (bad,) = [json.loads(x) for x in qfile.read_text().splitlines()]
    assert "latency_ms" in bad["reason"] and "Infinity" in bad["raw"] + bad["reason"], bad

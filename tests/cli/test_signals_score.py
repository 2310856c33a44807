"""``evalmon signals score``: per-record signals on any traffic file (the monitor's sources and aliases)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest
from cli_util import run_cli, show

from evalmon.core.errors import ConfigError
from evalmon.monitor.signal_scoring import score_file
from evalmon.traffic.synth import SynthConfig, synthesize


def test_bad_output_format_and_missing_file_are_user_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown output format"):
        score_file(tmp_path / "t.jsonl", ["text"], tmp_path / "out.csv")
    with pytest.raises(ConfigError, match="no such file"):
        score_file(tmp_path / "missing.jsonl", ["text"], tmp_path / "out.jsonl")
    (tmp_path / "t.jsonl").write_text('{"prompt": "p", "response": "r"}\n')
    with pytest.raises(ConfigError, match=r"its folder .*t\.jsonl is a file"):  # was "it would be overwritten"
        score_file(tmp_path / "t.jsonl", ["text"], tmp_path / "t.jsonl" / "out.jsonl")
    with pytest.raises(ConfigError, match="it would be overwritten"):
        score_file(tmp_path / "t.jsonl", ["text"], tmp_path / "t.jsonl")



@pytest.mark.parametrize(("signals", "says"), [
    (["pii", "fooo"], "--signals: unknown signal 'fooo'"),
    (["text", "text"], "--signals: ['text'] listed more than once"),
    ([{"name": "pii", "nlp": "none", "entities": ["FOO"]}], "--signals 'pii': entities: unknown entity 'FOO'"),
    ([{"name": "safety", "thresholds": {"toxic": 7}}], "--signals 'safety': thresholds: toxic: 7.0 is not between"),
])
def test_bad_signal_names_what_the_user_typed_not_a_list_index(tmp_path: Path, signals: list, says: str) -> None:
    """Said ``signals[1]`` / ``signals.0``: a list position the user of ``--signals`` never wrote."""
    (tmp_path / "t.jsonl").write_text('{"timestamp": "2026-11-01T00:00:00Z", "prompt": "q", "response": "a"}\n')
    with pytest.raises(ConfigError) as exc:
        score_file(tmp_path / "t.jsonl", signals, tmp_path / "out.jsonl")
    line = exc.value.one_line()
    assert line.startswith(says) and "signals[" not in line and "signals.0" not in line, line
    assert not (tmp_path / "out.jsonl").exists()


def test_a_labelled_set_without_times_or_answers_is_scored_not_quarantined(tmp_path: Path) -> None:
    """Auditing a detector on a labelled set of prompts (a CSV of text,label): no timestamp, no response. Every
    record was quarantined (``timestamp.missing``, then ``missing required field: response``) and the command
    stopped; now each is scored (time empty, response ""), and only a record with neither text is left out."""
    pd.DataFrame({"id": ["a", "b", "c", "d"], "text": ["How do I kill a Python process?", "hello", None, "bye"],
                  "label": [0, 0, 1, 0]}).to_csv(tmp_path / "set.csv", index=False)
    res = score_file(tmp_path / "set.csv", ["text"], tmp_path / "out.parquet",
                     columns={"prompt": "text", "request_id": "id"}, keep=["label", "labell"])
    out = pd.read_parquet(tmp_path / "out.parquet")
    assert (res.records, res.quarantined) == (3, 1) and "prompt or response" in res.why_quarantined
    (q,) = [json.loads(line) for line in res.quarantine_file.read_text().splitlines()]  # type: ignore[union-attr]
    assert q["location"] == "line 4" and "prompt or response" in q["reason"] and q["raw"].startswith("c,")
    assert out["label"].tolist() == ["0", "0", "0"] and res.keep_empty == ["labell"]  # --keep (CSV: as text)
    with pytest.raises(ConfigError, match="--keep prompt: is a column the output already has"):
        score_file(tmp_path / "set.csv", ["text"], tmp_path / "o2.jsonl", keep=["prompt"])
    alone = score_file(tmp_path / "set.csv", ["text"], tmp_path / "o3.parquet", text=False, keep=["prompt"],
                       columns={"prompt": "text"})  # --no-text --keep prompt: the prompt only (refused before)
    assert alone.records == 3 and "response" not in pd.read_parquet(tmp_path / "o3.parquet").columns
    assert out["request_id"].tolist() == ["a", "b", "d"] and out["timestamp"].isna().all()
    assert out["response"].tolist() == ["", "", ""] and out["text.prompt_chars"].tolist() == [31, 5, 3]
    rows = ['{"response": "I cannot help with that.", "time": "not a time"}', '{"prompt": "hi", "time": 1}']
    (tmp_path / "r.jsonl").write_text("\n".join(rows) + "\n")
    res = score_file(tmp_path / "r.jsonl", ["text"], tmp_path / "r.out.jsonl", columns={"timestamp": "time"})
    lines = [json.loads(line) for line in (tmp_path / "r.out.jsonl").read_text().splitlines()]
    assert res.records == 2 and [d["prompt"] for d in lines] == ["", "hi"] and lines[0]["timestamp"] is None
    assert res.timestamps_dropped == 2  # "not a time" and 1 (1970: implausible): counted, the CLI warns (session 16)


def test_a_monitor_still_quarantines_records_without_a_time_or_a_response() -> None:
    """What signals score lifts (``relaxed_fields``) holds only inside its block: a monitor's windows need times."""
    from evalmon.monitor.schema import normalize_records, relaxed_fields

    recs = [{"prompt": "q"}, {"prompt": "q", "response": "a", "timestamp": "2026-11-01T00:00:00Z"}]
    with relaxed_fields("timestamp", "prompt", "response"):
        assert len(normalize_records(recs, source="t").frame) == 2
    norm = normalize_records(recs, source="t")
    assert len(norm.frame) == 1 and "timestamp.missing" in norm.quarantined[0].reason
    with pytest.raises(ValueError, match="not required fields"), relaxed_fields("model"):
        pass


def test_coverage_per_signal_shows_a_signal_that_scored_nothing(tmp_path: Path) -> None:
    """Traffic without token logprobs: logged_uncertainty's columns are all empty — coverage 0, not a score."""
    rows = [{"request_id": f"r{i}", "timestamp": f"2026-11-01T00:0{i}:00Z", "prompt": "q", "response": f"answer {i}"}
            for i in range(4)]
    (tmp_path / "t.jsonl").write_text("".join(f"{json.dumps(r)}\n" for r in rows))
    res = score_file(tmp_path / "t.jsonl", ["text", "logged_uncertainty"], tmp_path / "out.jsonl")
    assert res.records == 4 and res.coverage() == {"text": 1.0, "logged_uncertainty": 0.0}
    assert res.quarantine_file is None and not (tmp_path / "out.jsonl.quarantined.jsonl").exists()


@pytest.mark.e2e
def test_scores_otel_traffic_to_parquet_with_the_monitors_aliases(tmp_path: Path, benchmarks_dir: Path) -> None:
    res = synthesize(SynthConfig(out=tmp_path / "otel.jsonl", start=datetime(2026, 11, 1, tzinfo=UTC), hours=1,
                                 rate_per_hour=80, seed=3, schema="otel", data_dir=benchmarks_dir,
                                 malformed_rate=0.05))
    proc = run_cli(tmp_path, "signals", "score", "otel.jsonl", "--signals", "usage,refusal", "--out", "s.parquet",
                   "--batch-size", "16")
    assert proc.returncode == 0, show(proc)
    out = pd.read_parquet(tmp_path / "s.parquet")
    truth = pd.read_json(res.truth, lines=True)
    # a record without a usable time or without its response is still scored (relaxed_fields); the rest is left out
    good = truth[truth["malformed"].isna() | truth["malformed"].isin(["bad_timestamp", "missing_response"])]
    lost = len(truth) - len(good)
    assert len(out) == len(good) and f"({lost} quarantined" in proc.stdout and 0 < lost < res.malformed, show(proc)
    kind = out.merge(truth[["request_id", "malformed"]], on="request_id")["malformed"]
    assert kind.eq("missing_response").sum() == 1 and (out["response"][kind.eq("missing_response").to_numpy()] == "").all()
    assert {"request_id", "prompt", "response", "refusal.refused", "usage.total_tokens"} <= set(out.columns)
    # the record without its response is not scored by refusal (v6: NaN, not "not refused"): coverage says so
    assert out.loc[kind.eq("missing_response").to_numpy(), "refusal.refused"].isna().all()
    refusal_cov = f"{100 * (len(out) - 1) / len(out):.1f}%"
    assert f"coverage (share of records scored): usage 100.0%, refusal {refusal_cov}" in proc.stdout, show(proc)
    # OTel attribute names mapped to canonical ones, as a monitor maps them: every record has text and tokens
    assert out["response"].notna().all() and out["usage.total_tokens"].notna().all()
    merged = out.merge(good[["request_id", "is_refusal"]], on="request_id")
    assert len(merged) == len(out)
    flagged = merged["refusal.refused"] == 1
    assert flagged.sum() > 0 and merged.loc[flagged, "is_refusal"].mean() > 0.5  # the signal, not noise


@pytest.mark.e2e  # a CLI subprocess
def test_a_text_field_no_record_has_is_named_with_its_readers(tmp_path: Path) -> None:
    """QA walk (session 16): a file without `response` (or `--column response=answer` naming a field the file lacks)
    scored refusal 0 "at 100 % coverage" without a word; the result now lists the field and the signals reading it
    (the CLI prints it as a warning)."""
    rows = [{"timestamp": f"2026-11-01T00:0{i}:00Z", "prompt": f"question {i}", "said": f"reply {i}"} for i in range(3)]
    (tmp_path / "t.jsonl").write_text("".join(f"{json.dumps(r)}\n" for r in rows))
    res = score_file(tmp_path / "t.jsonl", ["text", "refusal"], tmp_path / "o.jsonl")
    assert res.inputs_empty == {"response": ["text", "refusal"]}
    res = score_file(tmp_path / "t.jsonl", ["text", "refusal"], tmp_path / "o.jsonl", columns={"response": "sayd"})
    assert res.inputs_empty == {"response": ["text", "refusal"]}
    res = score_file(tmp_path / "t.jsonl", ["text", "refusal"], tmp_path / "o.jsonl", columns={"response": "said"})
    assert res.inputs_empty == {} and res.records == 3
    proc = run_cli(tmp_path, "signals", "score", "t.jsonl", "--signals", "text,refusal", "--out", "o.jsonl",
                   "--column", "response=sayd")
    assert proc.returncode == 0, show(proc)
    assert "warning: no record has field 'sayd' (--column response=sayd), which text, refusal" in proc.stderr

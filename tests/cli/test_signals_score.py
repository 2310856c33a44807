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

def test_coverage_per_signal_shows_a_signal_that_scored_nothing(tmp_path: Path) -> None:
    """Traffic without token logprobs: logged_uncertainty's columns are all empty — coverage 0, not a score."""
    rows = [{"request_id": f"r{i}", "timestamp": f"2026-11-01T00:0{i}:00Z", "prompt": "q", "response": f"answer {i}"}
            for i in range(4)]
    (tmp_path / "t.jsonl").write_text("".join(f"{json.dumps(r)}\n" for r in rows))
    res = score_file(tmp_path / "t.jsonl", ["text", "logged_uncertainty"], tmp_path / "out.jsonl")
    assert res.records == 4 and res.coverage() == {"text": 1.0, "logged_uncertainty": 0.0}


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
    good = truth[truth["malformed"].isna()]
    assert len(out) == len(good) and f"({res.malformed} quarantined" in proc.stdout, show(proc)
    assert {"request_id", "prompt", "response", "refusal.refused", "usage.total_tokens"} <= set(out.columns)
    assert "coverage (share of records scored): usage 100.0%, refusal 100.0%" in proc.stdout, show(proc)
    # OTel attribute names mapped to canonical ones, as a monitor maps them: every record has text and tokens
    assert out["response"].notna().all() and out["usage.total_tokens"].notna().all()
    merged = out.merge(good[["request_id", "is_refusal"]], on="request_id")
    assert len(merged) == len(out)
    flagged = merged["refusal.refused"] == 1
    assert flagged.sum() > 0 and merged.loc[flagged, "is_refusal"].mean() > 0.5  # the signal, not noise

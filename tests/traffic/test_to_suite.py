"""``evalmon traffic to-suite`` (evalmon/traffic/to_suite.py): selection, stratified sample, redaction, suite."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from evalmon.config.monitor import load_monitor_text
from evalmon.config.suite import load_suite
from evalmon.core.errors import ConfigError, DataError
from evalmon.traffic.to_suite import Selection, allocate, to_suite, window_range

MONITOR = """
name: m
source: {kind: jsonl, path: traffic.jsonl, keep: [reference]}
window: {size: 1h}
signals: [{name: pii, nlp: none}]
tracking: {enabled: false}
alerts:
  rules:
    - {metric: rate/pii.any, op: ">", value: 0.2, name: pii leak}
output_dir: runs
"""


def test_allocate_is_proportional_with_one_per_stratum() -> None:
    assert allocate({"a": 90, "b": 10}, 10) == {"a": 9, "b": 1}
    assert allocate({"a": 98, "b": 1, "c": 1}, 10) == {"a": 8, "b": 1, "c": 1}
    assert allocate({"a": 3, "b": 2}, 10) == {"a": 3, "b": 2}  # never more than a stratum holds
    assert sum(allocate({"a": 5, "b": 5, "c": 5}, 2).values()) == 2  # fewer than strata: no floor


@pytest.mark.e2e  # loading a monitor config pulls the source/signal registries: ~1 s
def test_window_range_forms_and_errors(tmp_path: Path) -> None:
    cfg = load_monitor_text(MONITOR, base_dir=tmp_path)
    lo, hi = window_range(cfg, window="2026-11-01T02:30Z")
    assert (lo.isoformat(), hi.isoformat()) == ("2026-11-01T02:00:00+00:00", "2026-11-01T03:00:00+00:00")
    for kw, needle in (({}, "--window TIME or both"), ({"window": "x"}, "not an ISO time"),
                       ({"start": "2026-11-01T03:00Z", "end": "2026-11-01T01:00Z"}, "is not after"),
                       ({"window": "2026-11-01T00:00Z", "start": "2026-11-01T00:00Z"}, "not both")):
        with pytest.raises(ConfigError, match=needle):
            window_range(cfg, **kw)  # type: ignore[arg-type]


def _traffic(tmp_path: Path) -> None:
    rows = []
    for h in range(3):
        for i in range(6):
            leak = h == 2 and i < 4
            rows.append({"request_id": f"h{h}-{i}", "timestamp": f"2026-11-01T0{h}:{10 + i:02d}:00Z",
                         "prompt": "What is my account status?" if i == 5 else f"question {h}-{i}",
                         "response": f"Mail jane.doe{i}@example.com or call 212-555-01{i:02d}" if leak else "ok",
                         "reference": "ok"})
    (tmp_path / "traffic.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    win = tmp_path / "runs" / "m" / "windows" / "20261101T020000Z"
    win.mkdir(parents=True)
    (win / "window.json").write_text(json.dumps({"alerts": [
        {"rule": "pii leak", "metric": "rate/pii.any", "status": "fired"},
        {"rule": "slow", "metric": "p90/latency_ms", "status": "fired"},  # no signal column: selects, no strata
        {"rule": "gone", "metric": "rate/x.y", "status": "not evaluated"}]}))
    (win / "mlflow.json").write_text(json.dumps({"run_id": "0123abcd"}))


@pytest.mark.e2e  # presidio + pandas + the source: ~2 s in-process
def test_to_suite_selects_alerting_window_dedupes_redacts_and_writes_a_loadable_suite(tmp_path: Path) -> None:
    _traffic(tmp_path)
    cfg = load_monitor_text(MONITOR, base_dir=tmp_path)
    lo, hi = window_range(cfg, start="2026-11-01T00:00Z", end="2026-11-01T03:00Z")
    out = tmp_path / "suites" / "replay-leak.yaml"
    res = to_suite(cfg, Selection(lo, hi, where='alerts != ""', sample=3, seed=7), out,
                   dataset=tmp_path / "reports" / "leak.jsonl")
    rows = [json.loads(x) for x in res.dataset.read_text().splitlines()]
    assert res.matched == 6 and len(rows) == 3  # only the alerting window's 6 records
    assert {r["provenance"]["window"] for r in rows} == {"20261101T020000Z"}
    assert all(r["provenance"]["alerts"] == ["pii leak", "slow"] for r in rows)
    assert all(r["provenance"]["monitor_run_id"] == "0123abcd" for r in rows)
    # stratified by the fired signal: 4 leaking of 6 → 2 + 1
    fired = sorted(bool(r["provenance"]["signals_fired"]) for r in rows)
    assert fired == [False, True, True], rows
    for r in rows:
        assert "@example.com" not in r["production"] and "212-555" not in r["production"]
        if r["provenance"]["signals_fired"]:
            assert "<EMAIL_ADDRESS>" in r["production"] and "EMAIL_ADDRESS" in r["provenance"]["pii_redacted"]
    assert all(r["reference"] == "ok" for r in rows)
    again = to_suite(cfg, Selection(lo, hi, where='alerts != ""', sample=3, seed=7), out,
                     dataset=tmp_path / "reports" / "leak.jsonl")
    assert again.dataset.read_text() == res.dataset.read_text()  # fixed seed: same bytes
    suite = load_suite(out)  # paths relative to the suite file
    [entry] = suite.tasks
    assert entry.name == "replay" and entry.options["dataset"] == "../reports/leak.jsonl"
    assert entry.options["scoring"] == ["signals", "reference"]
    prov = json.loads(res.provenance.read_text())
    assert prov["windows"][2]["monitor_run_id"] == "0123abcd" and prov["signals_recomputed"] == ["pii.any"]

    # the whole range, deduplicated by prompt: "What is my account status?" is asked in every hour
    res = to_suite(cfg, Selection(lo, hi, sample=100), tmp_path / "all.yaml", dataset=tmp_path / "all.jsonl")
    rows = [json.loads(x) for x in res.dataset.read_text().splitlines()]
    assert res.matched == 18 and len(rows) == 16
    dup = next(r for r in rows if r["prompt"] == "What is my account status?")
    assert dup["id"] == "h0-5" and dup["provenance"]["duplicates"] == ["h1-5", "h2-5"]

    res = to_suite(cfg, Selection(lo, hi, signal="pii.any", sample=100), tmp_path / "s.yaml",
                   dataset=tmp_path / "s.jsonl")
    assert res.selected == 4
    with pytest.raises(ConfigError, match="--where"):
        to_suite(cfg, Selection(lo, hi, where="nonexistent > 1"), tmp_path / "x.yaml", dataset=tmp_path / "x.jsonl")
    with pytest.raises(ConfigError, match="--where 'prompt'") as bad:  # pandas' KeyError quotes every prompt
        to_suite(cfg, Selection(lo, hi, where="prompt"), tmp_path / "x.yaml", dataset=tmp_path / "x.jsonl")
    assert len(bad.value.message) < 250 and "question 0-1" not in bad.value.message
    with pytest.raises(ConfigError, match="not among the monitor's signals"):
        to_suite(cfg, Selection(lo, hi, signal="refusal.refused"), tmp_path / "x.yaml", dataset=tmp_path / "x.jsonl")
    with pytest.raises(DataError, match="no record matched"):
        to_suite(cfg, Selection(lo, hi, where="prompt == 'nope'"), tmp_path / "x.yaml", dataset=tmp_path / "x.jsonl")
    assert not (tmp_path / "x.yaml").exists()
    assert yaml.safe_load(out.read_text())["tasks"][0]["options"]["max_new_tokens"] == 256


def test_a_range_off_window_edges_reads_only_the_windows_inside_it_and_outputs_must_differ(tmp_path: Path) -> None:
    """--from 00:30 read the whole 00:00 hour (records from before --from) without a word; --dataset equal to --out
    had the suite overwrite the dataset; a --dataset folder failed after the selection with IsADirectoryError."""
    _traffic(tmp_path)
    cfg = load_monitor_text(MONITOR, base_dir=tmp_path)
    lo, hi = window_range(cfg, start="2026-11-01T00:30Z", end="2026-11-01T02:30Z")
    said: list[str] = []
    res = to_suite(cfg, Selection(lo, hi, sample=100), tmp_path / "a.yaml", dataset=tmp_path / "a.jsonl",
                   log_fn=said.append)
    rows = [json.loads(x) for x in res.dataset.read_text().splitlines()]
    assert {r["provenance"]["window"] for r in rows} == {"20261101T010000Z"} and res.matched == 6
    assert any("not on 1h window edges" in m and "[2026-11-01T01:00:00+00:00, 2026-11-01T02:00:00+00:00)" in m
               for m in said), said
    (tmp_path / "folder").mkdir()
    for dataset, says in ((tmp_path / "same.yaml", "same file"), (tmp_path / "folder", "is a folder")):
        with pytest.raises(ConfigError, match=says):
            to_suite(cfg, Selection(lo, hi), tmp_path / "same.yaml", dataset=dataset)
    assert not (tmp_path / "same.yaml").exists()


@pytest.mark.parametrize(("where", "reports", "model"), [
    ("replay.yaml", "reports", ".evalmon/checkpoints/smollm2-135m-instruct"),  # in the working dir
    ("suites/replay.yaml", "../reports", "../.evalmon/checkpoints/smollm2-135m-instruct"),  # under suites/
])
def test_suite_defaults_point_at_the_working_dirs_reports_and_checkpoint(
        where: str, reports: str, model: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from evalmon.traffic.to_suite import suite_yaml

    monkeypatch.chdir(tmp_path)  # a suite written outside suites/ used to say ../reports (the parent dir)
    doc = suite_yaml("r", Path(where), Path("reports/replay/r.jsonl"), seed=0, has_reference=False)
    assert doc["output_dir"] == reports and doc["model"]["path"] == f"${{EVALMON_MODEL:-{model}}}"

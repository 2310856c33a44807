"""Traffic → monitor alert → replay suite (on_alert) → two models → `evalmon gate`, offline, on the real SmolLM2.

Synthesised traffic with a latency regression in hour 3; the monitor's p90 latency rule fires there and its
``on_alert: {to_suite: …}`` writes the replay suite of that window (records of that hour only, with the window's
MLflow run id as provenance). The suite runs twice — SmolLM2-135M-Instruct as is, and with a system prompt
(``options.system_prompt``) — and the gate compares the two paired runs (doc id = request id) with an exit code.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest
import yaml
from cli_util import Background, assert_user_error, cli_env, load_samples, only_run_dir, run_cli, show

pytestmark = pytest.mark.e2e

WINDOW = "20261101T020000Z"
MONITOR = """
name: shop
source: {kind: jsonl, path: traffic.jsonl}
window: {size: 1h, delay: 5m, end: 2026-11-01T03:00:00Z}
reference: {kind: fixed, start: 2026-11-01T00:00:00Z, end: 2026-11-01T02:00:00Z}
signals: []
drift: {enabled: false}
quality: {enabled: false}
tracking: {uri: TRACKING, experiment: monitor-shop}
alerts:
  rules:
    - metric: p90/latency_ms
      op: ">"
      value: 25000
      name: latency p90
      on_alert: {to_suite: {sample: 3, seed: 1, suite: "suites/replay-{window}.yaml",
                            dataset: "reports/replay-{window}.jsonl"}}
output_dir: monitor-runs
"""


def test_alert_to_replay_suite_to_gate(tmp_path: Path, benchmarks_dir: Path, smollm2_checkpoint: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    proc = run_cli(tmp_path, "traffic", "synth", "--out", "traffic.jsonl", "--start", "2026-11-01T00:00Z",
                   "--hours", "3", "--rate", "12/h", "--seed", "3", "--data-dir", benchmarks_dir,
                   "--event", "latency_regression@2026-11-01T02:00Z+1h[factor=6]")
    assert proc.returncode == 0, show(proc)
    (tmp_path / "monitor.yaml").write_text(MONITOR.replace("TRACKING", uri), encoding="utf-8")
    proc = run_cli(tmp_path, "monitor", "monitor.yaml")
    assert proc.returncode == 1, show(proc)  # the alert
    assert "on_alert (latency p90)" in proc.stdout, show(proc)
    suite_path = tmp_path / "suites" / f"replay-{WINDOW}.yaml"
    assert suite_path.is_file(), show(proc)
    assert not list((tmp_path / "suites").glob("replay-20261101T0[01]*")), "only the alerting window"
    window_run = json.loads((tmp_path / "monitor-runs" / "shop" / "windows" / WINDOW / "mlflow.json").read_text())["run_id"]
    rows = [json.loads(x) for x in (tmp_path / "reports" / f"replay-{WINDOW}.jsonl").read_text().splitlines()]
    assert len(rows) == 3 and {r["provenance"]["monitor_run_id"] for r in rows} == {window_run}
    assert all(r["provenance"]["alerts"] == ["latency p90"] for r in rows)
    assert all(r["provenance"]["signals_fired"] == [] for r in rows)  # latency is no 0/1 signal: no strata
    # by hand, to a path with a space: the printed `evalmon run …` command is one a shell runs as is
    proc = run_cli(tmp_path, "traffic", "to-suite", "monitor.yaml", "--window", "2026-11-01T02:30Z", "--sample", "2",
                   "--out", "my suites/by hand.yaml")
    assert proc.returncode == 0, show(proc)
    printed = next(ln for ln in proc.stdout.splitlines() if ln.startswith("suite:"))
    command = shlex.split(printed.split("(", 1)[1].rstrip(")"))
    assert command[:2] == ["evalmon", "run"] and len(command) == 3, printed
    assert (tmp_path / command[2]).resolve() == (tmp_path / "my suites" / "by hand.yaml").resolve(), printed

    # the written suite, made small for the test (answers of 12 tokens, cheap signals), run twice
    suite = yaml.safe_load(suite_path.read_text())
    suite["tasks"][0]["options"].update(max_new_tokens=12, signals=[{"name": "refusal", "classifier": False},
                                                                    {"name": "pii", "nlp": "none"}])
    suite["model"].update(device="cpu", batch_size=3)
    suite["cache"] = {"enabled": False}
    sys_suite = json.loads(json.dumps(suite))
    sys_suite["tasks"][0]["options"]["system_prompt"] = "You are a terse assistant. Answer in one short sentence."
    for name, doc in (("base", suite), ("sys", sys_suite)):
        doc["output_dir"] = f"../out-{name}"
        (tmp_path / "suites" / f"{name}.yaml").write_text(yaml.safe_dump(doc), encoding="utf-8")
    env = cli_env(EVALMON_MODEL=str(smollm2_checkpoint))
    runs = [Background(tmp_path, "run", f"suites/{n}.yaml", "--tracking-uri", uri, env=env) for n in ("base", "sys")]
    for r in runs:
        done = r.result()
        assert done.returncode == 0, show(done)
    base, cand = only_run_dir(tmp_path / "out-base"), only_run_dir(tmp_path / "out-sys")
    ids = {r["id"] for r in rows}
    for d in (base, cand):
        samples = load_samples(d)
        assert {s["doc_id"] for s in samples} == ids
        assert all(set(s["scores"]) == {"refusal.refused", "pii.any"} for s in samples)
    outs = [[s["outputs"][0] for s in load_samples(d)] for d in (base, cand)]
    assert outs[0] != outs[1], "the system prompt changes the answers"

    proc = run_cli(tmp_path, "gate", "--baseline", base, "--candidate", cand, "--json", "verdict.json")
    assert proc.returncode in (0, 1), show(proc)
    verdict = json.loads((tmp_path / "verdict.json").read_text())
    assert verdict["exit_code"] == proc.returncode and verdict["status"] in ("pass", "fail"), verdict
    compared = {m["key"]: m["comparison"] for m in verdict["metrics"]}
    assert set(compared) == {"replay/refusal.refused", "replay/pii.any"}, verdict
    assert all(c["paired"] and c["n"] == 3 and c["test"] == "mcnemar-exact" for c in compared.values()), verdict

    # MLflow: both replay runs link to the monitor window run they came from
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name(suite["tracking"]["experiment"])
    found = client.search_runs([exp.experiment_id])
    assert len(found) == 2
    for run in found:
        assert run.data.tags["evalmon.replay.monitor_run_ids"] == window_run
        assert run.data.tags["evalmon.replay.windows"] == WINDOW


def test_to_suite_cli_errors_are_one_line(tmp_path: Path) -> None:
    (tmp_path / "monitor.yaml").write_text(MONITOR.replace("TRACKING", "sqlite:///x.db"), encoding="utf-8")
    proc = run_cli(tmp_path, "traffic", "to-suite", "monitor.yaml", "--out", "s.yaml")
    assert_user_error(proc, "--window TIME or both --from and --to")
    proc = run_cli(tmp_path, "traffic", "to-suite", "monitor.yaml", "--out", "s.yaml", "--window", "2026-11-01T02:00Z")
    assert_user_error(proc, "traffic.jsonl")  # the source file is missing: named
    assert not (tmp_path / "s.yaml").exists()

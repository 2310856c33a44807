"""evalmon.sinks.mlflow against a real MLflow server (tests/plugins/mlflow_server.py) and a local sqlite store."""

from __future__ import annotations

import json
import math
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from plugins.mlflow_server import forward_request, free_port

from evalmon.core.results import (
    GroupResult,
    MetricValue,
    Provenance,
    RunResult,
    SampleRecord,
    TaskResult,
    TaskTiming,
    write_samples,
)
from evalmon.sinks import mlflow as tracking

LONG = "x" * 7000


def make_result(run_id: str, *, status: str = "finished", extra_metrics: int = 0,
                odd_task: str | None = None) -> RunResult:
    def task(name: str, acc: float, n: int) -> TaskResult:
        metrics = {"acc": MetricValue.with_ci(acc, 0.01), "acc_norm": MetricValue.with_ci(acc + 0.05, 0.012)}
        metrics.update({f"m{i:04d}": MetricValue(value=i / 7) for i in range(extra_metrics)})
        return TaskResult(name=name, n=n, num_fewshot=5, source="local", config_hash=f"h-{name}",
                          metrics=metrics, timing=TaskTiming(seconds=2.0, requests=40, computed=40,
                                                             tokens=900, requests_per_s=20.0,
                                                             tokens_per_s=450.0))
    tasks = {"arc_easy": task("arc_easy", 0.61, 3), "hellaswag": task("hellaswag", 0.42, 2)}
    if odd_task:
        tasks[odd_task] = task(odd_task, 0.5, 1)
        tasks[odd_task].metrics["acc@1"] = MetricValue(value=0.25)
        tasks[odd_task].metrics["f1"] = MetricValue(value=0.0, stderr=float("nan"))  # n=1: no stderr
    return RunResult(
        run_id=run_id, suite_name="smoke", suite_hash="suitehash123", suite_path="suites/smoke.yaml",
        suite_config={"name": "smoke", "model": {"backend": "hf", "dtype": "float32"},
                      "tasks": [{"name": "arc_easy", "num_fewshot": 5}, {"name": "hellaswag"}],
                      "notes": LONG},
        started_at="2025-01-02T03:04:05+00:00", finished_at="2025-01-02T03:05:05+00:00", status=status,
        provenance=Provenance(evalmon_version="0.1.0", lm_eval_version="0.4.9", python_version="3.11",
                              platform="linux", hostname="ci", git_commit="abc123", git_dirty=False,
                              command="evalmon run suites/smoke.yaml"),
        model={"backend": "hf", "model": "/models/tiny", "weights_hash": "w" * 16, "adapter": None,
               "dtype": "float32", "bos_policy": "tokenizer-default", "max_length": 2048, "batch_size": 8,
               "extra": {"trust_remote_code": False}},
        tasks=tasks,
        groups={"reasoning": GroupResult(name="reasoning", n=5, members=["arc_easy", "hellaswag"],
                                         metrics={"acc": MetricValue.with_ci(0.53, 0.02)})},
    )


def make_run_dir(root: Path, result: RunResult, samples: bool = True) -> Path:
    run_dir = root / result.run_id
    result.save(run_dir)
    if samples:
        recs = [SampleRecord(task=t, doc_id=str(i), prompt_hash=f"p{i}", target=i % 2, choices=["a", "b"],
                             loglikelihoods=[-1.0 - i % 2, -1.5], is_greedy=[True, False],
                             scores={"acc": float(i % 2 == 0), "acc_norm": 1.0})
                for t, n in (("arc_easy", 3), ("hellaswag", 2)) for i in range(n)]
        write_samples(run_dir / "samples.jsonl.gz", recs)
    (run_dir / "report.html").write_text("<html><body>report</body></html>", encoding="utf-8")
    (run_dir / "summary.md").write_text("# smoke\n\n| task | acc |\n|---|---|\n| arc_easy | 0.61 |\n",
                                        encoding="utf-8")
    return run_dir


def client(uri: str):
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=uri)


def runs_tagged(uri: str, experiment_id: str, run_id: str) -> list:
    return client(uri).search_runs([experiment_id], filter_string=f"tags.`evalmon.run_id` = '{run_id}'")


@pytest.fixture(autouse=True)
def _isolated_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """MLflow's fluent API (used inside ``MlflowClient.load_table``) defaults to ./mlflow.db."""
    monkeypatch.chdir(tmp_path)


def uid() -> str:
    return uuid.uuid4().hex[:8]


def load_table(c, uri: str, eid: str, rid: str):  # type: ignore[no-untyped-def]
    """``MlflowClient.load_table`` searches runs through the *global* tracking URI; other tests may have
    pinned it explicitly (which beats MLFLOW_TRACKING_URI), so set it for the call and restore it."""

    from evalmon.config.tracking import using_tracking_uri

    with using_tracking_uri(uri):  # (mlflow.set_tracking_uri alone leaves $MLFLOW_TRACKING_URI set)
        return c.load_table(eid, "samples/arc_easy.json", run_ids=[rid])


def test_log_run_reads_back_and_is_idempotent(mlflow_server: str, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    # quirk: MlflowClient.load_table searches runs via the *global* tracking URI, not the client's
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    result = make_result(f"r-{uid()}")
    run_dir = make_run_dir(tmp_path, result)
    out = tracking.log_run(result, run_dir, mlflow_server, f"exp-{uid()}")
    assert out["status"] == "logged", out
    eid, rid = out["experiment_id"], out["run_id"]
    assert out["ui_url"] == f"{mlflow_server}/#/experiments/{eid}/runs/{rid}"
    c = client(mlflow_server)
    run = c.get_run(rid)
    assert run.info.status == "FINISHED" and run.info.run_name == "smoke·tiny·2025-01-02 03:04"
    metrics = run.data.metrics
    for key, value in result.flat_metrics().items():  # headline values only: stderr is in metrics_table.json
        assert metrics.get(key) == (None if key.endswith("_stderr") else pytest.approx(value)), key
    assert metrics["reasoning/acc"] == pytest.approx(0.53)
    assert metrics["timing/arc_easy/requests_per_s"] == 20.0 and metrics["timing/hellaswag/tokens_per_s"] == 450.0
    params = run.data.params
    assert params["model.dtype"] == "float32" and params["tasks.0.name"] == "arc_easy"
    assert params["tasks.1.name"] == "hellaswag" and params["arc_easy/num_fewshot"] == "5"
    assert params["hellaswag/n"] == "2" and params["arc_easy/config_hash"] == "h-arc_easy"
    assert len(params["notes"]) == tracking.MAX_PARAM_VAL_LEN  # truncated to MLflow's limit
    tags = run.data.tags
    expected = {"evalmon.version": "0.1.0", "evalmon.lm_eval_version": "0.4.9", "evalmon.git_commit": "abc123",
                "evalmon.model.backend": "hf", "evalmon.model.model": "/models/tiny",
                "evalmon.model.weights_hash": "w" * 16, "evalmon.model.dtype": "float32",
                "evalmon.model.bos_policy": "tokenizer-default", "evalmon.model.max_length": "2048",
                "evalmon.run_id": result.run_id, "evalmon.harness.run": "smoke", "evalmon.suite_hash": "suitehash123",
                "mlflow.runName": "smoke·tiny·2025-01-02 03:04", "mlflow.source.name": "evalmon run suites/smoke.yaml"}
    assert {k: tags.get(k) for k in expected} == expected
    assert "evalmon.model.adapter" not in tags  # None values are left out
    assert tags["mlflow.note.content"].startswith("# smoke")
    top = {a.path for a in c.list_artifacts(rid)}
    assert {"results.json", "samples.jsonl.gz", "report.html", "summary.md", "samples"} <= top
    assert {a.path for a in c.list_artifacts(rid, "samples")} == {"samples/arc_easy.json", "samples/hellaswag.json"}
    downloaded = Path(c.download_artifacts(rid, "results.json", str(tmp_path / "dl")))
    assert downloaded.read_bytes() == (run_dir / "results.json").read_bytes()
    table = load_table(c, mlflow_server, eid, rid)
    assert len(table) == 3 and {"doc_id", "target", "prediction", "acc", "acc_norm"} <= set(table.columns)
    assert table["acc"].tolist() == [1.0, 0.0, 1.0]
    assert {"path": "samples/arc_easy.json", "type": "table"} in json.loads(tags["mlflow.loggedArtifacts"])
    state = json.loads((run_dir / "mlflow.json").read_text())
    assert state["run_id"] == rid and state["status"] == "logged"
    assert not (run_dir / tracking.PENDING_FILE).exists()

    again = tracking.log_run(result, run_dir, mlflow_server, c.get_experiment(eid).name)
    assert again["status"] == "logged" and again["run_id"] == rid
    assert len(runs_tagged(mlflow_server, eid, result.run_id)) == 1
    assert len(c.get_metric_history(rid, "arc_easy/acc")) == 1  # unchanged metrics are not re-added
    assert len(load_table(c, mlflow_server, eid, rid)) == 3  # table not appended twice
    assert tracking.find_run(mlflow_server, result.run_id).info.run_id == rid


def test_many_metrics_odd_keys_and_interrupted(mlflow_server: str, tmp_path: Path) -> None:
    result = make_result(f"r-{uid()}", status="interrupted", extra_metrics=800, odd_task="mmlu (5-shot)")
    run_dir = make_run_dir(tmp_path, result, samples=False)
    assert len(result.flat_metrics()) > 2400
    t0 = time.monotonic()
    out = tracking.log_run(result, run_dir, mlflow_server, f"exp-{uid()}")
    assert out["status"] == "logged", out
    assert time.monotonic() - t0 < 30
    run = client(mlflow_server).get_run(out["run_id"])
    assert run.info.status == "KILLED"
    metrics = run.data.metrics
    assert len(metrics) >= len(result.flat_metrics())
    assert metrics["hellaswag/m0799"] == pytest.approx(799 / 7)
    assert metrics["mmlu _5-shot_/acc_1"] == 0.25  # "(", ")" and "@" are not allowed by MLflow
    assert run.data.params["mmlu _5-shot_/n"] == "1"
    assert "mmlu _5-shot_/f1_stderr" not in metrics  # stderr lives in the metrics table artifact
    dl = client(mlflow_server).download_artifacts(out["run_id"], "metrics_table.json", str(tmp_path / "dl"))
    table = json.loads(Path(dl).read_text())
    rows = [dict(zip(table["columns"], r, strict=True)) for r in table["data"]]
    f1 = next(r for r in rows if (r["task"], r["metric"]) == ("mmlu (5-shot)", "f1"))
    assert f1["stderr"] is None and f1["n"] == 1  # NaN is written as null
    acc = next(r for r in rows if (r["task"], r["metric"]) == ("hellaswag", "acc"))
    assert acc["stderr"] == 0.01 and math.isclose(acc["ci_low"], 0.42 - 1.96 * 0.01) and acc["kind"] == "task"


def test_sanitize_key() -> None:
    s = tracking.sanitize_key
    assert s("arc_easy/acc") == "arc_easy/acc"
    assert s("a (b)/c@d:e f") == "a _b_/c_d:e f"
    assert s("/a//b/./../c/") == "a/b/_/_/c"
    assert s("") == "_"
    long_a, long_b = s("k" * 300 + "a"), s("k" * 300 + "b")
    assert len(long_a) == 250 and long_a != long_b


def test_import_does_not_import_mlflow() -> None:
    code = "import sys, evalmon.sinks.mlflow; sys.exit('mlflow' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_explicit_sqlite_store_keeps_artifacts_beside_the_database(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """MLflow's default for a sqlite store without an artifact location is ./mlruns of the current directory."""
    work, store = tmp_path / "work", tmp_path / "store"
    work.mkdir()
    store.mkdir()
    monkeypatch.chdir(work)
    uri = f"sqlite:///{store / 'team.db'}"
    result = make_result(f"r-{uid()}")
    out = tracking.log_run(result, make_run_dir(tmp_path / "reports", result), uri, f"explicit-{uid()}")
    assert out["status"] == "logged", out
    assert client(uri).get_experiment(out["experiment_id"]).artifact_location == (store / "mlartifacts").as_uri()
    assert (store / "mlartifacts").is_dir() and not (work / "mlruns").exists()


def test_local_sqlite_default_store(tmp_path: Path) -> None:
    result = make_result(f"r-{uid()}")
    run_dir = make_run_dir(tmp_path / "reports", result)
    out = tracking.log_run(result, run_dir, None, "local")
    assert out["status"] == "logged", out
    uri = tracking.default_tracking_uri(tmp_path)
    assert out["tracking_uri"] == uri and out["ui_url"] is None
    assert (tmp_path / ".evalmon" / "mlflow.db").is_file()
    c = client(uri)
    assert c.get_experiment(out["experiment_id"]).artifact_location == tracking.default_artifact_location(tmp_path)
    assert (tmp_path / ".evalmon" / "mlartifacts").is_dir()
    assert c.get_run(out["run_id"]).data.metrics["arc_easy/acc"] == pytest.approx(0.61)
    assert tracking.find_run(None, result.run_id).info.run_id == out["run_id"]
    assert tracking.find_run(None, "no-such-run") is None
    (tmp_path / "elsewhere").mkdir()
    os.chdir(tmp_path / "elsewhere")  # no store here: None, and no empty store gets created
    assert tracking.find_run(None, result.run_id) is None
    assert not (tmp_path / "elsewhere" / ".evalmon").exists()


def test_unreachable_server_pending_then_sync(mlflow_server: str, tmp_path: Path) -> None:
    reports = tmp_path / "reports"
    result = make_result(f"r-{uid()}")
    run_dir = make_run_dir(reports, result)
    dead = f"http://127.0.0.1:{free_port()}"
    t0 = time.monotonic()
    out = tracking.log_run(result, run_dir, dead, "exp-sync")
    assert time.monotonic() - t0 < 5
    assert out["status"] == "pending" and "cannot reach" in out["reason"]
    marker = json.loads((run_dir / tracking.PENDING_FILE).read_text())
    assert marker["uri"] == dead and marker["experiment"] == "exp-sync" and marker["reason"] and marker["time"]
    assert "warning" in tracking.outcome_line(out, run_dir) and "evalmon sync" in tracking.outcome_line(out, run_dir)

    still = tracking.sync(reports)  # recorded URI is still dead: marker stays, reason refreshed
    assert [o["status"] for o in still] == ["pending"]
    assert json.loads((run_dir / tracking.PENDING_FILE).read_text())["attempts"] == 2

    done = tracking.sync(reports, uri=mlflow_server)
    assert [(o["status"], o["evalmon_run_id"]) for o in done] == [("logged", result.run_id)]
    assert not (run_dir / tracking.PENDING_FILE).exists()
    assert tracking.sync(reports, uri=mlflow_server) == []
    found = tracking.find_run(mlflow_server, result.run_id, experiment="exp-sync")
    assert found.info.run_id == done[0]["run_id"] and found.info.status == "FINISHED"


def test_server_that_never_answers_times_out(tmp_path: Path) -> None:
    with socket.socket() as sock:  # the kernel completes the handshake; nobody ever reads or answers
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        result = make_result(f"r-{uid()}")
        t0 = time.monotonic()
        out = tracking.log_run(result, make_run_dir(tmp_path, result), f"http://127.0.0.1:{sock.getsockname()[1]}",
                               "exp")
        elapsed = time.monotonic() - t0
    assert out["status"] == "pending" and elapsed < tracking.HEALTH_TIMEOUT_S + 3, (elapsed, out)


@pytest.fixture
def proxy(mlflow_server: str) -> Iterator[tuple[str, dict[str, int]]]:
    """An HTTP proxy to the real server that answers ``fail[(method, path-prefix)]`` with that status."""
    upstream = urlsplit(mlflow_server)
    fail: dict[str, int] = {}

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def _forward(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            for rule, status in fail.items():
                method, prefix = rule.split(" ", 1)
                if self.command == method and self.path.startswith(prefix):
                    self.send_response(status)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
            forward_request(self, upstream.hostname, upstream.port, body, timeout=30)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _forward

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", fail
    finally:
        server.shutdown()
        server.server_close()


def test_failure_mid_logging_marks_failed_and_sync_reuses_run(
        mlflow_server: str, proxy: tuple[str, dict[str, int]], tmp_path: Path) -> None:
    proxy_uri, fail = proxy
    fail["PUT /api/2.0/mlflow-artifacts/"] = 507  # "insufficient storage" on artifact upload
    reports = tmp_path / "reports"
    result = make_result(f"r-{uid()}")
    run_dir = make_run_dir(reports, result)
    exp = f"exp-{uid()}"
    t0 = time.monotonic()
    out = tracking.log_run(result, run_dir, proxy_uri, exp)
    assert out["status"] == "pending" and "507" in out["reason"], out
    assert time.monotonic() - t0 < 10
    assert (run_dir / tracking.PENDING_FILE).is_file() and (run_dir / "results.json").is_file()
    partial = tracking.find_run(mlflow_server, result.run_id, experiment=exp)
    assert partial.info.status == "FAILED"
    assert partial.data.metrics["arc_easy/acc"] == pytest.approx(0.61)

    done = tracking.sync(reports, uri=mlflow_server)  # another URI for the same server: found by tag
    assert [o["status"] for o in done] == ["logged"], done[0].get("reason")
    assert done[0]["run_id"] == partial.info.run_id
    assert len(runs_tagged(mlflow_server, partial.info.experiment_id, result.run_id)) == 1
    run = client(mlflow_server).get_run(partial.info.run_id)
    assert run.info.status == "FINISHED" and "results.json" in {
        a.path for a in client(mlflow_server).list_artifacts(run.info.run_id)}


def test_server_errors_are_retried_briefly_then_pending(
        proxy: tuple[str, dict[str, int]], tmp_path: Path) -> None:
    proxy_uri, fail = proxy
    fail["GET /api/"] = fail["POST /api/"] = 503  # health is fine, every API call fails
    result = make_result(f"r-{uid()}")
    run_dir = make_run_dir(tmp_path, result)
    t0 = time.monotonic()
    out = tracking.log_run(result, run_dir, proxy_uri, "exp")
    elapsed = time.monotonic() - t0
    assert out["status"] == "pending" and elapsed < 15, (elapsed, out)
    assert not (run_dir / "mlflow.json").exists() and (run_dir / tracking.PENDING_FILE).is_file()

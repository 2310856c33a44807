"""The one MLflow client (evalmon.sinks.mlflow.client) that suite runs and monitor windows upload through,
against real sqlite stores (no server), plus the one ``tracking:`` config section both YAMLs share."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections import namedtuple
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cli_util import assert_no_traceback, run_cli, show
from plugins.mlflow_server import free_port

from evalmon.core.errors import ConfigError, TrackingError
from evalmon.core.results import MetricValue, Provenance, RunResult, TaskResult, TaskTiming
from evalmon.sinks.mlflow import client
from evalmon.sinks.mlflow.preflight import preflight
from evalmon.sinks.mlflow.runs import log_run
from evalmon.sinks.mlflow.windows import PENDING_FILE as WINDOW_PENDING
from evalmon.sinks.mlflow.windows import Span, WindowRecord, log_window, write_window

Item = namedtuple("Item", "key value")


def _sqlite_store(db: Path) -> str:
    """A fresh sqlite tracking store: MLflow's ~40 migrations run once per machine (a copied template)."""
    import mlflow
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    template = Path(tempfile.gettempdir()) / f"evalmon-test-mlflow-{mlflow.__version__}.db"
    if not template.exists():
        scratch = db.parent / "template.db"
        scratch.parent.mkdir(parents=True, exist_ok=True)
        SqlAlchemyStore(f"sqlite:///{scratch}", (db.parent / "template-artifacts").as_uri()).engine.dispose()
        os.replace(shutil.copy(scratch, f"{template}.{os.getpid()}"), template)
    db.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(template, db)
    return f"sqlite:///{db}"


def _result(run_id: str) -> RunResult:
    return RunResult(
        run_id=run_id, suite_name="smoke", suite_hash="h", suite_config={"name": "smoke"},
        started_at="2025-01-02T03:04:05+00:00", finished_at="2025-01-02T03:05:05+00:00", status="finished",
        provenance=Provenance(evalmon_version="0.1.0", lm_eval_version="0.4.9", python_version="3.11",
                              platform="linux", hostname="ci"),
        model={"backend": "hf", "model": "/models/tiny"},
        tasks={"arc_easy": TaskResult(name="arc_easy", n=3, num_fewshot=0, source="local", config_hash="c",
                                      metrics={"acc": MetricValue(value=0.5)}, timing=TaskTiming(seconds=1.0))})


def test_chunks_stay_within_mlflow_batch_limits() -> None:
    assert [len(b) for b in client.chunks([Item(f"m{i}", i) for i in range(2500)], 1000)] == [1000, 1000, 500]
    big = [Item(f"t{i}", "x" * 100_000) for i in range(20)]  # 20 × 100 kB: MLflow refuses requests over 1 MB
    batches = list(client.chunks(big, 100))
    assert sum(map(len, batches)) == 20 and len(batches) == 3
    assert all(sum(len(i.value) for i in b) <= client.MAX_BATCH_BYTES for b in batches)
    assert list(client.chunks([], 10)) == []


def test_pending_marker_counts_attempts_and_keeps_what_it_recorded(tmp_path: Path) -> None:
    folder = tmp_path / "not-yet"
    first = client.Pending(folder, "p.json", "http://127.0.0.1:1", "exp", {"evalmon_run_id": "r1", "mlflow_run_id": None})
    out = first.mark("cannot reach it")
    assert out == {"tracking_uri": "http://127.0.0.1:1", "experiment": "exp", "status": "pending",
                   "reason": "cannot reach it", "marker": str(folder / "p.json")}
    first.mark("still down", new_attempt=False, mlflow_run_id="abc")
    again = client.Pending(folder, "p.json", "http://127.0.0.1:1", "exp", {"evalmon_run_id": "r1", "mlflow_run_id": None})
    again.mark("down again")  # a later process knows no MLflow run yet: the recorded one stays
    marker = json.loads((folder / "p.json").read_text())
    assert (marker["attempts"], marker["reason"], marker["mlflow_run_id"], marker["evalmon_run_id"]) == (
        2, "down again", "abc", "r1")
    assert marker["first_time"] <= marker["time"] and client.read_marker(folder / "p.json") == marker
    again.clear()
    again.clear()  # already gone: fine
    assert not (folder / "p.json").exists() and client.read_marker(folder / "p.json") is None


@pytest.mark.e2e  # over 2 s in the unit lane (make test-fast budget)
def test_upload_marks_pending_first_and_resumes_a_failed_upload_in_the_same_run(tmp_path: Path) -> None:
    from mlflow import MlflowClient

    uri = _sqlite_store(tmp_path / "store" / "mlflow.db")
    folder = tmp_path / "out"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.txt").write_text("a")
    (folder / "sub" / "b.txt").write_text("b")
    seen: dict[str, object] = {}

    def broken(s: client.Session) -> client.Sent:
        seen["marker"] = json.loads((folder / "p.json").read_text())  # on disk before MLflow saw anything
        run = s.client.create_run(s.experiment_id)
        s.started(run.info.run_id, {"run_id": run.info.run_id})
        raise RuntimeError("disk on fire")

    out = client.upload(folder, uri, "exp", broken, marker="p.json", fields={"who": "me", "mlflow_run_id": None})
    assert out["status"] == "pending" and out["reason"] == "RuntimeError: disk on fire", out
    assert seen["marker"]["reason"] == client.LOGGING_REASON  # type: ignore[index]
    marker = json.loads((folder / "p.json").read_text())
    rid = marker["mlflow_run_id"]
    assert marker["attempts"] == 1 and marker["who"] == "me" and marker["reason"] == out["reason"]
    assert json.loads((folder / "mlflow.json").read_text())["status"] == "partial"
    c = MlflowClient(uri)
    assert c.get_run(rid).info.status == "FAILED"  # marked, so the next upload can complete it

    def working(s: client.Session) -> client.Sent:
        s.started(rid, {"run_id": rid})
        client.log_batches(s.client, rid, tags={"k": "v"}, params={"p": "1"},
                           metrics={f"m{i:04d}": float(i) for i in range(2500)}, timestamp=1_700_000_000_000, step=3)
        s.log_files(rid)
        s.client.set_terminated(rid, "FINISHED")
        return client.Sent({"run_id": rid}, {"run_id": rid, "status": "logged", "ui_url": s.ui_url(rid)})

    done = client.upload(folder, uri, "exp", working, marker="p.json")
    assert done == {"run_id": rid, "status": "logged", "ui_url": None}
    assert not (folder / "p.json").exists()
    assert json.loads((folder / "mlflow.json").read_text())["status"] == "logged"
    run = c.get_run(rid)
    assert run.info.status == "FINISHED" and len(run.data.metrics) == 2500
    assert (run.data.tags["k"], run.data.params["p"]) == ("v", "1")
    (point,) = c.get_metric_history(rid, "m2499")
    assert (point.value, point.step, point.timestamp) == (2499.0, 3, 1_700_000_000_000)
    assert {a.path for a in c.list_artifacts(rid)} == {"a.txt", "sub"}  # no marker, no mlflow.json
    assert run.info.artifact_uri.startswith((tmp_path / "store" / "mlartifacts").as_uri())


@pytest.mark.parametrize("scheme", ["sqlite", "sqlite+pysqlite"])
def test_sync_uploads_runs_and_windows_next_to_the_sqlite_store_from_any_cwd(tmp_path: Path, scheme: str) -> None:
    """``evalmon sync`` from a directory that is neither the store's nor the reports': artifacts of runs and
    monitor windows go to ``mlartifacts/`` beside the database — never ``./mlruns`` of the current directory."""
    from mlflow import MlflowClient

    reports, cwd, store = tmp_path / "reports", tmp_path / "cwd", tmp_path / "store"
    cwd.mkdir()
    store.mkdir()
    dead = f"http://127.0.0.1:{free_port()}"
    result = _result("r-1")
    run_dir = reports / result.run_id
    result.save(run_dir)
    assert log_run(result, run_dir, dead, "runs")["status"] == "pending"
    start = datetime(2026, 3, 1, 9, tzinfo=UTC)
    window_dir = reports / "traffic" / "windows" / "20260301T090000Z"
    write_window(window_dir, WindowRecord("traffic", Span(start, start + timedelta(hours=1), 7), {"records": 5.0}))
    assert log_window(window_dir, dead, "monitor-traffic")["status"] == "pending"
    assert (window_dir / WINDOW_PENDING).is_file()

    uri = f"{scheme}:///{store / 'team.db'}"
    proc = run_cli(cwd, "sync", reports, "--tracking-uri", uri)
    assert proc.returncode == 0, show(proc)
    assert_no_traceback(proc)
    assert f"{run_dir}: logged" in proc.stdout and f"{window_dir}: logged" in proc.stdout, show(proc)
    assert not (cwd / "mlruns").exists() and not (reports / "mlruns").exists()
    c = MlflowClient(f"sqlite:///{store / 'team.db'}")
    for experiment, folder, artifact in (("runs", run_dir, "results.json"), ("monitor-traffic", window_dir,
                                                                             "window.json")):
        exp = c.get_experiment_by_name(experiment)
        assert exp.artifact_location == (store / "mlartifacts").as_uri()
        rid = json.loads((folder / "mlflow.json").read_text())["run_id"]
        assert artifact in {a.path for a in c.list_artifacts(rid)}
        assert list((store / "mlartifacts").glob(f"{rid}/artifacts/{artifact}")), experiment
    window_run = c.get_run(json.loads((window_dir / "mlflow.json").read_text())["run_id"])
    assert (window_run.data.metrics["records"], window_run.data.tags["evalmon.window_id"]) == (
        5.0, "traffic/20260301T090000Z")
    assert not (run_dir / "mlflow_pending.json").exists() and not (window_dir / WINDOW_PENDING).exists()


def test_sync_to_a_one_off_uri_keeps_the_recorded_one_and_a_corrupt_window_does_not_stop_the_rest(
        tmp_path: Path) -> None:
    """A hostile walk: a failed `evalmon sync --tracking-uri X` rewrote each marker's URI to X (a plain sync then
    went to X, not where the run was meant to go); a corrupt window.json was an internal error (KeyError /
    JSONDecodeError) that hid the windows uploaded before it; a bogus scheme was one long error per window."""
    from evalmon.core.errors import ConfigError
    from evalmon.sinks.mlflow import sync

    reports = tmp_path / "reports"
    recorded, other = (f"http://127.0.0.1:{free_port()}" for _ in range(2))
    result = _result("r-2")
    run_dir = reports / result.run_id
    result.save(run_dir)
    assert log_run(result, run_dir, recorded, "runs")["status"] == "pending"
    start = datetime(2026, 3, 1, 9, tzinfo=UTC)
    good, bad = (reports / "traffic" / "windows" / k for k in ("20260301T090000Z", "20260301T100000Z"))
    for i, d in enumerate((good, bad)):
        write_window(d, WindowRecord("traffic", Span(start + timedelta(hours=i), start + timedelta(hours=i + 1), i),
                                     {"records": 5.0}))
        assert log_window(d, recorded, "monitor-traffic")["status"] == "pending"
    for outcome in sync(reports, other):  # the one-off store is down too
        assert outcome["status"] == "pending", outcome
    for marker in (run_dir / "mlflow_pending.json", good / WINDOW_PENDING, bad / WINDOW_PENDING):
        assert json.loads(marker.read_text())["uri"] == recorded, marker
    (bad / "window.json").write_text("{}")
    store = f"sqlite:///{tmp_path / 'team.db'}"
    outcomes = {Path(o.get("window_dir") or o["run_dir"]).name: o for o in sync(reports, store)}
    assert outcomes[good.name]["status"] == "logged" and outcomes[result.run_id]["status"] == "logged"
    assert outcomes[bad.name]["status"] == "error" and "window.json" in outcomes[bad.name]["reason"]
    assert (bad / WINDOW_PENDING).is_file() and not (good / WINDOW_PENDING).exists()
    with pytest.raises(ConfigError, match=r"^--tracking-uri: 'bogus://x': MLflow has no tracking store"):
        sync(reports, "bogus://x")  # the flag it came from, not the YAML key tracking.uri


def test_preflight_checks_a_driver_qualified_sqlite_uri_like_plain_sqlite(tmp_path: Path) -> None:
    for scheme in ("sqlite", "sqlite+pysqlite", "SQLite"):
        with pytest.raises(TrackingError, match="does not exist"):
            preflight(f"{scheme}:///{tmp_path / 'missing' / 'm.db'}")
        assert preflight(f"{scheme}:///{tmp_path / 'm.db'}") is None


def test_preflight_without_probing_checks_an_http_uri_form_only() -> None:
    down = f"http://127.0.0.1:{free_port()}"
    assert "does not answer" in (preflight(down) or "")
    assert preflight(down, probe_server=False) is None  # sync tries the server per upload anyway
    with pytest.raises(ConfigError, match=r"^--tracking-uri: 'http://' names no server"):
        preflight("http://", key="--tracking-uri", probe_server=False)


def test_one_tracking_section_for_suites_and_monitors() -> None:
    from pydantic import ValidationError

    from evalmon.config.monitor import MonitorTracking
    from evalmon.config.suite import SuiteTracking
    from evalmon.config.tracking import TrackingConfig

    assert issubclass(SuiteTracking, TrackingConfig) and issubclass(MonitorTracking, TrackingConfig)
    # what a suite run logs as params (tracking.*) is unchanged
    assert SuiteTracking().model_dump() == {"enabled": True, "uri": None, "experiment": "evalmon"}
    assert MonitorTracking().model_dump() == {"enabled": True, "uri": None, "experiment": None, "assessments": True}
    for cls in (SuiteTracking, MonitorTracking):
        assert cls(uri="  ").uri is None  # `uri: ${MLFLOW_TRACKING_URI:-}` with the variable unset
        assert cls(uri="sqlite:///m.db").uri == "sqlite:///m.db"
        with pytest.raises(ValidationError):
            cls(experiment="")
        with pytest.raises(ValidationError):
            cls(urii="http://x")
    with pytest.raises(ValidationError):
        SuiteTracking(assessments=False)  # a monitor-only key

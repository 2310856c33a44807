"""A run's recorded status is always true, and no fault costs what was already computed — real CLI runs.

Faults: an error mid-run (``failed`` in results.json and MLflow), SIGTERM (saved like Ctrl-C, exit 143),
a kill while logging to MLflow (``evalmon sync`` finishes the same MLflow run), a corrupt pending marker
(synced into the experiment the run recorded, never a default one), tracking URIs that can never work
(exit 2 before the model loads; an unreachable server is announced before compute), two servers with the
same model name (the response cache keeps their answers apart), a corrupt response cache (moved aside and
rebuilt), truncated weights and a full disk (one line, exit 2, nothing computed lost), and ``evalmon sync``
of a directory that does not exist.

Most runs use ``Responder``: a small OpenAI-compatible server on 127.0.0.1 (no model to load) that answers
every completion with its own text, so a run takes seconds. Disk-full and read-only stores are real file
systems: a tmpfs / read-only bind mount in a private mount namespace (``unshare``).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from cli_util import (
    Background,
    assert_no_traceback,
    assert_user_error,
    cache_rows,
    cli_env,
    evalmon_cmd,
    load_results,
    load_samples,
    only_run_dir,
    run_cli,
    run_dirs,
    show,
    signal_after_first_cached,
    suite_dict,
    write_suite,
)
from plugins.mlflow_server import forward_request, free_port

from evalmon.core.errors import ConfigError
from evalmon.sinks.mlflow.preflight import preflight

BBH = "bbh_cot_fewshot_boolean_expressions"
BBH2 = "bbh_cot_fewshot_causal_judgement"
MODEL = "same-model"


# --------------------------------------------------------------------------- servers


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client killed mid-request is part of some tests


def _serve(handler: type, path: str = "") -> tuple[_Server, str]:
    """Start ``handler`` on a free 127.0.0.1 port in a daemon thread: (server, base URL + path)."""
    httpd = _Server(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd, f"http://127.0.0.1:{httpd.server_address[1]}{path}"


def _stop(httpd: _Server) -> None:
    httpd.shutdown()
    httpd.server_close()


class Responder:
    """OpenAI-compatible: ``GET /v1/models`` lists ``MODEL``; every completion answers ``text``.
    ``fail_after``: POSTs after that many answer HTTP 400; ``delay_s``: each answer waits that long."""

    def __init__(self, text: str, *, fail_after: int | None = None, delay_s: float = 0.0) -> None:
        self.text, self.fail_after, self.delay_s = text, fail_after, delay_s
        self.posts = 0
        me = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                self._send(200, {"object": "list", "data": [{"id": MODEL, "object": "model"}]})

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers["Content-Length"]))
                me.posts += 1
                if me.fail_after is not None and me.posts > me.fail_after:
                    return self._send(400, {"error": {"message": "bad request: prompt rejected"}})
                time.sleep(me.delay_s)
                self._send(200, {"choices": [{"index": 0, "text": me.text, "finish_reason": "stop"}],
                                 "usage": {"prompt_tokens": 5, "completion_tokens": 3}})

            def _send(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd, self.url = _serve(Handler, "/v1")

    def close(self) -> None:
        _stop(self.httpd)


@pytest.fixture
def responder() -> Iterator[Responder]:
    srv = Responder("A: the answer is True.")
    yield srv
    srv.close()


class MlflowProxy:
    """Forwards to the real MLflow server; artifact uploads (``PUT …/mlflow-artifacts/``) are answered with
    ``artifact_status`` or, with ``hold_artifacts``, held until ``close()`` (``artifact_seen`` is set)."""

    def __init__(self, upstream: str, *, artifact_status: int | None = None, hold_artifacts: bool = False) -> None:
        up = urlsplit(upstream)
        self.artifact_seen, self._release = threading.Event(), threading.Event()
        me = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _forward(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.command == "PUT" and "/mlflow-artifacts/" in self.path:
                    me.artifact_seen.set()
                    if hold_artifacts:
                        me._release.wait(120)
                        return
                    if artifact_status is not None:
                        self.send_response(artifact_status)
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                forward_request(self, up.hostname, up.port, body, timeout=60)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _forward

        self.httpd, self.url = _serve(Handler)

    def close(self) -> None:
        self._release.set()
        _stop(self.httpd)


# --------------------------------------------------------------------------- helpers


def _served_suite(tmp_path: Path, url: str, data: Path, *, name: str = "suite.yaml", tasks: list[Any] | None = None,
                  tracking: dict[str, Any] | None = None, **top: Any) -> Path:
    """A suite that scores BBH generations through the server at ``url`` (1 few-shot, 16 new tokens)."""
    entries = tasks or [BBH]
    suite = {"name": "integrity",
             "model": {"backend": "openai", "base_url": url, "model": MODEL, "mode": "completions",
                       "concurrency": 1, "max_retries": 0, "timeout_s": 30},
             "data": {"data_dir": str(data)},
             "tasks": [{"name": t, "limit": 2, "num_fewshot": 1, "options": {"max_gen_toks": 16}} for t in entries],
             "tracking": tracking or {"enabled": False}, **top}
    return write_suite(tmp_path / name, suite)


def _uid() -> str:
    return uuid.uuid4().hex[:8]


def _client(uri: str):  # type: ignore[no-untyped-def]
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=uri)


def _runs_anywhere(uri: str, evalmon_run_id: str) -> list[Any]:
    """Every MLflow run tagged with this evalmon run id, in any experiment."""
    from evalmon.sinks.mlflow import all_experiment_ids

    c = _client(uri)
    return c.search_runs(all_experiment_ids(c), filter_string=f"tags.`evalmon.run_id` = '{evalmon_run_id}'")


def _namespaced(mount_script: str, target: Path, *args: str | os.PathLike[str], cwd: Path,
                snapshot: Path | None = None, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    """``evalmon <args>`` in a private mount namespace where ``mount_script`` (``$1`` = target) ran first;
    ``snapshot``: afterwards, copy what the mount holds there (it vanishes with the namespace)."""
    script = f'{mount_script} || exit 99; t="$1"; s="$2"; shift 2; "$@"; rc=$?; '
    script += '[ -n "$s" ] && cp -a "$t"/. "$s"/; exit $rc'
    cmd = ["unshare", "--user", "--map-root-user", "--mount", "--", "sh", "-c", script, "sh", str(target),
           str(snapshot or ""), *evalmon_cmd(*args)]
    return subprocess.run(cmd, cwd=cwd, env=cli_env(), capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


def _error_after_progress(proc: subprocess.CompletedProcess[str], *needles: str) -> str:
    """Exit 2, no traceback, and the run's last stderr line is its only ``error: …`` line (progress may precede it)."""
    assert proc.returncode == 2, show(proc)
    assert_no_traceback(proc)
    lines = proc.stderr.strip().splitlines()
    errors = [ln for ln in lines if ln.startswith("error:")]
    assert errors == lines[-1:], show(proc)
    for needle in needles:
        assert needle in errors[0], f"{needle!r} missing from the error line:\n{errors[0]}"
    return errors[0]



# --------------------------------------------------------------------------- status is always true


def test_error_mid_run_is_recorded_as_failed_locally_and_in_mlflow(tmp_path: Path, benchmarks_dir: Path,
                                                                   mlflow_server: str) -> None:
    srv = Responder("A: the answer is True.", fail_after=2)  # task 1 (2 docs) answered, task 2 rejected
    experiment = f"failed-{_uid()}"
    try:
        suite = _served_suite(tmp_path, srv.url, benchmarks_dir, tasks=[BBH, BBH2],
                              tracking={"enabled": True, "uri": mlflow_server, "experiment": experiment})
        proc = run_cli(tmp_path, "run", suite)
    finally:
        srv.close()
    _error_after_progress(proc, "400", "rejected")
    run_dir = only_run_dir(tmp_path / "reports")
    result = load_results(run_dir)
    assert result["status"] == "failed", result["status"]
    assert result["error"].startswith("ModelError: ") and "400" in result["error"] and "\n" not in result["error"]
    assert list(result["tasks"]) == [BBH]  # the task finished before the failure is kept …
    assert {s["task"] for s in load_samples(run_dir)} == {BBH}  # … with its samples and reports
    assert (run_dir / "report.html").is_file() and (run_dir / "summary.md").is_file()
    [run] = _runs_anywhere(mlflow_server, result["run_id"])
    assert run.info.status == "FAILED"
    assert run.data.tags["evalmon.status"] == "failed" and "400" in run.data.tags["evalmon.error"]


def test_sigterm_is_saved_like_ctrl_c_and_exits_143(tmp_path: Path, benchmarks_dir: Path, tiny_checkpoint: Path,
                                                    mlflow_server: str) -> None:
    # lm-eval's plain batching, batch size 1: one cache commit per request, plenty of run left after the first
    experiment = f"sigterm-{_uid()}"
    suite = write_suite(tmp_path / "suite.yaml", suite_dict(
        tiny_checkpoint, benchmarks_dir, tasks=["hellaswag"], limit=100,
        model={"batch_size": 1, "scoring": "plain"},
        tracking={"enabled": True, "uri": mlflow_server, "experiment": experiment}))
    cache = tmp_path / "reports" / ".cache" / "responses.sqlite"
    done = signal_after_first_cached(tmp_path, cache, signal.SIGTERM, "run", suite)
    err = done.stderr
    assert done.returncode == 143, show(done)
    assert_no_traceback(done)
    last = err.strip().splitlines()[-1]
    assert "SIGTERM" in last and "rerun" in last, show(done)
    run_dir = only_run_dir(tmp_path / "reports")
    result = load_results(run_dir)
    assert result["status"] == "interrupted" and result["error"] == "interrupted by SIGTERM"
    for name in ("samples.jsonl.gz", "report.html", "summary.md"):
        assert (run_dir / name).is_file(), name
    assert cache_rows(cache) > 0  # what was scored stays cached for the rerun
    [run] = _runs_anywhere(mlflow_server, result["run_id"])
    assert run.info.status == "KILLED" and run.data.tags["evalmon.status"] == "interrupted"
    assert not (run_dir / "mlflow_pending.json").exists()  # logged in full: nothing left for sync


# --------------------------------------------------------------------------- MLflow logging cut short


def test_kill_while_logging_leaves_a_marker_and_sync_finishes_the_same_run(
        tmp_path: Path, benchmarks_dir: Path, responder: Responder, mlflow_server: str) -> None:
    proxy = MlflowProxy(mlflow_server, hold_artifacts=True)  # the run is created, then uploads hang
    experiment = f"killed-{_uid()}"
    suite = _served_suite(tmp_path, responder.url, benchmarks_dir,
                          tracking={"enabled": True, "uri": proxy.url, "experiment": experiment})
    run = Background(tmp_path, "run", suite)
    try:
        assert proxy.artifact_seen.wait(180), show(run.result(timeout=1))
        os.kill(run.proc.pid, signal.SIGKILL)
        run.result(timeout=30)
    finally:
        run.stop()
        proxy.close()
    run_dir = only_run_dir(tmp_path / "reports")
    result = load_results(run_dir)
    assert (run_dir / "mlflow_pending.json").is_file()  # written before the MLflow run was created
    [left] = _runs_anywhere(mlflow_server, result["run_id"])
    assert left.info.status == "RUNNING"  # what the kill left behind …

    synced = run_cli(tmp_path, "sync", "reports", "--tracking-uri", mlflow_server)
    assert synced.returncode == 0 and "logged" in synced.stdout, show(synced)
    assert not (run_dir / "mlflow_pending.json").exists()
    [run_after] = _runs_anywhere(mlflow_server, result["run_id"])  # … is finished in place: still one run
    assert run_after.info.run_id == left.info.run_id and run_after.info.status == "FINISHED"
    assert run_after.data.metrics[f"{BBH}/exact_match"] == pytest.approx(
        result["tasks"][BBH]["metrics"]["exact_match"]["value"])
    assert "results.json" in {a.path for a in _client(mlflow_server).list_artifacts(left.info.run_id)}


def test_corrupt_pending_marker_syncs_into_the_recorded_experiment(
        tmp_path: Path, benchmarks_dir: Path, responder: Responder, mlflow_server: str) -> None:
    proxy = MlflowProxy(mlflow_server, artifact_status=507)  # logged in part, then kept for sync
    experiment = f"marker-{_uid()}"
    try:
        suite = _served_suite(tmp_path, responder.url, benchmarks_dir,
                              tracking={"enabled": True, "uri": proxy.url, "experiment": experiment})
        proc = run_cli(tmp_path, "run", suite)
    finally:
        proxy.close()
    assert proc.returncode == 0, show(proc)
    run_dir = only_run_dir(tmp_path / "reports")
    result = load_results(run_dir)
    [partial] = _runs_anywhere(mlflow_server, result["run_id"])
    assert partial.info.status == "FAILED"
    (run_dir / "mlflow_pending.json").write_text('{"uri": "http://x", "experim')  # cut short
    (run_dir / "mlflow.json").unlink()  # and no record of the MLflow run: only results.json knows

    synced = run_cli(tmp_path, "sync", "reports", "--tracking-uri", mlflow_server)
    assert synced.returncode == 0 and "logged" in synced.stdout, show(synced)
    runs = _runs_anywhere(mlflow_server, result["run_id"])
    assert [r.info.run_id for r in runs] == [partial.info.run_id], "one run id must never land in two runs"
    assert "re-created from results.json" in synced.stdout, show(synced)  # and the user is told
    assert runs[0].info.status == "FINISHED"
    assert _client(mlflow_server).get_experiment(runs[0].info.experiment_id).name == experiment


def test_sync_of_a_missing_directory_is_an_error(tmp_path: Path) -> None:
    assert_user_error(run_cli(tmp_path, "sync", "NO_SUCH_DIR"), "NO_SUCH_DIR", "does not exist")


# --------------------------------------------------------------------------- tracking URI pre-flight


@pytest.mark.parametrize(("uri", "needles"), [
    ("foo://bar", ("tracking.uri", "foo://bar", "no tracking store")),
    ("http://127.0.0.1:notaport", ("tracking.uri", "invalid port")),
    ("postgresql://u:S3CRETPW@127.0.0.1/db", ("tracking.uri", "postgresql://***@127.0.0.1/db", "psycopg", "install")),
    ("mysql://u:S3CRETPW@127.0.0.1/db", ("tracking.uri", "MySQLdb", "pip install 'mysqlclient'")),
], ids=["unknown-scheme", "malformed", "postgres-without-driver", "mysql-without-driver"])
def test_bad_tracking_uri_fails_before_the_model_loads(tmp_path: Path, benchmarks_dir: Path, uri: str,
                                                       needles: tuple[str, ...]) -> None:
    missing_model = tmp_path / "no-model-here"  # were it loaded, the error would be about the model
    suite = write_suite(tmp_path / "suite.yaml", suite_dict(missing_model, benchmarks_dir, tasks=["hellaswag"],
                                                            limit=2))
    proc = run_cli(tmp_path, "run", suite, "--tracking-uri", uri)
    assert_user_error(proc, *needles)
    assert "S3CRETPW" not in proc.stdout + proc.stderr
    assert run_dirs(tmp_path / "reports") == []


@pytest.mark.parametrize(("uri", "needles"), [
    ("postgresql+nosuchdriver://u:S3CRETPW@h/db", ("no driver", "postgresql+nosuchdriver")),
    ("postgresql://u:S3CRETPW@h/db", ("driver 'psycopg'", "not installed")),
    ("mssql+pyodbc://u:S3CRETPW@h/db", ("driver 'pyodbc'", "not installed")),
    ("postgresql://u:S3CRETPW@h:notaport/db", ("not a valid database URI",)),
])
def test_database_uri_needs_a_loadable_driver(uri: str, needles: tuple[str, ...]) -> None:
    """A SQL store whose driver is missing could never be written: refused before compute, password hidden."""
    with pytest.raises(ConfigError) as info:
        preflight(uri)
    text = str(info.value)  # message — hint
    assert all(n in text for n in needles) and "S3CRETPW" not in text and "***@h" in text


def test_read_only_sqlite_store_fails_before_the_model_loads(tmp_path: Path, benchmarks_dir: Path) -> None:
    store = tmp_path / "store"
    store.mkdir()
    sqlite3.connect(store / "mlflow.db").close()
    suite = write_suite(tmp_path / "suite.yaml", suite_dict(tmp_path / "no-model-here", benchmarks_dir,
                                                            tasks=["hellaswag"], limit=2))
    proc = _namespaced('mount --bind "$1" "$1" && mount -o remount,bind,ro "$1"', store,
                       "run", suite, "--tracking-uri", f"sqlite:///{store / 'mlflow.db'}", cwd=tmp_path)
    assert_user_error(proc, "tracking.uri", str(store), "Read-only file system")
    assert run_dirs(tmp_path / "reports") == []


def test_unreachable_server_is_announced_before_compute(tmp_path: Path, benchmarks_dir: Path,
                                                        responder: Responder) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    suite = _served_suite(tmp_path, responder.url, benchmarks_dir,
                          tracking={"enabled": True, "uri": dead, "experiment": "down"})
    proc = run_cli(tmp_path, "run", suite)
    assert proc.returncode == 0, show(proc)
    lines = proc.stderr.splitlines()
    first_warning = next(i for i, ln in enumerate(lines) if ln.startswith("warning:") and dead in ln)
    start = next(i for i, ln in enumerate(lines) if ln.startswith("run ") and "tasks" in ln)
    assert first_warning < start, show(proc)  # said before any request was sent …
    assert "evalmon sync" in lines[first_warning]
    run_dir = only_run_dir(tmp_path / "reports")  # … and the run is still kept for sync (an outage loses nothing)
    assert load_results(run_dir)["status"] == "finished" and (run_dir / "mlflow_pending.json").is_file()


# --------------------------------------------------------------------------- response cache


def test_cache_never_serves_one_servers_answers_for_another(tmp_path: Path, benchmarks_dir: Path) -> None:
    first, second = Responder("A: the answer is True."), Responder("A: the answer is False.")
    cache = tmp_path / "shared-cache.sqlite"
    try:
        runs = []
        for name, srv in (("a", first), ("b", second)):
            suite = _served_suite(tmp_path, srv.url, benchmarks_dir, name=f"{name}.yaml",
                                  output_dir=str(tmp_path / name), cache={"path": str(cache)})
            proc = run_cli(tmp_path, "run", suite)
            assert proc.returncode == 0, show(proc)
            runs.append(only_run_dir(tmp_path / name))
    finally:
        first.close()
        second.close()
    assert first.posts == 2 and second.posts == 2, (first.posts, second.posts)  # same model name, other server
    outputs = [[o for s in load_samples(d) for o in s["outputs"]] for d in runs]
    assert all("True" in o for o in outputs[0]) and all("False" in o for o in outputs[1]), outputs
    timing = load_results(runs[1])["tasks"][BBH]["timing"]
    assert timing["cached"] == 0 and timing["computed"] == 2
    assert load_results(runs[0])["model"]["endpoint"] == first.url


@pytest.mark.parametrize("damage", ["garbage", "pages"])
def test_corrupt_cache_is_moved_aside_rebuilt_and_the_run_goes_on(tmp_path: Path, benchmarks_dir: Path,
                                                                  responder: Responder, damage: str) -> None:
    cache = tmp_path / "cache.sqlite"
    suite = _served_suite(tmp_path, responder.url, benchmarks_dir, cache={"path": str(cache)})
    with sqlite3.connect(cache) as db:  # a real cache file, big enough to have pages past the header
        db.execute("CREATE TABLE generation (model_key TEXT, request_key TEXT, text TEXT)")
        db.executemany("INSERT INTO generation VALUES (?, ?, ?)", [("m", str(i), "x" * 200) for i in range(400)])
    data = bytearray(cache.read_bytes())
    start = 0 if damage == "garbage" else 4096  # everything, or every page after the header page
    data[start:] = os.urandom(len(data) - start)
    cache.write_bytes(bytes(data))

    proc = run_cli(tmp_path, "run", suite)
    assert proc.returncode == 0, show(proc)
    assert_no_traceback(proc)
    warnings = [ln for ln in proc.stderr.splitlines() if "response cache" in ln]
    assert len(warnings) == 1 and warnings[0].startswith("warning:") and "corrupt" in warnings[0], show(proc)
    aside = list(tmp_path.glob("cache.sqlite.corrupt-*"))
    assert [p.name for p in aside if not p.name.endswith(("-wal", "-shm"))], aside
    assert cache_rows(cache, "generation") == 2  # rebuilt, and this run's answers are in it
    assert load_results(only_run_dir(tmp_path / "reports"))["status"] == "finished"


# --------------------------------------------------------------------------- weights and disk


def test_truncated_weights_are_one_line_and_leave_no_run(tmp_path: Path, benchmarks_dir: Path,
                                                         tiny_checkpoint: Path) -> None:
    ckpt = tmp_path / "ckpt"
    shutil.copytree(tiny_checkpoint, ckpt)
    weights = ckpt / "model.safetensors"
    os.truncate(weights, weights.stat().st_size // 2)
    suite = write_suite(tmp_path / "suite.yaml", suite_dict(ckpt, benchmarks_dir, tasks=["hellaswag"], limit=2,
                                                            tracking={"enabled": False}))
    assert_user_error(run_cli(tmp_path, "run", suite), "model.path", str(ckpt), "truncated or corrupt")
    assert run_dirs(tmp_path / "reports") == []


def test_disk_full_is_one_line_and_leaves_no_truncated_files(tmp_path: Path, benchmarks_dir: Path,
                                                             responder: Responder) -> None:
    out = tmp_path / "reports"
    out.mkdir()
    cache = tmp_path / "cache.sqlite"  # on the real disk: what was computed must survive
    suite = _served_suite(tmp_path, responder.url, benchmarks_dir, output_dir=str(out), cache={"path": str(cache)})
    snap = tmp_path / "what-the-disk-held"
    snap.mkdir()
    # 8 KiB (two pages): room for the run directory and the ~5 KB results.json saved after the task, not for
    # the samples file and reports written at the end
    proc = _namespaced('mount -t tmpfs -o size=8k tmpfs "$1"', out, "run", suite, cwd=tmp_path, snapshot=snap)
    line = _error_after_progress(proc, "free space and rerun", "cached requests are kept")
    assert str(out) in line and "No space left on device" in line, line
    assert cache_rows(cache, "generation") == 2  # the answers are cached for the rerun
    run_dir = only_run_dir(snap)
    left = sorted(p.name for p in run_dir.iterdir())
    assert not [n for n in left if n.endswith(".tmp")], left  # no half-written temporary files …
    if (run_dir / "samples.jsonl.gz").exists():  # … and never a truncated samples file that looks valid
        assert len(load_samples(run_dir)) == 2
    if (run_dir / "results.json").exists():
        result = load_results(run_dir)
        assert result["status"] != "finished" or (run_dir / "samples.jsonl.gz").exists(), (result["status"], left)


def test_sigterm_on_monitor_prints_one_interrupted_line(tmp_path: Path) -> None:
    """``evalmon monitor`` killed with SIGTERM mid-run: exit 143 with one 'interrupted by SIGTERM' line, like run."""
    import socket

    listener = socket.create_server(("127.0.0.1", 0))
    reached, held = threading.Event(), []

    def accept() -> None:  # answers nothing: the monitor's source read waits on it
        conn, _ = listener.accept()
        held.append(conn)
        reached.set()

    threading.Thread(target=accept, daemon=True).start()
    uri = f"http://127.0.0.1:{listener.getsockname()[1]}"
    (tmp_path / "m.yaml").write_text(
        f'name: sigterm\nsource: {{kind: mlflow_traces, experiment: e, tracking_uri: "{uri}"}}\n'
        'window: {size: 1h, start: "2026-11-03T00:00:00Z", end: "2026-11-03T01:00:00Z"}\n'
        'signals: [refusal]\ndrift: {enabled: false}\ntracking: {uri: "sqlite:///mlflow.db"}\noutput_dir: out\n')
    proc = Background(tmp_path, "monitor", "m.yaml")
    try:
        assert reached.wait(120), "the monitor never reached its source"
        proc.proc.send_signal(signal.SIGTERM)
        done = proc.result()
    finally:
        listener.close()
        for conn in held:
            conn.close()
    assert done.returncode == 143, show(done)
    assert_no_traceback(done)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("interrupted by SIGTERM: monitor 'sigterm' stopped"), show(done)

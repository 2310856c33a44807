"""No script or secret leaks (issue #10, items 8-10).

- Every HTML artifact evalmon writes (its ``report.html``, evidently's ``drift.html``) is loaded in headless
  Chromium with hostile values in every text column: no payload runs, no injected element appears.
- Credentials in a tracking URI (``http://user:PW@…``), an API key in an openai ``base_url`` query and a
  webhook URL's secret path reach nothing evalmon writes or prints (files, console, MLflow params/tags/notes),
  while the real secret is still what the connection uses.
- ``--model`` never inherits the suite's ``trust_remote_code: true``.

The CLI runs are real ``evalmon`` subprocesses against the session's MLflow server and local stdlib HTTP
servers (a fake OpenAI-compatible endpoint, a webhook receiver).
"""

from __future__ import annotations

import gzip
import json
import re
import textwrap
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from subprocess import CompletedProcess
from typing import Any

import pytest
from chromium import ChromiumMissing, dump_dom, find_chromium
from cli_util import assert_no_traceback, load_results, only_run_dir, run_cli, show, write_suite

from evalmon.config.suite import apply_overrides, flatten, load_suite_text
from evalmon.core.redact import (
    basic_auth_header,
    redact_obj,
    redact_text,
    redact_uri,
    redact_webhook,
    without_masked_userinfo,
)
from evalmon.core.results import GroupResult, MetricValue, Provenance, RunResult, TaskResult
from evalmon.sinks.report import write_reports

SECRET = "S3CRETPW"  # a tracking URI password
API_KEY = "S3CRETKEY"  # an openai base_url query parameter
HOOK_SECRET = "S3CRETXYZ"  # the secret path segment of a Slack-style webhook URL
HOSTILE = [
    "</script><img src=x onerror=document.title='pwned1'>",
    "\"><svg onload=document.title='pwned2'>",
    "{{7*7}}<!--<script>document.title='pwned3'</script>",
    "'><iframe srcdoc=\"<script>parent.document.title='pwned4'</script>\">",
]


# --------------------------------------------------------------------------- helpers


def require_chromium() -> None:
    """Fail (never skip) without Chromium: CI must install it (`apt-get install -y chromium`)."""
    missing = None
    try:
        find_chromium()
    except ChromiumMissing as exc:
        missing = str(exc)
    if missing:
        pytest.fail(missing, pytrace=False)


class _Dom(HTMLParser):
    """Start tags (with attributes) and ``<title>`` texts of a DOM dump (script bodies are data, not tags)."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str]]] = []
        self.titles: list[str] = []
        self._in_title = False
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, {k: v or "" for k, v in attrs}))
        self._in_title = tag == "title"

    def handle_endtag(self, tag: str) -> None:
        self._in_title = False

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.titles.append(data)


def assert_inert(path: Path) -> str:
    """Load ``path`` in headless Chromium (scripts run): no payload changed the title, and no element
    carries an injected event handler, image or frame. Returns the DOM dump."""
    dom = dump_dom(path, timeout=180)
    doc = _Dom(dom)
    ran = [t for t in doc.titles if re.fullmatch(r"pwned\d", t.strip())]  # the title a payload would set
    assert not ran, f"a payload ran in {path.name}: document.title = {ran}"
    injected = [(tag, attrs) for tag, attrs in doc.tags
                if any(k.startswith("on") and "pwned" in v for k, v in attrs.items())
                or (tag == "img" and attrs.get("src") == "x")
                or (tag == "iframe" and "pwned" in attrs.get("srcdoc", ""))]
    assert not injected, f"injected elements in {path.name}: {injected[:5]}"
    return dom


def leaks(root: Path, *secrets: str) -> list[str]:
    """Every file under ``root`` (gzip decompressed) that contains one of ``secrets``."""
    found = []
    for f in sorted(root.rglob("*")):
        if not f.is_file():
            continue
        data = f.read_bytes()
        if f.suffix == ".gz":
            data = gzip.decompress(data)
        found += [f"{f.relative_to(root)}: {s}" for s in secrets if s.encode() in data]
    return found


def assert_no_secret_printed(proc: CompletedProcess[str], *secrets: str) -> None:
    for s in secrets:
        assert s not in proc.stdout and s not in proc.stderr, f"{s} printed:\n{show(proc)}"


def mlflow_texts(uri: str, run_ids: list[str]) -> list[str]:
    """Params, tags (the description note included) of MLflow runs, as ``key=value`` strings."""
    from mlflow import MlflowClient

    client = MlflowClient(uri)
    out = []
    for rid in run_ids:
        data = client.get_run(rid).data
        out += [f"{k}={v}" for k, v in {**data.params, **data.tags}.items()]
    return out


class _Receiver:
    """A local HTTP server: GET/POST answered by ``reply(method, path, body)``; requests recorded."""

    def __init__(self, reply: Any) -> None:
        self.requests: list[tuple[str, str, Any]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _answer(self, method: str) -> None:
                n = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(n)) if n else None
                outer.requests.append((method, self.path, body))
                data = json.dumps(reply(method, self.path, body)).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                self._answer("GET")

            def do_POST(self) -> None:
                self._answer("POST")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _with_password(uri: str, user: str) -> str:
    return uri.replace("http://", f"http://{user}:{SECRET}@", 1)


# --------------------------------------------------------------------------- redaction rules


@pytest.mark.parametrize(("uri", "expected"), [
    ("postgresql://user:PASS@db.example.com:5432/app", "postgresql://***@db.example.com:5432/app"),
    ("http://user:pw@127.0.0.1:5000", "http://***@127.0.0.1:5000"),
    ("https://ghp_TOKEN@host/x", "https://***@host/x"),
    ("http://127.0.0.1:8000/v1?api_key=S3CRET&model=m", "http://127.0.0.1:8000/v1?api_key=***&model=m"),
    ("https://x.blob.core.windows.net/c/f?sv=2020&sig=abc%2F&X-Amz-Credential=c",
     "https://x.blob.core.windows.net/c/f?sv=2020&sig=***&X-Amz-Credential=***"),
    ("http://h/cb#access_token=xyz&state=1", "http://h/cb#access_token=***&state=1"),
    ("https://hooks.slack.com/services/T000/B000/S3CRETXYZ", "https://hooks.slack.com/***"),
    ("https://discord.com/api/webhooks/123/abcDEF", "https://discord.com/api/webhooks/***"),
    ("https://example.com/hook/aB3dE5gH7jK9mN1pQ3rS5tU7", "https://example.com/hook/***"),
    # what is not a secret stays readable: run ids, chart links, local stores
    ("http://h:5000/#/experiments/1/runs/0123456789abcdef0123456789abcdef", None),
    ("http://h:5000/#/metric?runs=[\"ab\"]&metric=%22drift%22&plot_metric_keys=%5B%5D", None),
    ("sqlite:////tmp/x/.evalmon/mlflow.db", None),
    ("http://127.0.0.1:8000/v1", None),
])
def test_redact_uri_rules(uri: str, expected: str | None) -> None:
    assert redact_uri(uri) == (expected or uri)


def test_redact_text_obj_webhook_and_auth_header() -> None:
    cmd = (f"evalmon run s.yaml --tracking-uri http://u:{SECRET}@127.0.0.1:5000 "
           f"--model openai:http://h/v1?api_key={API_KEY},model=m")
    assert redact_text(cmd) == ("evalmon run s.yaml --tracking-uri http://***@127.0.0.1:5000 "
                                "--model openai:http://h/v1?api_key=***")
    assert redact_text("no uri here: key=value") == "no uri here: key=value"
    nested = {"a": [f"cannot reach http://u:{SECRET}@h:1/health: refused", ("x", 1)],
              f"http://k:{SECRET}@x": None}
    assert SECRET not in json.dumps(redact_obj(nested), default=str)
    hook = f"http://127.0.0.1:8080/hooks/T0/B0/{HOOK_SECRET}?x=1"
    assert redact_webhook(hook) == "http://127.0.0.1:8080/***"
    url, headers = basic_auth_header(f"http://evalmon:{SECRET}@127.0.0.1:1/health")
    assert url == "http://127.0.0.1:1/health" and headers["Authorization"].startswith("Basic ")
    # a recorded (redacted) URI, e.g. from a pending marker for `evalmon sync`, connects without "***" as a
    # password: MLflow then authenticates from MLFLOW_TRACKING_USERNAME/PASSWORD/TOKEN
    assert without_masked_userinfo("http://***@127.0.0.1:1") == "http://127.0.0.1:1"
    assert basic_auth_header("http://***@127.0.0.1:1/health") == ("http://127.0.0.1:1/health", {})
    cfg = load_suite_text(f"""
name: s
model: {{backend: openai, base_url: "http://127.0.0.1:1/v1?api_key={API_KEY}"}}
tasks: [t]
tracking: {{uri: "postgresql://user:{SECRET}@db/mlflow"}}
""")
    flat = flatten(cfg)  # what results.json suite_config and the MLflow params get
    assert flat["model.base_url"] == "http://127.0.0.1:1/v1?api_key=***"
    assert flat["tracking.uri"] == "postgresql://***@db/mlflow"
    assert cfg.model.base_url.endswith(API_KEY)  # the config itself keeps the real value for connections


# --------------------------------------------------------------------------- trust_remote_code


def test_model_override_resets_trust_remote_code(tmp_path: Path) -> None:
    cfg = load_suite_text("name: s\nmodel: {path: /ckpt/trusted, trust_remote_code: true}\ntasks: [t]\n")
    assert cfg.model.trust_remote_code
    other = tmp_path / "other"
    assert apply_overrides(cfg, model=f"hf:{other}").model.trust_remote_code is False
    assert apply_overrides(cfg, model=f"hf:{other},dtype=bfloat16").model.dtype == "bfloat16"
    assert apply_overrides(cfg, model=f"hf:{other},dtype=bfloat16").model.trust_remote_code is False
    assert apply_overrides(cfg, model=f"hf:{other},trust_remote_code=true").model.trust_remote_code is True
    assert apply_overrides(cfg, limit=2).model.trust_remote_code is True  # no --model: the suite's own choice


# --------------------------------------------------------------------------- report.html


def _hostile_result() -> RunResult:
    h0, h1, h2, h3 = HOSTILE
    metrics = {h1: MetricValue.with_ci(0.5, 0.05)}
    tasks = {name: TaskResult(name=name, n=10, num_fewshot=0, source=h2, config_hash=h3, config={"x": h0},
                              metrics=metrics, lm_eval_task=h3, notes={h1: h0})
             for name in (h0, h2)}
    return RunResult(
        run_id=h1, suite_name=h0, suite_hash=h2, suite_path=h3, suite_config={"model.path": h0},
        started_at="2026-01-01T12:00:00+00:00", status="interrupted",
        provenance=Provenance(evalmon_version=h0, lm_eval_version=h1, python_version=h1, platform=h2,
                              hostname=h3, git_commit=h0,
                              command=f"evalmon run {h1} --model hf:{h0}"),
        model={"backend": h1, "model": h0, "adapter": h2, "dtype": h3, "extra": {h0: h1}},
        tasks=tasks, groups={h3: GroupResult(name=h3, n=20, members=[h0, h2, "missing"], metrics=metrics)},
        mlflow={"ui_url": h0, "status": h1})


def test_report_html_with_hostile_values_everywhere_is_inert(tmp_path: Path) -> None:
    require_chromium()
    html_path, md_path = write_reports(_hostile_result(), tmp_path)
    dom = assert_inert(html_path)
    assert "{{7*7}}" in dom and ">49<" not in dom  # values are text, never template source
    assert "pwned1" in dom  # the hostile values are shown (as text)
    md = md_path.read_text(encoding="utf-8")
    outside_code = re.sub(r"`[^`\n]*`", "", md)  # summary.md renders as markdown (GitHub, MLflow's note)
    assert not re.search(r"<(script|img|svg|iframe)", outside_code, re.I), outside_code


# --------------------------------------------------------------------------- evalmon run (HF, tracked)


@dataclass
class TrackedRun:
    cwd: Path
    proc: CompletedProcess[str]
    run_dir: Path
    results: dict[str, Any]


@pytest.fixture(scope="module")
def tracked_run(tmp_path_factory: pytest.TempPathFactory, tiny_checkpoint: Path, benchmarks_dir: Path,
                mlflow_server: str) -> TrackedRun:
    """A suite that trusts remote code for *its* checkpoint; ``--model`` names another one (a directory whose
    name is an HTML payload) and ``--tracking-uri`` carries a password."""
    cwd = tmp_path_factory.mktemp("tracked")
    other = cwd / "\"><img src=x onerror=document.title='pwned5'>{{7*7}}"
    other.symlink_to(tiny_checkpoint, target_is_directory=True)
    write_suite(cwd / "suite.yaml", {
        "name": "sec", "output_dir": "reports", "data": {"data_dir": str(benchmarks_dir)},
        "model": {"path": str(cwd / "trusted-checkpoint"), "trust_remote_code": True, "batch_size": 8},
        "tasks": [{"name": "mmlu_anatomy", "num_fewshot": 0}]})
    proc = run_cli(cwd, "run", "suite.yaml", "--model", f"hf:{other}", "--limit", "2",
                   "--tracking-uri", _with_password(mlflow_server, "evalmon"),
                   "--experiment", f"security-{uuid.uuid4().hex[:6]}")
    assert proc.returncode == 0, show(proc)
    assert_no_traceback(proc)
    run_dir = only_run_dir(cwd / "reports")
    return TrackedRun(cwd, proc, run_dir, load_results(run_dir))


def test_model_override_does_not_inherit_trust_remote_code(tracked_run: TrackedRun,
                                                            mlflow_server: str) -> None:
    cfg = tracked_run.results["suite_config"]
    assert cfg["model.path"].endswith("{{7*7}}") and cfg["model.trust_remote_code"] == "false"
    texts = mlflow_texts(mlflow_server, [tracked_run.results["mlflow"]["run_id"]])
    params = dict(t.split("=", 1) for t in texts)
    assert params["model.trust_remote_code"] == "false"


def test_tracking_uri_password_is_used_but_never_written_or_printed(tracked_run: TrackedRun,
                                                                   mlflow_server: str) -> None:
    info = tracked_run.results["mlflow"]
    assert info["status"] == "logged", info  # the URI with credentials reached the server …
    assert info["tracking_uri"] == mlflow_server.replace("http://", "http://***@")
    assert "--tracking-uri http://***@" in tracked_run.results["provenance"]["command"]
    assert not leaks(tracked_run.cwd, SECRET)  # … and is in no file: results.json, reports, mlflow.json
    assert_no_secret_printed(tracked_run.proc, SECRET)
    texts = mlflow_texts(mlflow_server, [info["run_id"]])  # params, tags, the description note
    assert any(t.startswith("mlflow.note.content=") for t in texts)
    assert not [t for t in texts if SECRET in t]


def test_report_html_of_a_run_with_a_hostile_model_path_is_inert(tracked_run: TrackedRun) -> None:
    require_chromium()
    dom = assert_inert(tracked_run.run_dir / "report.html")
    assert "pwned5" in dom  # the model path is shown, as text


# --------------------------------------------------------------------------- evalmon run (openai, untracked)


def _fake_openai(method: str, path: str, body: Any) -> dict[str, Any]:
    if method == "GET":
        return {"object": "list", "data": [{"id": "fake-model", "max_model_len": 2048}]}
    return {"choices": [{"index": 0, "finish_reason": "stop", "text": " So the answer is True."}],
            "usage": {"prompt_tokens": 5, "completion_tokens": 6}}


def test_openai_api_key_in_base_url_is_used_but_never_written_or_printed(tmp_path: Path,
                                                                        benchmarks_dir: Path) -> None:
    server = _Receiver(_fake_openai)
    base_url = f"http://127.0.0.1:{server.port}/v1?api_key={API_KEY}"
    write_suite(tmp_path / "suite.yaml", {
        "name": "sec_openai", "output_dir": "reports", "data": {"data_dir": str(benchmarks_dir)},
        "model": {"path": str(tmp_path / "unused")},
        "tasks": [{"name": "bbh_cot_fewshot_boolean_expressions", "num_fewshot": 1, "limit": 1,
                   "options": {"max_gen_toks": 16}}]})
    try:
        proc = run_cli(tmp_path, "run", "suite.yaml", "--no-tracking",
                       "--model", f"openai:{base_url},model=fake-model,mode=completions,max_retries=0")
    finally:
        server.close()
    assert proc.returncode == 0, show(proc)
    assert [p for m, p, _ in server.requests if m == "POST" and API_KEY in p]  # the key reached the server
    results = load_results(only_run_dir(tmp_path / "reports"))
    assert results["suite_config"]["model.base_url"].endswith("?api_key=***")
    assert results["model"]["extra"]["base_url"].endswith("?api_key=***")
    assert not leaks(tmp_path, API_KEY)  # … and is in no file (results, samples, reports, cache) …
    assert_no_secret_printed(proc, API_KEY)


# --------------------------------------------------------------------------- evalmon monitor


@dataclass
class MonitorRun:
    cwd: Path
    proc: CompletedProcess[str]
    hook: list[tuple[str, str, Any]]
    experiment: str


@pytest.fixture(scope="module")
def monitor_run(tmp_path_factory: pytest.TempPathFactory, mlflow_server: str) -> Iterator[MonitorRun]:
    """One hour of reference traffic and one hour to monitor, hostile values in every text column; an alert
    rule that always fires posts to a webhook whose path holds a secret; MLflow through a password URI."""
    cwd = tmp_path_factory.mktemp("monitor")
    t0 = datetime(2024, 3, 1, tzinfo=UTC)
    rows = []
    for i in range(160):  # 80 records per hour
        h = HOSTILE[i % len(HOSTILE)]
        rows.append({"request_id": f"r{i}", "timestamp": (t0 + timedelta(seconds=45 * i)).isoformat(),
                     "model": h if i % 5 else "base-model", "prompt": f"{h} question {i % 7}",
                     "response": f"answer {HOSTILE[(i + 1) % len(HOSTILE)]} {i % 5}",
                     "latency_ms": 100.0 + (i % 10) + (50 if i >= 80 else 0)})
    (cwd / "traffic.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    hook = _Receiver(lambda method, path, body: {"ok": True})
    experiment = f"security-monitor-{uuid.uuid4().hex[:6]}"
    (cwd / "m.yaml").write_text(textwrap.dedent(f"""\
        name: sec
        source: {{kind: jsonl, path: traffic.jsonl}}
        window: {{size: 1h, start: "2024-03-01T01:00:00Z", end: "2024-03-01T02:00:00Z"}}
        reference: {{kind: fixed, start: "2024-03-01T00:00:00Z", end: "2024-03-01T01:00:00Z"}}
        drift: {{text_drift: true, min_rows: 30}}
        report: full
        quality: {{enabled: false}}
        tracking: {{experiment: {experiment}}}
        alerts:
          rules: [{{metric: records, op: ">", value: 0, name: always}}]
          webhook: {{url: "http://127.0.0.1:{hook.port}/services/T000/B000/{HOOK_SECRET}", retries: 0}}
        output_dir: out
        """), encoding="utf-8")
    try:
        proc = run_cli(cwd, "monitor", "m.yaml", "--tracking-uri", _with_password(mlflow_server, "monitor"))
    finally:
        hook.close()
    assert_no_traceback(proc)
    assert proc.returncode == 1, show(proc)  # the alert fired
    yield MonitorRun(cwd, proc, hook.requests, experiment)


def test_drift_html_with_hostile_traffic_is_inert(monitor_run: MonitorRun) -> None:
    require_chromium()
    (gz,) = list((monitor_run.cwd / "out" / "sec" / "windows").glob("*/drift.html.gz"))  # report: full
    html = monitor_run.cwd / "drift_full.html"
    html.write_bytes(gzip.decompress(gz.read_bytes()))
    dom = assert_inert(html)
    text = re.sub(r"<script.*?</script>", "", dom, flags=re.S)
    assert "Drift in column 'model'" in text  # the dashboard rendered …
    assert all(f"pwned{k}" in text for k in (1, 2, 3, 4)), text[-3000:]  # … the hostile values as text


def test_monitor_secrets_are_used_but_never_written_or_printed(monitor_run: MonitorRun,
                                                               mlflow_server: str) -> None:
    posts = [(p, b) for m, p, b in monitor_run.hook if m == "POST"]
    assert len(posts) == 1 and posts[0][0].endswith(HOOK_SECRET)  # the real webhook URL was called …
    assert "webhook: delivered to http://127.0.0.1:" in monitor_run.proc.stdout, show(monitor_run.proc)
    assert not leaks(monitor_run.cwd / "out", SECRET, HOOK_SECRET)  # … and no secret is in a file or a line
    assert_no_secret_printed(monitor_run.proc, SECRET, HOOK_SECRET)
    assert SECRET not in json.dumps(posts[0][1])  # nor in what the webhook received (ui_url)
    from mlflow import MlflowClient

    client = MlflowClient(mlflow_server)
    exp = client.get_experiment_by_name(monitor_run.experiment)
    runs = client.search_runs([exp.experiment_id])
    assert len(runs) == 2  # the timeline and the one window: MLflow was reached through the password URI
    texts = mlflow_texts(mlflow_server, [r.info.run_id for r in runs])
    assert not [t for t in texts if SECRET in t or HOOK_SECRET in t]

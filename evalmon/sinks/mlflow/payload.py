"""What evalmon sends to MLflow, computed without importing mlflow: keys, params, tags, metrics,
per-sample tables, plus the default store location and the reachability check."""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from evalmon.core.redact import basic_auth_header, redact_obj, redact_text
from evalmon.core.results import RunResult, read_samples
from evalmon.core.urls import join_url
from evalmon.sinks.mlflow.dashboard import run_name

STATE_FILE = "mlflow.json"  # where a run dir records its MLflow run (for idempotency)
PENDING_FILE = "mlflow_pending.json"  # marker: this run still has to be uploaded (evalmon sync)
TABLE_DIR = "samples"  # per-sample tables: samples/<task>.json
METRICS_TABLE = "metrics_table.json"  # every metric with stderr, CI and n (MLflow table artifact)

# MLflow limits (mlflow.utils.validation); copied so that importing this module stays mlflow-free.
MAX_KEY_LEN = 250
MAX_PARAM_VAL_LEN = 6000
MAX_TAG_VAL_LEN = 8000
MAX_METRICS_PER_BATCH = 1000
MAX_PARAMS_TAGS_PER_BATCH = 100
MAX_BATCH_BYTES = 800_000  # MLflow rejects requests > 1 MB; keep headroom for JSON overhead

HEALTH_TIMEOUT_S = 4.0
# Defaults for MLflow's HTTP client while evalmon logs (its own defaults retry for minutes), and no
# "View run at" lines on stdout from set_terminated. Values the user already set in the environment win.
HTTP_LIMITS = {
    "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true",
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_BACKOFF_JITTER": "0.5",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "20",
}
_STATUS = {"finished": "FINISHED", "interrupted": "KILLED", "failed": "FAILED"}
_BAD_KEY_CHARS = re.compile(r"[^\w./\- :]")


# ---------------------------------------------------------------- helpers (no mlflow needed)
def default_tracking_uri(base: Path) -> str:
    """The embedded store used when no URI is configured: ``sqlite:///<base>/.evalmon/mlflow.db``."""
    return f"sqlite:///{(Path(base).resolve() / '.evalmon' / 'mlflow.db').as_posix()}"


def default_artifact_location(base: Path) -> str:
    return (Path(base).resolve() / ".evalmon" / "mlartifacts").as_uri()


def sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:`` URI (``None`` for an in-memory or ``file:`` database); raises
    ``ValueError`` for a malformed one."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        database = make_url(uri).database
    except (ArgumentError, ValueError) as exc:
        raise ValueError(str(exc)) from None
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database).expanduser()


def is_sqlite(uri: str) -> bool:
    """``sqlite:`` or ``sqlite+<driver>:`` (MLflow opens both as a sqlite store)."""
    scheme, colon, _ = uri.partition(":")
    return bool(colon) and scheme.strip().lower().split("+")[0] == "sqlite"


def artifact_location_for(uri: str) -> str | None:
    """Where a new experiment of a sqlite store keeps its artifacts: ``mlartifacts/`` beside the database
    file (MLflow's own default is ``./mlruns`` of whatever the current directory is). ``None`` for a server or
    an in-memory database: the store decides."""
    if not is_sqlite(uri):
        return None
    try:
        database = sqlite_path(uri)
    except ValueError:
        return None
    if database is None:
        return None
    return (database.resolve().parent / "mlartifacts").as_uri()


def sanitize_key(key: str) -> str:
    """Make ``key`` a valid MLflow metric/param/tag name: allowed charset, no empty/``.``/``..``
    path segments, at most 250 chars (long keys keep a hash suffix so they stay distinct)."""
    parts = [_BAD_KEY_CHARS.sub("_", p) for p in str(key).split("/") if p]
    parts = ["_" if p in {".", ".."} else p for p in parts]
    out = "/".join(parts) or "_"
    if len(out) > MAX_KEY_LEN:
        digest = hashlib.sha256(str(key).encode()).hexdigest()[:8]
        out = out[: MAX_KEY_LEN - 9].rstrip("/") + "-" + digest
    return out


def _unique_keys(items: Iterable[tuple[str, Any]]) -> dict[str, Any]:
    """Sanitise keys; if two keys collide after sanitising, the later one gets a hash suffix."""
    out: dict[str, Any] = {}
    for raw, value in items:
        key = sanitize_key(raw)
        if key in out:
            key = sanitize_key(f"{key[: MAX_KEY_LEN - 10]}-{hashlib.sha256(raw.encode()).hexdigest()[:8]}")
        out[key] = value
    return out


def flatten(obj: Any, prefix: str = "") -> dict[str, str]:
    """``{"model": {"dtype": "bf16"}, "tasks": [{"name": "x"}]}`` → ``model.dtype``, ``tasks.0.name``."""
    out: dict[str, str] = {}
    items: Iterable[tuple[Any, Any]] | None = None
    if isinstance(obj, dict) and obj:
        items = obj.items()
    elif isinstance(obj, list | tuple) and obj:
        items = enumerate(obj)
    if items is None:
        out[prefix or "value"] = _to_str(obj)
        return out
    for k, v in items:
        out.update(flatten(v, f"{prefix}.{k}" if prefix else str(k)))
    return out


def _to_str(value: Any) -> str:
    if isinstance(value, dict | list | tuple):
        return json.dumps(value, default=str)
    return str(value)


def _ms(iso: str | None) -> int:
    try:
        dt = datetime.fromisoformat(str(iso))
        return int(dt.timestamp() * 1000)
    except (TypeError, ValueError):
        return int(time.time() * 1000)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _same_uri(a: str | None, b: str | None) -> bool:
    """Equal as recorded: a stored URI is redacted (``evalmon.core.redact``), a live one is compared the same way."""
    return bool(a) and bool(b) and redact_text(str(a)).rstrip("/") == redact_text(str(b)).rstrip("/")


def _is_http(uri: str) -> bool:
    return uri.startswith(("http://", "https://"))


def _write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(redact_obj(data), indent=2, default=str), encoding="utf-8")  # no credentials on disk
    tmp.replace(path)


def _reason(exc: BaseException) -> str:
    text = " ".join(redact_text(str(exc)).split()) or type(exc).__name__
    return f"{type(exc).__name__}: {text[:300]}"


def check_reachable(uri: str, timeout: float = HEALTH_TIMEOUT_S) -> str | None:
    """``None`` if ``uri`` answers (non-http URIs always do), else a one-line reason.

    A quick ``GET <uri>/health`` so that an unreachable server costs seconds, not MLflow's
    minutes of retries. Any answer below 500 (e.g. 401/404 from a proxy) counts as reachable."""
    if not _is_http(uri):
        return None
    url, auth = basic_auth_header(join_url(uri, "/health"))  # urllib cannot use user:pw@ in the URL
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=auth), timeout=timeout):
            return None
    except urllib.error.HTTPError as exc:
        return None if exc.code < 500 else f"{url} answered HTTP {exc.code}"
    except (OSError, ValueError) as exc:  # URLError, ConnectionRefused, timeouts
        return redact_text(f"cannot reach {url}: {getattr(exc, 'reason', None) or exc}")


@contextlib.contextmanager
def http_limits() -> Iterator[None]:
    """Cap MLflow's HTTP retries/timeouts for the duration of the block (restored afterwards)."""
    saved = {k: os.environ.get(k) for k in HTTP_LIMITS}
    for k, v in HTTP_LIMITS.items():
        os.environ.setdefault(k, v)
    quiet = [logging.getLogger(n) for n in ("alembic", "mlflow.store.db.utils", "mlflow.utils.rest_utils")]
    levels = [lg.level for lg in quiet]
    for lg in quiet:
        lg.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        for lg, level in zip(quiet, levels, strict=True):
            lg.setLevel(level)


# ---------------------------------------------------------------- what gets logged
def run_tags(result: RunResult) -> dict[str, str]:
    prov = result.provenance.model_dump()
    tags: dict[str, Any] = {"evalmon.version": prov.pop("evalmon_version")}
    tags.update({f"evalmon.{k}": v for k, v in prov.items()})
    for k, v in result.model.items():
        if isinstance(v, dict):
            tags.update({f"evalmon.model.{k}.{kk}": vv for kk, vv in flatten(v).items()} if v else {})
        else:
            tags[f"evalmon.model.{k}"] = v
    tags.update({
        "evalmon.run_id": result.run_id,
        "evalmon.harness.run": result.suite_name,
        "evalmon.suite_hash": result.suite_hash,
        "evalmon.suite_path": result.suite_path,
        "evalmon.status": result.status,
        "evalmon.error": result.error,  # why a run failed / which signal interrupted it
        "evalmon.started_at": result.started_at,
        "evalmon.finished_at": result.finished_at,
        "evalmon.schema_version": result.schema_version,
        "evalmon.tasks": ",".join(result.tasks),
        "evalmon.groups": ",".join(result.groups),
        "mlflow.runName": run_name(result.suite_name, result.model, result.started_at),
        "mlflow.source.type": "LOCAL",
        "mlflow.source.name": result.provenance.command or "evalmon",
        "mlflow.source.git.commit": result.provenance.git_commit,
    })
    kind = result.adapters.get("kind", "adapter")  # "checkpoint": a `models:` run (harness/model_matrix.py)
    if result.adapters.get("variant"):  # one adapter (checkpoint) of a many-adapter (-checkpoint) run: a child
        tags.update({f"evalmon.{kind}": result.adapters["variant"], "evalmon.parent_run_id": result.adapters.get(
            "parent_run_id"), "mlflow.parentRunId": result.adapters.get("parent_mlflow_run_id")})
    elif result.adapters.get("variants"):  # the suite run is the base's / the first checkpoint's
        tags.update({f"evalmon.{kind}": result.adapters["variants"][0],
                     f"evalmon.{kind}s": ",".join(result.adapters["variants"][1:])})
    for task in result.tasks.values():  # a task's own run tags (replay: the monitor window runs it came from)
        tags.update({str(k): v for k, v in (task.config.get("mlflow_tags") or {}).items()})
    return {k: redact_text(_to_str(v))[:MAX_TAG_VAL_LEN] for k, v in _unique_keys(tags.items()).items() if v is not None}


def run_params(result: RunResult) -> dict[str, str]:
    items = list(flatten(result.suite_config).items()) if result.suite_config else []
    for name, task in result.tasks.items():
        items += [(f"{name}/num_fewshot", task.num_fewshot), (f"{name}/n", task.n),
                  (f"{name}/config_hash", task.config_hash)]
    return {k: redact_text(_to_str(v))[:MAX_PARAM_VAL_LEN] for k, v in _unique_keys(items).items()}


def headline_metrics(result: RunResult) -> dict[str, float]:
    """``task/metric`` → value for every task and group: what the charts and the runs table show."""
    return {f"{name}/{metric}": mv.value
            for name, res in [*result.tasks.items(), *result.groups.items()] for metric, mv in res.metrics.items()}


def run_metrics(result: RunResult) -> dict[str, float]:
    """The run's MLflow metrics: the headline values (``task/metric``), throughput under ``timing/<task>/…`` and
    ``run/wall_seconds``. Stderr, intervals and n go to ``metrics_table`` (an artifact), not to the charts."""
    items: list[tuple[str, Any]] = list(headline_metrics(result).items())
    for name, task in result.tasks.items():
        items += [(f"timing/{name}/{k}", v) for k, v in task.timing.model_dump().items()]
    if result.finished_at:
        items.append(("run/wall_seconds", (_ms(result.finished_at) - _ms(result.started_at)) / 1000))
    return {k: float(v) for k, v in _unique_keys(items).items() if isinstance(v, int | float)}


def metrics_table(result: RunResult) -> Any:
    """One row per (task or group, metric): value, stderr, 95% interval and its method, n, n-shot — the
    MLflow table artifact ``METRICS_TABLE`` (pandas, ``orient="split"``)."""
    import pandas as pd

    rows = []
    for kind, entries in (("task", result.tasks), ("group", result.groups)):
        for name, res in entries.items():
            for metric, mv in res.metrics.items():
                rows.append({"task": name, "kind": kind, "metric": metric, "value": mv.value, "stderr": mv.stderr,
                             "ci_low": mv.ci_low, "ci_high": mv.ci_high, "ci_method": mv.ci_method, "n": res.n,
                             "num_fewshot": getattr(res, "num_fewshot", None)})
    table = pd.DataFrame(rows, columns=["task", "kind", "metric", "value", "stderr", "ci_low", "ci_high",
                                        "ci_method", "n", "num_fewshot"])
    return table.astype({"n": "Int64", "num_fewshot": "Int64"})  # groups have no n-shot: NA, not 5.0


def sample_tables(run_dir: Path) -> dict[str, Any]:
    """``{task: DataFrame}`` from samples.jsonl.gz: one row per doc, one column per score."""
    import pandas as pd

    base = {"doc_id", "prompt_hash", "target", "prediction", "choices", "loglikelihoods", "is_greedy"}
    rows: dict[str, list[dict[str, Any]]] = {}
    for s in read_samples(run_dir):
        lls = s.loglikelihoods
        row: dict[str, Any] = {
            "doc_id": s.doc_id, "prompt_hash": s.prompt_hash,
            "target": None if s.target is None else str(s.target),
            "prediction": max(range(len(lls)), key=lls.__getitem__) if lls else None,
            "choices": s.choices, "loglikelihoods": lls, "is_greedy": s.is_greedy,
        }
        for metric, value in s.scores.items():
            row[f"score.{metric}" if metric in base else metric] = value
        rows.setdefault(s.task, []).append(row)
    return {task: pd.DataFrame(r) for task, r in rows.items()}


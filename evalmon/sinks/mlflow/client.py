"""The one MLflow client of evalmon: every pipeline (suite runs, monitor windows) uploads through ``upload``.

One upload of one folder, whatever it holds:

1. resolve the URI (``None``: the embedded store ``<base>/.evalmon/mlflow.db``; masked credentials dropped —
   they come from ``MLFLOW_TRACKING_*``);
2. a quick reachability check (an unreachable server costs seconds, not MLflow's minutes of retries);
3. the pending marker is written *before* anything reaches MLflow and removed only once the upload is complete,
   so a process killed while logging leaves it for ``evalmon sync``;
4. under capped HTTP retries: the client, the experiment (got or created; a new one of a sqlite store keeps its
   artifacts beside the database, never in ``./mlruns`` of the current directory), then the pipeline's own
   ``send`` (find or create its run, log tags/params/metrics in batches within MLflow's limits, upload files);
5. any failure marks the started run FAILED (the next upload reuses it) and leaves the marker with the reason.

The pipelines only build their payload (``runs.py``, ``windows.py``). mlflow is imported lazily.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evalmon.core.errors import EvalmonError, TrackingError
from evalmon.core.jsonout import read_json_object as _read_json
from evalmon.core.redact import redact_obj, redact_text, without_masked_userinfo
from evalmon.sinks.mlflow.payload import (
    MAX_BATCH_BYTES,
    MAX_METRICS_PER_BATCH,
    MAX_PARAMS_TAGS_PER_BATCH,
    PENDING_FILE,
    STATE_FILE,
    _is_http,
    _now,
    _reason,
    _write_json,
    artifact_location_for,
    check_reachable,
    default_tracking_uri,
    http_limits,
)

WINDOW_PENDING_FILE = "monitor_pending.json"  # a monitor window's marker (no results.json beside it)
BOOKKEEPING = frozenset({STATE_FILE, PENDING_FILE, WINDOW_PENDING_FILE})  # never uploaded as artifacts
LOGGING_REASON = "logging to MLflow did not finish (the process ended while logging)"


# ---------------------------------------------------------------- store
def resolve_uri(uri: str | None, base: Path | None = None) -> str:
    """``uri`` as it will be used and recorded, or the embedded store under ``base`` (default: the current
    directory; also for a blank ``uri``), whose ``.evalmon`` folder is created. Which URI a command passes here
    is decided once, by ``evalmon.config.tracking.choose_tracking_uri``."""
    uri = without_masked_userinfo(uri) or None  # a recorded URI (redacted): credentials come from MLFLOW_TRACKING_*
    if uri is None:
        root = Path(base or Path.cwd())
        uri = default_tracking_uri(root)
        (root / ".evalmon").mkdir(parents=True, exist_ok=True)
    return uri


def store_line(uri: str | None, source: str, *, experiment: str | None = None, base: Path | None = None) -> str:
    """The one line every command prints (stderr) about the store it uses and why (``choose_tracking_uri``'s
    source), credentials redacted: ``MLflow: http://host:5000 (from $MLFLOW_TRACKING_URI), experiment 'x'``."""
    shown = redact_text(uri) if uri else default_tracking_uri(Path(base or Path.cwd()))
    why = "the local store: no --tracking-uri, tracking.uri or $MLFLOW_TRACKING_URI" if uri is None else f"from {source}"
    return f"MLflow: {shown} ({why})" + (f", experiment {experiment!r}" if experiment else "")


def mlflow_client(uri: str) -> Any:
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=uri)


def connect(uri: str, error: type[EvalmonError] = TrackingError, what: str = "MLflow") -> Any:
    """A client for a store that answers now (one health check first): for readers (gates, trace sources),
    which have nothing to keep on disk when the server is down — ``error`` says whose fault that is."""
    unreachable = check_reachable(uri)
    if unreachable:
        raise error(f"{what} is unreachable: {unreachable}")
    return mlflow_client(uri)


def experiment_id(client: Any, name: str, artifact_location: str | None) -> str:
    """The id of the active experiment ``name``, created (at ``artifact_location``) when missing."""
    from mlflow.exceptions import MlflowException

    from evalmon.core.errors import TrackingError

    exp = client.get_experiment_by_name(name)
    if exp is None:
        try:
            return client.create_experiment(name, artifact_location=artifact_location)
        except MlflowException:  # created concurrently by another process
            exp = client.get_experiment_by_name(name)
            if exp is None:
                raise
    if exp.lifecycle_stage != "active":
        raise TrackingError(f"MLflow experiment {name!r} is deleted",
                            hint="restore it in the MLflow UI or log to another experiment")
    return exp.experiment_id


def search_tagged(client: Any, experiment_ids: list[str], tag: str, value: str, *, max_results: int = 1) -> list[Any]:
    """Runs tagged ``tag == value``, newest first."""
    quoted = value.replace("'", "\\'")
    return list(client.search_runs(experiment_ids, filter_string=f"tags.`{tag}` = '{quoted}'",
                                   max_results=max_results, order_by=["attributes.start_time DESC"]))


def all_experiment_ids(client: Any) -> list[str]:
    """Every active experiment id, following MLflow's result pages."""
    ids: list[str] = []
    token = None
    while True:
        page = client.search_experiments(max_results=1000, page_token=token)
        ids += [e.experiment_id for e in page]
        token = page.token
        if not token:
            return ids


def ui_url(uri: str, experiment_id: str, run_id: str) -> str | None:
    """The run's page in the MLflow UI (servers only; a local store has none)."""
    return f"{uri.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}" if _is_http(uri) else None


# ---------------------------------------------------------------- logging
def chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    """``items`` in batches of at most ``size`` entries and ``MAX_BATCH_BYTES`` (MLflow rejects > 1 MB)."""
    batch: list[Any] = []
    nbytes = 0
    for item in items:
        n = len(getattr(item, "key", "")) + len(str(getattr(item, "value", ""))) + 64
        if batch and (len(batch) >= size or nbytes + n > MAX_BATCH_BYTES):
            yield batch
            batch, nbytes = [], 0
        batch.append(item)
        nbytes += n
    if batch:
        yield batch


def log_batches(client: Any, run_id: str, *, tags: dict[str, str] | None = None,
                params: dict[str, str] | None = None, metrics: dict[str, float] | None = None,
                timestamp: int = 0, step: int = 0) -> None:
    """Tags, then params, then metrics (each stamped ``timestamp``/``step``) in batches within MLflow's limits.
    Keys and values must already be valid (``sanitize_key``, truncated values)."""
    from mlflow.entities import Metric, Param, RunTag

    for batch in chunks([RunTag(k, v) for k, v in (tags or {}).items()], MAX_PARAMS_TAGS_PER_BATCH):
        client.log_batch(run_id, tags=batch)
    for batch in chunks([Param(k, v) for k, v in (params or {}).items()], MAX_PARAMS_TAGS_PER_BATCH):
        client.log_batch(run_id, params=batch)
    entities = [Metric(k, v, timestamp, step) for k, v in (metrics or {}).items()]
    for batch in chunks(entities, MAX_METRICS_PER_BATCH):
        client.log_batch(run_id, metrics=batch)


def log_files(client: Any, run_id: str, directory: Path, *, recursive: bool = True,
              skip: frozenset[str] = BOOKKEEPING) -> None:
    """Upload every file of ``directory`` (sub-folders keep their path) except evalmon's own bookkeeping."""
    with contextlib.suppress(Exception):  # MLflow caches artifact repos by run id alone, whatever the
        from mlflow.tracking._tracking_service import utils  # URI: drop a stale one (retry via another URI)

        utils._artifact_repos_cache.pop(run_id, None)
    found = directory.rglob("*") if recursive else directory.iterdir()
    for path in sorted(p for p in found if p.is_file()):
        if path.name in skip or path.name.endswith(".tmp"):
            continue
        rel = path.relative_to(directory).parent.as_posix()
        client.log_artifact(run_id, str(path), artifact_path=None if rel == "." else rel)


# ---------------------------------------------------------------- pending marker
_MARKER_KEYS = ("uri", "experiment", "reason", "time", "first_time", "attempts")


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


@dataclass
class Pending:
    """The marker ``<directory>/<name>`` that keeps a folder for ``evalmon sync`` until it reached MLflow.

    It records where the folder was going (``uri``, ``experiment``), why it is still pending, when it first
    and last failed, how many uploads were tried, and the pipeline's own ``fields``."""

    directory: Path
    name: str
    uri: str
    experiment: str
    fields: dict[str, Any] = field(default_factory=dict)
    # an upload to a one-off URI (`evalmon sync --tracking-uri`): a failure keeps the destination an earlier marker
    # recorded (a failed try at another server replaced it, and a plain `evalmon sync` then went there)
    keep_uri: bool = False

    @property
    def path(self) -> Path:
        return self.directory / self.name

    def mark(self, reason: str, *, new_attempt: bool = True, **fields: Any) -> dict[str, Any]:
        """Write (or refresh) the marker; returns the ``pending`` outcome (redacted: printed and kept).
        ``fields`` add to the pipeline's; a field still ``None`` keeps what an earlier marker recorded."""
        self.fields.update({k: v for k, v in fields.items() if v is not None})
        old = _read_json(self.path)
        extra = {k: v for k, v in old.items() if k not in _MARKER_KEYS}
        extra.update({k: v for k, v in self.fields.items() if v is not None or k not in extra})
        recorded = old.get("uri") if self.keep_uri and isinstance(old.get("uri"), str) and old.get("uri") else None
        marker = {"uri": recorded or self.uri, "experiment": self.experiment, "reason": reason, "time": _now(),
                  "first_time": old.get("first_time") or _now(),
                  "attempts": _int(old.get("attempts")) + (1 if new_attempt else 0), **extra}
        with contextlib.suppress(OSError):
            self.directory.mkdir(parents=True, exist_ok=True)
            _write_json(self.path, marker)
        return redact_obj({"tracking_uri": self.uri, "experiment": self.experiment, "status": "pending",
                           "reason": reason, "marker": str(self.path)})

    def clear(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


def read_marker(path: Path) -> dict[str, Any] | None:
    """A pending marker, or ``None`` when it is missing, unreadable or lacks its URI/experiment."""
    data = _read_json(path)
    ok = all(isinstance(data.get(k), str) and data[k] for k in ("uri", "experiment"))
    return data if ok else None


# ---------------------------------------------------------------- one upload
@dataclass
class Session:
    """What ``send`` gets: the open client and experiment, the folder, and where to record progress."""

    uri: str
    experiment: str
    directory: Path
    pending: Pending
    client: Any = None
    experiment_id: str = ""
    run_id: str | None = None  # the run being logged: marked FAILED when the upload breaks

    def started(self, run_id: str, state: dict[str, Any]) -> None:
        """The run exists: record it (``mlflow.json`` status ``partial``, and in the marker) before logging."""
        self.run_id = run_id
        self.pending.mark(LOGGING_REASON, new_attempt=False, mlflow_run_id=run_id)
        _write_json(self.directory / STATE_FILE, {**state, "status": "partial", "time": _now()})

    def log_files(self, run_id: str, *, recursive: bool = True) -> None:
        """The folder's files as the run's artifacts (not the marker, not ``mlflow.json``)."""
        log_files(self.client, run_id, self.directory, recursive=recursive, skip=BOOKKEEPING | {self.pending.name})

    def ui_url(self, run_id: str) -> str | None:
        return ui_url(self.uri, self.experiment_id, run_id)


@dataclass
class Sent:
    """What ``send`` returns: ``mlflow.json`` as it stands once logged, and the caller's outcome."""

    state: dict[str, Any]
    outcome: dict[str, Any]


def upload(directory: Path, uri: str | None, experiment: str, send: Callable[[Session], Sent], *,
           marker: str, fields: dict[str, Any] | None = None, base: Path | None = None,
           one_off: bool = False) -> dict[str, Any]:
    """Upload one folder with ``send`` (see the module docstring). Never raises for tracking problems: returns
    ``send``'s outcome with ``"status": "logged"``, or ``{"status": "pending", "reason", …}`` with the marker
    ``<directory>/<marker>`` left for ``evalmon sync`` (``one_off``: ``uri`` overrides the recorded destination
    for this try only — a marker already there keeps its URI)."""
    directory = Path(directory)
    uri = resolve_uri(uri, base)
    pending = Pending(directory, marker, uri, experiment, dict(fields or {}), keep_uri=one_off)
    unreachable = check_reachable(uri)
    if unreachable:
        return pending.mark(unreachable)
    pending.mark(LOGGING_REASON)
    session = Session(uri, experiment, directory, pending)
    try:
        with http_limits():
            session.client = mlflow_client(uri)
            session.experiment_id = experiment_id(session.client, experiment, artifact_location_for(uri))
            sent = send(session)
    except Exception as exc:  # anything MLflow/HTTP/disk throws: keep the folder for `evalmon sync`
        if session.client is not None and session.run_id is not None:
            with contextlib.suppress(Exception), http_limits():
                session.client.set_terminated(session.run_id, "FAILED")  # reused by the next upload
        return pending.mark(_reason(exc), new_attempt=False)
    _write_json(directory / STATE_FILE, {**sent.state, "status": "logged", "time": _now()})
    pending.clear()
    return redact_obj({**sent.outcome, "status": "logged"})

"""RUN references for ``compare`` / ``gate`` / ``baseline promote``: where a run's results come from.

Accepted forms:

* a results directory (``reports/<run_id>``) or its ``results.json`` — ``samples.jsonl.gz`` is read
  from the same directory when present;
* ``RUN#adapter`` — one adapter of a many-adapter run (``RUN/adapters/<adapter>/``; ``RUN#base`` is RUN
  itself, the base model): docs/adapters.md;
* an lm-eval output directory (``lm_eval --output_path DIR [--log_samples]``) or one of its
  ``results_*.json`` — per-document scores from its ``samples_<task>_*.jsonl`` (``evalmon.sinks.lmeval``);
* an MLflow run id: ``mlflow:<run_id>`` or a bare 32-hex id;
* an MLflow query: ``mlflow:experiment=NAME,tag.baseline=true[,tag.k=v…][,status=FINISHED]`` — the
  newest matching active run (by start time); without ``experiment=`` every experiment is searched;
* a registered model: ``models:/NAME@alias``, ``models:/NAME/3`` or ``models:/NAME/latest`` — the run
  the model version was created from.

MLflow runs are read from their ``results.json`` and ``samples.jsonl.gz`` artifacts (what
``evalmon run`` / ``log_run`` upload), downloaded to a temporary directory that is removed again; the MLflow
run's status is kept (``LoadedRun.tracking_status``): anything but FINISHED is a partial run to the gate.
The tracking URI follows the rule of every command (``evalmon.config.tracking.choose_tracking_uri``):
``--tracking-uri``, else ``$MLFLOW_TRACKING_URI``, else the local store ``.evalmon/mlflow.db`` when it exists.

``promote`` moves a tag (default ``baseline=true``) onto one run: previous holders in the same
experiment lose the tag and keep the history in ``evalmon.baseline.demoted_at`` /
``evalmon.baseline.superseded_by`` (``keep_previous=True`` leaves them tagged; the query then picks
the newest by start time).
"""

from __future__ import annotations

import gzip
import json
import re
import tempfile
import zlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from evalmon.config.base import first_error
from evalmon.config.tracking import choose_tracking_uri
from evalmon.core.errors import ConfigError, DataError, TrackingError, did_you_mean
from evalmon.core.jsonout import read_json_object as _read_json
from evalmon.core.redact import redact_text, without_masked_userinfo
from evalmon.core.results import (
    RESULTS_FILE,
    SAMPLES_FILE,
    SCHEMA_VERSION,
    RunResult,
    SampleRecord,
    read_samples,
)
from evalmon.sinks.lmeval import find_results, read_lmeval
from evalmon.sinks.mlflow.payload import (
    STATE_FILE,
    _reason,
    default_tracking_uri,
)

_HEX32 = re.compile(r"[0-9a-f]{32}")
_FORMS = ("a results dir or results.json, an lm-eval output dir, mlflow:<run_id>, a 32-hex MLflow run id, "
          "mlflow:experiment=NAME,tag.baseline=true, models:/NAME@alias or models:/NAME/<version>")
QUERY_KEYS = ("experiment", "status", "tag.<name>")


class NoRunMatchesError(TrackingError):
    """An MLflow query matched no run (for a baseline: none promoted yet — ``gate --if-no-baseline``)."""


@dataclass
class LoadedRun:
    """A run's results (and per-document samples, when available) plus where they came from."""

    result: RunResult
    samples: list[SampleRecord] | None
    ref: str
    origin: str
    mlflow_run_id: str | None = None
    tracking_uri: str | None = None
    notes: list[str] = field(default_factory=list)  # loud warnings (e.g. samples missing)
    tracking_status: str | None = None  # the MLflow run's status (FINISHED, FAILED, KILLED, RUNNING …)

    @property
    def label(self) -> str:
        return self.result.run_id

    def describe(self) -> dict[str, Any]:
        return {"ref": self.ref, "run_id": self.result.run_id, "origin": self.origin,
                "mlflow_run_id": self.mlflow_run_id, "model": self.result.model.get("model"),
                "adapter": self.result.model.get("adapter"), "samples": self.samples is not None, "status": self.result.status,
                "mlflow_status": self.tracking_status}


# --------------------------------------------------------------------------- local files
def load_local(path: Path, ref: str | None = None) -> LoadedRun:
    p = Path(path).expanduser()
    if (lm_results := find_results(p)) is not None:  # lm-eval --output_path DIR (or its results_*.json)
        result, samples, notes = read_lmeval(lm_results)
        return LoadedRun(result, samples, ref or str(path), f"lm-eval output {lm_results}", notes=notes)
    results = p / RESULTS_FILE if p.is_dir() else p
    if not results.is_file():
        where = f"{p} has no {RESULTS_FILE}" if p.is_dir() else f"{p}: no such results directory or file"
        raise ConfigError(where, hint=f"RUN may be {_FORMS}")
    result = _parse_results(_read_results(results), str(results))
    samples_path = results.parent / SAMPLES_FILE
    samples, notes = _read_samples_or_note(samples_path, str(samples_path))
    return LoadedRun(result, samples, ref or str(path), f"results dir {results.parent}", notes=notes)


def _read_results(path: Path, shown: str | None = None) -> str:
    """The text of a results.json: UTF-8, a byte-order mark dropped (an editor's save); not UTF-8 (a shell's
    UTF-16 redirect) or unreadable is a one-line ConfigError, not a UnicodeDecodeError traceback."""
    try:
        return path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        utf16 = " (UTF-16? re-save it as UTF-8)" if path.read_bytes()[:2] in (b"\xff\xfe", b"\xfe\xff") else ""
        raise ConfigError(f"{shown or path}: not an evalmon results.json: not UTF-8 text ({exc.reason} at byte "
                          f"{exc.start}){utf16}", hint="pass the directory `evalmon run` wrote (reports/<run_id>)"
                          ) from None
    except OSError as exc:
        raise ConfigError(f"{shown or path}: cannot read ({exc.strerror or exc})",
                          hint="check the path and its permissions") from None


def _parse_results(text: str, source: str) -> RunResult:
    try:
        version = json.loads(text).get("schema_version")
    except (ValueError, AttributeError):
        version = None  # not JSON / not an object: the validation below says so
    if isinstance(version, int) and not isinstance(version, bool) and version > SCHEMA_VERSION:
        raise ConfigError(f"{source}: written by a newer evalmon (schema {version} > {SCHEMA_VERSION})",
                          hint="upgrade evalmon to compare or gate it")
    try:
        return RunResult.model_validate_json(text)
    except ValidationError as exc:
        err = first_error(exc)
        raise ConfigError(f"{source}: not an evalmon results.json ({err.where + ': ' if err.where else ''}{err.msg})",
                          hint="pass the directory `evalmon run` wrote (reports/<run_id>)") from None


def _read_samples_or_note(path: Path, shown: str) -> tuple[list[SampleRecord] | None, list[str]]:
    if not path.is_file():
        return None, [f"{shown} is missing: per-document samples unavailable, tests fall back to unpaired"]
    try:
        return list(read_samples(path)), []
    except (OSError, EOFError, zlib.error, gzip.BadGzipFile, ValueError) as exc:
        raise DataError(f"{shown}: cannot read samples ({_reason(exc)})",
                        hint="re-run the evaluation or delete the broken file to gate unpaired") from None


# --------------------------------------------------------------------------- MLflow
def tracking_uri_for(explicit: str | None) -> str:
    """The store of MLflow RUN references: ``choose_tracking_uri`` (``--tracking-uri`` > ``$MLFLOW_TRACKING_URI``
    > the local store; a gate has no YAML ``tracking.uri``), the local store only when it exists."""
    uri, _ = choose_tracking_uri(explicit, None)
    if uri:
        return uri
    if (Path.cwd() / ".evalmon" / "mlflow.db").is_file():
        return default_tracking_uri(Path.cwd())
    raise ConfigError("no MLflow tracking URI for an MLflow RUN reference (no --tracking-uri, no "
                      "$MLFLOW_TRACKING_URI, no local store .evalmon/mlflow.db here)",
                      hint="pass --tracking-uri or set MLFLOW_TRACKING_URI to the server the runs were logged to")


def _client(uri: str) -> Any:
    from evalmon.sinks.mlflow.client import connect

    return connect(uri)


def _is_mlflow_ref(ref: str) -> bool:
    return ref.startswith(("mlflow:", "models:/")) or (bool(_HEX32.fullmatch(ref)) and not Path(ref).exists())


def locate(ref: str, tracking_uri: str | None) -> tuple[Any, str, Any]:
    """(client, uri, mlflow Run) for an MLflow reference; raises ``TrackingError`` when none matches."""
    from mlflow.exceptions import MlflowException

    from evalmon.sinks.mlflow.payload import http_limits

    uri = tracking_uri_for(tracking_uri)
    db = uri.removeprefix("sqlite:///").split("?", 1)[0] if uri.startswith("sqlite:///") else ""
    if db and not Path(db).expanduser().is_file():  # MLflow would create an empty store there, then find nothing
        query = not ref.startswith("models:/") and "=" in ref  # matches no run: `gate --if-no-baseline pass` acts
        raise (NoRunMatchesError if query else ConfigError)(
            f"no MLflow store at {db}: no such file ({uri})",
            hint="check --tracking-uri / $MLFLOW_TRACKING_URI (the store `evalmon run` logged to)")
    client = _client(uri)
    with http_limits():
        try:
            if ref.startswith("models:/"):
                return client, uri, _get_run(client, uri, _model_run_id(client, ref))
            body = ref.removeprefix("mlflow:")
            if "=" in body:
                return client, uri, _query(client, uri, body)
            return client, uri, _get_run(client, uri, body)
        except MlflowException as exc:
            raise TrackingError(f"MLflow at {uri} failed for {ref!r}: {_reason(exc)}") from None


def _get_run(client: Any, uri: str, run_id: str) -> Any:
    from mlflow.exceptions import MlflowException

    if not _HEX32.fullmatch(run_id):
        raise ConfigError(f"{run_id!r} is not an MLflow run id (32 hex characters)", hint=f"RUN may be {_FORMS}")
    try:
        run = client.get_run(run_id)
    except MlflowException as exc:
        if "RESOURCE_DOES_NOT_EXIST" in str(getattr(exc, "error_code", "")) or "not found" in str(exc).lower():
            raise TrackingError(f"MLflow run {run_id} does not exist at {uri}",
                                hint="check the id (MLflow UI → run → Run ID) and --tracking-uri") from None
        raise
    if run.info.lifecycle_stage != "active":
        raise TrackingError(f"MLflow run {run_id} is deleted", hint="restore it in the MLflow UI")
    return run


def _model_run_id(client: Any, ref: str) -> str:
    from mlflow.exceptions import MlflowException

    body = ref.removeprefix("models:/")
    name, alias, version = body, None, None
    if "@" in body:
        name, alias = body.rsplit("@", 1)
    elif "/" in body:
        name, version = body.rsplit("/", 1)
    if not name or not (alias or version):
        raise ConfigError(f"{ref!r}: expected models:/NAME@alias or models:/NAME/<version>")
    try:
        if alias:
            mv = client.get_model_version_by_alias(name, alias)
        elif version == "latest":
            versions = client.search_model_versions(f"name = '{_quote(name)}'")
            if not versions:
                raise TrackingError(f"registered model {name!r} has no versions")
            mv = max(versions, key=lambda v: int(v.version))
        else:
            mv = client.get_model_version(name, version)
    except MlflowException as exc:
        raise TrackingError(f"{ref}: not found ({_reason(exc)})",
                            hint="check the registered model name and alias/version in the MLflow UI") from None
    if not getattr(mv, "run_id", None):
        raise TrackingError(f"{ref} (version {mv.version}) is not linked to an MLflow run",
                            hint="register the version from the evaluation run (create_model_version(run_id=…))")
    return str(mv.run_id)


def _quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace("'", "\\'")


def parse_query(body: str) -> tuple[str | None, list[str], dict[str, str]]:
    """``experiment=X,tag.k=v,status=S`` → (experiment, MLflow filter clauses, the raw pairs)."""
    experiment, clauses, pairs = None, [], {}
    for part in filter(None, (p.strip() for p in body.split(","))):
        key, sep, value = part.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not key:
            raise ConfigError(f"mlflow query {body!r}: {part!r} is not key=value",
                              hint="write mlflow:experiment=NAME,tag.baseline=true")
        pairs[key] = value
        if key == "experiment":
            experiment = value
        elif key == "status":
            clauses.append(f"attributes.status = '{_quote(value.upper())}'")
        elif key.startswith("tag.") and len(key) > 4:
            clauses.append(f"tags.`{key[4:]}` = '{_quote(value)}'")
        else:
            raise ConfigError(f"mlflow query {body!r}: unknown key {key!r}{did_you_mean(key, QUERY_KEYS)}",
                              hint=f"keys: {', '.join(QUERY_KEYS)}")
    return experiment, clauses, pairs


def _experiment_ids(client: Any, uri: str, name: str | None) -> list[str]:
    if name is not None:
        exp = client.get_experiment_by_name(name)
        if exp is None or exp.lifecycle_stage != "active":
            names = [e.name for e in client.search_experiments(max_results=1000)]
            raise TrackingError(f"MLflow experiment {name!r} not found at {uri}{did_you_mean(name, names)}")
        return [exp.experiment_id]
    from evalmon.sinks.mlflow import all_experiment_ids

    return all_experiment_ids(client)


def _query(client: Any, uri: str, body: str) -> Any:
    experiment, clauses, pairs = parse_query(body)
    ids = _experiment_ids(client, uri, experiment)
    flt = " and ".join(clauses)
    best = None
    for i in range(0, len(ids), 100):
        runs = client.search_runs(ids[i : i + 100], filter_string=flt, max_results=1,
                                  order_by=["attributes.start_time DESC"])
        if runs and (best is None or runs[0].info.start_time > best.info.start_time):
            best = runs[0]
    if best is None:
        shown = ",".join(f"{k}={v}" for k, v in pairs.items())
        raise NoRunMatchesError(f"no MLflow run at {redact_text(uri)} matches {shown}",
                                hint="promote one with `evalmon baseline promote RUN` or check the query")
    return best


def load_mlflow(ref: str, tracking_uri: str | None) -> LoadedRun:
    client, uri, run = locate(ref, tracking_uri)
    rid = run.info.run_id
    from mlflow.exceptions import MlflowException

    from evalmon.sinks.mlflow.payload import http_limits

    with tempfile.TemporaryDirectory(prefix="evalmon-run-") as tmp, http_limits():
        try:
            results = Path(client.download_artifacts(rid, RESULTS_FILE, tmp))
        except (MlflowException, OSError) as exc:
            raise TrackingError(f"MLflow run {rid} has no {RESULTS_FILE} artifact ({_reason(exc)})",
                                hint="is it an evalmon run? evalmon run/sync uploads results.json") from None
        result = _parse_results(_read_results(results, f"mlflow run {rid}: {RESULTS_FILE}"),
                                f"mlflow run {rid}: {RESULTS_FILE}")
        try:
            samples_path = Path(client.download_artifacts(rid, SAMPLES_FILE, tmp))
        except (MlflowException, OSError):
            samples_path = Path(tmp) / "missing" / SAMPLES_FILE
        samples, notes = _read_samples_or_note(samples_path, f"mlflow run {rid}: {SAMPLES_FILE}")
    exp = run.info.experiment_id
    origin = f"MLflow run {rid} (experiment {exp}) at {redact_text(uri)}"  # shown in verdicts
    return LoadedRun(result, samples, ref, origin, mlflow_run_id=rid, tracking_uri=uri, notes=notes,
                     tracking_status=str(run.info.status))


def resolve_run(ref: str, tracking_uri: str | None = None) -> LoadedRun:
    """Load the run ``ref`` names (see the module docstring); user mistakes raise one-line errors."""
    ref = ref.strip()
    if not ref:
        raise ConfigError("empty RUN reference", hint=f"RUN may be {_FORMS}")
    if "#" in ref and not Path(ref).expanduser().exists():  # RUN#adapter: one variant of a many-adapter run
        return load_variant(ref, tracking_uri)
    if _is_mlflow_ref(ref):
        return load_mlflow(ref, tracking_uri)
    return load_local(Path(ref), ref)


def load_variant(ref: str, tracking_uri: str | None = None) -> LoadedRun:
    """``RUN#name``: adapter ``name`` of a many-adapter run (``RUN/adapters/<name>/``, docs/adapters.md);
    ``RUN#base`` is the run itself (the base model, adapters off)."""
    run, _, name = ref.rpartition("#")
    if not run or not name:
        raise ConfigError(f"{ref}: expected RUN#adapter (e.g. reports/<run_id>#my_lora)", hint=f"RUN may be {_FORMS}")
    if _is_mlflow_ref(run):
        raise ConfigError(f"{ref}: RUN#adapter needs a local results directory, not an MLflow reference",
                          hint="pass reports/<run_id>#<adapter> (or the adapter's own MLflow run id)")
    root = Path(run).expanduser()
    folder = root.parent if root.is_file() else root
    table = _read_json(folder / RESULTS_FILE).get("adapters") or {} if root.exists() else {}
    if name in ("base", table.get("reference")):  # a `models:` run: its first checkpoint is the run itself
        return load_local(root, ref)
    variant = folder / "adapters" / name
    if table.get("kind") == "checkpoint":  # `models:` runs keep each checkpoint under models/<name>
        variant = folder / "models" / name
    if not variant.is_dir():
        names = [n for n in table.get("variants", []) if isinstance(n, str)]
        if not root.exists():
            raise ConfigError(f"{ref}: no such results directory {root}", hint=f"RUN may be {_FORMS}")
        if not names:
            raise ConfigError(f"{ref}: run {root} has no adapters (its suite listed no model.adapters)",
                              hint="drop the #adapter suffix")
        raise ConfigError(f"{ref}: run {root} has no {table.get('kind', 'adapter')} {name!r}{did_you_mean(name, names)}",
                          hint=f"its variants: {', '.join(names)}")
    return load_local(variant, ref)


# --------------------------------------------------------------------------- promote
def _check_promotable(run: Any) -> None:
    """Only a finished evalmon run can be a baseline: a FAILED or RUNNING one is an upload cut short (or a crash),
    and a run without ``evalmon.run_id`` has no results.json — every later gate against it would be an error."""
    from evalmon.sinks.mlflow.runs import RUN_TAG

    rid, status = run.info.run_id, run.info.status
    if RUN_TAG not in (run.data.tags or {}):
        raise TrackingError(f"MLflow run {rid} is not an evalmon run (no {RUN_TAG} tag, so no results.json)",
                            hint="promote a run `evalmon run` or `evalmon sync` logged")
    if status != "FINISHED":
        raise TrackingError(f"MLflow run {rid} is {status}, not FINISHED: a partial run is no baseline",
                            hint="finish its upload with `evalmon sync` (or re-run it), then promote it")


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def promote(ref: str, tag: str = "baseline=true", tracking_uri: str | None = None, *,
            keep_previous: bool = False) -> dict[str, Any]:
    """Tag the MLflow run ``ref`` resolves to (a local results dir uses its recorded ``mlflow.json``)."""
    key, sep, value = tag.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--tag {tag!r}: expected key=value", hint="e.g. --tag baseline=true")
    key, value = key.strip(), value.strip()
    if not _is_mlflow_ref(ref):
        p = Path(ref)
        state = _read_json((p if p.is_dir() else p.parent) / STATE_FILE)
        if not p.exists():
            raise ConfigError(f"{ref}: no such results directory", hint=f"RUN may be {_FORMS}")
        folder = p if p.is_dir() else p.parent
        if not state.get("run_id") and (folder / STATE_FILE).is_file():  # cut short or edited: not "never logged"
            raise ConfigError(f"{folder / STATE_FILE} holds no MLflow run id (unreadable, or not the object "
                              "`evalmon run` wrote)", hint="pass mlflow:<run_id> (the run's id in the MLflow UI)")
        if not state.get("run_id"):
            raise ConfigError(f"{ref} was never logged to MLflow (no {STATE_FILE})",
                              hint="log it first (`evalmon sync`) or pass mlflow:<run_id>")
        tracking_uri = tracking_uri or without_masked_userinfo(state.get("tracking_uri"))  # recorded redacted
        ref = f"mlflow:{state['run_id']}"
    client, uri, run = locate(ref, tracking_uri)
    from mlflow.exceptions import MlflowException

    from evalmon.sinks.mlflow.payload import http_limits

    rid, eid, now = run.info.run_id, run.info.experiment_id, _now()
    _check_promotable(run)
    demoted: list[str] = []
    with http_limits():
        try:  # the new holder first: a tag MLflow refuses fails before any previous baseline is demoted
            client.set_tag(rid, key, value)
            client.set_tag(rid, "evalmon.baseline.promoted_at", now)
            if not keep_previous:
                holders = client.search_runs([eid], filter_string=f"tags.`{key}` = '{_quote(value)}'",
                                             max_results=1000)
                for other in holders:
                    if other.info.run_id == rid:
                        continue
                    client.delete_tag(other.info.run_id, key)
                    client.set_tag(other.info.run_id, "evalmon.baseline.demoted_at", now)
                    client.set_tag(other.info.run_id, "evalmon.baseline.superseded_by", rid)
                    demoted.append(other.info.run_id)
            experiment = client.get_experiment(eid).name
        except MlflowException as exc:
            raise TrackingError(f"--tag {key}={value}: MLflow at {uri} refused to promote {rid} ({_reason(exc)})",
                                hint="tag names: letters, digits, _ - . : / and spaces; e.g. --tag baseline=true"
                                ) from None
    return {"run_id": rid, "experiment_id": eid, "experiment": experiment, "tracking_uri": uri, "tag": f"{key}={value}",
            "demoted": demoted, "evalmon_run_id": run.data.tags.get("evalmon.run_id")}

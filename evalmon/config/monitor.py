"""Monitor configuration: pydantic models for ``monitor.yaml`` and loading with ``file:line`` errors.

Keys map 1:1 onto fields and unknown keys are errors (``extra="forbid"``). Relative paths (the state
db, the output dir, a reference file, file sources) resolve against the YAML file's folder. Parsing,
``${VAR}`` expansion and error locations come from ``evalmon.config.yamlio``; durations and times are
parsed here, once, with ``evalmon.core.timewindows``. ``source:`` and ``signals:`` entries are validated by
the config classes their kinds/names registered (``evalmon.config.sources`` / ``evalmon.config.signals``,
through ``evalmon.core.registry``), so this module imports nothing of ``evalmon.monitor``. A minimal
monitor::

    name: traffic
    source: {kind: jsonl, path: traffic/*.jsonl}
    window: {size: 1h}
    reference: {kind: fixed, start: 2024-01-01T00:00:00Z, end: 2024-01-02T00:00:00Z}
    alerts:
      rules: [{metric: rate/safety.unsafe, op: ">", value: 0.1}]

Guards against records vanishing or runaway runs (issue #10):

- ``name`` is a folder name under ``output_dir``: letters, digits, ``_``, ``.``, ``-``; not ``.``/``..``.
- ``source.timestamp_min`` (default 2000-01-01) and ``source.timestamp_max_ahead`` (default ``1d``) bound a
  plausible record time; records outside are quarantined as ``timestamp.implausible`` instead of opening
  windows (``"timestamp": 0`` is 1970). A ``window.start`` or ``--backfill FROM`` before
  ``timestamp_min`` is an error: those windows could only be empty.
- ``window.max_windows_per_run`` (default 1000): a run that would process more windows stops with exit 2
  before any window folder or MLflow run exists (set ``window.start``, raise it, or ``--backfill``).
- ``source.on_corrupt`` (jsonl/csv): ``fail`` (default) — a file that cannot be read to its end (a truncated
  or corrupt ``.gz``, binary data) is exit 2 naming the file, line and byte offset; ``quarantine`` — the
  readable lines are processed and the damage is quarantined as ``file.corrupt``.
"""

from __future__ import annotations

import math
import re
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from evalmon.config.alerts import AlertsConfig
from evalmon.config.base import Seed
from evalmon.config.base import StrictConfig as _Strict
from evalmon.config.models import _base_dir, resolve_path
from evalmon.config.quality import QualityConfig
from evalmon.config.signals import SignalConfig, parse_signal_configs
from evalmon.config.sources import SourceConfig
from evalmon.config.tracking import TrackingConfig, choose_tracking_uri
from evalmon.config.yamlio import YamlDoc, load_yaml, read_config_file, require_mapping, validation_error
from evalmon.core.errors import ConfigError
from evalmon.core.jsonout import canonical_hash
from evalmon.core.timewindows import as_utc, parse_duration

MAX_NAME = 100  # characters of a monitor name (a folder name; most filesystems allow 255 bytes)
_HINTS = {
    "name": "use letters, digits, '_', '.' and '-' only",
    "missing:name": "add `name: my_monitor` at the top level",
    "missing:source": "add a `source:` mapping, e.g. {kind: jsonl, path: traffic.jsonl}",
    "size": "write a duration such as 15m, 1h or 1d",
    "delay": "write a duration such as 0s, 5m or 1h",
    "kind": "use fixed (with start/end), file (with path) or previous",
    "op": "use one of >, >=, <, <=, ==, !=",
    "value": "use a number",
    "metric": "name a window metric, e.g. rate/safety.unsafe, drift/share, mean/latency_ms",
    "url": "use http://host:port/path",
    "timeout_s": "use a positive number of seconds",
    "drift_share": "use a fraction between 0 and 1",
}


def _custom(kind: str, msg: str, hint: str) -> PydanticCustomError:
    return PydanticCustomError(kind, msg, {"hint": hint})


class WindowConfig(_Strict):
    size: str = "1h"  # tumbling window length, aligned to the epoch (UTC)
    timestamp: str = "timestamp"  # the column windows are cut on (canonical name after mapping)
    delay: str = "0s"  # a window is complete this long after its end (room for late records)
    start: datetime | None = None  # first window when no watermark exists (default: the earliest record)
    end: datetime | None = None  # process no window ending after this (replaying a closed log); None: now
    max_windows_per_run: int = Field(1000, gt=0)  # more is refused (exit 2) before anything is written
    # processed windows behind the watermark re-counted by each --once run: late records are reported (monitor/late.py)
    late_check: int = Field(1, ge=0, le=168)

    @field_validator("size", "delay")
    @classmethod
    def _duration(cls, v: str, info: ValidationInfo) -> str:
        try:
            d = parse_duration(v)
        except ConfigError as exc:
            what = "is longer than 100 years" if "100 years" in exc.message else "is not a duration"
            raise _custom("duration", f"{v!r} {what}", "write e.g. 15m, 1h, 1d or 2h30m") from None
        if info.field_name == "size" and d.total_seconds() <= 0:
            raise _custom("duration", "window size must be positive", "write e.g. 15m, 1h or 1d")
        return v

    @field_validator("start", "end")
    @classmethod
    def _utc(cls, v: datetime | None) -> datetime | None:
        return None if v is None else as_utc(v)

    @model_validator(mode="after")
    def _span(self) -> WindowConfig:
        if self.start is not None and self.end is not None and self.end <= self.start:  # no run could process one
            raise _custom("window", f"window.end {self.end.isoformat()} is not after window.start "
                                    f"{self.start.isoformat()}", "swap or fix the times")
        return self


class ReferenceConfig(_Strict):
    """What a window is compared with: a fixed period of the source, a file, or the previous window."""

    kind: Literal["fixed", "file", "previous"] = "previous"
    start: datetime | None = None  # fixed: [start, end) of the source
    end: datetime | None = None
    path: str | None = None  # file: canonical records (jsonl / csv / parquet, by extension)
    max_rows: int | None = Field(None, gt=0)  # seeded sample of the reference (None = all of it)

    @field_validator("start", "end")
    @classmethod
    def _utc(cls, v: datetime | None) -> datetime | None:
        return None if v is None else as_utc(v)

    @field_validator("path")
    @classmethod
    def _resolve(cls, v: str | None, info: ValidationInfo) -> str | None:
        return None if v is None else str(resolve_path(v, _base_dir(info)))

    @model_validator(mode="after")
    def _needs(self) -> ReferenceConfig:
        if self.kind == "fixed" and (self.start is None or self.end is None):
            raise _custom("reference", "a fixed reference needs `start` and `end`",
                          "add start: and end: (ISO times), or use kind: previous")
        if self.kind == "fixed" and self.start is not None and self.end is not None and self.end <= self.start:
            raise _custom("reference", "reference `end` must be after `start`", "swap or fix the times")
        if self.kind == "file" and not self.path:
            raise _custom("reference", "a file reference needs `path`", "add path: reference.jsonl")
        return self


class DriftColumns(_Strict):
    numerical: list[str] = Field(default_factory=list)
    categorical: list[str] = Field(default_factory=list)
    text: list[str] = Field(default_factory=list)
    embeddings: list[str] = Field(default_factory=list)  # columns holding one vector per record


class DriftConfig(_Strict):
    enabled: bool = True
    columns: Literal["auto"] | DriftColumns = "auto"  # auto: every signal + latency/tokens + model
    text_drift: bool = True  # prompt/response through evidently's domain classifier (auto columns)
    embedding_drift: bool = True  # embedding.* columns through evidently's embedding drift method
    methods: dict[str, str] = Field(default_factory=dict)  # column → evidently stattest (psi, ks, …)
    thresholds: dict[str, float] = Field(default_factory=dict)  # column → threshold for that test
    embedding_method: Literal["model", "distance", "ratio", "mmd"] | None = None  # None: evidently's default
    drift_share: float = Field(0.5, ge=0, le=1)  # dataset drift when this share of columns drifted
    min_rows: int = Field(30, ge=1)  # fewer rows in a window (or reference): drift is skipped
    html: bool = True  # False: no drift.html whatever `report:` says (the older spelling of report: none)
    # rows of the seeded reservoir per window that evidently compares (a window up to this size: all of it)
    reservoir_rows: int = Field(50_000, gt=0)

    @field_validator("thresholds")
    @classmethod
    def _thresholds(cls, v: dict[str, float]) -> dict[str, float]:
        for column, t in v.items():  # evidently compares with it: NaN is never crossed, ±inf / < 0 always or never
            if not math.isfinite(t) or t < 0:
                raise _custom("drift_threshold", f"{column}: {t} is not a threshold a drift score can cross",
                              "use a finite number ≥ 0 (a p-value for ks/chisquare, a distance for psi/wasserstein)")
        return v


class SparkConfig(_Strict):
    """``executor: spark``: where the session comes from (docs/scale.md)."""

    master: str | None = None  # None: the active session's, else spark-submit's, else local[*]
    app_name: str = "evalmon-monitor"
    conf: dict[str, str] = Field(default_factory=dict)  # extra Spark settings (spark.executor.memory, …)
    # how tasks get records: native = spark.read (Parquet: partition pruning + timestamp push-down), python =
    # each task runs the source's own reader; auto = native where the source kind has a Spark read
    reads: Literal["auto", "native", "python"] = "auto"


class MonitorTracking(TrackingConfig):  # experiment None: "monitor-<name>"
    assessments: bool = True  # traces source: 0/1 signal columns → feedback on each record's trace


class StateConfig(_Strict):
    path: Path | None = None  # watermark db (default: <output_dir>/state.sqlite); its lock sits next to it

    @field_validator("path")
    @classmethod
    def _resolve(cls, v: Path | None, info: ValidationInfo) -> Path | None:
        return None if v is None else resolve_path(v, _base_dir(info))


def source_files(source: Any, base: Path) -> set[Path]:
    """What a source's ``path`` (file, folder or glob; relative to ``base``) names now, resolved."""
    import glob

    src = str(getattr(source, "path", "") or "")
    if not src:
        return set()
    pattern = src if Path(src).is_absolute() else str(base / src)
    root = Path(pattern).resolve()
    found = {root} | {Path(p).resolve() for p in glob.glob(pattern)}
    return found | ({p.resolve() for p in root.rglob("*") if p.is_file()} if root.is_dir() else set())


def refuse_input_as_output(cfg: MonitorConfig, command: str, targets: dict[str, Path | str | None]) -> None:
    """A file a command would write (flag → path) that is the monitor's YAML or logged traffic: one-line error."""
    inputs = source_files(cfg.source, cfg.base_dir)
    if cfg.source_path is not None:
        inputs.add(Path(cfg.source_path).resolve())
    for flag, target in targets.items():
        if target is not None and Path(target).resolve() in inputs:
            raise ConfigError(f"{command}: {flag} {target} is an input of monitor '{cfg.name}' (its YAML or its "
                              "logged traffic) and would be overwritten",
                              hint=f"give {flag} a new file (nothing was written)")


class MonitorConfig(_Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")  # a folder under output_dir (see _path_part)
    description: str | None = None
    source: SourceConfig
    columns: dict[str, str] = Field(default_factory=dict)  # {canonical: source column}, merged into source
    window: WindowConfig = Field(default_factory=WindowConfig)
    reference: ReferenceConfig = Field(default_factory=ReferenceConfig)
    signals: list[SignalConfig] = Field(default_factory=list)
    drift: DriftConfig = Field(default_factory=DriftConfig)
    # per window: summary = drift.html with the dataset-level drift table (a few KB); full = evidently's
    # report with per-column plots, gzipped (drift.html.gz, ~1 MB); none = no HTML (drift.json always)
    report: Literal["full", "summary", "none"] = "summary"
    quality: QualityConfig = Field(default_factory=QualityConfig)
    tracking: MonitorTracking = Field(default_factory=MonitorTracking)
    alerts: AlertsConfig = Field(default_factory=AlertsConfig)
    state: StateConfig = Field(default_factory=StateConfig)
    output_dir: Path = Path("monitor-runs")
    seed: Seed = 1234  # reference.max_rows' sample, calibrate's draws, the drift reservoir
    executor: Literal["local", "spark"] = "local"  # spark: monitor/executors/spark.py (pip install evalmon[spark])
    spark: SparkConfig = Field(default_factory=lambda: SparkConfig())

    _source_path: Path | None = PrivateAttr(None)
    _base_dir: Path | None = PrivateAttr(None)
    _thresholds_unreadable: str = PrivateAttr("")  # calibrating: why an existing alerts.thresholds was not read

    @model_validator(mode="before")
    @classmethod
    def _merge_columns(cls, data: Any) -> Any:
        """Top-level ``columns:`` is a shorthand for ``source.columns`` (the source's own entries win)."""
        if isinstance(data, dict) and isinstance(data.get("columns"), dict) and isinstance(data.get("source"), dict):
            src = dict(data["source"])
            src["columns"] = {**data["columns"], **(src.get("columns") or {})}
            data = {**data, "source": src}
        return data

    @field_validator("name")
    @classmethod
    def _path_part(cls, v: str) -> str:
        """The name is a path part (``<output_dir>/<name>/``): ``.`` and ``..`` would leave it."""
        if len(v) > MAX_NAME:  # a path part: the OS refuses long names (ENAMETOOLONG) only after the read
            raise _custom("name", f"the name is {len(v)} characters long (at most {MAX_NAME})",
                          "use a shorter name")
        if not v.strip("."):
            raise _custom("name", f"{v!r} is not a usable folder name (it would resolve outside output_dir)",
                          "use letters, digits, '_', '.' and '-', with at least one that is not '.'")
        return v

    @field_validator("signals", mode="before")
    @classmethod
    def _bare_names(cls, v: Any) -> Any:
        """``- text`` is short for ``- {name: text}``."""
        return [{"name": s} if isinstance(s, str) else s for s in v] if isinstance(v, list) else v

    @field_validator("output_dir")
    @classmethod
    def _resolve(cls, v: Path, info: ValidationInfo) -> Path:
        return resolve_path(v, _base_dir(info))

    @model_validator(mode="after")
    def _replay_writes_no_input(self, info: ValidationInfo) -> MonitorConfig:
        """``on_alert: {to_suite: …}`` must not write over the logged traffic it replays (the log would be lost)."""
        actions = [(i, r.on_alert.to_suite) for i, r in enumerate(self.alerts.rules) if r.on_alert and r.on_alert.to_suite]
        inputs = source_files(self.source, _base_dir(info) or Path.cwd()) if actions else set()
        for i, action in actions:
            for key in ("suite", "dataset"):
                target = getattr(action, key)
                if target and Path(target).resolve() in inputs:
                    raise _custom("overwrite", f"alerts.rules.{i}.on_alert.to_suite.{key}: {target} is this monitor's "
                                  "logged traffic: the replay would overwrite it",
                                  "write the replay to a new file, e.g. replay/{window}.jsonl")
        return self

    @model_validator(mode="after")
    def _spark_table_reads(self) -> MonitorConfig:
        """``kind: spark_table`` has no reader for the tasks: ``spark.reads: python`` cannot read it."""
        if self.executor == "spark" and self.spark.reads == "python" and getattr(self.source, "kind", "") == "spark_table":
            raise _custom("executor", "spark.reads: python cannot read source kind spark_table (Spark is its reader)",
                          "set spark.reads: auto (or native), or drop spark.reads")
        return self

    @model_validator(mode="after")
    def _judge_cap_per_window(self) -> MonitorConfig:
        problem = spark_judge_cap(self)
        if problem:
            raise _custom("executor", *problem)
        return self

    @property
    def experiment(self) -> str:
        return self.tracking.experiment or f"monitor-{self.name}"

    @property
    def state_path(self) -> Path:
        return self.state.path or (self.output_dir / "state.sqlite")

    @property
    def run_dir(self) -> Path:
        """Where this monitor's per-window folders go: ``<output_dir>/<name>/``."""
        return self.output_dir / self.name

    @property
    def base_dir(self) -> Path:
        """The YAML's folder (relative source paths resolve against it)."""
        return self._base_dir or Path.cwd()

    @property
    def source_path(self) -> Path | None:
        return self._source_path

    @property
    def thresholds_unreadable(self) -> str:
        """Loaded for calibrate: the error of an ``alerts.thresholds`` file that is there but could not be read."""
        return self._thresholds_unreadable

    def config_hash(self) -> str:
        # `report` only picks the HTML file written: no metric depends on it, and leaving it out keeps the
        # hash (an MLflow param of every window) what it was before the option existed
        # the executor (and its session settings) changes where the stages run, not what they compute; the
        # reservoir size enters the hash only when set away from its default
        data = self.model_dump(mode="json", exclude={"report", "executor", "spark"})
        if data["drift"]["reservoir_rows"] == DriftConfig.model_fields["reservoir_rows"].default:
            del data["drift"]["reservoir_rows"]
        for key, default in (("on_missing", "alert"), ("min_coverage", 0.0), ("thresholds", None)):
            if data["alerts"].get(key) == default:  # the coverage keys enter the hash only when set
                del data["alerts"][key]
        for rule in data["alerts"]["rules"]:
            for key, default in (("on_missing", "alert"), ("min_coverage", 0.0)):
                if rule.get(key) in (None, default):
                    rule.pop(key, None)
        return canonical_hash(data, compact=True)


def load_monitor(path: str | Path, *, calibrating: bool = False) -> MonitorConfig:
    """Read and validate a monitor file; every problem is a one-line ``ConfigError``. ``calibrating``: for
    ``evalmon monitor calibrate``, which writes ``alerts.thresholds`` — the file may be missing or stale,
    and a rule may lack ``value:`` (calibrate sets it)."""
    text, p = read_config_file(path, "monitor file", dir_hint="pass the .yaml file")
    cfg = load_monitor_text(text, str(path), base_dir=p.parent, calibrating=calibrating)
    cfg._source_path = p
    return cfg


def load_monitor_text(text: str, source_name: str = "<string>", *, base_dir: Path | None = None,
                      calibrating: bool = False) -> MonitorConfig:
    """Validate monitor YAML text; relative paths resolve against ``base_dir`` (default: the cwd)."""
    doc = load_yaml(text, source_name)
    require_mapping(doc, source_name, "monitor", empty_hint="write a mapping with at least `name:` and `source:`",
                    keys_hint="write `name: …` and `source: …` as top-level keys")
    base = base_dir or Path.cwd()
    _check_signals(doc)
    try:
        cfg = MonitorConfig.model_validate(doc.data, context={"base_dir": base})
    except ValidationError as e:
        raise validation_error(e, doc, MonitorConfig, hints=_HINTS) from None
    cfg._base_dir = base
    if cfg.alerts.thresholds:
        from evalmon.config.thresholds import apply_thresholds

        cfg._thresholds_unreadable = apply_thresholds(cfg.alerts, rewriting=calibrating)
    for rule in cfg.alerts.rules:
        if rule.value is None and not calibrating:
            raise ConfigError(f"{source_name}: alerts.rules: rule '{rule.key}' has no value",
                              hint="add value: to the rule, or run `evalmon monitor calibrate` and reference its "
                                   "file as alerts.thresholds")
    return cfg


def _check_signals(doc: YamlDoc) -> None:
    """Signal entries validated by the signals registry (its "did you mean" and per-signal keys),
    reported at the entry's line."""
    items = doc.data.get("signals") if isinstance(doc.data, dict) else None
    if not isinstance(items, list):
        return
    for i, item in enumerate(items):
        try:
            parse_signal_configs([item])
        except ConfigError as exc:
            what = re.sub(r"^signals(\[0\]|\.0)?[.:]?\s*", "", exc.message)
            key = re.match(r"^([A-Za-z_][\w.]*):", what)
            loc: tuple[str | int, ...] = ("signals", i)
            if key and isinstance(item, dict) and key.group(1) in item:
                loc, what = (*loc, key.group(1)), what[key.end():].strip()
            raise doc.error(loc, what, exc.hint or "see the signal's options in evalmon/monitor/signals") from None


def check_rule_signals(cfg: MonitorConfig) -> None:
    """An alert rule on a signal's column (``rate/refusal.refused``: the ``refusal`` signal's) when that signal
    is not in ``signals:`` could never fire: ``evalmon monitor`` / ``calibrate`` call this before reading any
    record (the run would otherwise stop after scoring its first window)."""
    from evalmon.core import registry

    have = {"embedding" if s.name == "embeddings" else s.name for s in cfg.signals if s.enabled}
    known = set(registry.signals.names())
    where = f"{cfg.source_path}: " if cfg.source_path else ""
    for i, rule in enumerate(cfg.alerts.rules):
        _, sep, column = rule.metric.partition("/")
        prefix, dot, _ = column.partition("/")[0].partition(".")
        if sep and dot and prefix in known and prefix not in have:
            raise ConfigError(f"{where}alerts.rules[{i}].metric: {rule.metric!r} is a column of the `{prefix}` "
                              "signal, which `signals:` does not list",
                              hint=f"add `- {prefix}` to signals: (or enable it), or drop the rule")


def spark_judge_cap(cfg: MonitorConfig) -> tuple[str, str] | None:
    """(message, hint) when ``executor: spark`` meets a judge's ``max_per_window``: the cap holds per window
    because the local executor shows the signal the whole window first; Spark cells judge on their own."""
    if cfg.executor != "spark":
        return None
    for i, s in enumerate(cfg.signals):
        if getattr(getattr(s, "judge", None), "max_per_window", None) is not None:
            return (f"signals.{i}.judge.max_per_window: the spark executor judges each (window, partition) cell "
                    "on its own, so the cap would hold per cell, not per window",
                    "use executor: local for a per-window judge cap, or drop max_per_window (sample_rate alone "
                    "judges the same records however a window is split)")
    return None


def apply_overrides(cfg: MonitorConfig, *, tracking_uri: str | None = None,
                    output_dir: Path | None = None, executor: str | None = None) -> MonitorConfig:
    """A copy with CLI flags applied (``--tracking-uri`` also enables tracking; without it the store is
    ``choose_tracking_uri``'s: the YAML's ``tracking.uri``, else ``$MLFLOW_TRACKING_URI``, else local)."""
    update: dict[str, Any] = {}
    if tracking_uri is not None:
        if not tracking_uri.strip():
            raise ConfigError("--tracking-uri: must not be empty", hint="pass http://host:port or sqlite:///file.db")
        update["tracking"] = cfg.tracking.model_copy(update={"uri": tracking_uri.strip(), "enabled": True})
    else:  # the one precedence rule: the YAML's uri, else $MLFLOW_TRACKING_URI, else the local store
        update["tracking"] = cfg.tracking.model_copy(update={"uri": choose_tracking_uri(None, cfg.tracking.uri)[0]})
    if output_dir is not None:
        update["output_dir"] = resolve_path(output_dir, Path.cwd())
    if executor is not None:
        if executor not in ("local", "spark"):
            raise ConfigError(f"--executor: unknown executor {executor!r}", hint="use local or spark")
        update["executor"] = executor
    out = cfg.model_copy(update=update)
    out._source_path, out._base_dir = cfg._source_path, cfg._base_dir
    problem = spark_judge_cap(out) if executor else None
    if problem:
        raise ConfigError(f"--executor {executor}: {problem[0]}", hint=problem[1])
    return out

"""The monitor's stages as pure functions over (window, partition), each given only what it needs.

    ingest(source, partition, window) → canonical records of the window in that partition + quarantined
    signals(records)                  → the same records with per-record signal columns
    summarise(records, spec)          → a mergeable Summary (summary.py); a window's = the merge of its partitions'
    fit(basis, drift config)          → Context: the drift plan and summary spec, fixed for the whole run
    detect(window inputs)             → window metrics, drift (evidently on the summary's sample vs the
                                        reference), great-expectations checks, accounting → WindowOutcome
    alert(outcome, rules)             → the window's alerts

An executor (``executors/``) runs them window by window and hands each result to the sink. Quality checks
run on the window's records (the local executor: great-expectations' uniqueness and arrival-order checks
span partitions), or on the merge of each partition's mergeable quality counts (``quality_counts.py``: the
Spark executor), so an executor holds at most one window's records at a time — never the span a run covers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from evalmon.core.version import __version__
from evalmon.monitor.contracts import (
    CONTEXTS,
    PROMPT,
    REQUEST_ID,
    RESPONSE,
    SAMPLES,
    SESSION_ID,
    TIMESTAMP,
    TRACE_ID,
)
from evalmon.monitor.drift import NOT_DRIFTED, DriftPlan, DriftResult, first_value, is_vector, plan_columns
from evalmon.monitor.sources.base import read_partition
from evalmon.monitor.summary import SAMPLE_ROWS, Summary, SummarySpec
from evalmon.monitor.windows import Window
from evalmon.sinks.mlflow.payload import sanitize_key

if TYPE_CHECKING:
    import pandas as pd

    from evalmon.config.alerts import AlertRule
    from evalmon.config.monitor import DriftConfig, SignalConfig
    from evalmon.monitor.alerts import Alert
    from evalmon.monitor.contracts import QuarantinedRecord, Source
    from evalmon.monitor.quality import QualityConfig
    from evalmon.monitor.quality_counts import QualityCounts


@dataclass
class WindowOutcome:
    window: Window
    records: int  # processed (in the window's frame)
    metrics: dict[str, float]
    directory: Path
    drift: DriftResult | None = None
    alerts: list[Alert] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    tracking: dict[str, Any] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)
    quality: dict[str, Any] = field(default_factory=dict)  # quality.json

    def line(self) -> str:
        d = self.drift
        drift = ("drift off" if d is None else "drift skipped" if d.skipped
                 else f"drift {d.n_drifted}/{len(d.tested)} columns")
        track = self.tracking.get("status", "not tracked")
        bad = int(self.metrics.get("records/quarantined", 0))
        return (f"{self.window.start.isoformat()}  {self.records:>7} records  {bad} quarantined  {drift}  "
                f"{len(self.alerts)} alert(s)  mlflow: {track}")


# --------------------------------------------------------------------------- ingest


@dataclass
class Ingested:
    """One partition's share of one window: its records and the quarantined records a read returned
    (placed in the window, or unplaced: ``None`` time)."""

    partition: str
    records: pd.DataFrame
    quarantined: list[QuarantinedRecord] = field(default_factory=list)
    times: list[Any] = field(default_factory=list)


def within(frame: pd.DataFrame, ts_col: str, lo: Any, hi: Any) -> pd.DataFrame:
    """Rows with ``lo <= frame[ts_col] < hi``."""
    import pandas as pd

    if not len(frame):
        return frame
    ts = frame[ts_col]
    return frame[(ts >= pd.Timestamp(lo)) & (ts < pd.Timestamp(hi))]


def ingest(source: Source, partition: str, window: Window, ts_col: str = TIMESTAMP) -> Ingested:
    """The canonical records of ``partition`` in ``window`` and the quarantined records the read returned."""
    batch = read_partition(source, partition, window.start, window.end)
    return Ingested(partition, within(batch.frame, ts_col, window.start, window.end), list(batch.quarantined),
                    batch.placed_times())


# --------------------------------------------------------------------------- signals


class SignalRunner:
    """The run's signals, built once (models load once), with the per-record cache on disk."""

    def __init__(self, configs: Sequence[SignalConfig], cache_path: Path | None) -> None:
        self.configs = list(configs)
        self._built: list[Any] | None = None
        self._cache: Any = None
        self._cache_path = cache_path

    def _build(self) -> list[Any]:
        from evalmon.monitor.signals import SignalCache, build_signals

        if self._built is None:
            self._built = build_signals(self.configs)
            self._cache = SignalCache(self._cache_path)
        return self._built

    def fingerprints(self) -> dict[str, str]:
        """Each signal's fingerprint (name, version and the options that change its numbers — e.g. which detector
        artifacts, whether harmful_request's lm probe ran) as ``signal.<name>`` run params: two runs of one YAML
        that computed different numbers (another artifact, a checkpoint built since) are told apart."""
        return {f"signal.{s.name}": s.fingerprint[:16] for s in self._build()} if self.configs else {}

    def __call__(self, records: pd.DataFrame) -> pd.DataFrame:
        if not self.configs:
            return records
        from evalmon.monitor.signals import compute_signals

        return compute_signals(records, self._build(), self._cache)

    def window(self, frames: Sequence[pd.DataFrame]) -> list[pd.DataFrame]:
        """One window's partitions: each signal with a ``plan_window`` sees all of them first (the judge's
        per-window cost cap), then every partition is computed; the plan is dropped afterwards."""
        if not self.configs:
            return list(frames)
        planners = [s for s in self._build() if callable(getattr(s, "plan_window", None))]
        for s in planners:
            s.plan_window(frames)
        try:
            return [self(f) for f in frames]
        finally:
            for s in planners:
                s.plan_window(None)

    @property
    def notes(self) -> list[str]:
        """What the built signals say about themselves (``note``: e.g. PII without a name recogniser)."""
        return [n for s in self._built or () if (n := getattr(s, "note", None))]

    def close(self) -> None:
        """Close the cache and let go of the signals (and the models they loaded)."""
        if self._cache is not None:
            self._cache.close()
            self._cache = None
        self._built = None


def signals(records: pd.DataFrame, runner: SignalRunner) -> pd.DataFrame:
    """Per-record signal columns (pure per record: computed per partition, cached by content)."""
    return runner(records)


def window_signals(partitions: Sequence[pd.DataFrame], runner: SignalRunner) -> list[pd.DataFrame]:
    """``signals`` of every partition of one window, after the signals' window plans (``SignalRunner.window``):
    what a signal decides per window — the judge's cost cap — then does not depend on the partitioning."""
    return runner.window(partitions)


# --------------------------------------------------------------------------- summarise + fit


def summarise(records: pd.DataFrame, spec: SummarySpec) -> Summary:
    return Summary.zero(spec).update(records)


@dataclass
class Context:
    """Fixed for the whole run: drift columns and summary spec (histogram edges, reservoir columns)."""

    plan: DriftPlan
    spec: SummarySpec


def fit(basis: pd.DataFrame, drift: DriftConfig, *, seed: int = 0, sample_rows: int = SAMPLE_ROWS) -> Context:
    """Drift plan and summary spec fitted on ``basis`` (the reference, or the run's records); the summary's
    reservoir keeps the drift plan's columns."""
    import pandas as pd

    plan = plan_columns(basis, drift)
    numeric = [c for c in basis.columns
               if c not in NOT_DRIFTED and pd.api.types.is_numeric_dtype(basis[c])
               and not pd.api.types.is_bool_dtype(basis[c])]
    sample = (*plan.tabular, *plan.embeddings) if drift.enabled else ()
    spec = SummarySpec.fit(basis, numeric, plan.categorical, sample=sample, sample_size=sample_rows, seed=seed)
    return Context(plan, spec)


BASIS_ROWS = 1_000_000  # records a spec is fitted on when it is fitted on the run's own records (seeded above)
_NOT_READ_BY_FIT = (PROMPT, RESPONSE, CONTEXTS, SAMPLES, REQUEST_ID, SESSION_ID, TRACE_ID)
_A_VECTOR = (0.0, 0.0)


def fitting_view(records: pd.DataFrame) -> pd.DataFrame:
    """What ``fit`` reads of records, light enough to keep ``BASIS_ROWS`` of them: text, list and id
    columns are blanked (fitting only sees that they exist) and vectors become one shared stand-in
    (fitting only sees that a column holds vectors); numbers and categories stay as they are."""
    out = records.assign(**{c: None for c in _NOT_READ_BY_FIT if c in records.columns})
    for col in out.columns:
        if out[col].dtype == object and is_vector(first_value(out[col])):
            out[col] = out[col].map(lambda v: _A_VECTOR if is_vector(v) else v)
    return out


def sample_reference(frame: pd.DataFrame, max_rows: int | None, seed: int) -> pd.DataFrame:
    """``reference.max_rows``: a seeded sample of the reference rows (in their order)."""
    if max_rows is not None and len(frame) > max_rows:
        return frame.sample(max_rows, random_state=seed).sort_index()
    return frame


# --------------------------------------------------------------------------- detect


@dataclass
class Accounting:
    """What the window's quarantine contributes: its count, metrics and ``quarantine_summary.json``."""

    quarantined: int
    metrics: dict[str, float]
    summary: dict[str, Any]


def quality_checks(records: pd.DataFrame, quality: QualityConfig, quarantined: int,
                   counts: QualityCounts | None = None) -> tuple[dict[str, float], dict[str, Any]]:
    """great-expectations checks of one window's records — or the same report from the window's merged
    mergeable counts — → (``quality/…`` metrics, report dict)."""
    from evalmon.monitor.quality import check_quality

    report = (check_quality(records, quality, quarantined=quarantined) if counts is None
              else counts.report(quality, quarantined=quarantined))
    metrics = {"quality/" + k.removeprefix("quality."): v for k, v in report.metrics("quality").items()}
    metrics["quality/quarantined"] = float(quarantined)
    return metrics, report.to_dict()


REPORT_FILES = {"summary": "drift.html", "full": "drift.html.gz"}  # report: none writes neither


def report_file(directory: Path, report: str) -> Path | None:
    """Where a window's drift HTML goes: written once, in its folder (the MLflow upload takes it from there)."""
    name = REPORT_FILES.get(report)
    return None if name is None else directory / name


def detect(window: Window, summary: Summary, records: pd.DataFrame, reference: pd.DataFrame | None, *,
           plan: DriftPlan, drift: DriftConfig, quality: QualityConfig, accounting: Accounting,
           params: dict[str, str], directory: Path, backfill: bool = False, report: str = "summary",
           quality_counts: QualityCounts | None = None) -> WindowOutcome:
    """One window's metrics: the summary's, drift of its sample vs ``reference`` (evidently; the ``report``
    HTML into ``directory``), quality checks of its records (great-expectations; from the window's merged
    ``quality_counts`` when an executor gives them), record accounting; params say what ran."""
    from evalmon.monitor.drift import compute_drift
    from evalmon.monitor.histdrift import window_drift

    html_path = report_file(directory, report)
    for stale in REPORT_FILES.values():  # a reprocessed window keeps one report: the one asked for now
        if directory / stale != html_path:
            (directory / stale).unlink(missing_ok=True)

    metrics = summary.metrics()
    notes: list[str] = []
    result = None
    if drift.enabled:
        current = summary.rows()
        if reference is None or not len(reference):
            result = DriftResult(n_current=len(current), skipped="no reference data", drift_share=drift.drift_share)
        else:
            result = compute_drift(current, reference, plan, drift, html_path=html_path, report=report)
            if not result.skipped:  # drift_hist/<stat>/<col>: merged histograms (drift.min_rows holds too)
                metrics.update(window_drift(reference, summary))
        metrics.update(result.metrics())
        if result.skipped:
            notes.append(f"drift skipped: {result.skipped}")
        notes += result.errors
    qmetrics, qreport = (quality_checks(records, quality, accounting.quarantined, quality_counts)
                         if quality.enabled else ({}, {"enabled": False}))
    metrics.update(qmetrics)
    metrics.update(accounting.metrics)
    params = dict(params)
    params["n_reference"] = str(len(reference) if reference is not None else 0)
    if result is not None:
        for col, method in result.methods().items():
            params[f"drift.method/{col}"] = method
    if backfill:
        notes.append("processed by --backfill")
    metrics = {sanitize_key(k): v for k, v in metrics.items()}  # alert rules use the names MLflow shows
    return WindowOutcome(window, len(records), metrics, directory, drift=result, notes=notes, params=params,
                         quality={"window": window.key, **qreport})


def alert(outcome: WindowOutcome, rules: Sequence[AlertRule], *, monitor: str) -> WindowOutcome:
    """The window's alerts (rules on its metrics); rules that could not be evaluated become notes."""
    from evalmon.monitor.alerts import evaluate

    check = evaluate(rules, outcome.metrics, monitor=monitor, window=outcome.window)
    outcome.alerts, outcome.notes = check.alerts, outcome.notes + check.notes
    return outcome


def run_params(monitor: str, config_hash: str, *, window_size: str, window_delay: str, reference: Any,
               source_kind: str, signal_names: Sequence[str]) -> dict[str, str]:
    """The params every window run of this monitor carries."""
    params = {"monitor": monitor, "config_hash": config_hash, "evalmon_version": __version__,
              "window.size": window_size, "window.delay": window_delay, "reference.kind": reference.kind,
              "source.kind": source_kind, "signals": ",".join(signal_names) or "none"}
    if reference.kind == "fixed":
        params.update({"reference.start": str(reference.start), "reference.end": str(reference.end)})
    elif reference.kind == "file":
        params["reference.path"] = str(reference.path)
    return params

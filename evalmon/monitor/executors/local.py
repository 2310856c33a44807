"""The local executor: the monitor's stages (``pipeline.py``) window by window, partition by partition.

Per window it reads each partition of the source (``sources.base.partitions_of`` / ``read_partition``),
computes signals and a ``Summary`` per partition, merges the summaries, runs ``detect`` and ``alert``, and
hands the result to the sink (``WindowSink``: trace assessments, ``window.json``, MLflow). It holds one
window's records at a time, never the span: ``stats`` records the most rows and windows it held at once.

What the whole run shares is fitted first. With a fixed or file reference that is the reference (read
partition by partition and held for the run, as before: evidently compares each window with it;
``reference.max_rows`` bounds it). Otherwise (``reference.kind: previous``, or drift off) the summary spec is
fitted on the run's own records: a first pass reads every window of the span once, computing signals, folds
what fitting reads of each record (``pipeline.fitting_view``: numbers and categories, not text) into a
reservoir — every record while the span has at most ``BASIS_ROWS`` (1,000,000), a seeded sample above — and
spills each window's records to a temporary folder; the second pass summarises from the spill, so each
record is read and its signals computed once. The spill takes about the span's records on disk and is
deleted at the end of the run. With ``reference.kind: previous`` a window's reference is the previous
window's drift sample (``Summary.rows()``: the whole window up to ``SAMPLE_ROWS``).

Windows without records while the run has processed none are held back (they hold nothing): if every
record read turns out quarantined, the run stops with exit 2 before any window folder is written or the
watermark moves (a misconfigured source, not quiet traffic).
"""

from __future__ import annotations

import pickle
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from evalmon.checkpoints.heartbeat import heartbeat, heartbeat_interval
from evalmon.core.errors import ConfigError, DataError, did_you_mean
from evalmon.core.jsonout import to_json
from evalmon.monitor.alerts import metric_column
from evalmon.monitor.contracts import (
    ARRIVAL,
    TIMESTAMP,
)
from evalmon.monitor.executors.ledger import QuarantineLedger
from evalmon.monitor.pipeline import (
    BASIS_ROWS,
    Accounting,
    Context,
    Ingested,
    SignalRunner,
    WindowOutcome,
    alert,
    detect,
    fit,
    fitting_view,
    ingest,
    run_params,
    sample_reference,
    signals,
    summarise,
    window_signals,
    within,
)
from evalmon.monitor.sources.base import partitions_of, read_partition
from evalmon.monitor.summary import SAMPLE_ROWS, Reservoir, Summary
from evalmon.monitor.windows import Window, parse_duration

if TYPE_CHECKING:
    import pandas as pd

    from evalmon.config.monitor import MonitorConfig
    from evalmon.monitor.contracts import Source
    from evalmon.monitor.quality_counts import QualityCounts


class WindowSink(Protocol):
    """Where a finished window goes (the runner's adapter over ``sinks/mlflow/windows.py``)."""

    def assess(self, outcome: WindowOutcome, records: pd.DataFrame, columns: list[str]) -> None: ...

    def finish(self, outcome: WindowOutcome) -> None: ...

    def track(self, outcome: WindowOutcome) -> None: ...


@dataclass
class ExecutorStats:
    """Instrumentation: what the executor held at once, and where the time went."""

    windows: int = 0
    partitions_read: int = 0
    records_read: int = 0
    rows_held: int = 0  # rows of window records held right now
    windows_held: int = 0
    max_rows_held: int = 0
    max_windows_held: int = 0
    seconds_reading: float = 0.0
    seconds_signals: float = 0.0


class _Spill:
    """Each window's ingested partitions pickled to a temporary folder (deleted by ``close``)."""

    def __init__(self) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="evalmon-spill-")

    def save(self, w: Window, parts: list[Ingested]) -> None:
        with open(Path(self._dir.name) / f"{w.index}.pkl", "wb") as fh:
            pickle.dump(parts, fh, protocol=pickle.HIGHEST_PROTOCOL)

    def load(self, w: Window) -> list[Ingested]:
        path = Path(self._dir.name) / f"{w.index}.pkl"
        with open(path, "rb") as fh:
            parts: list[Ingested] = pickle.load(fh)  # written by this run only
        path.unlink()
        return parts

    def close(self) -> None:
        self._dir.cleanup()


class LocalExecutor:
    def __init__(self, cfg: MonitorConfig, source: Source, sink: WindowSink, *,
                 log_fn: Callable[[str], None] | None = None, sample_rows: int = SAMPLE_ROWS,
                 basis_rows: int = BASIS_ROWS) -> None:
        self.cfg, self.source, self.sink = cfg, source, sink
        self.reference_quarantined: Counter[str] = Counter()  # why reference records were left out (``reference``)
        self.size = parse_duration(cfg.window.size)
        self.ts_col = cfg.window.timestamp
        self.sample_rows, self.basis_rows = sample_rows, basis_rows
        self.signals = SignalRunner(cfg.signals, cfg.output_dir / "signal_cache.sqlite")
        self.ledger = QuarantineLedger(cfg.run_dir, self.size)
        self.processed = 0
        self.stats = ExecutorStats()
        self._log = log_fn or (lambda _m: None)
        self._template: pd.DataFrame | None = None  # columns of a window without records

    def close(self) -> None:
        self.signals.close()

    # ------------------------------------------------------------------ reading

    def _hold(self, rows: int) -> None:
        self.stats.rows_held += rows
        self.stats.windows_held += 1
        self.stats.max_rows_held = max(self.stats.max_rows_held, self.stats.rows_held)
        self.stats.max_windows_held = max(self.stats.max_windows_held, self.stats.windows_held)

    def _release(self, rows: int) -> None:
        self.stats.rows_held -= rows
        self.stats.windows_held -= 1

    def _ingest(self, w: Window) -> list[Ingested]:
        """Every partition's records of ``w`` with signals (held: release with the window's row count)."""
        parts = []
        t = time.perf_counter()
        for p in partitions_of(self.source, w.start, w.end):
            parts.append(ingest(self.source, p, w, self.ts_col))
        self.stats.seconds_reading += time.perf_counter() - t
        self.stats.partitions_read += len(parts)
        self._hold(sum(len(p.records) for p in parts))
        t = time.perf_counter()
        for p, records in zip(parts, window_signals([p.records for p in parts], self.signals), strict=True):
            p.records = records  # window_signals: a per-window plan first (the judge's cost cap), then per part
            if self._template is None and len(p.records):
                self._template = p.records.iloc[:0].copy()  # not a view: it would keep the frame alive
        self.stats.seconds_signals += time.perf_counter() - t
        self.stats.records_read += sum(len(p.records) for p in parts)
        return parts

    def _window_records(self, parts: list[Ingested]) -> pd.DataFrame:
        """The window's records in the order a whole-source read gives them (time, then arrival)."""
        import pandas as pd

        frames = [p.records for p in parts if len(p.records)]
        if not frames:
            if self._template is None:
                from evalmon.monitor.schema import empty_frame

                self._template = signals(empty_frame(), self.signals)
            return self._template
        if len(frames) == 1:
            frame = frames[0]
        else:
            frame = pd.concat(frames, ignore_index=True)
            order = [c for c in (TIMESTAMP, ARRIVAL) if c in frame.columns]
            frame = frame.sort_values(order, kind="mergesort").reset_index(drop=True) if order else frame
        if len(frame) and not frame[self.ts_col].is_monotonic_increasing:
            frame = frame.sort_values(self.ts_col, kind="stable")
        return frame.reset_index(drop=True)

    def earliest(self, now: datetime) -> datetime | None:
        from evalmon.monitor.sources.base import earliest_of

        return earliest_of(self.source, now)

    def account_unplaced(self, now: datetime, *, placed: bool = False) -> None:
        """No window to process after a scan: the unplaced records the source returns still count — and with
        ``placed`` (the scan found no usable record at all) the quarantined records that carry a time too: no
        window will ever hold them, so without this a source whose every record is quarantined for its content
        (numbers as prompts) looked like a source with no traffic yet."""
        for p in partitions_of(self.source, None, now):
            batch = read_partition(self.source, p, None, now)
            self.ledger.add(p, list(batch.quarantined), batch.placed_times(), in_run=placed)

    # ------------------------------------------------------------------ what the run shares

    def reference(self) -> pd.DataFrame:
        """The fixed period of the source, or the reference file — sampled (``reference.max_rows``), with
        signals. Read partition by partition; held whole for the run, as evidently compares against it."""
        import pandas as pd

        from evalmon.monitor.sources import build_source

        ref = self.cfg.reference
        if ref.kind == "fixed":
            src, lo, hi = self.source, ref.start, ref.end
        else:
            path = str(ref.path)
            kind = "csv" if path.endswith(".csv") else "parquet" if path.endswith(".parquet") else "jsonl"
            src = build_source({"kind": kind, "path": path, "columns": dict(self.cfg.source.columns)},
                               self.cfg.base_dir)
            lo = hi = None
        frames = []
        reasons: Counter[str] = Counter()  # why records were left out: named when none is usable
        try:
            for p in partitions_of(src, lo, hi):
                batch = read_partition(src, p, lo, hi)
                reasons.update(q.reason for q in batch.quarantined)
                frames.append(within(batch.frame, self.ts_col, lo, hi) if lo is not None else batch.frame)
        except DataError as exc:  # the reference file's problem is reference.path's, not source.path's
            if ref.kind == "fixed" or not exc.message.startswith("source path does not exist"):
                raise
            raise DataError(f"reference.path: {exc.message.removeprefix('source path does not exist: ')} does not "
                            "exist", hint="write the reference file there, or fix reference.path in the monitor "
                                          "YAML (a relative path resolves against the YAML's folder)") from exc
        nonempty = [f for f in frames if len(f)]
        if not nonempty:  # drift would be skipped in every window: a reference that compares nothing
            why, hint = "", ""
            if reasons:  # e.g. a columns: mapping to a field the records lack quarantines every one of them
                top, n = reasons.most_common(1)[0]
                why = f" ({sum(reasons.values())} quarantined records read; {n} of them: {top})"
                hint = "check source.columns / the records' fields, or "
            if ref.kind == "fixed":
                raise DataError(f"reference: the fixed span [{ref.start}, {ref.end}) holds no usable record "
                                f"of the source{why}", hint=f"{hint}set reference.start/end to a period with "
                                                            "traffic, or use reference.kind: previous")
            raise DataError(f"reference.path: {ref.path} holds no usable record{why}",
                            hint=f"{hint}point reference.path at a file of canonical records, or use "
                                 "reference.kind: previous")
        frame = nonempty[0]
        if len(nonempty) > 1:
            frame = pd.concat(nonempty, ignore_index=True)
            order = [c for c in (TIMESTAMP, ARRIVAL) if c in frame.columns]
            frame = frame.sort_values(order, kind="mergesort")
        frame = frame.reset_index(drop=True)
        self.reference_quarantined = reasons  # calibrate names them
        return signals(sample_reference(frame, ref.max_rows, self.cfg.seed), self.signals)

    def _basis(self, span: list[Window], spill: _Spill) -> pd.DataFrame:
        """First pass over the span: signals once, every window spilled, what fitting reads of each record
        folded into a reservoir (every record while the span has at most ``BASIS_ROWS``)."""
        res: Reservoir | None = None
        at = [0]

        def beat(elapsed: float) -> str:  # a CI log must not look hung while signals run for minutes
            return (f"first pass: {at[0]}/{len(span)} window(s) read with signals, {self.stats.records_read} "
                    f"records, {elapsed:.0f} s")

        with heartbeat(self._log, "first pass", line=beat, announce=False):
            for w in span:
                parts = self._ingest(w)
                rows = sum(len(p.records) for p in parts)
                for p in parts:
                    frame = fitting_view(p.records)
                    res = res or Reservoir(tuple(frame.columns), self.basis_rows, self.cfg.seed)
                    res.update(frame)
                spill.save(w, parts)
                self._release(rows)
                at[0] += 1
        if res is None or not res.seen:
            return self._window_records([])
        if not res.complete:
            kept = 0 if res.rows is None else len(res.rows)  # (a DataFrame has no truth value: no `or []`)
            self._log(f"summary spec fitted on a seeded sample of {kept} of the span's {res.seen} records")
        return res.frame()

    def _context(self, span: list[Window], previous: bool) -> tuple[Context, pd.DataFrame | None, _Spill | None]:
        cfg = self.cfg
        if cfg.drift.enabled and not previous:
            with heartbeat(self._log, f"reference ({cfg.reference.kind}): reading, signals",
                           announce_after=heartbeat_interval()):
                reference = self.reference()
            self._log(f"reference ({cfg.reference.kind}): {len(reference)} records")
            return fit(reference, cfg.drift, seed=cfg.seed, sample_rows=self.sample_rows), reference, None
        spill = _Spill()
        t = time.perf_counter()
        basis = self._basis(span, spill)
        self._log(f"read {self.stats.records_read} records of {len(span)} window(s) from {span[0].start.isoformat()} "
                  f"to {span[-1].end.isoformat()} in {time.perf_counter() - t:.1f} s"
                  + (f" (signals {self.stats.seconds_signals:.1f} s)" if cfg.signals else ""))
        return fit(basis, cfg.drift, seed=cfg.seed, sample_rows=self.sample_rows), None, spill

    # ------------------------------------------------------------------ the run

    def run(self, windows: list[Window], *, backfill: bool, first: bool) -> Iterator[WindowOutcome]:
        """Each window of ``windows`` (complete, in order) processed and handed to the sink, then yielded.
        ``first``: no window of this monitor was processed before (for the all-quarantined check)."""
        cfg = self.cfg
        previous = cfg.reference.kind == "previous" and cfg.drift.enabled
        prev_w = Window(windows[0].start - self.size, windows[0].start, windows[0].index - 1) if previous else None
        span = [prev_w, *windows] if prev_w is not None else list(windows)
        ctx, reference, spill = self._context(span, previous)
        params = run_params(cfg.name, cfg.config_hash(), window_size=cfg.window.size, window_delay=cfg.window.delay,
                            reference=cfg.reference, source_kind=str(getattr(cfg.source, "kind", "?")),
                            signal_names=[s.name for s in cfg.signals])
        params.update(self.signals.fingerprints())
        held: list[tuple[Window, Summary, pd.DataFrame, pd.DataFrame | None]] = []  # windows without records
        done = 0
        at: list[Any] = [0, span[0]]

        def beat(elapsed: float) -> str:
            return f"window {at[0]}/{len(span)} from {at[1].start.isoformat()}: processing… {elapsed:.0f} s"

        beats = ExitStack()
        beats.enter_context(heartbeat(self._log, "windows", line=beat, announce=False))
        try:
            for i, w in enumerate(span, 1):
                at[:] = [i, w]
                parts = spill.load(w) if spill is not None else self._ingest(w)
                rows = sum(len(p.records) for p in parts)
                if spill is not None:
                    self._hold(rows)
                in_run = w is not prev_w
                for p in parts:
                    self.ledger.add(p.partition, p.quarantined, p.times, in_run=in_run)
                summary = Summary.zero(ctx.spec)
                for p in parts:
                    summary = summary.merge(summarise(p.records, ctx.spec))
                if not in_run:  # the window before the first one: the first one's reference
                    reference = summary.rows()
                    self._release(rows)
                    continue
                records = self._window_records(parts)
                del parts
                ref = reference
                if previous:
                    reference = summary.rows()  # the next window's reference
                self.processed += len(records)
                if not self.processed:
                    held.append((w, summary, records, ref))
                else:
                    for item in held:
                        yield self._finish(*item, ctx=ctx, params=params, backfill=backfill, first=done == 0,
                                           last=item[0] == windows[-1])
                        done += 1
                    held = []
                    yield self._finish(w, summary, records, ref, ctx=ctx, params=params, backfill=backfill,
                                       first=done == 0, last=w == windows[-1])
                    done += 1
                del records
                self._release(rows)
            self.check_not_all_quarantined(first=first)
            for item in held:
                yield self._finish(*item, ctx=ctx, params=params, backfill=backfill, first=done == 0,
                                   last=item[0] == windows[-1])
                done += 1
        finally:
            beats.close()
            if spill is not None:
                spill.close()

    def _finish(self, w: Window, summary: Summary, records: pd.DataFrame, reference: pd.DataFrame | None, *,
                ctx: Context, params: dict[str, str], backfill: bool, first: bool, last: bool,
                quality_counts: QualityCounts | None = None) -> WindowOutcome:
        cfg = self.cfg
        d = cfg.run_dir / "windows" / w.key
        d.mkdir(parents=True, exist_ok=True)
        n_bad = self.ledger.take(w)
        accounting = Accounting(n_bad, self.ledger.metrics(w, len(records), last=last),
                                self.ledger.summary(w, last=last))
        outcome = detect(w, summary, records, reference, plan=ctx.plan, drift=cfg.drift, quality=cfg.quality,
                         accounting=accounting, params=params, directory=d, backfill=backfill, report=cfg.report,
                         quality_counts=quality_counts)
        if outcome.drift is not None:
            _write(d / "drift.json", outcome.drift.to_dict())
        _write(d / "quality.json", outcome.quality)
        _write(d / "quarantine_summary.json", accounting.summary)
        if first:
            check_rule_metrics(cfg, outcome)
        alert(outcome, cfg.alerts.rules, monitor=cfg.name)
        outcome.notes += self.signals.notes  # evalmon.notes tag (e.g. PII without a name recogniser)
        self.sink.assess(outcome, records, [c for c in ctx.spec.rates if "." in c])  # signal columns
        self.sink.finish(outcome)
        self.sink.track(outcome)
        self.stats.windows += 1
        return outcome

    # ------------------------------------------------------------------ checks

    def check_not_all_quarantined(self, *, first: bool) -> None:
        """Records were read but none could be used: a misconfigured source, not traffic (exit 2). The
        quarantine file is already written. Once windows were processed, the unplaced records alone (re-read
        by every run) with a quiet window are not that."""
        led = self.ledger
        if not led.quarantined or self.processed:
            return
        if not first and led.quarantined == led.n_unplaced:
            return
        reason, n = next(iter(led.by_reason.items()))
        hint = _HOW_TO_FIX.get(reason, "check source.kind and the `columns:` mapping against the records")
        where = f"; see {led.quarantine_file}" if led.quarantine_file else ""
        raise DataError(f"source: all {led.quarantined} records read were quarantined, none processed (mostly "
                        f"{reason}: {n}){where}", hint=hint)


_HOW_TO_FIX = {
    "timestamp.missing": "check the `columns:` mapping (which source field is the timestamp: columns.timestamp)",
    "unparseable_json": "check that source.kind matches the files' format (jsonl: one JSON object per line)",
    "json_line_is_not_an_object": "check that source.kind matches the files' format (jsonl: one JSON object "
                                  "per line)",
    "timestamp.unparseable": "check the `columns:` mapping and source.assume_timezone (which field is the time)",
    "timestamp.implausible": "check the `columns:` mapping (columns.timestamp) and source.timestamp_min",
    "invalid_utf-8": "the files are in another encoding (cp1252, latin-1): re-encode them (iconv -f cp1252 -t utf-8) "
                     "or set source.invalid_utf8: replace",
}


def check_rule_metrics(cfg: MonitorConfig, outcome: WindowOutcome) -> None:
    """After the first window: an alert rule on a metric this monitor never computes could never fire."""
    maybe = ("records/quarantined/", "records/unplaced/")  # only when such records exist
    drifted: set[str] = set()  # columns the drift plan tests: their score can be absent in one window
    if outcome.drift is not None:
        if outcome.drift.skipped:
            maybe += ("drift/", "drift_detected/", "drift_hist/")  # drift metrics appear once drift runs
        drifted = {c.column for c in outcome.drift.columns}
    for i, rule in enumerate(cfg.alerts.rules):
        if rule.metric in outcome.metrics or rule.metric.startswith(maybe):
            continue
        kind, _, rest = rule.metric.partition("/")
        if kind in ("drift", "drift_detected") and rest in drifted:
            continue
        column = metric_column(rule.metric)  # a column nothing scored (a judge that failed): "not evaluated"
        if column and kind != "share" and (f"coverage/{column}" in outcome.metrics
                                           or f"null_rate/{column}" in outcome.metrics):
            continue
        col = rule.metric.split("/")[1] if rule.metric.count("/") >= 2 else ""
        if rule.metric.startswith("share/") and f"share/{col}/_other" in outcome.metrics:
            continue  # a value not among this run's top values (a new model version) may be in a later run
        raise ConfigError(f"alerts.rules[{i}].metric: {rule.metric!r} is not a metric of this monitor's windows"
                          f"{did_you_mean(rule.metric, list(outcome.metrics))}",
                          hint="use a metric name from a window.json (metrics) or the MLflow run")


def _write(path: Path, data: dict[str, Any]) -> None:
    path.write_text(to_json(data), encoding="utf-8")

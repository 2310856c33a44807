"""The Spark executor (``executor: spark``): the local executor's stages, with the per-partition work on Spark.

Per chunk of windows the driver lists each window's source partitions (``partitions_of``: a file, a Parquet
``dt=`` fragment, a table), makes one Spark job of those (window, partition) cells — one cell per Spark
partition — and runs the pure stages of ``pipeline.py`` on each with ``mapInPandas`` (``spark_tasks.py``):
the source's windowed read, signals (models load once per Python worker), and the cell's mergeable
``Summary``. With ``spark.reads`` auto/native a Parquet source is read by ``spark.read.parquet`` instead — one
scan per chunk, dt-pruned and time-filtered, grouped by file (``spark_reads.py``) — feeding the same cells. The driver merges each window's summaries in partition order, then runs exactly what the local
executor runs: ``detect`` (evidently on the merged bounded reservoir vs the reference; great-expectations on
the window's narrow *view*: timestamp, arrival, the quality columns — no text, no vectors), ``alert``, the
quarantine ledger, the window folder, MLflow (``LocalExecutor._finish``). The runner keeps the lock and the
watermark, which moves after each window. Quarantined rows are also written as a Parquet dataset
``<run dir>/quarantine_parquet/window=<key>/`` next to the window folders.

A chunk holds enough windows to give every core two cells (``spark.default.parallelism``; at least 16); the driver
holds one chunk's summaries (each reservoir at most ``drift.reservoir_rows`` rows) and views at a time.
Without a fixed reference the summary spec is fitted first on a bounded seeded reservoir of the span's records
(a ``fit`` job over the same cells; signals run in both passes — the local executor spills instead). Once the
driver's reservoir is full, each later fit job gets its largest key (``Reservoir.bound``) and its cells ship only
the rows keyed below it — the rows that could still get in, so the sample is the same — instead of their whole
fitting view: the driver holds the reservoir plus one job's surviving rows, not a share of the span.
"""

from __future__ import annotations

import pickle
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import TYPE_CHECKING, Any

from evalmon.checkpoints.heartbeat import heartbeat
from evalmon.core.errors import DataError
from evalmon.monitor.executors.local import LocalExecutor, WindowSink
from evalmon.monitor.executors.spark_reads import native_source
from evalmon.monitor.executors.spark_session import collect, session
from evalmon.monitor.executors.spark_tasks import INPUT_SCHEMA, OUTPUT_SCHEMA, CellResult, Job, task
from evalmon.monitor.pipeline import BASIS_ROWS, Context, Ingested, fit, run_params
from evalmon.monitor.sources.base import partitions_of
from evalmon.monitor.summary import SAMPLE_ROWS, Reservoir, Summary
from evalmon.monitor.windows import Window

if TYPE_CHECKING:
    import pandas as pd

    from evalmon.config.monitor import MonitorConfig
    from evalmon.monitor.contracts import Source
    from evalmon.monitor.pipeline import WindowOutcome
    from evalmon.monitor.quality_counts import QualityCounts

CELLS_PER_CORE = 2
MIN_CELLS_PER_JOB = 16  # a Spark job costs seconds of scheduling: small windows go several to a job


class SparkExecutor(LocalExecutor):
    def __init__(self, cfg: MonitorConfig, source: Source, sink: WindowSink, *,
                 log_fn: Callable[[str], None] | None = None, sample_rows: int = SAMPLE_ROWS,
                 basis_rows: int = BASIS_ROWS, spark: Any = None) -> None:
        super().__init__(cfg, source, sink, log_fn=log_fn, sample_rows=sample_rows, basis_rows=basis_rows)
        self._spark = spark  # started on first use: a run with no window to process starts no JVM
        self.jobs = 0
        self._partitions: dict[int, list[str]] = {}
        self.seconds_in_tasks = 0.0
        self._native: bool | None = None
        self.native_cells = 0  # cells fed by spark.read (the rest: the source's reader in the task)
        self.fit_rows_shipped = 0  # fitting-view rows the fit pass's cells returned to the driver
        self._quality: dict[int, QualityCounts] = {}  # window index → its merged quality counts
        self._qcolumns: frozenset[str] | None = None  # columns of the first records seen (empty windows)
        if callable(getattr(source, "use_session", None)):  # kind: spark_table reads through this session
            source.use_session(lambda: self.spark)  # type: ignore[attr-defined]

    @property
    def spark(self) -> Any:
        if self._spark is None:
            self._spark = session(self.cfg.spark)
        return self._spark

    # ------------------------------------------------------------------ jobs

    def _parts(self, w: Window) -> list[str]:
        if w.index not in self._partitions:
            self._partitions[w.index] = partitions_of(self.source, w.start, w.end)
        return self._partitions[w.index]

    def _cells(self, windows: list[Window]) -> list[tuple[int, int, str]]:
        return [(i, w.index, p) for i, (w, p) in enumerate((w, p) for w in windows for p in self._parts(w))]

    def _chunks(self, windows: list[Window]) -> Iterator[list[Window]]:
        """Consecutive windows whose cells give every core about ``CELLS_PER_CORE`` cells."""
        want = max(MIN_CELLS_PER_JOB, CELLS_PER_CORE * max(1, int(self.spark.sparkContext.defaultParallelism)))
        chunk: list[Window] = []
        cells = 0
        for w in windows:
            chunk.append(w)
            cells += len(self._parts(w))
            if cells >= want:
                yield chunk
                chunk, cells = [], 0
        if chunk:
            yield chunk

    def _job(self, job: Job, windows: list[Window]) -> dict[int, list[CellResult]]:
        """One Spark job over the cells of ``windows``: window index → its results in partition order."""
        out: dict[int, list[CellResult]] = {}
        for idx, r in self._results(job, windows):
            out.setdefault(idx, []).append(r)
        return out

    def _results(self, job: Job, windows: list[Window]) -> Iterator[tuple[int, CellResult]]:
        """One Spark job over the cells of ``windows``: (window index, result) in cell order. Each result is
        unpickled when reached and its payload let go of, so a caller that folds results in (the fit pass)
        holds the job's compact pickled bytes plus one unpickled result, not every cell's frames at once."""
        cells = self._cells(windows)
        for w in windows:
            self._partitions.pop(w.index, None)  # listed again if a later pass needs them
        if not cells:
            return
        job.windows = {w.index: w for w in windows}
        t = time.perf_counter()
        rows = self._native_rows(job, windows, cells) if self.native else self._python_rows(job, cells)
        self.stats.seconds_reading += time.perf_counter() - t
        self.jobs += 1
        rows.sort(key=lambda r: int(r.cell))
        if [int(r.cell) for r in rows] != [c[0] for c in cells]:
            raise RuntimeError(f"Spark returned {len(rows)} results for {len(cells)} cells (a bug)")
        for i, (_, idx, _p) in enumerate(cells):
            payload, rows[i] = rows[i].payload, None
            r: CellResult = pickle.loads(payload)  # written by our tasks
            del payload
            self.stats.partitions_read += 1
            self.native_cells += r.native
            self.seconds_in_tasks += r.seconds
            yield idx, r

    @property
    def native(self) -> bool:
        """Whether the source is read with ``spark.read`` (``spark.reads``; spark_reads.py)."""
        if self._native is None:
            self._native = native_source(self.source, self.cfg.spark.reads)
        return self._native

    def _python_rows(self, job: Job, cells: list[tuple[int, int, str]]) -> list[Any]:
        """Each cell read by the source's own reader inside its task (one cell per Spark partition)."""
        rdd = self.spark.sparkContext.parallelize(cells, len(cells))
        return collect(self.spark.createDataFrame(rdd, INPUT_SCHEMA).mapInPandas(task(job), OUTPUT_SCHEMA),
                       f"{job.mode} pass")

    def _native_rows(self, job: Job, windows: list[Window], cells: list[tuple[int, int, str]]) -> list[Any]:
        """One ``spark.read`` of the chunk's time range, grouped by file; cells it found no row for are read
        by the Python reader (they read nothing but their file's unplaced rows, if any)."""
        from evalmon.monitor.executors.spark_reads import (
            FILE_COL,
            grouped_task,
            native_job,
            other_rows,
            parquet_frame,
        )
        from evalmon.monitor.sources.base import check_window

        other = other_rows(self.spark, self.source, job, windows, cells, self._python_rows)  # JSONL/CSV, tables
        if other is not None:
            return other
        lo, hi = check_window(windows[0].start, windows[-1].end)
        assert lo is not None and hi is not None
        try:
            frame, _ = parquet_frame(self.spark, self.source, lo, hi)
        except DataError as exc:
            if self.cfg.spark.reads == "native":
                raise
            self._log(f"spark.reads: auto: {exc.one_line()}; reading with the source's reader in the tasks")
            self._native = False
            return self._python_rows(job, cells)
        rows: list[Any] = []
        if frame is not None:
            native = native_job(self.spark, self.source, cells)
            native.ltz = tuple(c for c, kind in frame.dtypes if kind == "timestamp")
            rows = collect(frame.groupBy(FILE_COL).applyInPandas(grouped_task(job, native), OUTPUT_SCHEMA),
                           f"{job.mode} pass, spark.read.parquet")
        found = {int(r.cell) for r in rows}
        missing = [c for c in cells if c[0] not in found]
        return rows + (self._python_rows(job, missing) if missing else [])

    def _job_spec(self, mode: str, ctx: Context | None = None) -> Job:
        cfg, q = self.cfg, self.cfg.quality
        view: tuple[str, ...] = ()
        if ctx is not None:  # trace ids + 0/1 signal columns: the traces source's assessments
            from evalmon.monitor.contracts import TRACE_ID

            view = (TRACE_ID, *(c for c in ctx.spec.rates if "." in c))
        return Job(self.source, list(cfg.signals), self.ts_col, mode, spec=None if ctx is None else ctx.spec,
                   view_columns=view, basis_rows=self.basis_rows, seed=cfg.seed,
                   quality=q if q.enabled else None)  # quality: mergeable counts per cell (quality_counts.py)

    # ------------------------------------------------------------------ what the run shares

    def _fit_on_span(self, span: list[Window]) -> Context:
        """The summary spec fitted on a seeded bounded reservoir of the span's records (a ``fit`` job)."""
        res: Reservoir | None = None
        job = self._job_spec("fit")
        seen = 0
        for chunk in self._chunks(span):
            job.key_below = None if res is None else res.bound  # cells ship only rows that can still get in
            for _, r in self._results(job, chunk):  # one cell's reservoir unpickled at a time
                seen += r.rows
                if r.reservoir is None or not r.reservoir.seen:
                    continue
                self.fit_rows_shipped += 0 if r.reservoir.rows is None else len(r.reservoir.rows)
                if res is None:
                    res = r.reservoir
                else:
                    other = r.reservoir
                    if other.columns != res.columns:  # a cell without some signal column: align on the first
                        other = Reservoir(res.columns, other.size, other.seed, other.seen, other.rows)
                    res = res.merge(other)
        basis = res.frame() if res is not None else self._empty_view()
        if res is not None and not res.complete:
            self._log(f"summary spec fitted on a seeded sample of {len(basis)} of the span's {res.seen} records")
        self._log(f"fit pass on Spark: {seen} records of {len(span)} window(s), {self.fit_rows_shipped} of them "
                  "shipped to the driver")
        return fit(basis, self.cfg.drift, seed=self.cfg.seed, sample_rows=self.sample_rows)

    def _empty_view(self) -> pd.DataFrame:
        from evalmon.monitor.schema import empty_frame

        return empty_frame()

    # ------------------------------------------------------------------ the run

    def run(self, windows: list[Window], *, backfill: bool, first: bool) -> Iterator[WindowOutcome]:
        cfg = self.cfg
        previous = cfg.reference.kind == "previous" and cfg.drift.enabled
        prev_w = Window(windows[0].start - self.size, windows[0].start, windows[0].index - 1) if previous else None
        span = [prev_w, *windows] if prev_w is not None else list(windows)
        reference: pd.DataFrame | None = None
        if cfg.drift.enabled and not previous:
            with heartbeat(self._log, f"reference ({cfg.reference.kind}): reading, signals", announce=False):
                reference = self.reference()  # on the driver: held for the run anyway (reference.max_rows)
            self._log(f"reference ({cfg.reference.kind}): {len(reference)} records")
            ctx = fit(reference, cfg.drift, seed=cfg.seed, sample_rows=self.sample_rows)
        else:
            ctx = self._fit_on_span(span)
        params = run_params(cfg.name, cfg.config_hash(), window_size=cfg.window.size, window_delay=cfg.window.delay,
                            reference=cfg.reference, source_kind=str(getattr(cfg.source, "kind", "?")),
                            signal_names=[s.name for s in cfg.signals])
        params.update(self.signals.fingerprints())  # built on the driver for their options (models load lazily)
        params["executor"] = "spark"
        held: list[tuple[Window, Summary, pd.DataFrame, pd.DataFrame | None]] = []
        done = 0
        job = self._job_spec("summary", ctx)
        beats = ExitStack()
        beats.enter_context(heartbeat(self._log, "windows on Spark", announce=False))
        try:
            for chunk in self._chunks(span):
                by_window = self._job(job, chunk)
                for w in chunk:
                    parts = by_window.pop(w.index, [])
                    rows = sum(r.rows for r in parts)
                    self._hold(rows)
                    self.stats.records_read += rows
                    in_run = w is not prev_w
                    for r in parts:
                        self.ledger.add(r.partition, r.quarantined, r.times, in_run=in_run)
                    if in_run:
                        self._quarantine_parquet(w, [q for r in parts for q in r.quarantined])
                    summary = Summary.zero(ctx.spec)
                    for r in parts:
                        assert r.summary is not None
                        summary = summary.merge(r.summary)
                    if not in_run:
                        reference = summary.rows()
                        self._release(rows)
                        continue
                    self._merge_quality(w, parts)
                    ingested = [Ingested(r.partition, r.view) for r in parts if r.view is not None]
                    for p in ingested:
                        if self._template is None and len(p.records):
                            self._template = p.records.iloc[:0].copy()
                    if self._template is None:
                        self._template = self._empty_template(job)
                    records = self._window_records(ingested)
                    ref = reference
                    if previous:
                        reference = summary.rows()
                    self.processed += len(records)
                    if not self.processed:
                        held.append((w, summary, records, ref))
                    else:
                        for item in held:
                            yield self._finish_spark(item, ctx, params, backfill, done == 0, windows[-1])
                            done += 1
                        held = []
                        yield self._finish_spark((w, summary, records, ref), ctx, params, backfill, done == 0,
                                                 windows[-1])
                        done += 1
                    self._release(rows)
            if self.native:
                self._log(f"spark.read fed {self.native_cells} of {self.stats.partitions_read} (window, file) cells")
            self.check_not_all_quarantined(first=first)
            for item in held:
                yield self._finish_spark(item, ctx, params, backfill, done == 0, windows[-1])
                done += 1
        finally:
            beats.close()

    def _finish_spark(self, item: tuple[Window, Summary, pd.DataFrame, pd.DataFrame | None], ctx: Context,
                      params: dict[str, str], backfill: bool, first: bool, last_window: Window) -> WindowOutcome:
        w, summary, records, ref = item
        return self._finish(w, summary, records, ref, ctx=ctx, params=params, backfill=backfill, first=first,
                            last=w == last_window, quality_counts=self._quality.pop(w.index, None))

    def _merge_quality(self, w: Window, parts: list[CellResult]) -> None:
        """The window's quality counts: its cells' merged (a window without records: the columns of the
        records seen so far, or the canonical ones — what the local executor's empty window frame has)."""
        from evalmon.monitor.quality_counts import QualityCounts

        if not self.cfg.quality.enabled:
            return
        merged = QualityCounts()
        for r in parts:
            if r.quality is not None:
                merged = merged.merge(r.quality)
        if merged.rows and self._qcolumns is None:
            self._qcolumns = merged.columns
        if not merged.rows:
            merged.columns = self._qcolumns or frozenset(map(str, self._empty_view().columns))
        self._quality[w.index] = merged

    def _empty_template(self, job: Job) -> pd.DataFrame:
        from evalmon.monitor.executors.spark_tasks import view_of

        return view_of(self._empty_view(), job.view_columns, job.view_blank)

    def _quarantine_parquet(self, w: Window, records: list[Any]) -> None:
        """The window's quarantined records as ``quarantine_parquet/window=<key>/part-0.parquet``."""
        if not records:
            return
        import pandas as pd

        from evalmon.monitor.quarantine import reason_key

        d = self.cfg.run_dir / "quarantine_parquet" / f"window={w.key}"
        d.mkdir(parents=True, exist_ok=True)
        frame = pd.DataFrame({"source": [r.source for r in records], "location": [r.location for r in records],
                              "reason": [reason_key(r.reason) for r in records],
                              "detail": [str(r.reason) for r in records], "raw": [r.raw for r in records]})
        frame.to_parquet(d / "part-0.parquet", index=False)


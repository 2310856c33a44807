"""What runs inside a Spark task (``mapInPandas``): the monitor's pure stages on one (window, partition) cell.

A job's input is a DataFrame of cells (``cell`` index, window index, source partition name), one
cell per Spark partition. For each cell the task reads the partition's records of the window with the
source's own windowed read (``pipeline.ingest``: the same parsing, time placement, quarantine and arrival
order as the local executor), computes the signals (the signal models load once per Python worker process
and stay loaded while Spark reuses the worker) and returns one pickled ``CellResult``:

- ``summary`` pass: the cell's mergeable ``Summary``, its mergeable quality counts (``quality_counts.py``),
  its quarantined records with their times, and the narrow *view* of its records that the driver's trace
  assessments read (timestamp, arrival, trace ids, 0/1 signal columns) — never the prompts, responses or vectors;
- ``fit`` pass: a bounded seeded ``Reservoir`` of ``pipeline.fitting_view`` of its records (the run's basis
  for the summary spec when there is no fixed reference), without the rows keyed at or above the earlier
  jobs' reservoir bound (``Job.key_below``): they could not get into the driver's merge; no quarantined
  records (the summary pass ships those, once).

Nothing here writes files or talks to MLflow: results go back to the driver as bytes.
"""

from __future__ import annotations

import hashlib
import pickle
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from evalmon.monitor.contracts import ARRIVAL, TIMESTAMP
from evalmon.monitor.pipeline import Ingested, SignalRunner, fitting_view, ingest, signals, summarise, within
from evalmon.monitor.summary import Reservoir
from evalmon.monitor.windows import Window

if TYPE_CHECKING:
    import pandas as pd

    from evalmon.config.quality import QualityConfig
    from evalmon.config.signals import SignalConfig
    from evalmon.monitor.contracts import QuarantinedRecord, Source
    from evalmon.monitor.quality_counts import QualityCounts
    from evalmon.monitor.summary import Summary, SummarySpec

INPUT_SCHEMA = "cell long, idx long, part string"
OUTPUT_SCHEMA = "cell long, payload binary"


@dataclass
class Job:
    """What every task of one Spark job needs (pickled once into the task closure)."""

    source: Source
    signal_configs: list[SignalConfig]
    ts_col: str
    mode: str  # "summary" | "fit"
    windows: dict[int, Window] = field(default_factory=dict)  # window index → window
    spec: SummarySpec | None = None  # summary pass
    view_columns: tuple[str, ...] = ()  # summary pass: what the driver's window checks read
    view_blank: tuple[str, ...] = ()  # of those, the ones only checked for null: non-null text becomes ""
    basis_rows: int = 0  # fit pass
    key_below: int | None = None  # fit pass: the earlier jobs' reservoir bound (rows keyed above it can't get in)
    seed: int = 0
    quality: QualityConfig | None = None  # summary pass: the cell's mergeable quality counts


@dataclass
class CellResult:
    cell: int
    partition: str
    rows: int
    quarantined: list[QuarantinedRecord] = field(default_factory=list)
    times: list[Any] = field(default_factory=list)
    summary: Summary | None = None
    view: pd.DataFrame | None = None
    reservoir: Reservoir | None = None
    seconds: float = 0.0
    native: bool = False  # its rows came from spark.read (spark_reads.py), not the source's reader
    quality: QualityCounts | None = None


_RUNNERS: dict[str, SignalRunner] = {}  # per Python worker process: signals (and their models) built once


def _runner(configs: Sequence[SignalConfig]) -> SignalRunner:
    key = hashlib.sha1(pickle.dumps([c.model_dump(mode="json") for c in configs])).hexdigest()
    if key not in _RUNNERS:
        _RUNNERS[key] = SignalRunner(configs, None)  # no shared on-disk cache: workers run in parallel
    return _RUNNERS[key]


def view_of(records: pd.DataFrame, columns: Sequence[str], blank: Sequence[str] = ()) -> pd.DataFrame:
    """The narrow view of ``records`` the driver keeps: ``columns`` present; non-null text of ``blank``
    columns (checked only for nulls) as ``""``."""
    keep = list(dict.fromkeys(c for c in (TIMESTAMP, ARRIVAL, *columns) if c in records.columns))
    out = records[keep].copy()
    for col in keep:
        if col in blank and col not in (TIMESTAMP, ARRIVAL) and out[col].dtype == object:
            out[col] = out[col].map(lambda v: v if v is None or (isinstance(v, float) and v != v) else "")
    return out


def run_cell(job: Job, cell: int, window: Window, partition: str) -> CellResult:
    import time

    t = time.perf_counter()
    return cell_result(job, cell, ingest(job.source, partition, window, job.ts_col), t)


def native_cell(job: Job, cell: int, name: str, batch: Any, window: Window, t: float) -> CellResult:
    """A cell whose rows Spark read (``spark.reads: native``): the source's batch cut to the window, then
    ``cell_result``."""
    got = Ingested(name, within(batch.frame, job.ts_col, window.start, window.end), list(batch.quarantined),
                   batch.placed_times())
    res = cell_result(job, cell, got, t)
    res.native = True
    return res


def cell_result(job: Job, cell: int, got: Ingested, t: float) -> CellResult:
    """The stages after the read: signals, then the cell's summary (or its fit reservoir)."""
    import time

    partition = got.partition
    records = signals(got.records, _runner(job.signal_configs))
    fit = job.mode == "fit"  # a fit cell ships no quarantined records: the summary pass's cells feed the ledger
    out = CellResult(cell, partition, len(records), [] if fit else got.quarantined, [] if fit else got.times)
    if fit:
        frame = fitting_view(records)
        out.reservoir = Reservoir(tuple(frame.columns), job.basis_rows, job.seed).update(frame, job.key_below)
    else:
        assert job.spec is not None
        out.summary = summarise(records, job.spec)
        out.view = view_of(records, job.view_columns, job.view_blank)
        if job.quality is not None:
            from evalmon.monitor.quality_counts import quality_counts

            out.quality = quality_counts(records, job.quality)
    out.seconds = time.perf_counter() - t
    return out


def task(job: Job) -> Any:
    """The ``mapInPandas`` function of a job: cells in, one pickled ``CellResult`` per cell out."""

    def run(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        import pandas as pd

        for batch in batches:
            for row in batch.itertuples(index=False):
                res = run_cell(job, int(row.cell), job.windows[int(row.idx)], str(row.part))
                blob = pickle.dumps(res, protocol=pickle.HIGHEST_PROTOCOL)
                yield pd.DataFrame({"cell": [int(row.cell)], "payload": [blob]})

    return run

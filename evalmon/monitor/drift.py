"""Drift of one window against the reference, computed by evidently 0.7.23.

Tabular and text columns go through one ``Report([ValueDrift(column) …], include_tests=True)``:
evidently picks its default test per column type and size (numerical: K-S p-value when the reference
has ≤ 1000 rows, else normed Wasserstein; ≤ 5 distinct values: chi-square / Z-test, else
Jensen-Shannon; categorical likewise; text: its domain classifier — "percentile" text content drift
with a bootstrap when the reference has ≤ 1000 rows, "absolute" above). What ran is read back from the
snapshot dict (each metric's resolved ``method`` and ``threshold``; each test's PASS/FAIL status) and
recorded per column — nothing is guessed. ``drift.methods`` / ``drift.thresholds`` override a column's
test by evidently's stattest name (``psi``, ``ks``, ``wasserstein``, ``jensenshannon``, …).

Embedding columns (one vector per record, e.g. ``embedding.response``) use evidently's embedding drift
methods (default ``model``: a domain classifier on the vectors, with a bootstrap below 1000 reference
rows — what ``EmbeddingsDrift`` picks) called directly: ``EmbeddingsDrift`` spends ~99% of its time
on a TSNE for its plot, which the statistic does not need. Those results are in ``drift.json`` (not
the HTML). The share of drifted columns counts the ``ValueDrift`` columns, as evidently's own
``DriftedColumnsCount`` does.

Columns with no values on either side are skipped with the reason, and a window smaller than
``drift.min_rows`` skips drift altogether — never a crash, never a silent gap.

The HTML (``report:``): ``full`` is evidently's report (per-column plots, ~4 MB: its JS bundle and the
plot data), gzipped when the path ends in ``.gz``; ``summary`` is the dataset-level drift table of
evidently's DataDriftPreset (verdict, share, one row per column: test, threshold, score, drifted) rendered
from the results above as a static page of a few KB — no second evidently render; ``none`` writes nothing.
"""

from __future__ import annotations

import contextlib
import gzip
import html as _html
import math
import re
import time
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from evalmon.monitor.contracts import (
    ARRIVAL,
    CONTEXTS,
    INPUT_TOKENS,
    LATENCY_MS,
    MODEL,
    OUTPUT_TOKENS,
    PROMPT,
    REQUEST_ID,
    RESPONSE,
    SAMPLES,
    SESSION_ID,
    TIMESTAMP,
    TRACE_ID,
)

if TYPE_CHECKING:
    import pandas as pd

    from evalmon.config.monitor import DriftConfig

NOT_DRIFTED = (REQUEST_ID, TIMESTAMP, SESSION_ID, TRACE_ID, CONTEXTS, SAMPLES, ARRIVAL)
MAX_CATEGORIES = 50  # an object column with more distinct reference values is not auto-categorical
KINDS = ("numerical", "categorical", "text")


@dataclass(frozen=True)
class DriftPlan:
    """The columns drift is computed for, by type (fixed on the reference, shared by all windows)."""

    numerical: tuple[str, ...] = ()
    categorical: tuple[str, ...] = ()
    text: tuple[str, ...] = ()
    embeddings: tuple[str, ...] = ()

    def kind(self, column: str) -> str:
        for k in (*KINDS, "embeddings"):
            if column in getattr(self, k):
                return k
        raise KeyError(column)

    @property
    def tabular(self) -> tuple[str, ...]:
        return self.numerical + self.categorical + self.text


@dataclass
class ColumnDrift:
    column: str
    kind: str  # numerical | categorical | text | embeddings
    method: str | None = None  # evidently's name for the test that ran, e.g. "K-S p_value"
    threshold: float | None = None
    score: float | None = None  # p-value for tests named "… p_value", else a distance / ROC AUC
    detected: bool | None = None
    skipped: str | None = None  # why no test ran


@dataclass
class DriftResult:
    columns: list[ColumnDrift] = field(default_factory=list)
    n_reference: int = 0
    n_current: int = 0
    drift_share: float = 0.5  # dataset drift threshold (config)
    html_path: str | None = None
    skipped: str | None = None  # why drift was not computed for the whole window
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def tested(self) -> list[ColumnDrift]:
        return [c for c in self.columns if c.kind != "embeddings" and c.detected is not None]

    @property
    def n_drifted(self) -> int:
        return sum(bool(c.detected) for c in self.tested)

    @property
    def share(self) -> float:
        return self.n_drifted / len(self.tested) if self.tested else math.nan

    @property
    def dataset_drift(self) -> bool:
        return bool(self.tested) and self.share >= self.drift_share

    def methods(self) -> dict[str, str]:
        """Column → the test that ran (what goes to MLflow params)."""
        return {c.column: c.method for c in self.columns if c.method}

    def metrics(self) -> dict[str, float]:
        """``drift/share``, ``drift/n_drifted``, ``drift/n_tested``, ``drift/dataset_drift`` and per column
        ``drift/<col>`` (the score) + ``drift_detected/<col>`` (0/1)."""
        if self.skipped:
            return {}
        out: dict[str, float] = {"drift/share": self.share, "drift/n_drifted": float(self.n_drifted),
                                 "drift/n_tested": float(len(self.tested)),
                                 "drift/dataset_drift": float(self.dataset_drift)}
        for c in self.columns:
            if c.score is not None and c.detected is not None:
                out[f"drift/{c.column}"] = float(c.score)
                out[f"drift_detected/{c.column}"] = float(c.detected)
        return out

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.update(share=self.share, n_drifted=self.n_drifted, dataset_drift=self.dataset_drift)
        return d


# --------------------------------------------------------------------------- which columns


def first_value(s: pd.Series) -> Any:
    for v in s.head(200).tolist():
        if v is not None and not (isinstance(v, float) and math.isnan(v)):
            return v
    return None


def is_vector(v: Any) -> bool:
    return isinstance(v, np.ndarray | list | tuple) and len(v) > 1 and isinstance(
        v[0], float | int | np.floating | np.integer)


def plan_columns(reference: pd.DataFrame, cfg: DriftConfig) -> DriftPlan:
    """Explicit columns from the config, or ``auto``: numeric columns (usage, latency, signals),
    low-cardinality string columns (model, language, …), prompt/response as text when ``text_drift``,
    vector columns as embeddings when ``embedding_drift``; ids, timestamps and list columns never."""
    import pandas as pd

    if not isinstance(cfg.columns, str):
        c = cfg.columns
        return DriftPlan(tuple(c.numerical), tuple(c.categorical), tuple(c.text), tuple(c.embeddings))
    num: list[str] = []
    cat: list[str] = []
    emb: list[str] = []
    for col in reference.columns:
        if col in NOT_DRIFTED or col in (PROMPT, RESPONSE):
            continue
        s = reference[col]
        if pd.api.types.is_bool_dtype(s):
            cat.append(col)
        elif pd.api.types.is_numeric_dtype(s):
            num.append(col)
        elif pd.api.types.is_datetime64_any_dtype(s):
            continue
        else:
            first = first_value(s)
            if is_vector(first):
                if cfg.embedding_drift:
                    emb.append(col)
            elif isinstance(first, str | bool) and s.astype("string").nunique() <= MAX_CATEGORIES:
                cat.append(col)
    text = [c for c in (PROMPT, RESPONSE) if cfg.text_drift and c in reference.columns]
    first = [c for c in (LATENCY_MS, INPUT_TOKENS, OUTPUT_TOKENS) if c in num]
    num = first + [c for c in num if c not in first]
    if MODEL in cat:
        cat = [MODEL] + [c for c in cat if c != MODEL]
    return DriftPlan(tuple(num), tuple(cat), tuple(text), tuple(emb))


# --------------------------------------------------------------------------- evidently


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """evidently/sklearn/scipy warn per bootstrap round on tiny or one-class inputs: keep the log readable."""
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        yield


def _prepare(frame: pd.DataFrame, plan: DriftPlan, columns: Sequence[str]) -> pd.DataFrame:
    import pandas as pd

    out = {}
    for c in columns:
        s = frame[c] if c in frame.columns else pd.Series([None] * len(frame), index=frame.index)
        if c in plan.numerical:
            out[c] = pd.to_numeric(s, errors="coerce").astype(float)
        else:  # categorical / text as plain str (None stays missing)
            out[c] = s.astype("string").astype(object).where(s.notna(), None)
    return pd.DataFrame(out, index=frame.index)


def _status(test: dict[str, Any]) -> str:
    st = test.get("status")
    return str(getattr(st, "value", st)).upper()


@contextlib.contextmanager
def _without_widgets(skip: bool) -> Iterator[None]:
    """evidently 0.7 renders each ``ValueDrift``'s plotly widgets inside its calculation, HTML wanted or not:
    78 % of a report's time on a 4k-row window (measured: 4.2 of 5.3 s per window, 18 columns). With no HTML
    to write the widgets are replaced by an empty list for the duration of the report (the drift scores,
    methods, thresholds and tests are computed exactly as before; only the rendering is skipped)."""
    if not skip:
        yield
        return
    from evidently.metrics.column_statistics import ValueDriftCalculation

    render = ValueDriftCalculation.__dict__["_render"]
    ValueDriftCalculation._render = lambda self, *_a, **_k: []  # type: ignore[method-assign]
    try:
        yield
    finally:
        ValueDriftCalculation._render = render  # type: ignore[method-assign]


def _run_report(cur: pd.DataFrame, ref: pd.DataFrame, plan: DriftPlan, columns: Sequence[str],
                cfg: DriftConfig, *, widgets: bool = True) -> tuple[Any, dict[str, ColumnDrift]]:
    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import ValueDrift

    dd = DataDefinition(numerical_columns=[c for c in columns if c in plan.numerical],
                        categorical_columns=[c for c in columns if c in plan.categorical],
                        text_columns=[c for c in columns if c in plan.text])
    metrics = [ValueDrift(column=c, method=cfg.methods.get(c), threshold=cfg.thresholds.get(c)) for c in columns]
    with quiet(), _without_widgets(not widgets):
        snap = Report(metrics, include_tests=True).run(
            current_data=Dataset.from_pandas(cur[list(columns)], data_definition=dd),
            reference_data=Dataset.from_pandas(ref[list(columns)], data_definition=dd))
        data = snap.dict()
    out: dict[str, ColumnDrift] = {}
    for m in data.get("metrics", []):
        conf = m.get("config") or {}
        col = conf.get("column")
        if col is None or not str(conf.get("type", "")).endswith("ValueDrift"):
            continue
        value = m.get("value")
        score = float(value) if isinstance(value, int | float) else None
        out[col] = ColumnDrift(col, plan.kind(col), method=_display(conf.get("method"), plan.kind(col)),
                               threshold=_num(conf.get("threshold")),
                               score=None if score is None or math.isnan(score) else score)
    for t in data.get("tests", []):
        col = ((t.get("metric_config") or {}).get("params") or {}).get("column")
        if col in out and out[col].score is not None:
            out[col].detected = _status(t) == "FAIL"
    for c in out.values():
        if c.score is None:
            c.skipped = "evidently returned no score (too few distinct values for its test)"
    return snap, out


def _display(method: Any, kind: str) -> str | None:
    """evidently's display name for a stattest given by its registry name (``psi`` → ``PSI``); the
    snapshot already holds display names for the tests it picked itself."""
    if not isinstance(method, str):
        return None
    from evidently.legacy.calculations.stattests.registry import get_registered_stattest
    from evidently.legacy.core import ColumnType

    try:
        ctype = {"numerical": ColumnType.Numerical, "categorical": ColumnType.Categorical}.get(kind, ColumnType.Text)
        return get_registered_stattest(method, ctype).display_name
    except Exception:  # already a display name, or not registered under that name
        return method


def _num(v: Any) -> float | None:
    return float(v) if isinstance(v, int | float) else None


def _tabular(current: pd.DataFrame, reference: pd.DataFrame, plan: DriftPlan, cfg: DriftConfig,
             result: DriftResult, html_path: Path | None) -> None:
    cols = [c for c in plan.tabular]
    cur, ref = _prepare(current, plan, cols), _prepare(reference, plan, cols)
    runnable = []
    for c in cols:
        why = ("no values in the reference" if ref[c].notna().sum() == 0
               else "no values in this window" if cur[c].notna().sum() == 0 else None)
        if why:
            result.columns.append(ColumnDrift(c, plan.kind(c), skipped=why))
        else:
            runnable.append(c)
    if not runnable:
        return
    widgets = html_path is not None
    try:
        snap, found = _run_report(cur, ref, plan, runnable, cfg, widgets=widgets)
    except Exception as exc:  # one bad column fails evidently's whole report: isolate it
        result.errors.append(f"report over {len(runnable)} columns failed ({_reason(exc)}); retried per column")
        good, found = [], {}
        for c in runnable:
            try:
                found.update(_run_report(cur, ref, plan, [c], cfg, widgets=widgets)[1])
                good.append(c)
            except Exception as col_exc:
                found[c] = ColumnDrift(c, plan.kind(c), skipped=f"evidently failed: {_reason(col_exc)}")
        snap = None
        if good and html_path is not None:
            snap = _run_report(cur, ref, plan, good, cfg)[0]
    result.columns.extend(found[c] for c in runnable if c in found)
    if snap is not None and html_path is not None:
        html = safe_report_html(snap.get_html_str(as_iframe=False))
        if html is None:
            result.errors.append("drift.html not written: evidently's HTML layout is not the one evalmon "
                                 "makes safe (data embedded in a <script>)")
            return
        write_html(html_path, html)
        result.html_path = str(html_path)


def write_html(path: Path, html: str) -> None:
    """``path`` as UTF-8, gzipped (reproducibly: no timestamp in the header) when it ends in ``.gz``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = html.encode("utf-8")
    path.write_bytes(gzip.compress(data, compresslevel=6, mtime=0) if path.suffix == ".gz" else data)


_SUMMARY_CSS = ("body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}"
                "table{border-collapse:collapse}th,td{padding:.3em .8em;border-bottom:1px solid #ddd;"
                "text-align:left}th{background:#f3f3f3}.detected{color:#b00020;font-weight:600}")


def _fmt(v: float | None) -> str:
    return "" if v is None else f"{v:.4g}"


def summary_html(result: DriftResult, title: str = "Data drift") -> str:
    """The dataset-level drift table (what evidently's DataDriftPreset shows above its per-column plots) as a
    static page: no script, every value escaped."""
    import pandas as pd

    rows = [{"column": c.column, "type": c.kind, "test": c.method or "", "threshold": _fmt(c.threshold),
             "score": _fmt(c.score),
             "drift": "" if c.detected is None else "DETECTED" if c.detected else "not detected",
             "note": c.skipped or ""} for c in result.columns]
    table = pd.DataFrame(rows, columns=["column", "type", "test", "threshold", "score", "drift", "note"]
                         ).to_html(index=False, escape=True, border=0, classes="drift-table")
    table = table.replace("<td>DETECTED</td>", '<td class="detected">DETECTED</td>')
    n = len(result.tested)
    verdict = "DETECTED" if result.dataset_drift else "NOT detected"
    share = f"{result.share:.0%}" if n else "n/a"
    notes = "".join(f"<li>{_html.escape(e)}</li>" for e in result.errors)
    return (f'<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>{_html.escape(title)}</title>'
            f"<style>{_SUMMARY_CSS}</style></head><body>\n<h1>{_html.escape(title)}</h1>\n"
            f'<p id="dataset-drift">Dataset drift is <b>{verdict}</b>: {result.n_drifted} of {n} columns '
            f"drifted ({share}; dataset drift at &ge; {result.drift_share:g}). Current window "
            f"{result.n_current} rows, reference {result.n_reference} rows.</p>\n{table}\n"
            "<p>Embedding columns are not counted in the share (as evidently's DriftedColumnsCount). "
            "Per-column details: drift.json; per-column plots: <code>report: full</code>.</p>"
            f"{f'<ul>{notes}</ul>' if notes else ''}\n</body></html>\n")


# evidently 0.7's standalone HTML embeds the report data as raw ``json.dumps`` in a <script> block
# (evidently/legacy/utils/dashboard.py ``file_html_template``): a traffic value such as ``</script><img
# src=x onerror=…>`` closes the script and runs in the browser. json.dumps never writes a raw newline,
# so the two data lines are found exactly; the JSON is re-emitted with ``<``, ``>``, ``&`` and U+2028/9
# as ``\uXXXX`` escapes (the same value for JavaScript, nothing the HTML parser acts on).
_DATA_BLOCK = re.compile(r"<script>\n    var (metric_[0-9a-f]+) = (.*);\n"
                         r"    var additional_graphs_\1 = (.*);\n</script>")
_SCRIPT_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}


def script_safe_json(js: str) -> str:
    """JSON text made safe inside an HTML <script> element (``</script>``, ``<!--`` cannot occur)."""
    return re.sub("[<>&\u2028\u2029]", lambda m: _SCRIPT_ESCAPES[m[0]], js)


def safe_report_html(html: str) -> str | None:
    """evidently's standalone report with its embedded data escaped; ``None`` when the layout is not the
    expected one (then nothing is written rather than an unsafe file)."""
    blocks = list(_DATA_BLOCK.finditer(html))
    if len(blocks) != 1:
        return None
    m = blocks[0]
    safe = (f"<script>\n    var {m[1]} = {script_safe_json(m[2])};\n"
            f"    var additional_graphs_{m[1]} = {script_safe_json(m[3])};\n</script>")
    return html[:m.start()] + safe + html[m.end():]


def _vectors(frame: pd.DataFrame, col: str) -> np.ndarray:
    rows = [np.asarray(v, dtype=float) for v in frame[col].tolist() if is_vector(v)] if col in frame else []
    if not rows:
        return np.empty((0, 0))
    dim = max(len(r) for r in rows)
    return np.vstack([r for r in rows if len(r) == dim])


def embedding_method(name: str | None, n_reference: int) -> Any:
    """evidently's embedding drift method by name; ``None`` = what ``EmbeddingsDrift`` defaults to."""
    from evidently.metrics.embeddings import (
        DistanceDriftMethod,
        MMDDriftMethod,
        ModelDriftMethod,
        RatioDriftMethod,
    )

    if name is None or name == "model":
        return ModelDriftMethod(bootstrap=n_reference < 1000)
    return {"distance": DistanceDriftMethod, "ratio": RatioDriftMethod, "mmd": MMDDriftMethod}[name]()


def _embeddings(current: pd.DataFrame, reference: pd.DataFrame, plan: DriftPlan, cfg: DriftConfig,
                result: DriftResult) -> None:
    import pandas as pd

    for col in plan.embeddings:
        cur, ref = _vectors(current, col), _vectors(reference, col)
        if cur.shape[0] < 2 or ref.shape[0] < 2 or cur.shape[1] != ref.shape[1]:
            why = f"need vectors on both sides (window {cur.shape[0]}, reference {ref.shape[0]})"
            result.columns.append(ColumnDrift(col, "embeddings", skipped=why))
            continue
        method = embedding_method(cfg.embedding_method, ref.shape[0])
        names = [f"{col}.{i}" for i in range(cur.shape[1])]
        try:
            with quiet():
                score, detected, name = method(pd.DataFrame(cur, columns=names), pd.DataFrame(ref, columns=names))
        except Exception as exc:
            result.columns.append(ColumnDrift(col, "embeddings", skipped=f"evidently failed: {_reason(exc)}"))
            continue
        bootstrap = getattr(method, "bootstrap", None)
        label = f"{name} (bootstrap)" if bootstrap else name
        result.columns.append(ColumnDrift(col, "embeddings", method=f"embeddings: {label}",
                                          threshold=_num(getattr(method, "threshold", None)),
                                          score=float(score), detected=bool(detected)))


def _reason(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return f"{type(exc).__name__}: {text[:200]}"


def compute_drift(current: pd.DataFrame, reference: pd.DataFrame, plan: DriftPlan, cfg: DriftConfig, *,
                  html_path: Path | None = None, report: str = "full") -> DriftResult:
    """Drift of ``current`` vs ``reference`` for the plan's columns; the ``report`` HTML (``full``: evidently's,
    ``summary``: the drift table, ``none``) to ``html_path`` (gzipped when it ends in ``.gz``)."""
    if not cfg.html or report == "none":
        html_path = None
    t0 = time.perf_counter()
    result = DriftResult(n_reference=len(reference), n_current=len(current), drift_share=cfg.drift_share)
    if len(current) < cfg.min_rows:
        result.skipped = f"window has {len(current)} rows (< drift.min_rows = {cfg.min_rows})"
    elif len(reference) < cfg.min_rows:
        result.skipped = f"reference has {len(reference)} rows (< drift.min_rows = {cfg.min_rows})"
    else:
        _tabular(current, reference, plan, cfg, result, html_path if report == "full" else None)
        _embeddings(current, reference, plan, cfg, result)
        if html_path is not None and report == "summary":
            write_html(html_path, summary_html(result, f"Data drift: {html_path.parent.name}"))
            result.html_path = str(html_path)
    result.seconds = time.perf_counter() - t0
    return result

"""Alert thresholds from the reference period: ``evalmon monitor calibrate MONITOR.yaml``.

Method (a bootstrap over records): the reference period's records — read and scored by the monitor's own
executor, signals and cache — are resampled into ``draws`` windows of the live window size (records per
window ~ Poisson(reference records per window), rows drawn with replacement, i.e. records are treated as
exchangeable within the reference: time-of-day seasonality is *not* kept). Each rule's window statistic is
computed as the monitor computes it (``calibrate_stats``: rates and means over the scored records, shares over
all records, p50/p90/p99 from the reference-fitted histogram of ``summary.Summary``), and the threshold is the quantile
that leaves a share ``false_alarm_rate`` of the resampled windows on the alerting side (``>``: the upper
tail; ``<``: the lower one). The same windows serve every rule, so the share of windows where *any* rule
fires (the monitor's false-alarm rate) is reported too.

The smallest event a threshold catches is found by injection into fresh resampled windows: for a rate or a
share (``rate/``, ``share/``, ``null_rate/``, ``coverage/``) a share *s* of a window's records is replaced
by records on the alerting side (flagged, that category, unscored); for a location statistic (``mean/``,
``pNN/``, ``max/``, ``std/``) every record's value is multiplied by a factor; for ``records`` the traffic
rate is. The smallest *s* (or factor) on a fixed grid whose windows alert with probability ≥ ``power``
(0.9) is reported ("≥ 3% of a window's records flagged").

``drift/<embedding col>`` under ``drift.embedding_method: distance`` is computed as the monitor computes it:
the Euclidean distance between the mean of a window's vectors and the mean of the reference's vectors
(evidently's ``DistanceDriftMethod``), with the embedding signal's sample on both sides — the reference's
vectors are the ones the monitor holds (the signal's sample of the reference), and a window's are
``EmbeddingSignal.sample_size(n)`` records drawn (with replacement) from the reference records that sample
left out, embedded for calibration (a window the monitor sees is not part of its reference either). When the
signal embedded every reference record, a resampled window is held out of the reference it is compared with.

Cannot calibrate (the rule keeps its value, and the report says why): a metric not computed per record
(``drift/…`` except the embedding centroid distance of ``drift.embedding_method: distance``,
``drift_detected/…``, ``quality/…``), a column the reference does not have or never scored (empty), a
statistic that is the same in every resampled window (constant), and ``==`` / ``!=`` rules.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from evalmon.monitor.alerts import OPS
from evalmon.monitor.calibrate_stats import (  # re-exported: the statistics live there
    WindowStat,
    centroid_distance,
    distance_stat,
    vector_rows,
    window_stat,
)
from evalmon.monitor.summary import QUANTILES

if TYPE_CHECKING:
    import pandas as pd

    from evalmon.config.alerts import AlertRule
    from evalmon.config.monitor import MonitorConfig

METHOD = "bootstrap over records (window size ~ Poisson(reference records per window), rows with replacement)"
SHARES = (0.001, 0.002, 0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0)
FACTORS = (1.02, 1.05, 1.1, 1.15, 1.2, 1.25, 1.3, 1.4, 1.5, 1.6, 1.75, 2.0, 2.5, 3.0, 5.0, 10.0)
POWER = 0.9  # an event is "caught" when this share of its windows alert
POWER_DRAWS = 400  # resampled windows per injected event size
SHARE_STATS = ("rate", "share", "null_rate", "coverage")
LOCATION_STATS = ("mean", "std", "max", *(f"p{round(q * 100)}" for q in QUANTILES))


@dataclass
class RuleCalibration:
    rule: str  # the rule's key (its name, else "<metric> <op>")
    metric: str
    op: str
    old_value: float | None
    value: float | None = None  # the calibrated threshold (None: cannot calibrate)
    status: str = "calibrated"  # or "cannot calibrate"
    reason: str = ""
    false_alarm: float = math.nan  # share of the resampled windows where the rule fires at `value`
    reference_stat: str = ""  # the statistic over the resampled windows (mean, sd, range)
    smallest_event: str = ""

    def line(self) -> str:
        if self.status != "calibrated":
            return f"{self.rule}: cannot calibrate: {self.reason} (keeps {_fmt(self.old_value)})"
        return (f"{self.rule}: {self.metric} {self.op} {_fmt(self.value)} (was {_fmt(self.old_value)}; fires on "
                f"{self.false_alarm:.2%} of resampled reference windows; {self.reference_stat}); catches "
                f"{self.smallest_event}")


@dataclass
class Calibration:
    monitor: str
    false_alarm_rate: float
    draws: int
    reference_records: int
    window_records: float  # mean records per window in the reference
    method: str = METHOD
    rules: list[RuleCalibration] = field(default_factory=list)
    any_rule_false_alarm: float = math.nan  # share of resampled windows where any calibrated rule fires
    notes: list[str] = field(default_factory=list)  # warnings about the reference (printed by the CLI)

    def thresholds(self) -> dict[str, float]:
        return {r.rule: float(r.value) for r in self.rules if r.value is not None}

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _fmt(v: float | None) -> str:
    return "—" if v is None else f"{v:.6g}"


# --------------------------------------------------------------------------- thresholds


def threshold_for(sims: np.ndarray, op: str, alpha: float) -> float:
    """The threshold that leaves at most a share ``alpha`` of ``sims`` on the alerting side of ``op``."""
    upper = op in (">", ">=")
    thr = float(np.quantile(sims, 1 - alpha if upper else alpha, method="higher" if upper else "lower"))
    if np.mean(OPS[op](sims, thr)) > alpha:  # ">=" / "<=" at a tied quantile: step past the tie
        thr = float(np.nextafter(thr, math.inf if upper else -math.inf))
    return thr


def _outward(x: float, *, upper: bool, digits: int = 4) -> float:
    """``x`` to ``digits`` significant digits, rounded away from the alerting side (never more alarms)."""
    if x == 0 or not math.isfinite(x):
        return x
    scale = 10.0 ** (math.floor(math.log10(abs(x))) - digits + 1)
    return float(f"{(math.ceil(x / scale) if upper else math.floor(x / scale)) * scale:.{digits + 2}g}")


def _draw_sizes(rng: np.random.Generator, mean: float, n: int) -> np.ndarray:
    return np.maximum(rng.poisson(mean, n), 1)


def _inject(kind: str, x: np.ndarray, idx: np.ndarray, op: str, size: float, rng: np.random.Generator
            ) -> np.ndarray:
    v = x[idx].copy()
    upper = op in (">", ">=")
    if kind == "share":
        k = round(size * len(v))
        if k:
            v[rng.choice(len(v), k, replace=False)] = 1.0 if upper else 0.0
    else:
        v = v * (size if upper else 1.0 / size)
    return v


def _smallest_event(st: WindowStat, op: str, thr: float, mean_n: float, rng: np.random.Generator) -> str:
    upper = op in (">", ">=")
    cmp = OPS[op]
    if st.kind == "records":
        for f in FACTORS:
            rate = mean_n * (f if upper else 1 / f)
            hits = np.mean([cmp(float(n), thr) for n in _draw_sizes(rng, rate, POWER_DRAWS)])
            if hits >= POWER:
                return f"traffic {'×' if upper else '÷'}{f:g} ({rate:.0f} records per window) in {hits:.0%} of windows"
        return f"no traffic change up to ×{FACTORS[-1]:g}"
    if st.kind == "distance":
        return "a topic shift (not estimated by injection)"
    grid = SHARES if st.kind == "share" else FACTORS
    for size in grid:
        hits = 0
        for n in _draw_sizes(rng, mean_n, POWER_DRAWS):
            idx = rng.integers(0, len(st.x), n)
            s = st.fn(_inject(st.kind, st.x, idx, op, size, rng))
            hits += bool(np.isfinite(s) and cmp(s, thr))
        if hits / POWER_DRAWS >= POWER:
            if st.kind == "share":
                return (f"{st.label} in ≥ {size:.1%} of a window's records (≈ {size * mean_n:.0f} of "
                        f"{mean_n:.0f}) — {hits / POWER_DRAWS:.0%} of such windows alert")
            return (f"a ×{size if upper else 1 / size:.3g} shift of {st.label} — {hits / POWER_DRAWS:.0%} of such "
                    "windows alert")
    return f"no injected event up to {grid[-1]:g} ({'share' if st.kind == 'share' else 'factor'})"


def calibrate_frame(reference: pd.DataFrame, rules: Sequence[AlertRule], *, window_records: float,
                    false_alarm_rate: float = 0.001, draws: int | None = None, seed: int = 0,
                    distance_columns: Sequence[str] = (), populations: Mapping[str, np.ndarray] | None = None,
                    sample_size: Callable[[int], int] | None = None) -> tuple[list[RuleCalibration], float]:
    """Thresholds for ``rules`` from ``reference`` (records with signal columns); see the module docstring.
    ``distance_columns``: embedding columns whose ``drift/<col>`` is the centroid distance; ``populations``:
    per such column, vectors of the reference records its embedding sample left out, ``sample_size``: records
    of an n-record window the embedding signal embeds (``distance_stat``). Returns the per-rule results and
    the share of resampled windows where any calibrated rule fires."""
    if not 0 < false_alarm_rate < 1:
        raise ValueError("false_alarm_rate must be in (0, 1)")
    draws = draws or max(2000, math.ceil(20 / false_alarm_rate))
    rng = np.random.default_rng(seed)
    results: list[RuleCalibration] = []
    stats: dict[int, WindowStat] = {}
    for i, rule in enumerate(rules):
        res = RuleCalibration(rule.key, rule.metric, rule.op, rule.value)
        results.append(res)
        col = rule.metric.removeprefix("drift/")
        st = (distance_stat(reference, col, population=(populations or {}).get(col), sample_size=sample_size)
              if rule.metric.startswith("drift/") and col in distance_columns
              else window_stat(reference, rule.metric))
        if rule.op in ("==", "!="):
            st = f"an `{rule.op}` rule has no tail to calibrate"
        elif not len(reference):
            st = "empty: the reference period has no records"
        if isinstance(st, str):
            res.status, res.reason = "cannot calibrate", st
        else:
            stats[i] = st
    n_ref = len(reference)
    sims = {i: np.empty(draws) for i in stats}
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        for d, n in enumerate(_draw_sizes(rng, window_records, draws) if stats else ()):
            idx = rng.integers(0, n_ref, n)
            for i, st in stats.items():
                if st.draw is not None:
                    sims[i][d] = st.draw(int(n), rng)
                else:
                    sims[i][d] = st.fn(st.x[idx])
    fires = np.zeros(draws, dtype=bool)
    for i, st in stats.items():
        res, s = results[i], sims[i]
        finite = s[np.isfinite(s)]
        if not finite.size:
            res.status, res.reason = "cannot calibrate", "empty: the statistic is NaN in every resampled window"
            continue
        if float(np.ptp(finite)) == 0.0:
            res.status = "cannot calibrate"
            res.reason = f"constant: every resampled reference window gives {finite[0]:.6g}"
            continue
        rule_op = rules[i].op
        thr = threshold_for(finite, rule_op, false_alarm_rate)
        res.value = _outward(thr, upper=rule_op in (">", ">="))
        hit = np.isfinite(s) & OPS[rule_op](s, res.value)
        fires |= hit
        res.false_alarm = float(hit.mean())
        nan_share = 1 - finite.size / draws
        res.reference_stat = (f"resampled windows: mean {finite.mean():.4g}, sd {finite.std(ddof=1):.3g}"
                              + (f", NaN in {nan_share:.1%}" if nan_share else ""))
        res.smallest_event = _smallest_event(st, rule_op, res.value, window_records, rng)
    any_rate = float(fires.mean()) if stats else math.nan
    return results, any_rate


# --------------------------------------------------------------------------- the monitor


def reference_frame(cfg: MonitorConfig, log_fn: Callable[[str], None] | None = None, *,
                    reference_rows: int | None = None, notes: list[str] | None = None) -> tuple[pd.DataFrame, float]:
    """The monitor's reference records with signals (its own executor, config and cache; a seeded sample of
    ``reference_rows`` of them when set) and the mean number of records per window of the live size in it
    (counted on all the reference's records, over the windows of a fixed period that hold traffic: see
    ``_covered_seconds``); what the reader should know is appended to ``notes``."""
    from evalmon.core.errors import ConfigError
    from evalmon.core.timewindows import parse_duration
    from evalmon.monitor.executors.local import LocalExecutor
    from evalmon.monitor.sources import build_source

    ref = cfg.reference
    if ref.kind == "previous":
        raise ConfigError(f"monitor '{cfg.name}': reference.kind is previous: there is no reference period to "
                          "calibrate on", hint="set reference: {kind: fixed, start: …, end: …} (or kind: file)")
    src = build_source(cfg.source, cfg.base_dir)
    if reference_rows is not None:  # signals on a seeded sample only; the window size comes from all records
        cfg = cfg.model_copy(update={"reference": ref.model_copy(update={"max_rows": reference_rows})})
    executor = LocalExecutor(cfg, src, sink=None, log_fn=log_fn)  # type: ignore[arg-type]  # reads only
    try:
        frame = executor.reference()
        left_out = executor.reference_quarantined
        if left_out and notes is not None:
            top, k = left_out.most_common(1)[0]
            notes.append(f"{sum(left_out.values())} reference record(s) quarantined and left out of the calibration "
                         f"({k} of them: {top}) — the thresholds describe the records that were read")
        total = len(frame)
        if cfg.reference.max_rows is not None and len(frame) >= cfg.reference.max_rows:
            total = _count_reference(executor, cfg)
    finally:
        executor.close()
    size = parse_duration(cfg.window.size).total_seconds()
    if ref.kind == "fixed":
        span = _covered_seconds(frame[cfg.window.timestamp], ref.start, ref.end, size, notes)  # type: ignore[arg-type]
    else:
        ts = frame[cfg.window.timestamp]
        span = max((ts.max() - ts.min()).total_seconds(), size)
    return frame, total * size / span


def _covered_seconds(ts: pd.Series, start: Any, end: Any, size: float, notes: list[str] | None) -> float:
    """Seconds of the fixed reference [start, end) from the window holding its first record to the one holding its
    last: a period named longer than the data (a week before the log begins) would otherwise count its empty
    windows and make every window look small — thresholds for 2 records per hour where the traffic has 180. A note
    says so whenever the records cover less than the period."""
    import pandas as pd

    nominal = (end - start).total_seconds()
    ts = ts.dropna()
    if not len(ts):
        return nominal
    step = pd.Timedelta(seconds=size)
    lo = max(start, start + ((ts.min() - start) // step) * step)
    hi = min(end, start + ((ts.max() - start) // step + 1) * step)
    covered = max((hi - lo).total_seconds(), size)
    if covered < nominal and notes is not None:
        notes.append(f"the reference period {start.isoformat()} → {end.isoformat()} holds records only from "
                     f"{ts.min().isoformat()} to {ts.max().isoformat()}: records per window are counted over the "
                     f"{covered / 3600:g} h of windows with records, not the period's {nominal / 3600:g} h — set "
                     "reference.start/end to the period the traffic covers")
    return min(covered, nominal)


def _count_reference(executor: Any, cfg: MonitorConfig) -> int:
    """Records of the reference before ``max_rows`` sampling (a read without signals)."""
    from evalmon.monitor.pipeline import within
    from evalmon.monitor.sources.base import partitions_of, read_partition

    ref = cfg.reference
    if ref.kind != "fixed":
        from evalmon.monitor.sources import build_source

        path = str(ref.path)
        kind = "csv" if path.endswith(".csv") else "parquet" if path.endswith(".parquet") else "jsonl"
        src = build_source({"kind": kind, "path": path, "columns": dict(cfg.source.columns)}, cfg.base_dir)
        return sum(len(read_partition(src, p, None, None).frame) for p in partitions_of(src, None, None))
    return sum(len(within(read_partition(executor.source, p, ref.start, ref.end).frame, cfg.window.timestamp,
                          ref.start, ref.end)) for p in partitions_of(executor.source, ref.start, ref.end))


def embedding_population(cfg: MonitorConfig, frame: pd.DataFrame, columns: Sequence[str],
                         log_fn: Callable[[str], None] | None = None
                         ) -> tuple[dict[str, np.ndarray], Callable[[int], int] | None]:
    """For ``distance_stat``: per embedding column, the vectors of the reference records the embedding signal's
    sample left out (embedded here, with the signal's own model and settings), and the signal's
    ``sample_size`` (how many of a window's records the monitor embeds)."""
    from evalmon.monitor.signals import build_signals
    from evalmon.monitor.signals.embeddings import EmbeddingSignal

    confs = [c for c in cfg.signals if c.enabled and c.name in ("embedding", "embeddings")]
    sig = next((s for s in build_signals(confs) if isinstance(s, EmbeddingSignal)), None) if confs else None
    if sig is None or not columns:
        return {}, None
    out: dict[str, np.ndarray] = {}
    for col in columns:
        field = col.removeprefix("embedding.")
        if field not in sig.fields or field not in frame.columns:
            continue
        has = np.array([isinstance(v, np.ndarray | list) and len(v) > 0 for v in frame[col].tolist()])
        text = frame[field].astype("string").fillna("")
        left = frame.loc[~has & (text.str.strip().str.len() > 0).to_numpy()]
        if not len(left):
            continue
        if log_fn is not None:
            log_fn(f"calibrate: embedding {len(left)} reference records outside the {col} sample (window draws)")
        full = EmbeddingSignal((field,), model=sig.model_ref, max_chars=sig.max_chars, sample_rate=1.0,
                               sample_max=len(left))
        out[col] = vector_rows(full.compute(left)[col].tolist())
    return out, sig.sample_size


def calibrate(cfg: MonitorConfig, *, false_alarm_rate: float = 0.001, draws: int | None = None,
              seed: int | None = None, reference_rows: int | None = None,
              log_fn: Callable[[str], None] | None = None) -> Calibration:
    """Thresholds for every rule of ``cfg`` from its reference period (see the module docstring);
    ``reference_rows``: compute signals on a seeded sample of that many reference records only."""
    notes: list[str] = []
    frame, per_window = reference_frame(cfg, log_fn, reference_rows=reference_rows, notes=notes)
    dist = [c for c in frame.columns if c.startswith("embedding.")] if cfg.drift.embedding_method == "distance" else []
    wanted = [c for c in dist if any(r.metric == f"drift/{c}" for r in cfg.alerts.rules)]
    populations, sample_size = embedding_population(cfg, frame, wanted, log_fn)
    rules, any_rate = calibrate_frame(frame, cfg.alerts.rules, window_records=per_window,
                                      false_alarm_rate=false_alarm_rate, draws=draws,
                                      seed=cfg.seed if seed is None else seed, distance_columns=dist,
                                      populations=populations, sample_size=sample_size)
    return Calibration(cfg.name, false_alarm_rate, draws or max(2000, math.ceil(20 / false_alarm_rate)),
                       len(frame), per_window, rules=rules, any_rule_false_alarm=any_rate, notes=notes)


def thresholds_target(cfg: MonitorConfig, out: Path | None = None) -> Path:
    """The thresholds file calibrate writes: ``out``, else the YAML's ``alerts.thresholds``, else
    ``<yaml stem>.thresholds.yaml`` next to the YAML."""
    from evalmon.core.errors import ConfigError

    if out is None and cfg.alerts.thresholds:
        out = Path(cfg.alerts.thresholds)
    if out is None:
        if cfg.source_path is None:
            raise ConfigError("calibrate: no thresholds file to write", hint="pass --out thresholds.yaml")
        out = cfg.source_path.with_name(f"{cfg.source_path.stem}.thresholds.yaml")
    return out


def save_calibration(cfg: MonitorConfig, result: Calibration, out: Path | None = None) -> list[str]:
    """Write the thresholds file (``out``, else the YAML's ``alerts.thresholds``, else
    ``<yaml stem>.thresholds.yaml`` next to it) and reference it from the YAML when it does not yet.
    Returns what to tell the user."""
    from datetime import UTC, datetime

    from evalmon.config.thresholds import reference_thresholds, write_thresholds

    yaml_path = cfg.source_path
    out = thresholds_target(cfg, out)
    ref = cfg.reference
    period = f"[{ref.start}, {ref.end})" if ref.kind == "fixed" else str(ref.path)
    header = (f"Alert thresholds of monitor '{cfg.name}', written by `evalmon monitor calibrate` "
              f"{datetime.now(UTC):%Y-%m-%dT%H:%MZ}.\n"
              f"Reference {period}: {result.reference_records} records, {result.window_records:.1f} per "
              f"{cfg.window.size} window.\n{result.method}; {result.draws} windows; target false-alarm rate "
              f"{result.false_alarm_rate:g} per rule per window ("
              + (f"any rule: {result.any_rule_false_alarm:.2%}" if math.isfinite(result.any_rule_false_alarm)
                 else "no rule calibrated") + ").\n"
              "Rules listed under `thresholds:` take these values instead of their `value:` in the YAML.")
    notes = {r.rule: {k: v for k, v in (("metric", r.metric), ("op", r.op), ("status", r.status),
                                          ("reason", r.reason), ("false_alarm", round(r.false_alarm, 6)
                                                                  if math.isfinite(r.false_alarm) else None),
                                          ("reference", r.reference_stat), ("smallest_event", r.smallest_event))
                      if v not in ("", None)} for r in result.rules}
    keep = {r.key: float(r.value) for r in cfg.alerts.rules if r.value is not None}
    values = {k: v for k, v in keep.items() if k not in result.thresholds()} if cfg.alerts.thresholds else {}
    path = write_thresholds(out, {**values, **result.thresholds()}, header=header, calibration=notes)
    lines = [f"thresholds: {len(result.thresholds())} of {len(result.rules)} rule(s) calibrated → {path}"]
    if yaml_path is not None and not cfg.alerts.thresholds:
        if reference_thresholds(yaml_path, path):
            lines.append(f"{yaml_path}: added `alerts.thresholds: {path.name}`")
        else:
            lines.append(f"add `thresholds: {path}` under `alerts:` in {yaml_path} to use them")
    return lines


__all__ = [
    "FACTORS", "METHOD", "POWER", "POWER_DRAWS", "SHARES", "Calibration", "RuleCalibration", "WindowStat",
    "calibrate", "calibrate_frame", "centroid_distance", "distance_stat", "embedding_population",
    "reference_frame", "save_calibration", "threshold_for", "window_stat",
]

"""Production traffic → a replay evaluation suite (``evalmon traffic to-suite``; an alert rule's ``on_alert``).

Selects logged records through the monitor's own source (``evalmon.monitor.sources``), window by window
(``core.timewindows``: the monitor's window size, epoch-aligned), and writes

* a JSONL dataset: one row per distinct prompt — ``id`` (= the logged ``request_id``, so per-document results
  of two replay runs pair), ``prompt``, ``messages`` (when the source keeps a ``messages`` column),
  ``production`` (the logged answer), ``reference`` (when the logs carry ground truth: a kept ``reference`` /
  ``ground_truth`` / ``expected`` column) and ``provenance`` (request id, time, window, the window's monitor
  MLflow run id, the alerts it fired, the signals that fired on the record, the duplicates it stands for);
* ``<dataset>.provenance.json``: the selection (monitor, config hash, windows with run ids, filters, seed);
* a suite YAML running the ``replay`` task on it (paths relative to the suite file).

Which records: those of the windows in ``[start, end)``; ``where`` is a pandas ``DataFrame.query`` over the
records with the extra columns ``window`` (key), ``alerts`` (rule labels that fired in the record's window,
``""`` when none; read from the previous monitor run's ``window.json`` under its output dir) and the signal
columns that were recomputed (backticks for dotted names: ``\\`pii.any\\` == 1``); ``signal`` keeps the
records where that 0/1 signal column is 1. Signals are RECOMPUTED per record with the monitor's own signal
configs and its signal cache (``<output_dir>/signal_cache.sqlite``: records the monitor already scored are not
scored again) — only those needed: the columns of the alert rules that fired in the selected windows, the
``signal`` column and dotted names in ``where``. Records are deduplicated by prompt (first by time), then
sampled stratified by (window, fired signals) — proportional allocation, largest remainders, at least one per
stratum while ``sample`` allows — with a fixed seed. Prompts, answers and references are PII-redacted with
the pii signal's presidio analyzer (the monitor's ``pii`` options) and presidio-anonymizer (``<ENTITY>``).
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from evalmon.config.monitor import MonitorConfig
from evalmon.core.errors import ConfigError, DataError
from evalmon.core.jsonout import read_json_object as _read_json
from evalmon.core.records import PROMPT, REQUEST_ID, RESPONSE, TIMESTAMP
from evalmon.core.timewindows import Window, as_utc, parse_duration, window_of, windows_between

if TYPE_CHECKING:
    import pandas as pd

REFERENCE_COLUMNS = ("reference", "ground_truth", "expected", "expected_response")
MESSAGES_COLUMN = "messages"
DEFAULT_MODEL = "../.evalmon/checkpoints/smollm2-135m-instruct"  # relative to a suite under suites/


@dataclass(frozen=True)
class Selection:
    """Which logged records become the replay set."""

    start: datetime
    end: datetime
    where: str | None = None
    signal: str | None = None
    sample: int = 200
    seed: int = 0


@dataclass
class WindowInfo:
    window: Window
    alerts: list[str] = field(default_factory=list)  # rule labels that fired (previous monitor run)
    columns: list[str] = field(default_factory=list)  # record columns of those rules' metrics
    run_id: str | None = None  # the window's MLflow run (monitor run), when it was logged


@dataclass
class ToSuiteResult:
    suite: Path
    dataset: Path
    provenance: Path
    selected: int  # rows written
    matched: int  # records that passed the filters (before dedupe)
    distinct: int  # distinct prompts among them
    windows: list[WindowInfo]
    strata: dict[str, int]
    redacted: int  # rows with at least one PII entity replaced
    signals: list[str]  # signal columns recomputed

    def line(self) -> str:
        runs = sum(1 for w in self.windows if w.run_id)
        return (f"replay: {self.selected} of {self.distinct} distinct prompts ({self.matched} records matched, "
                f"{len(self.windows)} window(s), {runs} with a monitor run id, {len(self.strata)} strata, "
                f"{self.redacted} PII-redacted) → {self.dataset}")


def window_range(cfg: MonitorConfig, *, window: str | None = None, start: str | None = None,
                 end: str | None = None) -> tuple[datetime, datetime]:
    """``--window T`` (the monitor window containing T) or ``--from A --to B`` → ``[start, end)``."""
    size = parse_duration(cfg.window.size)
    try:
        if window is not None:
            if start is not None or end is not None:
                raise ConfigError("to-suite: give --window or --from/--to, not both",
                                  hint="--window 2026-11-01T02:00Z, or --from … --to …")
            w = window_of(as_utc(window), size)
            return w.start, w.end
        if start is None or end is None:
            raise ConfigError("to-suite: which traffic? give --window TIME or both --from and --to",
                              hint="e.g. --window 2026-11-01T02:00Z (the monitor window containing it)")
        lo, hi = as_utc(start), as_utc(end)
    except ValueError as exc:
        raise ConfigError(f"to-suite: not an ISO time: {exc}", hint="write e.g. 2026-11-01T02:00Z") from None
    if hi <= lo:
        raise ConfigError(f"to-suite: --to {hi.isoformat()} is not after --from {lo.isoformat()}")
    return lo, hi


def window_infos(cfg: MonitorConfig, windows: Sequence[Window]) -> list[WindowInfo]:
    """Per window: the alerts and MLflow run id a previous monitor run left under its output dir."""
    from evalmon.monitor.alerts import metric_column

    out = []
    for w in windows:
        info = WindowInfo(w)
        folder = cfg.run_dir / "windows" / w.key
        rec = _read_json(folder / "window.json")
        fired = [a for a in rec.get("alerts", []) if a.get("status", "fired") == "fired"]
        info.alerts = sorted({str(a.get("rule", "")) for a in fired})
        info.columns = sorted({c for a in fired if (c := metric_column(str(a.get("metric", ""))))})
        info.run_id = _read_json(folder / "mlflow.json").get("run_id")
        out.append(info)
    return out


def _signal_configs(cfg: MonitorConfig, columns: set[str], what: str) -> list[Any]:
    """The monitor's configs of the signals that produce ``columns`` (``pii.any`` → the ``pii`` signal)."""
    by_name = {c.name: c for c in cfg.signals}
    wanted = sorted({c.split(".")[0] for c in columns})
    missing = [n for n in wanted if n not in by_name]
    if missing and what:
        raise ConfigError(f"to-suite: {what}: signal {missing[0]!r} is not among the monitor's signals",
                          hint=f"signals: {', '.join(by_name) or 'none'} (add it to the monitor's signals:)")
    return [by_name[n] for n in wanted if n in by_name]


def recompute_signals(cfg: MonitorConfig, frame: pd.DataFrame, configs: Sequence[Any]) -> pd.DataFrame:
    if not configs or frame.empty:
        return frame
    from evalmon.monitor.signals import SignalCache, build_signals, compute_signals

    cache = SignalCache(cfg.output_dir / "signal_cache.sqlite")
    try:
        return compute_signals(frame, build_signals(configs), cache)
    finally:
        cache.close()


def _query(frame: pd.DataFrame, where: str) -> pd.DataFrame:
    """``frame.query(where)``, with the expression checked to be a condition (True/False per record) first:
    pandas' ``query`` indexes by whatever the expression yields (``--where prompt`` raised a KeyError quoting
    every prompt)."""
    import pandas as pd

    try:
        mask = frame.eval(where, engine="python")
    except Exception as exc:  # pandas raises many types for a bad expression: one line, exit 2
        cols = ", ".join(c if c.isidentifier() else f"`{c}`" for c in frame.columns)
        raise ConfigError(f"to-suite: --where {where!r}: {type(exc).__name__}: {exc}".splitlines()[0],
                          hint=f"a pandas query over the records; columns: {cols}") from None
    if not (isinstance(mask, pd.Series) and pd.api.types.is_bool_dtype(mask) and mask.index.equals(frame.index)):
        raise ConfigError(f"to-suite: --where {where!r} is not a row filter (a condition true or false for each "
                          "record)", hint='e.g. alerts != "" or `pii.any` == 1')
    return frame[mask]


def allocate(sizes: Mapping[str, int], n: int) -> dict[str, int]:
    """Proportional allocation of ``n`` over strata (largest remainders), at least one per stratum while
    ``n`` allows; never more than a stratum holds."""
    total = sum(sizes.values())
    if n >= total:
        return dict(sizes)
    keys = sorted(sizes)
    floor = 1 if n >= len(keys) else 0
    quota = {k: max(floor, min(sizes[k], math.floor(n * sizes[k] / total))) for k in keys}
    rest = sorted(keys, key=lambda k: (-(n * sizes[k] / total - math.floor(n * sizes[k] / total)), k))
    while sum(quota.values()) < n:
        grew = False
        for k in rest:
            if sum(quota.values()) >= n:
                break
            if quota[k] < sizes[k]:
                quota[k] += 1
                grew = True
        if not grew:
            break
    while sum(quota.values()) > n:  # the floor of one per stratum overshot: trim the largest
        k = max(keys, key=lambda k: (quota[k], k))
        quota[k] -= 1
    return quota


def stratified_sample(frame: pd.DataFrame, strata: pd.Series, n: int, seed: int) -> pd.DataFrame:
    import numpy as np

    rng = np.random.default_rng(seed)
    sizes = {str(k): int(v) for k, v in strata.value_counts().items()}
    quota = allocate(sizes, n)
    keep: list[int] = []
    for key in sorted(quota):
        pos = np.flatnonzero((strata == key).to_numpy())
        keep += sorted(rng.choice(pos, size=quota[key], replace=False).tolist()) if quota[key] < len(pos) \
            else pos.tolist()
    return frame.iloc[sorted(keep)]


class Redactor:
    """PII → ``<ENTITY>`` with the pii signal's presidio analyzer and presidio-anonymizer's replace operator."""

    def __init__(self, pii_options: Mapping[str, Any] | None = None) -> None:
        from evalmon.monitor.signals.pii import PiiSignal

        opts = {k: v for k, v in dict(pii_options or {}).items()
                if k in ("entities", "nlp", "spacy_model", "score_threshold", "extra_patterns", "allow_download")}
        self.signal = PiiSignal(**opts)
        self._engine: Any = None

    def __call__(self, text: str) -> tuple[str, list[str]]:
        if not text or not text.strip():
            return text, []
        from evalmon.monitor.signals.pii import _dedupe

        sig = self.signal
        found = _dedupe(sig.analyzer.analyze(text[: sig.max_chars], language="en", entities=list(sig.entities),
                                             score_threshold=sig.score_threshold))
        if not found:
            return text, []
        if self._engine is None:
            from presidio_anonymizer import AnonymizerEngine

            self._engine = AnonymizerEngine()
        return self._engine.anonymize(text=text, analyzer_results=found).text, sorted(r.entity_type for r in found)


def _pii_options(cfg: MonitorConfig) -> dict[str, Any]:
    for c in cfg.signals:
        if c.name == "pii":
            return c.model_dump()
    return {"nlp": "auto"}


def _rel(path: Path, start: Path) -> str:
    return Path(os.path.relpath(path.resolve(), start.resolve())).as_posix()


def _fired(row: Mapping[str, Any], columns: Sequence[str]) -> list[str]:
    out = []
    for c in columns:
        v = row.get(c)
        try:
            if v is not None and float(v) > 0.5:
                out.append(c)
        except (TypeError, ValueError):
            continue
    return out


def select(cfg: MonitorConfig, sel: Selection, *, log_fn: Callable[[str], None] | None = None
           ) -> tuple[pd.DataFrame, list[WindowInfo], list[str], int]:
    """Records to replay (after filters, dedupe and the stratified sample), the windows read, the signal
    columns recomputed and how many records matched the filters."""
    import pandas as pd

    from evalmon.monitor.sources import build_source

    size = parse_duration(cfg.window.size)
    # the complete monitor windows inside [start, end): never a record from before --from (windows_between starts
    # at the window holding --from, which reached back to the hour's start)
    windows = [w for w in windows_between(sel.start, sel.end, size) if w.start >= sel.start]
    if windows and log_fn is not None and (windows[0].start, windows[-1].end) != (sel.start, sel.end):
        log_fn(f"to-suite: [{sel.start.isoformat()}, {sel.end.isoformat()}) is not on {cfg.window.size} window edges: "
               f"reading the complete windows inside it, [{windows[0].start.isoformat()}, "
               f"{windows[-1].end.isoformat()})")
    if not windows:
        raise ConfigError(f"to-suite: no complete {cfg.window.size} window in [{sel.start.isoformat()}, "
                          f"{sel.end.isoformat()})", hint="widen --from/--to, or use --window TIME")
    infos = window_infos(cfg, windows)
    src = build_source(cfg.source, cfg.base_dir)
    frames = []
    for info in infos:
        batch = src.read(info.window.start, info.window.end)
        f = batch.frame.copy()
        f["window"], f["alerts"] = info.window.key, "; ".join(info.alerts)
        f["monitor_run_id"] = info.run_id or ""
        frames.append(f)
    frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    if frame.empty:
        raise DataError(f"to-suite: the source has no record in [{sel.start.isoformat()}, {sel.end.isoformat()})",
                        hint="check the monitor's source: and the time range")
    needed = {c for i in infos for c in i.columns}
    if sel.signal:
        needed.add(sel.signal)
    where_cols = set(re.findall(r"`([A-Za-z_]+\.[A-Za-z0-9_.]+)`", sel.where or ""))
    asked = where_cols | ({sel.signal} if sel.signal else set())  # must be monitor signals; alert columns may not be
    configs = _signal_configs(cfg, asked, "--signal/--where")
    configs += [c for c in _signal_configs(cfg, needed, "") if c.name not in {x.name for x in configs}]
    if sel.signal and not any(sel.signal.split(".")[0] == c.name for c in configs):
        raise ConfigError(f"to-suite: --signal {sel.signal!r}: not a monitor signal column")
    scored = recompute_signals(cfg, frame, configs)
    produced = (set(scored.columns) - set(frame.columns)) & (needed | where_cols)  # strata: 0/1 signal columns
    signal_cols = sorted(c for c in produced if pd.to_numeric(scored[c], errors="coerce").dropna().isin([0, 1]).all())
    if sel.signal and sel.signal not in scored.columns:
        produced = [c for c in scored.columns if c.startswith(sel.signal.split(".")[0] + ".")]
        raise ConfigError(f"to-suite: --signal {sel.signal!r}: no such column",
                          hint=f"columns of that signal: {', '.join(produced)}")
    if sel.where:
        scored = _query(scored, sel.where)
    if sel.signal:
        scored = scored[pd.to_numeric(scored[sel.signal], errors="coerce").fillna(0) > 0.5]
    matched = len(scored)
    if not matched:
        return scored, infos, signal_cols, 0
    scored = scored.sort_values([TIMESTAMP], kind="stable")
    key = scored[PROMPT].astype(str).str.strip()
    dupes = scored.groupby(key, sort=False)[REQUEST_ID].apply(lambda s: [str(x) for x in s]).to_dict()
    first = scored[~key.duplicated()].copy()
    first["duplicates"] = [dupes[str(p).strip()][1:] for p in first[PROMPT]]
    first["fired"] = [_fired(r, signal_cols) for r in first.to_dict("records")]
    strata = first["window"] + "|" + first["fired"].map(lambda f: ",".join(f) or "-")
    first["stratum"] = strata
    picked = stratified_sample(first.reset_index(drop=True), strata.reset_index(drop=True), sel.sample, sel.seed)
    picked.attrs["distinct"] = len(first)
    if log_fn:
        log_fn(f"to-suite: {matched} record(s) matched, {len(first)} distinct prompts, {len(picked)} sampled")
    return picked, infos, signal_cols, matched


def _rows(picked: pd.DataFrame, infos: Sequence[WindowInfo], cfg: MonitorConfig,
          redact: Callable[[str], tuple[str, list[str]]]) -> tuple[list[dict[str, Any]], int]:
    by_key = {i.window.key: i for i in infos}
    ref_col = next((c for c in REFERENCE_COLUMNS if c in picked.columns), None)
    rows, redacted = [], 0
    for r in picked.to_dict("records"):
        entities: list[str] = []

        def clean(text: Any, _e: list[str] = entities) -> str:
            out, found = redact("" if text is None else str(text))
            _e.extend(found)
            return out

        info = by_key[r["window"]]
        row: dict[str, Any] = {"id": str(r[REQUEST_ID]), "prompt": clean(r[PROMPT]), "production": clean(r[RESPONSE])}
        msgs = r.get(MESSAGES_COLUMN)
        if isinstance(msgs, list) and msgs and all(isinstance(m, Mapping) for m in msgs):
            row["messages"] = [{"role": str(m.get("role", "user")), "content": clean(m.get("content"))} for m in msgs]
        if ref_col is not None and r.get(ref_col) is not None and str(r.get(ref_col)).strip():
            row["reference"] = clean(r[ref_col])
        row["provenance"] = {
            "request_id": str(r[REQUEST_ID]), "timestamp": as_utc(r[TIMESTAMP]).isoformat(),
            "model": None if r.get("model") is None else str(r.get("model")), "monitor": cfg.name,
            "window": info.window.key, "window_start": info.window.start.isoformat(),
            "monitor_run_id": info.run_id, "alerts": info.alerts, "signals_fired": list(r["fired"]),
            "stratum": r["stratum"], "duplicates": list(r["duplicates"]),
            "pii_redacted": sorted(set(entities)),
        }
        redacted += bool(entities)
        rows.append(row)
    return rows, redacted


def suite_yaml(name: str, suite: Path, dataset: Path, *, seed: int, has_reference: bool,
               model_path: str | None = None, judge: Mapping[str, Any] | None = None,
               output_dir: Path | None = None) -> dict[str, Any]:
    """The suite that replays ``dataset`` (paths relative to the suite file's folder)."""
    here = suite.parent
    scoring = ["signals"] + (["reference"] if has_reference else []) + (["pairwise"] if judge else [])
    options: dict[str, Any] = {"dataset": _rel(dataset, here), "scoring": scoring, "max_new_tokens": 256}
    if judge:
        options["judge"] = dict(judge)
    default_model = model_path or _rel(Path(DEFAULT_MODEL.removeprefix("../")), here)  # cwd-relative
    return {
        "name": name, "description": f"Replay of logged traffic selected by `evalmon traffic to-suite` ({dataset.name})",
        "seed": seed, "output_dir": _rel(output_dir or Path("reports"), here),
        "model": {"backend": "hf", "path": f"${{EVALMON_MODEL:-{default_model}}}", "dtype": "float32",
                  "chat_template_fallback": "plain"},
        "tasks": [{"name": "replay", "options": options}],
        "tracking": {"experiment": f"evalmon-{name}"},
    }


def to_suite(cfg: MonitorConfig, sel: Selection, out: Path, *, dataset: Path | None = None,
             model_path: str | None = None, judge: Mapping[str, Any] | None = None,
             log_fn: Callable[[str], None] | None = None) -> ToSuiteResult:
    """Select, redact and write the replay dataset, its provenance and the suite ``out``."""
    import yaml

    from evalmon.core.jsonout import to_json

    out = Path(out)
    if out.suffix not in (".yaml", ".yml"):
        raise ConfigError(f"to-suite: --out {out}: a suite file ends in .yaml", hint="e.g. suites/replay-x.yaml")
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", out.stem).strip("-.") or "replay"
    dataset = Path(dataset) if dataset is not None else Path("reports") / "replay" / f"{name}.jsonl"
    if sel.sample < 1:
        raise ConfigError(f"to-suite: --sample {sel.sample}: must be at least 1")
    if dataset.resolve() == out.resolve():
        raise ConfigError(f"to-suite: --dataset and --out are the same file ({out}): the suite would overwrite the "
                          "dataset", hint="give the dataset a .jsonl path (nothing was written)")
    for flag, path in (("--out", out), ("--dataset", dataset)):
        if path.is_dir():
            raise ConfigError(f"to-suite: {flag} {path} is a folder", hint="give a file path (nothing was written)")
    picked, infos, signal_cols, matched = select(cfg, sel, log_fn=log_fn)
    if not len(picked):
        raise DataError(f"to-suite: no record matched in [{sel.start.isoformat()}, {sel.end.isoformat()})"
                        + (f" with --where {sel.where!r}" if sel.where else "")
                        + (f" with --signal {sel.signal}" if sel.signal else ""),
                        hint="widen the range or relax the filter (nothing was written)")
    rows, redacted = _rows(picked, infos, cfg, Redactor(_pii_options(cfg)))
    strata = {str(k): int(v) for k, v in picked["stratum"].value_counts().sort_index().items()}
    for p in (out.parent, dataset.parent):
        p.mkdir(parents=True, exist_ok=True)
    dataset.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    prov_path = dataset.with_suffix(".provenance.json")
    prov = {"monitor": cfg.name, "monitor_config_hash": cfg.config_hash(), "source": cfg.source.model_dump(mode="json"),
            "from": sel.start.isoformat(), "to": sel.end.isoformat(), "where": sel.where, "signal": sel.signal,
            "sample": sel.sample, "seed": sel.seed, "matched": matched, "distinct": _distinct(picked, matched),
            "selected": len(rows), "strata": strata, "signals_recomputed": signal_cols,
            "windows": [{"key": i.window.key, "start": i.window.start.isoformat(), "end": i.window.end.isoformat(),
                         "alerts": i.alerts, "monitor_run_id": i.run_id} for i in infos]}
    prov_path.write_text(to_json(prov), encoding="utf-8")
    doc = suite_yaml(name, out, dataset, seed=sel.seed, has_reference=any("reference" in r for r in rows),
                     model_path=model_path, judge=judge)
    header = (f"# Replay suite written by `evalmon traffic to-suite` from monitor '{cfg.name}' "
              f"[{sel.start.isoformat()}, {sel.end.isoformat()}); provenance: {_rel(prov_path, out.parent)}\n")
    out.write_text(header + yaml.safe_dump(doc, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return ToSuiteResult(out, dataset, prov_path, len(rows), matched, _distinct(picked, matched), infos, strata,
                         redacted, signal_cols)


def _distinct(picked: pd.DataFrame, matched: int) -> int:
    return int(picked.attrs.get("distinct", len(picked))) if matched else 0


def run_on_alert(cfg: MonitorConfig, alerts: Sequence[Any], *, log_fn: Callable[[str], None] | None = None
                 ) -> list[ToSuiteResult]:
    """An alert rule's ``on_alert: {to_suite: …}``: one replay suite per (rule, alerting window) of this
    monitor run. A failure is reported (``log_fn``) and skipped: the monitor's windows and alerts stand."""
    from evalmon.core.errors import EvalmonError

    say = log_fn or (lambda m: None)
    rules = {r.label: r for r in cfg.alerts.rules}
    done: set[tuple[str, str]] = set()
    out: list[ToSuiteResult] = []
    for a in alerts:
        rule = rules.get(a.rule)
        action = rule.on_alert.to_suite if rule is not None and rule.on_alert is not None else None
        if action is None or a.status != "fired":
            continue
        start, end = as_utc(a.window_start), as_utc(a.window_end)
        key = window_of(start, parse_duration(cfg.window.size)).key
        suite = Path(action.suite.replace("{window}", key))
        if (str(suite), key) in done:
            continue
        done.add((str(suite), key))
        dataset = Path(action.dataset.replace("{window}", key)) if action.dataset else \
            cfg.run_dir / "replay" / f"{suite.stem}.jsonl"
        try:
            res = to_suite(cfg, Selection(start, end, where=action.where, signal=action.signal, sample=action.sample,
                                          seed=action.seed), suite, dataset=dataset)
        except EvalmonError as exc:
            say(f"warning: on_alert to_suite for rule '{a.rule}' window {key} failed: {exc.one_line()}")
            continue
        say(f"on_alert ({a.rule}): {res.line()}; suite {res.suite}")
        out.append(res)
    return out

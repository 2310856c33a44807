"""Injected traffic events vs monitor alerts: is each event caught in its own window, and how often do
clean windows alert?

    .venv/bin/python benchmarks/bench_event_detection.py [--seed 11] [--rate 120] [--hours 48]
        [--ref-hours 12] [--k 3] [--work DIR] [--tracking-uri sqlite:///DIR/mlflow.db] [--json out.json]

1. ``evalmon.traffic.synth.synthesize`` writes ``--hours`` of JSONL traffic (real text from
   ``../shared/benchmarks``, Poisson arrivals at ``--rate``/h, seeded) into ``--work`` (a temp dir by
   default). The first ``--ref-hours`` are the clean reference period. After it, the seven events
   (``EVENTS``, each at its generator defaults) each occupy exactly one hourly window, 4 h apart; every
   other window after the reference is clean (29 clean windows with the defaults). ``--seed A B C`` repeats
   the whole run per seed (shared signal cache) and adds how often each event was caught.
2. Alert policy, fixed from the reference period only (``policy``): signals are computed on the reference
   (the monitor executor's own reference read — the same code, config and cache), then every rule's threshold
   is set by ``evalmon.monitor.calibrate.calibrate_frame`` — what ``evalmon monitor calibrate`` runs — at a
   per-window false-alarm rate of ``tail(k)`` (k = 3 → 0.00135, the one-sided tail of 3 sd): the quantile
   of the rule's window statistic over 20,000 windows resampled from the reference (bootstrap over records,
   window size ~ Poisson(records per reference hour)), each statistic computed as the monitor computes it
   (p90 from its reference-fitted histogram). Rules: the hallucination flag rate (over RAG records), unsafe
   answer rate, unsafe request rate, PII rate, sensitive-information rate (``rate/pii.sensitive``: the
   ``pii_leak`` event's rule), p90 latency, mean response length, share of records from a
   model the reference never saw, and the distance of the window's mean prompt embedding to the reference's
   (evidently's ``distance`` method — ``drift.embedding_method: distance``; its windows are drawn from the
   reference records outside the embedding signal's sample, compared with the sample the monitor holds).
   A signal that is empty or constant in the reference cannot be calibrated: its rule is left out and
   printed. Nothing after the reference period is read to set a
   threshold.
3. ``run_monitor`` processes every window after the reference once (text, usage, refusal, PII with
   ``MONEY_AMOUNT``, safety, hallucination and embedding signals; evidently drift per column at its
   defaults, text drift, embedding drift; great-expectations; MLflow off unless ``--tracking-uri``) and
   evaluates the rules.
4. Contrast: evidently's own default tests on the same clean windows — share of windows with any drifted
   column (``drift/n_drifted`` > 0), with dataset drift (≥ 50 % of columns), and evidently's default
   embedding method (``model``: domain classifier, ROC AUC > 0.55) on prompt and response embeddings,
   i.e. ``drift_detected/embedding.prompt`` of monitors/traffic.yaml.

Prints the thresholds, the per-event table (injected window, windows alerted while the event was active,
detected yes/no, rules that fired), the false-alarm rate over the clean windows with a Wilson 95 %
interval, false alarms per rule, the evidently contrast and the runtime of each step.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from evalmon.config.monitor import load_monitor_text  # noqa: E402
from evalmon.monitor.executors.local import LocalExecutor  # noqa: E402
from evalmon.monitor.pipeline import SignalRunner, within  # noqa: E402
from evalmon.monitor.runner import run_monitor  # noqa: E402
from evalmon.monitor.signals.pii import DEFAULT_ENTITIES  # noqa: E402
from evalmon.monitor.sources import build_source  # noqa: E402
from evalmon.traffic.events import iso, parse_time  # noqa: E402
from evalmon.traffic.synth import SynthConfig, synthesize  # noqa: E402

START = "2026-11-01T00:00:00Z"
# (event, hours after the end of the reference period); each lasts exactly one window, generator defaults
EVENTS = [("hallucination_rise", 3), ("unsafe_rise", 7), ("pii_leak", 11), ("latency_regression", 15),
          ("length_shift", 19), ("new_model_version", 23), ("topic_shift", 27)]
# the rule meant to catch each event (the table also lists every other rule that fired)
INTENDED = {"hallucination_rise": ("hallucination",), "unsafe_rise": ("unsafe_answers", "unsafe_requests"),
            "pii_leak": ("pii_sensitive",), "latency_regression": ("latency_p90",), "length_shift": ("response_length",),
            "new_model_version": ("unseen_model",), "topic_shift": ("prompt_topic",)}
BOOTSTRAP = 20000  # resampled windows per rule (the 99.865th percentile needs ~27 draws above it)


def monitor_yaml(traffic: Path, work: Path, *, ref_start: str, ref_end: str, end: str,
                 rules: list[dict[str, Any]], tracking_uri: str | None, cache_dir: Path) -> str:
    """The monitor: monitors/traffic.yaml's signals and drift, PII with MONEY_AMOUNT (see docs), embedding
    drift by evidently's ``distance`` method, HTML off. ``output_dir`` is shared by all seeds so the
    per-record signal cache (``<output_dir>/signal_cache.sqlite``) is too; each seed has its own state db
    and monitor name (window folders)."""
    entities = ", ".join([*DEFAULT_ENTITIES, "MONEY_AMOUNT"])
    tracking = (f"{{enabled: true, uri: '{tracking_uri}', experiment: monitor-event-detection}}"
                if tracking_uri else "{enabled: false}")
    lines = "\n".join(f"    - {{metric: '{r['metric']}', op: '>', value: {r['value']!r}, name: {r['name']}}}"
                      for r in rules) or "    []"
    return f"""
name: event-detection-{work.name}
source: {{kind: jsonl, path: '{traffic}'}}
window: {{size: 1h, start: '{ref_end}', end: '{end}'}}
reference: {{kind: fixed, start: '{ref_start}', end: '{ref_end}'}}
signals:
  - text
  - usage
  - refusal
  - {{name: pii, nlp: none, entities: [{entities}]}}
  - safety
  - hallucination
  - embedding
drift: {{columns: auto, text_drift: true, embedding_drift: true, embedding_method: distance, html: false}}
quality: {{}}
tracking: {tracking}
alerts:
  rules:
{lines}
state: {{path: '{work / "state.sqlite"}'}}
output_dir: '{cache_dir}'
"""


# --------------------------------------------------------------------------- alert policy (reference only)


def tail(k: float) -> float:
    """One-sided tail probability of ``k`` standard deviations of a normal (k = 3 → 0.00135)."""
    return 0.5 * math.erfc(k / math.sqrt(2))


# the rules the policy sets (name → metric, what it watches); op ">" for all
POLICY_RULES = {
    "hallucination": ("rate/hallucination.flag", "hallucination flag rate (RAG records)"),
    "unsafe_answers": ("rate/safety.unsafe", "unsafe answer rate"),
    "unsafe_requests": ("rate/safety.unsafe_request", "unsafe request rate"),
    "pii": ("rate/pii.any", "PII rate (responses)"),
    # the pii_leak event's leaked names/records: rate/pii.any misses them without a name recogniser (nlp: none)
    "pii_sensitive": ("rate/pii.sensitive", "sensitive-information rate (responses; the pii_sensitive detector)"),
    "latency_p90": ("p90/latency_ms", "p90 latency (the monitor's histogram estimate)"),
    "response_length": ("mean/text.response_chars", "mean response length"),
    "unseen_model": ("share/model/_other", "share of records from a model not in the reference"),
    "prompt_topic": ("drift/embedding.prompt", "distance of a window's mean prompt embedding to the reference's "
                                               "(evidently 'distance'; windows drawn outside the reference's "
                                               "embedding sample)"),
}


def policy(ref: pd.DataFrame, hours: float, k: float, seed: int, draws: int = BOOTSTRAP,
           cfg: Any = None) -> list[dict[str, Any]]:
    """Alert rules whose thresholds come from the reference frame (signals computed) alone, set by
    ``evalmon.monitor.calibrate.calibrate_frame`` (what ``evalmon monitor calibrate`` runs): each is the
    ``1 - tail(k)`` quantile of the rule's window statistic over ``draws`` windows resampled from the
    reference (size ~ Poisson(records per reference hour)), computed as the monitor computes it. A rule the
    reference cannot calibrate (an empty or constant signal) is left out and printed — it used to crash here
    (IndexError on an empty signal)."""
    from evalmon.config.alerts import AlertRule
    from evalmon.monitor.calibrate import calibrate_frame, embedding_population

    rules = [AlertRule(metric=metric, op=">", value=0, name=name) for name, (metric, _) in POLICY_RULES.items()]
    populations, sample_size = (embedding_population(cfg, ref, ["embedding.prompt"]) if cfg is not None
                                else ({}, None))  # as `evalmon monitor calibrate`: the monitor's embedding sample
    results, _ = calibrate_frame(ref, rules, window_records=len(ref) / hours, false_alarm_rate=tail(k),
                                 draws=draws, seed=seed, distance_columns=("embedding.prompt",),
                                 populations=populations, sample_size=sample_size)
    out = []
    for r in results:
        what = POLICY_RULES[r.rule][1]
        if r.value is None:
            print(f"  policy: {r.rule} ({r.metric}) left out — cannot calibrate: {r.reason}")
            continue
        out.append({"name": r.rule, "metric": r.metric, "value": r.value,
                    "basis": f"{what}: {r.reference_stat}; catches {r.smallest_event}"})
    return out


# --------------------------------------------------------------------------- evidently contrast


def default_embedding_flags(cfg: Any, src: Any, windows: list[Any], reference: pd.DataFrame) -> dict[str, dict[str, bool]]:
    """evidently's default embedding method (``model``, what ``EmbeddingsDrift`` picks) per window."""
    from evalmon.monitor.drift import embedding_method, quiet

    lo, hi = windows[0].window.start, windows[-1].window.end
    runner = SignalRunner(cfg.signals, cfg.output_dir / "signal_cache.sqlite")
    frame = runner(within(src.read(lo, hi).frame, "timestamp", lo, hi))  # cache hits
    runner.close()
    ts = frame["timestamp"]
    out: dict[str, dict[str, bool]] = {}
    for o in windows:
        cur = frame[(ts >= pd.Timestamp(o.window.start)) & (ts < pd.Timestamp(o.window.end))]
        flags: dict[str, bool] = {}
        for col in ("embedding.prompt", "embedding.response"):
            cv = [v for v in cur[col] if isinstance(v, np.ndarray)]
            if len(cv) < 2:  # an empty or one-record window: no test, no flag
                flags[col] = False
                continue
            rv = [v for v in reference[col] if isinstance(v, np.ndarray)]
            if len(rv) < 2:  # an empty signal in the reference: nothing to compare with
                flags[col] = False
                continue
            c, r = np.vstack(cv), np.vstack(rv)
            with quiet():
                _, detected, _ = embedding_method(None, len(r))(pd.DataFrame(c), pd.DataFrame(r))
            flags[col] = bool(detected)
        out[o.window.key] = flags
    return out


# --------------------------------------------------------------------------- report


def wilson(x: int, n: int, z: float = 1.96) -> tuple[float, float]:
    if n == 0:
        return (math.nan, math.nan)
    p = x / n
    d = 1 + z * z / n
    c = (p + z * z / (2 * n)) / d
    h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return (max(0.0, c - h), min(1.0, c + h))


def run_one(seed: int, args: argparse.Namespace, root: Path) -> dict[str, Any]:
    """Synthesize, set the policy from the reference, run the monitor, score it — for one seed."""
    work = root / f"seed-{seed}"
    work.mkdir(parents=True, exist_ok=True)
    for old in work.glob("state.sqlite*"):  # a reused --work: process every window again, not after its watermark
        old.unlink()
    t_all = time.perf_counter()
    timing: dict[str, float] = {}

    t = time.perf_counter()
    start = parse_time(START)
    ref_end = start + timedelta(hours=args.ref_hours)
    end = start + timedelta(hours=args.hours)
    specs = [f"{name}@{iso(ref_end + timedelta(hours=h))}+1h" for name, h in EVENTS]
    synth = synthesize(SynthConfig(out=work / "traffic.jsonl", start=start, hours=args.hours,
                                   rate_per_hour=args.rate, seed=seed, events=specs, data_dir=args.data))
    timing["synthesize"] = time.perf_counter() - t

    t = time.perf_counter()
    common = dict(ref_start=iso(start), ref_end=iso(ref_end), end=iso(end), tracking_uri=args.tracking_uri,
                  cache_dir=root)
    cfg0 = load_monitor_text(monitor_yaml(work / "traffic.jsonl", work, rules=[], **common), "calibration")
    src = build_source(cfg0.source, cfg0.base_dir)
    calibration = LocalExecutor(cfg0, src, sink=None)  # type: ignore[arg-type]  # reads, never finishes a window
    reference = calibration.reference()
    calibration.close()
    rules = policy(reference, args.ref_hours, args.k, seed, cfg=cfg0)
    timing["reference signals + policy"] = time.perf_counter() - t

    t = time.perf_counter()
    cfg = load_monitor_text(monitor_yaml(work / "traffic.jsonl", work, rules=rules, **common), "event-detection")
    result = run_monitor(cfg, log_fn=print if args.verbose else (lambda _m: None))
    timing["monitor run"] = time.perf_counter() - t

    t = time.perf_counter()
    emb_default = default_embedding_flags(cfg, src, result.windows, reference)
    timing["evidently default embedding test"] = time.perf_counter() - t
    timing["total"] = time.perf_counter() - t_all

    events = json.loads(synth.events.read_text())["events"]
    spans = [(e["name"], pd.Timestamp(e["start"]), pd.Timestamp(e["end"])) for e in events]
    rows = []
    for o in result.windows:
        ws, we = pd.Timestamp(o.window.start), pd.Timestamp(o.window.end)
        d = o.drift
        tested = d is not None and not d.skipped
        rows.append({"window": o.window.key, "records": o.records,
                     "events": [n for n, s, e in spans if s < we and e > ws],
                     "fired": sorted({a.rule for a in o.alerts if a.status == "fired"}),
                     "not_evaluated": sorted({a.rule for a in o.alerts if a.status != "fired"}),
                     "metrics": {r["metric"]: o.metrics.get(r["metric"]) for r in rules},
                     "evidently_n_drifted": d.n_drifted if tested else None,
                     "evidently_n_tested": len(d.tested) if tested else None,
                     "evidently_dataset_drift": bool(tested and d.dataset_drift),
                     "evidently_drifted_columns": [c.column for c in d.tested if c.detected] if tested else [],
                     "evidently_embedding_default": emb_default[o.window.key]})
    table = []
    for name, s, e in spans:
        inside = [r for r in rows if name in r["events"]]
        fired = sorted({f for r in inside for f in r["fired"]})
        table.append({"event": name, "start": s.isoformat(), "end": e.isoformat(),
                      "windows": [r["window"] for r in inside], "records": sum(r["records"] for r in inside),
                      "alerted": [r["window"] for r in inside if r["fired"]],
                      "detected": bool(inside) and all(r["fired"] for r in inside), "rules": fired,
                      "intended_rule": any(f in INTENDED[name] for f in fired),
                      "metrics": inside[0]["metrics"] if inside else {}})
    clean = [r for r in rows if not r["events"]]
    return {"seed": seed, "records": synth.records, "reference_records": len(reference), "work": str(work),
            "rules": rules, "events": table, "windows": rows, "clean": clean, "timing_s": timing}


def _num(v: Any) -> str:
    return "missing" if v is None else f"{v:.4g}"


def fmt_rule_value(r: dict[str, Any]) -> str:
    return f"{r['value']:.4g}"


def report(res: dict[str, Any], args: argparse.Namespace) -> None:
    rules, clean = res["rules"], res["clean"]
    print(f"\n=== seed {res['seed']}: {res['records']} records, {args.hours} h at {args.rate:g}/h; reference = first "
          f"{args.ref_hours} h ({res['reference_records']} records); {len(res['windows'])} monitored hourly windows, "
          f"{len(clean)} clean")
    print(f"\nAlert policy (set from the reference period only; threshold = bootstrap quantile 1 - {tail(args.k):.5f}, "
          f"i.e. the one-sided tail of {args.k:g} sd):")
    for r in rules:
        print(f"  {r['name']:<16} {r['metric']:<28} > {fmt_rule_value(r):<10} ({r['basis']})")
    print("\n| event | injected window (UTC) | records | windows alerted | detected in its window? "
          "| rules that fired | intended rule fired? |")
    print("|---|---|---|---|---|---|---|")
    for ev in res["events"]:
        s, e = pd.Timestamp(ev["start"]), pd.Timestamp(ev["end"])
        print(f"| {ev['event']} | {s:%m-%d %H:%M}–{e:%H:%M} | {ev['records']} | "
              f"{len(ev['alerted'])}/{len(ev['windows'])} | {'yes' if ev['detected'] else '**no**'} | "
              f"{', '.join(ev['rules']) or '—'} | {'yes' if ev['intended_rule'] else 'no'} |")
    for ev in res["events"]:
        if not ev["intended_rule"]:
            vals = ", ".join(f"{r['metric']} = {_num(ev['metrics'].get(r['metric']))} (threshold {fmt_rule_value(r)})"
                             for r in rules if r["name"] in INTENDED[ev["event"]])
            print(f"  missed by its rule: {ev['event']}: {vals}")
    fa = sum(bool(c["fired"]) for c in clean)
    lo, hi = wilson(fa, len(clean))
    print(f"\nFalse alarms: {fa}/{len(clean)} clean windows alerted = {fa / max(len(clean), 1):.1%} "
          f"(Wilson 95% {lo:.1%}–{hi:.1%})")
    missing = [w for w in res["windows"] if w["not_evaluated"]]
    if missing:
        print(f"Not evaluated (metric missing/NaN or coverage below the floor): {len(missing)} window(s): " + ", ".join(
            f"{w['window']} {'/'.join(w['not_evaluated'])}" for w in missing))
    print("Per rule (clean windows alerted): " + ", ".join(
        f"{r['name']} {sum(r['name'] in c['fired'] for c in clean)}" for r in rules))
    for c in clean:
        if c["fired"]:
            vals = ", ".join(f"{r['metric']} = {c['metrics'][r['metric']]:.4g} (> {fmt_rule_value(r)})"
                             for r in rules if r["name"] in c["fired"])
            print(f"  clean window {c['window']} ({c['records']} records): {vals}")
    ev = evidently_summary(clean)
    print(f"\nevidently defaults on the same clean windows ({ev['columns']} columns, its default test per column):")
    print(f"  any drifted column:          {ev['any_drift']}/{ev['tested']} windows = {ev['any_drift_rate']:.0%} "
          f"(mean {ev['mean_drifted_columns']:.1f} of {ev['columns']} columns drifted per clean window)")
    print(f"  dataset drift (>= 50% cols): {ev['dataset_drift']}/{ev['tested']} windows")
    print(f"  embedding drift, default 'model' method (ROC AUC > 0.55): prompt {ev['embedding_prompt']}/{ev['windows']}, "
          f"response {ev['embedding_response']}/{ev['windows']} clean windows")
    print("  columns drifted most often: " + ", ".join(f"{k} {v}" for k, v in ev["top_columns"]))
    print("Runtime: " + ", ".join(f"{k} {v:.1f} s" for k, v in res["timing_s"].items()))


def evidently_summary(clean: list[dict[str, Any]]) -> dict[str, Any]:
    tested = [c for c in clean if c["evidently_n_tested"]]
    counts: dict[str, int] = {}
    for c in tested:
        for col in c["evidently_drifted_columns"]:
            counts[col] = counts.get(col, 0) + 1
    any_drift = sum(bool(c["evidently_n_drifted"]) for c in tested)
    return {"windows": len(clean), "tested": len(tested), "columns": tested[0]["evidently_n_tested"] if tested else 0,
            "any_drift": any_drift, "any_drift_rate": any_drift / max(len(tested), 1),
            "dataset_drift": sum(c["evidently_dataset_drift"] for c in tested),
            "mean_drifted_columns": float(np.mean([c["evidently_n_drifted"] for c in tested])) if tested else math.nan,
            "embedding_prompt": sum(c["evidently_embedding_default"]["embedding.prompt"] for c in clean),
            "embedding_response": sum(c["evidently_embedding_default"]["embedding.response"] for c in clean),
            "top_columns": sorted(counts.items(), key=lambda kv: -kv[1])[:6]}


def summary(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Across seeds: how often each event was caught in its window, pooled false alarms."""
    n = len(results)
    events = {e["event"]: {"detected": 0, "intended_rule": 0} for e in results[0]["events"]}
    for res in results:
        for e in res["events"]:
            events[e["event"]]["detected"] += e["detected"]
            events[e["event"]]["intended_rule"] += e["intended_rule"]
    clean = [c for res in results for c in res["clean"]]
    fa = sum(bool(c["fired"]) for c in clean)
    per_rule = {r["name"]: sum(r["name"] in c["fired"] for c in clean) for r in results[0]["rules"]}
    print(f"\n=== {n} seeds ({', '.join(str(r['seed']) for r in results)}): events caught in their window")
    print("\n| event | detected (any rule) | by its intended rule |\n|---|---|---|")
    for name, v in events.items():
        print(f"| {name} | {v['detected']}/{n} | {v['intended_rule']}/{n} |")
    lo, hi = wilson(fa, len(clean))
    ev = evidently_summary(clean)
    print(f"\nPooled false alarms: {fa}/{len(clean)} clean windows = {fa / max(len(clean), 1):.1%} "
          f"(Wilson 95% {lo:.1%}–{hi:.1%}); per rule: " + ", ".join(f"{k} {v}" for k, v in per_rule.items()))
    print(f"evidently defaults, pooled: any drifted column {ev['any_drift']}/{ev['tested']} clean windows; dataset "
          f"drift {ev['dataset_drift']}/{ev['tested']}; default embedding test prompt {ev['embedding_prompt']}/"
          f"{ev['windows']}, response {ev['embedding_response']}/{ev['windows']}")
    return {"events": events, "clean_windows": len(clean), "false_alarms": fa, "wilson95": [lo, hi],
            "per_rule": per_rule, "evidently": ev}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, nargs="+", default=[11], help="one or more traffic seeds")
    ap.add_argument("--rate", type=float, default=120.0, help="records per hour")
    ap.add_argument("--hours", type=int, default=48)
    ap.add_argument("--ref-hours", type=int, default=12)
    ap.add_argument("--k", type=float, default=3.0, help="per-rule threshold at the one-sided tail of k sd")
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "benchmarks")
    ap.add_argument("--work", type=Path, default=None,
                    help="keep traffic, window folders and the signal cache here (default: a temp dir)")
    ap.add_argument("--tracking-uri", default=None, help="log windows to this MLflow store (default: off)")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("-v", "--verbose", action="store_true", help="print the monitor's per-window log")
    args = ap.parse_args()
    if args.ref_hours + EVENTS[-1][1] + 1 > args.hours:
        ap.error(f"--hours must leave room for the events after the reference (> {args.ref_hours + EVENTS[-1][1]})")
    tmp = None if args.work else tempfile.TemporaryDirectory(prefix="evalmon-events-")
    root = (args.work or Path(tmp.name)).resolve()  # type: ignore[union-attr]
    t0 = time.perf_counter()
    results = []
    for seed in args.seed:
        results.append(run_one(seed, args, root))
        report(results[-1], args)
    total = summary(results) if len(results) > 1 else None
    wall = time.perf_counter() - t0
    print(f"\nWall time: {wall:.1f} s for {len(results)} seed(s) (work dir {root})")
    if args.json:
        args.json.write_text(json.dumps({"config": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
                                         "runs": results, "summary": total, "wall_s": wall}, indent=2, default=str))
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()

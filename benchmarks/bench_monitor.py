"""A monitor run over 1M synthetic records (no embeddings) and 100k records with embeddings, vs evidently.

    .venv/bin/python benchmarks/bench_monitor.py [--rows 1000000] [--emb-rows 100000] [--windows 24]
        [--anchor-windows 3] [--json out.json]

Each measurement runs in its own subprocess (peak RSS = that process's ``ru_maxrss``):

* ``ours``: ``run_monitor`` over an in-memory source — signals (text, usage, refusal), tumbling 1 h
  windows, mergeable summaries, evidently ``ValueDrift`` per column + HTML per window, great-expectations
  per window; MLflow off (its upload time is the server's, not ours). The first 4 windows are the fixed
  reference. It saves the post-signal frame (parquet) for the anchor.
* ``evidently``: the same statistics with a plain evidently ``Report([DataDriftPreset()])`` per window
  on that same frame and reference (same columns), snapshot + HTML, on ``--anchor-windows`` windows,
  extrapolated per window; and one ``Report([DataDriftPreset()])`` of the whole frame against the
  reference (what people often do instead of windowing).
* With embeddings (384-d vectors per record, synthetic — the MiniLM signal itself runs ~300 texts/s on 2
  cores, see NOTES): ours uses evidently's embedding drift method directly (``model``), the anchor adds
  ``EmbeddingsDrift`` to the preset (its TSNE plot included, as a Report runs it).

Prints rows/s, peak memory and evidently ÷ ours per window (> 1: ours is faster). The machine's CPU
pressure is printed too: on 2 shared cores numbers swing; compare ratios from the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
T0 = datetime(2026, 11, 1, tzinfo=UTC)
REF_WINDOWS = 4
EMB_DIM = 384


def make_frame(rows: int, windows: int, *, emb: bool, seed: int = 0) -> Any:
    """Canonical traffic frame: a latency regression in window ``windows - 2``, a topic/emb shift in the last."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    secs = np.sort(rng.uniform(0, windows * 3600, rows))
    hour = (secs // 3600).astype(int)
    vocab = np.array([f"w{i}" for i in range(2000)])
    topics = np.array(["coding", "math", "travel", "health", "finance", "history", "cooking", "law"])
    topic = rng.choice(topics, rows, p=[0.05, 0.05, 0.2, 0.2, 0.2, 0.1, 0.1, 0.1])
    shifted = hour == windows - 1
    topic[shifted] = rng.choice(topics[:2], int(shifted.sum()))
    words = vocab[rng.integers(0, len(vocab), (rows, 3))]
    prompt = pd.Series(topic).str.cat([pd.Series(words[:, i]) for i in range(3)], sep=" ")
    refusal = rng.random(rows) < 0.03
    response = pd.Series(np.where(refusal, "I'm sorry, I can't help with that.", "Sure: ")).str.cat(
        pd.Series(vocab[rng.integers(0, len(vocab), rows)]), sep=" ")
    latency = rng.lognormal(6.5, 0.5, rows) * np.where(hour == windows - 2, 3.0, 1.0)
    frame = pd.DataFrame({
        "request_id": pd.Series(np.arange(rows)).map("r{:08d}".format),
        "timestamp": pd.to_datetime(T0) + pd.to_timedelta(secs, unit="s"),
        "model": rng.choice(["m-1", "m-2"], rows, p=[0.9, 0.1]), "prompt": prompt, "response": response,
        "latency_ms": latency, "input_tokens": rng.integers(5, 400, rows), "output_tokens": rng.integers(5, 900, rows),
        "arrival": np.arange(rows)})
    if emb:
        base = rng.normal(0, 1, (len(topics), EMB_DIM)).astype(np.float32)
        idx = pd.Series(topic).map({t: i for i, t in enumerate(topics)}).to_numpy()
        vecs = base[idx] + rng.normal(0, 2, (rows, EMB_DIM)).astype(np.float32)
        frame["embedding.prompt"] = list(vecs)
    return frame


class MemorySource:
    name = "memory"

    def __init__(self, frame: Any) -> None:
        self.frame = frame

    def read(self, start: datetime | None = None, end: datetime | None = None) -> Any:
        import pandas as pd

        from evalmon.monitor.contracts import SourceBatch

        ts = self.frame.timestamp
        mask = pd.Series(True, index=self.frame.index)
        if start is not None:
            mask &= ts >= pd.Timestamp(start)
        if end is not None:
            mask &= ts < pd.Timestamp(end)
        return SourceBatch(self.frame[mask].reset_index(drop=True))


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def part_ours(args: argparse.Namespace, work: Path, emb: bool) -> dict[str, Any]:
    import logging

    from evalmon.config.monitor import load_monitor_text
    from evalmon.monitor.drift import quiet
    from evalmon.monitor.runner import run_monitor

    rows = args.emb_rows if emb else args.rows
    frame = make_frame(rows, args.windows, emb=emb)
    base_mb = _peak_mb()
    import evidently  # noqa: F401 - import cost is not the run's
    import great_expectations  # noqa: F401

    ref_end = T0 + timedelta(hours=REF_WINDOWS)
    cfg = load_monitor_text(
        f"name: bench\nsource: {{kind: jsonl, path: unused}}\nwindow: {{size: 1h, end: "
        f"'{(T0 + timedelta(hours=args.windows)).isoformat()}'}}\n"
        f"reference: {{kind: fixed, start: '{T0.isoformat()}', end: '{ref_end.isoformat()}'}}\n"
        "signals: [{name: text, language: false}, usage, refusal]\n"
        f"drift: {{text_drift: false, embedding_drift: {str(emb).lower()}}}\n"
        f"tracking: {{enabled: false}}\noutput_dir: {work / ('out-emb' if emb else 'out')}\n", "bench.yaml",
        base_dir=work)
    logging.disable(logging.INFO)
    t0 = time.perf_counter()
    with quiet():
        result = run_monitor(cfg, source=MemorySource(frame), log_fn=lambda m: None)
    secs = time.perf_counter() - t0
    drift_s = [o.drift.seconds for o in result.windows if o.drift is not None]
    # the frame evidently gets: canonical + signal columns, exactly what our drift saw
    from evalmon.monitor.pipeline import SignalRunner

    runner = SignalRunner(cfg.signals, cfg.output_dir / "signal_cache.sqlite")
    full = runner(frame)
    runner.close()
    full.drop(columns=[c for c in full.columns if c.startswith("embedding.")]).to_parquet(
        work / ("frame-emb.parquet" if emb else "frame.parquet"))
    if emb:
        import numpy as np

        np.save(work / "emb.npy", np.vstack(frame["embedding.prompt"].to_numpy()))
    plan = result.windows[-1].drift
    cols = {c.column: c.kind for c in plan.columns} if plan else {}
    return {"rows": rows, "windows": len(result.windows), "seconds": secs, "rows_per_s": rows / secs,
            "peak_mb": _peak_mb(), "frame_mb": base_mb, "drift_s_per_window": sum(drift_s) / len(drift_s),
            "per_window_s": secs / len(result.windows), "columns": cols,
            "flagged": [o.window.start.isoformat() for o in result.windows
                        if o.metrics.get("drift_detected/latency_ms") == 1 or
                        o.metrics.get("drift_detected/embedding.prompt") == 1]}


def part_evidently(args: argparse.Namespace, work: Path, emb: bool) -> dict[str, Any]:
    import numpy as np
    import pandas as pd

    from evalmon.monitor.drift import quiet

    frame = pd.read_parquet(work / ("frame-emb.parquet" if emb else "frame.parquet"))
    cols: dict[str, str] = json.loads(os.environ["BENCH_COLUMNS"])
    num = [c for c, k in cols.items() if k == "numerical"]
    cat = [c for c, k in cols.items() if k == "categorical"]
    emb_cols: list[str] = []
    if emb:
        vecs = np.load(work / "emb.npy")
        emb_cols = [f"e{i}" for i in range(vecs.shape[1])]
        frame = pd.concat([frame[num + cat + ["timestamp"]], pd.DataFrame(vecs, columns=emb_cols)], axis=1)
    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import EmbeddingsDrift
    from evidently.presets import DataDriftPreset

    base_mb = _peak_mb()
    dd = DataDefinition(numerical_columns=num, categorical_columns=cat,
                        embeddings={"embedding.prompt": emb_cols} if emb else None)
    use = num + cat + emb_cols
    ts = frame.timestamp
    ref = frame[ts < pd.Timestamp(T0 + timedelta(hours=REF_WINDOWS))][use]
    out: dict[str, Any] = {"rows": len(frame), "frame_mb": base_mb}
    times = []
    metrics: list[Any] = [DataDriftPreset()] + ([EmbeddingsDrift(embeddings_name="embedding.prompt")] if emb else [])
    for k in range(args.anchor_windows):  # the last windows: the event windows are among them
        h = args.windows - 1 - k
        cur = frame[(ts >= pd.Timestamp(T0 + timedelta(hours=h))) & (ts < pd.Timestamp(T0 + timedelta(hours=h + 1)))]
        t0 = time.perf_counter()
        with quiet():
            snap = Report(metrics).run(Dataset.from_pandas(cur[use], data_definition=dd),
                                       Dataset.from_pandas(ref, data_definition=dd))
            snap.dict()
            snap.save_html(str(work / f"anchor-{k}.html"))
        times.append(time.perf_counter() - t0)
    out["per_window_s"] = sum(times) / len(times)
    out["windows_measured"] = len(times)
    if not emb:  # one report of everything against the reference
        t0 = time.perf_counter()
        with quiet():
            snap = Report([DataDriftPreset()]).run(Dataset.from_pandas(frame[use], data_definition=dd),
                                                   Dataset.from_pandas(ref, data_definition=dd))
            snap.dict()
        out["whole_frame_s"] = time.perf_counter() - t0
    out["peak_mb"] = _peak_mb()
    return out


def _sub(part: str, args: argparse.Namespace, work: Path, env: dict[str, str] | None = None) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--part", part, "--work", str(work), "--rows", str(args.rows),
           "--emb-rows", str(args.emb_rows), "--windows", str(args.windows),
           "--anchor-windows", str(args.anchor_windows)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **(env or {})}, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"{part} failed:\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _pressure() -> str:
    try:
        return Path("/proc/pressure/cpu").read_text().splitlines()[0]
    except OSError:
        return "n/a"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--emb-rows", type=int, default=100_000)
    ap.add_argument("--windows", type=int, default=24)
    ap.add_argument("--anchor-windows", type=int, default=3)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--part", choices=["ours", "ours-emb", "evidently", "evidently-emb"])
    ap.add_argument("--work", type=Path)
    args = ap.parse_args()
    if args.part:
        emb = args.part.endswith("-emb")
        fn = part_ours if args.part.startswith("ours") else part_evidently
        print(json.dumps(fn(args, args.work, emb), default=str))
        return
    work = Path(tempfile.mkdtemp(prefix="evalmon-bench-monitor-"))
    print(f"cpu pressure before: {_pressure()}")
    res: dict[str, Any] = {}
    for emb in (False, True):
        tag = "emb" if emb else "tab"
        ours = _sub("ours-emb" if emb else "ours", args, work)
        anchor = _sub("evidently-emb" if emb else "evidently", args, work,
                      {"BENCH_COLUMNS": json.dumps({c: k for c, k in ours["columns"].items() if k != "embeddings"})})
        res[tag] = {"ours": ours, "evidently": anchor}
        label = f"{ours['rows']:,} records{' + 384-d embeddings' if emb else ''}, {ours['windows']} windows"
        print(f"\n== {label} ({len(ours['columns'])} drift columns)")
        print(f"ours: {ours['seconds']:.1f} s total = {ours['rows_per_s']:,.0f} rows/s, "
              f"{ours['per_window_s']:.2f} s/window (drift {ours['drift_s_per_window']:.2f} s), "
              f"peak RSS {ours['peak_mb']:,.0f} MB (frame built at {ours['frame_mb']:,.0f} MB); "
              f"flagged windows: {', '.join(ours['flagged']) or 'none'}")
        print(f"evidently Report(DataDriftPreset{' + EmbeddingsDrift' if emb else ''}) per window: "
              f"{anchor['per_window_s']:.2f} s/window over {anchor['windows_measured']} windows, peak RSS "
              f"{anchor['peak_mb']:,.0f} MB")
        if "whole_frame_s" in anchor:
            print(f"evidently Report(DataDriftPreset) of the whole frame vs the reference: {anchor['whole_frame_s']:.1f} s")
        print(f"ratio evidently/ours per window: {anchor['per_window_s'] / ours['per_window_s']:.2f}x "
              f"(drift part only: {anchor['per_window_s'] / ours['drift_s_per_window']:.2f}x)")
    print(f"\ncpu pressure after: {_pressure()}")
    if args.json:
        args.json.write_text(json.dumps(res, indent=2, default=str))


if __name__ == "__main__":
    main()

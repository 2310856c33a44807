"""Event detection without retrieved contexts: synthesised QA traffic logged without its passages
(``no_contexts``); in one hourly window every answer is HaluEval's hallucinated one instead of 5% of them
(``hallucination_rise[rate=1.0]``). The groundedness signal can score none of it (coverage 0); a monitor
with the context-free detector (``halludetect`` over the embedded SmolLM2) and one rule — its threshold set
from the reference period only — alerts in the event window and in no clean one."""

from __future__ import annotations

import json
import math
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from evalmon.config.monitor import load_monitor
from evalmon.monitor.runner import run_monitor
from evalmon.monitor.schema import normalize_records
from evalmon.monitor.signals import SignalCache, build_signals, compute_signals

BENCH = Path(__file__).resolve().parents[3] / "shared" / "benchmarks"
pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("benchmarks_dir")]  # missing data fails, never skips
HOUR = timedelta(hours=1)
RATE, HOURS, REF_HOURS, EVENT_AT = 60, 7, 3, 5  # records/h; windows 3..6 processed, the event in hour 5
K = 3.0  # rule threshold: reference mean + K sd of a window mean (one-sided tail ≈ 1.3e-3 if normal)


def _z(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_hallucination_rise_without_contexts_alerts_in_event_windows_only(smollm2_checkpoint: Path,
                                                                          tmp_path: Path) -> None:
    from evalmon.traffic.synth import SynthConfig, synthesize

    t0 = datetime(2026, 11, 1, tzinfo=UTC)
    res = synthesize(SynthConfig(
        out=tmp_path / "traffic.jsonl", start=t0, hours=HOURS, rate_per_hour=RATE, seed=7, data_dir=BENCH,
        mix={"chat": 0.0, "rag": 1.0, "safety": 0.0, "enterprise": 0.0},
        events=[f"no_contexts@{_z(t0)}", f"hallucination_rise@{_z(t0 + EVENT_AT * HOUR)}+1h[rate=1.0]"]))
    records = [json.loads(x) for x in res.traffic.read_text().splitlines()]
    assert records and all(r["contexts"] == [] for r in records)
    signals = [{"name": "halludetect", "uncertainty": {"model": {"path": str(smollm2_checkpoint)},
                                                        "max_response_chars": 600}},
               {"name": "hallucination", "embeddings": False}]
    # the rule's threshold from the reference period only (the monitor reuses these cached records)
    ref_end = t0 + REF_HOURS * HOUR
    ref = normalize_records([r for r in records if pd.Timestamp(r["timestamp"]) < ref_end], source="ref")
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    ref_scores = compute_signals(ref.frame, build_signals(signals), SignalCache(out_dir / "signal_cache.sqlite"))
    s = ref_scores["halludetect.score"].to_numpy()
    threshold = float(np.mean(s) + K * np.std(s, ddof=1) / math.sqrt(RATE))
    yaml = tmp_path / "m.yaml"
    yaml.write_text(textwrap.dedent(f"""\
        name: halluc
        source: {{kind: jsonl, path: traffic.jsonl}}
        window: {{size: 1h, start: "{_z(ref_end)}", end: "{_z(t0 + HOURS * HOUR)}"}}
        reference: {{kind: fixed, start: "{_z(t0)}", end: "{_z(ref_end)}"}}
        signals: {json.dumps(signals)}
        drift: {{text_drift: false, embedding_drift: false}}
        tracking: {{enabled: false}}
        alerts:
          rules:
            - {{metric: mean/halludetect.score, op: ">", value: {threshold:.6f}, name: hallucination rise}}
        output_dir: out
        """))
    result = run_monitor(load_monitor(yaml), now=t0 + (HOURS + 1) * HOUR)
    fired = {int((o.window.start - t0) / HOUR): [a.rule for a in o.alerts] for o in result.windows}
    means = {int((o.window.start - t0) / HOUR): o.metrics.get("mean/halludetect.score") for o in result.windows}
    assert fired == {h: (["hallucination rise"] if h == EVENT_AT else []) for h in range(REF_HOURS, HOURS)}, (
        fired, threshold, means)
    for o in result.windows:  # the grounding signal scored nothing; the detector scored every record
        assert o.metrics["coverage/hallucination.groundedness"] == 0
        assert o.metrics["coverage/halludetect.score"] == 1

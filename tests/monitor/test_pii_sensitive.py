"""``pii.sensitive``: the shipped ``pii_sensitive`` detector through the pii signal. Unit: the switch and the
option checks (no model loaded). Accuracy: held-out rows (EnterprisePII validation split, ordinary answers'
validation split, HaluEval answers never used) — floors a little below docs/detectors/pii_sensitive.md."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import average_precision_score

from evalmon.core.errors import ConfigError
from evalmon.monitor.signals import build_signals
from evalmon.monitor.signals.pii import PiiSignal

ROOT = Path(__file__).resolve().parents[2]


def test_sensitive_off_loads_no_model_and_adds_no_columns() -> None:
    off = PiiSignal(nlp="none", sensitive=False)
    assert off.embedder is None and off.embedding_fields == () and "pii.sensitive" not in off.columns
    assert off.options()["sensitive"] is None  # (presidio itself: test_monitor_signals.test_pii_entities_offline)
    with pytest.raises(ConfigError, match="sensitive_threshold"):
        build_signals([{"name": "pii", "nlp": "none", "sensitive_threshold": 2}])


@pytest.mark.accuracy
def test_sensitive_flags_held_out_leaks_not_ordinary_answers(benchmarks_dir: Path) -> None:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from detector_data import datasets, split_of

    rows = [r for r in datasets(benchmarks_dir)["pii_sensitive"] if split_of(r) == "validation" or not r.shippable]
    rows = rows[:: max(1, len(rows) // 300)]
    y = np.array([r.label for r in rows])
    src = np.array([r.source for r in rows])
    frame = pd.DataFrame({"response": [r.text for r in rows] + ["", None]})
    sig = build_signals([{"name": "pii", "nlp": "none"}])[0]
    out = sig.compute(frame)
    score, flag = out["pii.sensitive_score"].to_numpy(), out["pii.sensitive"].to_numpy()
    assert np.isnan(score[-2:]).all() and (flag[-2:] == 0).all()  # empty response: no score, no flag
    score, flag = score[:-2], flag[:-2] > 0
    ep = src == "enterprise_pii"
    # measured on all validation rows: PR-AUC 0.998, recall 0.759 at 0 % FP; HaluEval 0/574, MT-Bench 5/212
    assert average_precision_score(y[ep], score[ep]) > 0.97
    assert flag[ep & (y == 1)].mean() >= 0.65 and flag[ep & (y == 0)].mean() <= 0.02
    assert flag[src == "halueval"].mean() <= 0.01 and flag[np.isin(src, ["mt_bench", "truthfulqa"])].mean() <= 0.05

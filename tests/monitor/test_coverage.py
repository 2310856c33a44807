"""Coverage as a window metric (``coverage/<signal column>``) and ``not evaluated`` alerts (issue #14 item 5)."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from evalmon.config.alerts import AlertRule
from evalmon.config.monitor import load_monitor_text
from evalmon.core.errors import ConfigError
from evalmon.monitor.alerts import NOT_EVALUATED, evaluate
from evalmon.monitor.console import alert_summary
from evalmon.monitor.summary import Summary, SummarySpec
from evalmon.monitor.windows import window_of

W = window_of(datetime(2024, 3, 1, 9, 0, tzinfo=UTC), timedelta(hours=1))


def _frame(n: int, scored: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    flag = rng.integers(0, 2, n).astype(float)
    flag[scored:] = np.nan  # the signal could not score these records
    return pd.DataFrame({"hallucination.flag": flag, "latency_ms": rng.gamma(2, 300, n)})


def test_coverage_is_logged_per_signal_column_and_merges_across_partitions() -> None:
    ref = _frame(200, 200, 0)
    spec = SummarySpec.fit(ref, ["hallucination.flag", "latency_ms"])
    a, b = _frame(30, 6, 1), _frame(70, 49, 2)  # 55 of 100 scored
    merged = Summary.zero(spec).update(a).merge(Summary.zero(spec).update(b))
    whole = Summary.zero(spec).update(pd.concat([a, b], ignore_index=True))
    m = merged.metrics()
    assert m["coverage/hallucination.flag"] == pytest.approx(0.55)
    assert m["coverage/hallucination.flag"] == whole.metrics()["coverage/hallucination.flag"]
    assert "coverage/latency_ms" not in m  # canonical columns keep null_rate only
    back = Summary.from_dict(merged.to_dict()).metrics()
    assert back["coverage/hallucination.flag"] == pytest.approx(0.55)


def test_missing_or_nan_metric_is_a_not_evaluated_alert_by_default() -> None:
    rules = [AlertRule(metric="rate/hallucination.flag", op=">", value=0.3, name="hallucinated"),
             AlertRule(metric="rate/typo", op=">", value=0)]
    metrics = {"rate/hallucination.flag": math.nan, "coverage/hallucination.flag": 0.0, "records": 40.0}
    check = evaluate(rules, metrics, monitor="m", window=W)
    assert [(a.rule, a.status) for a in check.alerts] == [("hallucinated", NOT_EVALUATED),
                                                          ("rate/typo > 0", NOT_EVALUATED)]
    assert "no record scored" in check.alerts[0].reason and "NOT EVALUATED" in check.alerts[0].message()
    assert "no metric 'rate/typo'" in check.alerts[1].message()
    assert check.alerts[0].to_dict()["status"] == NOT_EVALUATED  # what alerts.json and the webhook get
    assert "2 of them NOT EVALUATED" in alert_summary(check.alerts)
    assert check.notes == []


def test_low_coverage_alerts_below_the_floor_and_ignore_turns_it_into_a_note() -> None:
    metrics = {"rate/hallucination.flag": 0.1, "coverage/hallucination.flag": 0.2}
    floor = AlertRule(metric="rate/hallucination.flag", op=">", value=0.3, min_coverage=0.5)
    check = evaluate([floor], metrics, monitor="m", window=W)
    assert [a.status for a in check.alerts] == [NOT_EVALUATED] and "20.0%" in check.alerts[0].reason
    assert evaluate([floor], {**metrics, "coverage/hallucination.flag": 0.6}, monitor="m", window=W).alerts == []
    ignored = floor.model_copy(update={"on_missing": "ignore"})
    check = evaluate([ignored], metrics, monitor="m", window=W)
    assert check.alerts == [] and "below min_coverage 0.5" in check.notes[0]
    # a canonical column's coverage is 1 - null_rate
    lat = AlertRule(metric="p90/latency_ms", op=">", value=9e9, min_coverage=0.9)
    assert evaluate([lat], {"p90/latency_ms": 1.0, "null_rate/latency_ms": 0.5}, monitor="m", window=W).alerts


YAML = """
name: m
source: {kind: jsonl, path: t.jsonl}
alerts:
  on_missing: ignore
  min_coverage: 0.5
  thresholds: %s
  rules:
    - {metric: rate/pii.any, op: ">", name: pii}
    - {metric: records, op: "<", value: 3, on_missing: alert, min_coverage: 0}
"""


def test_monitor_wide_defaults_and_thresholds_file(tmp_path) -> None:
    (tmp_path / "th.yaml").write_text("thresholds:\n  pii: 0.07\n")
    cfg = load_monitor_text(YAML % "th.yaml", "m.yaml", base_dir=tmp_path)
    pii, rec = cfg.alerts.rules
    assert (pii.value, pii.on_missing, pii.min_coverage) == (0.07, "ignore", 0.5)
    assert (rec.value, rec.on_missing, rec.min_coverage) == (3, "alert", 0)
    (tmp_path / "th.yaml").write_text("thresholds:\n  gone: 0.07\n")
    with pytest.raises(ConfigError, match="does not have"):
        load_monitor_text(YAML % "th.yaml", "m.yaml", base_dir=tmp_path)
    with pytest.raises(ConfigError, match="rule 'pii' has no value"):
        load_monitor_text((YAML % "x").replace("  thresholds: x\n", ""), "m.yaml", base_dir=tmp_path)


def test_a_window_whose_responses_were_lost_is_not_evaluated_not_zero_refusals() -> None:
    """The refusal signal scored a record without a response as "not refused": a window whose responses were all
    lost (a logging bug) read rate/refusal.refused 0 at 100 % coverage and no rule or floor could fire."""
    from evalmon.monitor.signals import build_signals

    refusal = build_signals([{"name": "refusal", "classifier": False}])[0]
    answers = ["I'm sorry, but I can't help with that.", "Sure, here it is.", "The answer is 4."] * 20
    ref = refusal.compute(pd.DataFrame({"response": answers}))
    spec = SummarySpec.fit(ref, ["refusal.refused"])
    lost = refusal.compute(pd.DataFrame({"prompt": ["q"] * 60, "response": [None] * 30 + [""] * 30}))
    half = refusal.compute(pd.DataFrame({"response": answers[:30] + [None] * 30}))
    rule = AlertRule(metric="rate/refusal.refused", op=">", value=0.5, name="refusals", min_coverage=0.8)
    m_lost, m_half = (Summary.zero(spec).update(f).metrics() for f in (lost, half))
    assert m_lost["coverage/refusal.refused"] == 0.0 and math.isnan(m_lost["rate/refusal.refused"])
    assert m_half["coverage/refusal.refused"] == 0.5 and m_half["rate/refusal.refused"] == pytest.approx(1 / 3)
    for metrics in (m_lost, m_half):
        assert [a.status for a in evaluate([rule], metrics, monitor="m", window=W).alerts] == [NOT_EVALUATED]

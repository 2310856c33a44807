"""The hallucination judge's cost cap holds per window, whatever the number of partitions a window is read in,
and which records are judged does not depend on the partitioning (the window's smallest sampled hashes)."""

from __future__ import annotations

import json
import textwrap
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from evalmon.monitor.pipeline import SignalRunner, window_signals
from evalmon.monitor.signals import SignalCache, compute_signals
from evalmon.monitor.signals.hallucination import HallucinationSignal

CAP, RATE, N = 5, 0.5, 60


class CountingJudge:
    """A judge function (no server): remembers every prompt it was asked, answers by content."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    def __call__(self, prompt: str) -> str:
        self.asked.append(prompt)
        return "Yes" if "Rome" in prompt else "No"


def _records(n: int = N) -> pd.DataFrame:
    return pd.DataFrame({"prompt": [f"Where is the Eiffel tower? ({i})" for i in range(n)],
                         "response": ["It is in Rome." if i % 3 else "It is in Paris." for i in range(n)]})


def _judged(frame: pd.DataFrame, parts: int) -> tuple[set[str], int]:
    """Score ``frame`` read as ``parts`` interleaved partitions of one window: judged prompts, judge calls."""
    judge = CountingJudge()
    sig = HallucinationSignal(embeddings=False, judge=judge, judge_sample_rate=RATE, judge_max_per_batch=CAP)
    split = [frame.iloc[i::parts] for i in range(parts)]
    sig.plan_window(split)
    cache = SignalCache()
    outs = [compute_signals(p, [sig], cache) for p in split]
    sig.plan_window(None)
    out = pd.concat(outs)
    judged = set(out.loc[out["hallucination.judge_sampled"] > 0, "prompt"])
    assert out.loc[out["hallucination.judge_sampled"] > 0, "hallucination.judge_flag"].notna().all()
    return judged, len(judge.asked)


def test_cap_holds_per_window_and_the_judged_set_does_not_depend_on_partitions() -> None:
    frame = _records()
    one, calls_one = _judged(frame, 1)
    three, calls_three = _judged(frame, 3)
    assert len(one) == CAP == calls_one  # 60 records at rate 0.5 would be ~30 without the cap
    assert three == one and calls_three == CAP  # before: each of the 3 partitions judged up to CAP (15 calls)
    sig = HallucinationSignal(embeddings=False, judge=CountingJudge(), judge_sample_rate=RATE)
    frac = sig._fractions(frame)
    smallest = set(frame["prompt"].to_numpy()[np.argsort(frac)[:CAP]])
    assert one == smallest  # the documented rule: the window's CAP smallest seeded hashes below the rate


def test_without_a_window_plan_the_cap_applies_per_batch_and_an_unreached_cap_changes_nothing() -> None:
    frame = _records()
    sig = HallucinationSignal(embeddings=False, judge=CountingJudge(), judge_sample_rate=RATE,
                              judge_max_per_batch=CAP)
    assert sig.judge_selected(frame).sum() == CAP  # the reference / `signals score`: one batch, the cap
    plain = HallucinationSignal(embeddings=False, judge=CountingJudge(), judge_sample_rate=RATE)
    base_fp = sig.fingerprint
    sig.plan_window([frame.iloc[:4]])  # 4 records: fewer sampled than the cap
    assert (sig.judge_selected(frame.iloc[:4]) == plain.judge_selected(frame.iloc[:4])).all()
    assert sig.fingerprint == base_fp  # the cap did not bind: cached rows are shared with other windows
    sig.plan_window([frame])
    assert sig.fingerprint != base_fp  # it did: this window's rows are cached under their own key
    sig.plan_window(None)
    assert sig.fingerprint == base_fp


def test_signal_runner_plans_each_window_then_forgets_the_plan() -> None:
    runner = SignalRunner([{"name": "usage"}], None)  # a signal without plan_window: planning is a no-op
    parts = [_records(6), _records(4)]
    outs = window_signals(parts, runner)
    assert [len(o) for o in outs] == [6, 4] and all("usage.total_tokens" in o.columns for o in outs)
    runner.close()


def test_spark_executor_with_a_per_window_judge_cap_is_a_one_line_error(tmp_path: Path) -> None:
    from evalmon.config.monitor import apply_overrides, load_monitor_text
    from evalmon.core.errors import ConfigError

    text = MONITOR.format(path="t.jsonl", url="http://127.0.0.1:9/v1", rate=RATE, cap=CAP, out=tmp_path)
    with pytest.raises(ConfigError) as info:
        load_monitor_text(text + "executor: spark\n", "m.yaml", base_dir=tmp_path)
    line = info.value.one_line()
    assert "signals.0.judge.max_per_window: the spark executor judges each (window, partition) cell" in line
    assert "executor: local" in line and "\n" not in line
    local = load_monitor_text(text, "m.yaml", base_dir=tmp_path)
    with pytest.raises(ConfigError, match=r"^--executor spark: signals\.0\.judge\.max_per_window"):
        apply_overrides(local, executor="spark")
    assert apply_overrides(local, executor="local").executor == "local"


# ------------------------------------------------------------------------- through the local executor

MONITOR = """\
name: capped
source: {{kind: jsonl, path: {path}}}
window: {{size: 1h, end: 2026-11-01T02:00:00Z}}
drift: {{enabled: false}}
quality: {{enabled: false}}
tracking: {{enabled: false}}
signals:
  - {{name: hallucination, embeddings: false,
     judge: {{model: {{backend: openai, base_url: "{url}", model: judge, supports_logprobs: false,
                      max_retries: 0, timeout_s: 10}}, sample_rate: {rate}, max_per_window: {cap}}}}}
output_dir: {out}
"""


@pytest.mark.e2e
def test_local_executor_judges_the_same_records_with_1_or_3_partitions(tmp_path: Path) -> None:
    from chat_server_util import ChatServer

    from evalmon.config.monitor import load_monitor_text
    from evalmon.monitor.runner import run_monitor

    rows = [{"request_id": f"r{i}", "timestamp": f"2026-11-01T0{i // 30}:{i % 30 * 2:02d}:00Z",
             "prompt": f"Where is the Eiffel tower? ({i})", "response": "It is in Rome." if i % 3 else "In Paris."}
            for i in range(N)]  # two hourly windows of 30 records
    asked: dict[int, list[str]] = {}
    for parts in (1, 3):
        src = tmp_path / f"p{parts}"
        src.mkdir()
        for k in range(parts):  # records interleaved over the files: every window spans every partition
            (src / f"part{k}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[k::parts]), "utf-8")
        srv = ChatServer(lambda p: "Yes" if "Rome" in p else "No", "judge")
        try:
            cfg = load_monitor_text(textwrap.dedent(MONITOR.format(path=src, url=srv.url, rate=RATE, cap=CAP,
                                                                   out=tmp_path / f"out{parts}")), "m.yaml",
                                    base_dir=tmp_path)
            result = run_monitor(cfg, now=datetime(2026, 11, 1, 3, tzinfo=UTC))
        finally:
            srv.close()
        assert len(result.windows) == 2
        for w in result.windows:  # the window's judged share: CAP of its 30 records
            assert round(w.metrics["rate/hallucination.judge_sampled"] * w.records) == CAP, w.metrics
        asked[parts] = sorted(srv.prompts)
    assert len(asked[1]) == 2 * CAP and asked[3] == asked[1]  # before: 3 partitions asked up to 3× as much

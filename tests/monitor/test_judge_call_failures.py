"""A judge or guard call that fails (HTTP 5xx after retries, a 4xx for one request, a timeout) leaves its record
*not judged* — NaN, coverage falls, never a verdict — instead of failing the whole monitor run; the others keep
their verdicts, each sampled record is sent at most once, and a failed row is not cached (a rerun asks again)."""

from __future__ import annotations

import json
import textwrap
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from chat_server_util import ChatServer

from evalmon.monitor.signals import SignalCache, build_signals, compute_signals

pytestmark = pytest.mark.e2e


def _model(url: str) -> dict[str, Any]:
    return {"backend": "openai", "base_url": url, "model": "judge", "supports_logprobs": False,
            "max_retries": 0, "timeout_s": 10, "concurrency": 2}


def _frame(n: int = 8) -> pd.DataFrame:
    return pd.DataFrame({"prompt": [f"Where is the tower? ({i})" for i in range(n)],
                         "response": ["It is in Rome." if i % 2 else "It is in Paris." for i in range(n)]})


class Flaky:
    """Fails the record with tag ``(3)`` with ``status``; answers the others (Rome: Yes / unsafe)."""

    def __init__(self, status: int, guard: bool = False) -> None:
        self.status, self.guard, self.broken = status, guard, True

    def __call__(self, prompt: str) -> str | int:
        if self.broken and "(3)" in prompt:
            return self.status
        if self.guard:
            return "unsafe\nS1" if "Rome" in prompt else "safe"
        return "Yes" if "Rome" in prompt else "No"


@pytest.mark.parametrize("status", [400, 500])
@pytest.mark.parametrize("which", ["hallucination", "guard"])
def test_a_failed_call_is_not_judged_the_others_are_and_a_rerun_retries_it(which: str, status: int) -> None:
    flaky = Flaky(status, guard=which == "guard")
    srv = ChatServer(flaky)
    try:
        cfg: dict[str, Any] = ({"name": "hallucination", "embeddings": False,
                                "judge": {"model": _model(srv.url), "sample_rate": 1.0}} if which == "hallucination"
                               else {"name": "guard", "model": _model(srv.url), "sample_rate": 1.0})
        sig = build_signals([cfg])[0]
        sampled, verdict = (("hallucination.judge_sampled", "hallucination.judge_flag") if which == "hallucination"
                            else ("guard.sampled", "guard.unsafe"))
        frame, cache = _frame(), SignalCache()
        out = compute_signals(frame, [sig], cache)  # before: ModelError (the whole run failed, exit 2)
        failed = np.arange(len(frame)) == 3
        assert np.isnan(out[verdict][failed]).all() and np.isnan(out[sampled][failed]).all()  # never 0 / safe
        if status == 400:  # one request refused: every other record is judged
            assert (out[verdict][~failed] == np.arange(len(frame))[~failed] % 2).all()
            assert (out[sampled][~failed] == 1.0).all()
        else:  # the server is failing: what was not answered is not judged; nothing is ever a verdict
            judged = out[sampled].to_numpy() == 1.0
            assert (out[verdict][judged] == np.arange(len(frame))[judged] % 2).all()
            assert np.isnan(out[verdict][~judged]).all()
        assert len(srv.prompts) <= len(frame) and len(set(srv.prompts)) == len(srv.prompts)  # each sent once at most
        flaky.broken, before = False, len(srv.prompts)
        again = compute_signals(frame, [sig], cache)  # the failed rows were not cached: asked again, now judged
        assert (again[sampled] == 1.0).all() and (again[verdict] == np.arange(len(frame)) % 2).all()
        assert len(srv.prompts) - before == int(np.isnan(out[sampled]).sum())
    finally:
        srv.close()


MONITOR = """\
name: flaky
source: {{kind: jsonl, path: {path}}}
window: {{size: 1h, end: 2026-11-01T01:00:00Z}}
drift: {{enabled: false}}
quality: {{enabled: false}}
tracking: {{enabled: false}}
signals:
  - {{name: guard, model: {{backend: openai, base_url: "{url}", model: judge, max_retries: 0, timeout_s: 10}},
     sample_rate: 1.0}}
alerts:
  rules:
    - {{metric: rate/guard.unsafe, op: ">", value: 0.9, min_coverage: 0.9}}
output_dir: {out}
"""


def test_monitor_run_survives_a_failing_guard_and_the_rule_is_not_evaluated(tmp_path: Path) -> None:
    from evalmon.config.monitor import load_monitor_text
    from evalmon.monitor.alerts import NOT_EVALUATED
    from evalmon.monitor.runner import run_monitor

    rows = [{"request_id": f"r{i}", "timestamp": f"2026-11-01T00:{i * 5:02d}:00Z", "prompt": f"q ({i})",
             "response": "It is in Rome."} for i in range(10)]
    (tmp_path / "t.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), "utf-8")
    srv = ChatServer(lambda p: 503)  # every guard call fails: before, the monitor run died (exit 2)
    try:
        cfg = load_monitor_text(textwrap.dedent(MONITOR.format(path=tmp_path / "t.jsonl", url=srv.url,
                                                               out=tmp_path / "out")), "m.yaml", base_dir=tmp_path)
        result = run_monitor(cfg, now=datetime(2026, 11, 1, 2, tzinfo=UTC))
    finally:
        srv.close()
    (w,) = result.windows
    assert w.records == 10 and len(srv.prompts) <= 4  # the first failure stops the rest (4 = concurrency in flight)
    assert w.metrics["coverage/guard.unsafe"] == 0.0
    assert [a.status for a in w.alerts] == [NOT_EVALUATED]  # not a pass, not 0 unsafe

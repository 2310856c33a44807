"""A judge or guard call that fails (HTTP 5xx after retries, a 4xx for one request, a timeout) leaves its record
*not judged* — NaN, coverage falls, never a verdict — instead of failing the whole monitor run; the others keep
their verdicts, each sampled record is sent at most once, and a failed row is not cached (a rerun asks again)."""

from __future__ import annotations

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

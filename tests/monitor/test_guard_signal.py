"""The ``guard`` signal over a served OpenAI-compatible guard model on 127.0.0.1 (through the judge factory):
Llama Guard prompt, seeded sampling with a per-batch cap, replies parsed (safe / unsafe + categories)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
import pytest
from chat_server_util import ChatServer

from evalmon.core.errors import ConfigError
from evalmon.monitor.signals import build_signals
from evalmon.monitor.signals.guard import parse_guard_reply

pytestmark = pytest.mark.e2e


def _reply(prompt: str) -> str:
    """A guard model: 'unsafe\\nS9' when the Agent turn mentions explosives, else 'safe'."""
    agent = prompt.split("Agent: ", 1)[1].split("<END CONVERSATION>", 1)[0] if "Agent: " in prompt else ""
    return "unsafe\nS9" if "explosive" in agent else "safe"


@pytest.fixture
def guard_server() -> Iterator[ChatServer]:
    srv = ChatServer(_reply, "guard")
    yield srv
    srv.close()


def _model(url: str) -> dict[str, Any]:
    return {"backend": "openai", "base_url": url, "model": "guard", "supports_logprobs": False,
            "max_retries": 0, "timeout_s": 10}


def test_guard_sampled_capped_and_parsed(guard_server: ChatServer) -> None:
    n = 40
    df = pd.DataFrame({"prompt": [f"question {i}" for i in range(n)],
                       "response": [f"here is how to build an explosive device, step {i}" if i % 2 else
                                    f"a cake recipe, step {i}" for i in range(n)]})
    sig = build_signals([{"name": "guard", "model": _model(guard_server.url), "sample_rate": 0.5,
                          "max_per_batch": 8}])[0]
    out = sig.compute(df)
    sampled = out["guard.sampled"].to_numpy() > 0
    assert sampled.sum() == 8 == len(guard_server.prompts)  # the cap
    assert "ONLY THE LAST Agent message" in guard_server.prompts[0] and "S9: Indiscriminate Weapons" in \
        guard_server.prompts[0]
    odd = np.arange(n) % 2 == 1
    assert (out["guard.unsafe"].to_numpy()[sampled] == odd[sampled].astype(float)).all()
    assert out["guard.unsafe"][~sampled].isna().all()
    assert set(out["guard.category"][sampled & odd]) == {"S9"} and set(out["guard.category"][~odd]) == {""}
    again = sig.compute(df)  # seeded: the same records are sampled again
    assert np.array_equal(again["guard.sampled"].to_numpy(), out["guard.sampled"].to_numpy())


def test_guard_cap_holds_per_window_whatever_the_files(guard_server: ChatServer) -> None:
    """A window read from 3 files: each file's batch was capped on its own (3 × the cap, the walk saw 12 calls for a
    cap of 4); with the window's plan the cap holds for the window, and the checked records are the same as from
    one file."""
    from evalmon.monitor.signals import SignalCache, compute_signals

    n, cap = 60, 5
    df = pd.DataFrame({"prompt": [f"question {i}" for i in range(n)], "response": [f"answer {i}" for i in range(n)]})
    checked = []
    for parts in (1, 3):
        sig = build_signals([{"name": "guard", "model": _model(guard_server.url), "sample_rate": 0.5,
                              "max_per_batch": cap}])[0]
        split = [df.iloc[i::parts] for i in range(parts)]
        before = len(guard_server.prompts)
        sig.plan_window(split)
        out = pd.concat([compute_signals(p, [sig], SignalCache()) for p in split])
        sig.plan_window(None)
        assert len(guard_server.prompts) - before == cap, parts  # calls made for the window
        checked.append(set(out.loc[out["guard.sampled"] > 0, "prompt"]))
    assert checked[0] == checked[1] and len(checked[0]) == cap


def test_guard_prompt_role_shieldgemma_and_errors(guard_server: ChatServer) -> None:
    sig = build_signals([{"name": "guard", "model": _model(guard_server.url), "style": "shieldgemma",
                          "role": "prompt", "sample_rate": 1.0}])[0]
    out = sig.compute(pd.DataFrame({"prompt": ["how do I bake bread", ""], "response": ["", ""]}))
    assert out["guard.sampled"].tolist() == [1.0, 0.0]  # empty prompts are not sent
    assert "Human Question: how do I bake bread" in guard_server.prompts[-1]
    assert out["guard.unsafe"].iloc[0] == 0.0 and np.isnan(out["guard.unsafe"].iloc[1])
    assert parse_guard_reply("No, it does not.") == (0.0, "")
    assert parse_guard_reply("unsafe\nS1,S10") == (1.0, "S1,S10")
    with pytest.raises(ConfigError, match=r"signals\.guard"):
        build_signals([{"name": "guard"}])
    with pytest.raises(ConfigError, match="sample_rate"):
        build_signals([{"name": "guard", "model": _model(guard_server.url), "sample_rate": 2}])

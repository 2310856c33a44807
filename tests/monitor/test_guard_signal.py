"""The ``guard`` signal over a served OpenAI-compatible guard model on 127.0.0.1 (through the judge factory):
Llama Guard prompt, seeded sampling with a per-batch cap, replies parsed (safe / unsafe + categories)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np
import pandas as pd
import pytest

from evalmon.core.errors import ConfigError
from evalmon.monitor.signals import build_signals
from evalmon.monitor.signals.guard import parse_guard_reply

pytestmark = pytest.mark.e2e


class GuardServer:
    """Chat completions of a guard model: 'unsafe\\nS9' when the Agent turn mentions explosives, else 'safe'."""

    def __init__(self) -> None:
        self.prompts: list[str] = []
        srv = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                self._send({"object": "list", "data": [{"id": "guard", "created": 1}]})

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                prompt = body["messages"][-1]["content"] if "messages" in body else body["prompt"]
                srv.prompts.append(prompt)
                agent = prompt.split("Agent: ", 1)[1].split("<END CONVERSATION>", 1)[0] if "Agent: " in prompt else ""
                reply = "unsafe\nS9" if "explosive" in agent else "safe"
                msg = {"role": "assistant", "content": reply}
                self._send({"choices": [{"index": 0, "finish_reason": "stop", "message": msg}],
                            "usage": {"prompt_tokens": 10, "completion_tokens": 3}})

            def _send(self, payload: dict[str, Any]) -> None:
                data = json.dumps(payload).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        class Quiet(ThreadingHTTPServer):
            daemon_threads = True

        self.httpd = Quiet(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def guard_server() -> Iterator[GuardServer]:
    srv = GuardServer()
    yield srv
    srv.close()


def _model(url: str) -> dict[str, Any]:
    return {"backend": "openai", "base_url": url, "model": "guard", "supports_logprobs": False,
            "max_retries": 0, "timeout_s": 10}


def test_guard_sampled_capped_and_parsed(guard_server: GuardServer) -> None:
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


def test_guard_prompt_role_shieldgemma_and_errors(guard_server: GuardServer) -> None:
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

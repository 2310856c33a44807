"""``openai`` backend against servers that answer 200 with something wrong: bad prompt logprobs, odd ``usage``,
redirects, a stream nobody asked for, a body that trickles in past ``timeout_s``. Each is a one-line
``ModelError`` (exit 2) or a number that stays right — never a traceback, never a silently wrong score.

Uses the stdlib fault server of ``test_openai_backend`` (a real HTTP server on 127.0.0.1).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from test_openai_backend import FakeServer, canned, make_lm

from evalmon.core.errors import ModelError
from evalmon.core.lm import GenRequest, LLRequest
from evalmon.harness.cache import ResponseCache
from evalmon.harness.engine import run_generate, run_loglikelihood

Tamper = Callable[[list[Any], list[Any]], tuple[list[Any], list[Any]]]


def char_echo(tamper: Tamper | None = None) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """An echo+logprobs server with one token per character (offsets = indices), prompt token i scoring
    ``-0.25·(1 + i % 3)``; ``tamper(token_logprobs, top_logprobs)`` spoils the lists after the probe."""
    calls = {"n": 0}

    def respond(payload: dict[str, Any]) -> dict[str, Any]:
        calls["n"] += 1
        tokens = [*payload["prompt"], "!"]
        lps: list[Any] = [None] + [-0.25 * (1 + i % 3) for i in range(1, len(tokens))]
        tops: list[Any] = [None] + [{tokens[i]: lps[i]} for i in range(1, len(tokens))]
        if tamper is not None and calls["n"] > 1:  # the capability probe sees a healthy server
            lps, tops = tamper(lps, tops)
        return {"choices": [{"index": 0, "text": "".join(tokens), "logprobs": {
            "tokens": tokens, "token_logprobs": lps, "top_logprobs": tops,
            "text_offset": list(range(len(tokens)))}}],
            "usage": {"prompt_tokens": len(tokens) - 1, "completion_tokens": 1}}

    return respond


@pytest.fixture
def fake() -> Iterator[FakeServer]:
    srv = FakeServer()
    yield srv
    srv.close()


def _set(i: int, value: Any) -> Tamper:
    def tamper(lps: list[Any], tops: list[Any]) -> tuple[list[Any], list[Any]]:
        lps[i] = value
        return lps, tops
    return tamper


def test_healthy_echo_sums_the_continuation(fake: FakeServer) -> None:
    fake.logprobs, fake.default = char_echo(), "logprobs"
    got = make_lm(fake.url).loglikelihood([LLRequest("ab", "cde")])[0]
    want = math.fsum(-0.25 * (1 + i % 3) for i in range(2, 5))  # tokens 2..4 are the continuation
    assert got.n_tokens == 3 and got.logprob == pytest.approx(want) and got.is_greedy


@pytest.mark.parametrize(("tamper", "why"), [
    (_set(-2, float("nan")), "nan"),
    (_set(-2, float("inf")), "inf"),
    (_set(-2, 3.5), "3.5"),  # a log-probability above 0
    (_set(-2, "oops"), "oops"),
    (lambda lps, tops: (lps[:3], tops[:3]), "3 prompt logprobs for a 5-token prompt"),
    (lambda lps, tops: (lps, tops[:2]), "top_logprobs"),
    (lambda lps, tops: (lps, [[t] for t in tops]), "top_logprobs"),
    (lambda lps, tops: (lps, [None] + [{"x": "high"} for _ in tops[1:]]), "top_logprobs"),
])
def test_invalid_prompt_logprobs_are_one_line_errors(fake: FakeServer, tamper: Tamper, why: str,
                                                     tmp_path: Path) -> None:
    """NaN/inf/positive/non-numeric logprobs, fewer logprobs than prompt tokens and a top_logprobs of the wrong
    shape used to give a wrong score, a ``cache.path`` error (NaN) or an internal error. Not retried."""
    fake.logprobs, fake.default = char_echo(tamper), "logprobs"
    lm = make_lm(fake.url)
    cache = ResponseCache(tmp_path / "c.sqlite")
    with pytest.raises(ModelError) as info:
        run_loglikelihood(lm, [LLRequest("ab", "cde")], cache)
    msg = str(info.value)
    assert f"server at {fake.url} returned invalid prompt logprobs" in msg and why in msg, msg
    assert info.value.exit_code == 2 and "\n" not in msg
    assert fake.paths("/completions") == 2  # the probe + one attempt: a server's bad numbers are not retried


def test_usage_fields_never_break_generation_or_go_negative(fake: FakeServer) -> None:
    """``usage`` is bookkeeping: negative counts are not summed (tokens/s went negative) and a garbage
    ``usage`` (a list, a string count) does not throw away a generated text (it was an internal error)."""
    bodies: list[Any] = [{"prompt_tokens": -5, "completion_tokens": -3}, {"prompt_tokens": "many"}, [1, 2],
                         {"prompt_tokens": 7, "completion_tokens": 2}]
    fake.default = "logprobs"
    fake.logprobs = lambda body: {**canned(body, "yes"), "usage": bodies.pop(0)}
    lm = make_lm(fake.url, mode="completions", concurrency=1)
    assert lm.generate([GenRequest(f"q{i}") for i in range(4)]) == ["yes"] * 4
    assert (lm.last_gen_stats.prompt_tokens, lm.last_gen_stats.generated_tokens) == (7, 2)
    assert fake.paths("/completions") == 4


def test_redirect_is_a_one_line_error_not_followed_nor_retried(fake: FakeServer) -> None:
    fake.default = "redirect"
    with pytest.raises(ModelError) as info:
        make_lm(fake.url).generate([GenRequest("hi")])
    msg = str(info.value)
    assert "HTTP 307 redirect to http://10.255.255.1:9/v1/completions" in msg and "model.base_url" in msg, msg
    assert fake.paths("/completions") == 1 and info.value.exit_code == 2


def test_stream_when_none_was_asked_is_named(fake: FakeServer) -> None:
    fake.default = "sse"
    with pytest.raises(ModelError) as info:
        make_lm(fake.url, mode="chat").generate([GenRequest("hi")])
    assert "event stream" in str(info.value) and fake.paths("/chat/completions") == 1


def test_timeout_s_bounds_a_response_that_trickles_in(fake: FakeServer, tmp_path: Path) -> None:
    """httpx's timeout is per read: a body arriving a byte at a time never tripped it (the run hung)."""
    lm = make_lm(fake.url, timeout_s=0.6, max_retries=1, concurrency=1, mode="completions")
    fake.script = ["ok", "trickle", "trickle"]
    cache = ResponseCache(tmp_path / "c.sqlite")
    reqs = [GenRequest("fast"), GenRequest("slow")]
    t0 = time.monotonic()
    with pytest.raises(ModelError, match=r"failed after 2 attempts: no response within timeout_s=0\.6"):
        run_generate(lm, reqs, cache)
    assert time.monotonic() - t0 < 5.0  # the body alone takes > 20 s
    assert len(cache.get_texts(lm.fingerprint.cache_key(), [r.key() for r in reqs])) == 1  # the finished one kept

"""``uncertainty`` and ``halludetect`` on one proxy model score a window's records once: the second signal reads
the first's ``token_logprobs`` call (``ProxyUncertaintySignal.token_logprobs``), with bit-identical results."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pandas.testing as pdt

from evalmon.core.lm import LLRequest, TokenLogprobs
from evalmon.monitor.signals.cache import compute_signals
from evalmon.monitor.signals.halludetect import HalluDetectSignal
from evalmon.monitor.signals.uncertainty import ProxyUncertaintySignal


class _CountingLM:
    """Stand-in proxy model: one token per response character (up to 12), log-probs from the characters — plus a
    term that depends on how many requests share the call, as the packed kernel's rounding does on which share a
    pack, so reusing results across different calls would show."""

    def __init__(self, name: str) -> None:
        self.name, self.calls, self.requests = name, 0, 0

    @property
    def fingerprint(self) -> _CountingLM:
        return self

    def cache_key(self) -> str:
        return self.name

    def token_logprobs(self, reqs: list[LLRequest]) -> list[TokenLogprobs]:
        self.calls += 1
        self.requests += len(reqs)
        return [TokenLogprobs(tuple(-0.25 - (ord(ch) % 11) / 3 - 1e-9 * len(reqs) for ch in r.continuation[:12]),
                              tuple(range(len(r.continuation[:12])))) for r in reqs]


class _Encoder:
    """Stand-in for MiniLM (not what is tested here): a unit vector from each text's letters."""

    def encode(self, texts: list[str]) -> np.ndarray:
        v = np.array([[t.count(c) + 1.0 for c in "aeiostn"] for t in texts])
        return v / np.linalg.norm(v, axis=1, keepdims=True)


def _frame() -> pd.DataFrame:
    return pd.DataFrame({"prompt": [f"What is {i} times {i + 3}?" for i in range(9)] + ["Name a colour.", "Hi"],
                         "response": [f"It is {i * (i + 3)}, I think." for i in range(9)] + ["Teal.", ""]})


def _pair(lm_u: _CountingLM, lm_h: _CountingLM, **detector: str) -> list:
    hd = HalluDetectSignal(proxy=ProxyUncertaintySignal(lm=lm_h), **detector)  # type: ignore[arg-type]
    hd.embedder = _Encoder()  # type: ignore[assignment]
    return [ProxyUncertaintySignal(lm=lm_u), hd]  # type: ignore[arg-type]


def test_uncertainty_and_halludetect_share_one_proxy_call_per_window_bit_identically() -> None:
    apart = (_CountingLM("apart-u"), _CountingLM("apart-h"))  # two models: nothing shared
    alone = compute_signals(_frame(), _pair(*apart))
    assert [lm.calls for lm in apart] == [1, 1]

    lm = _CountingLM("model-a")
    for order in (slice(None), slice(None, None, -1)):  # either signal may come first
        lm.calls = lm.requests = 0
        signals = _pair(lm, lm)[order]
        shared = compute_signals(_frame(), signals)
        assert lm.calls == 1 and lm.requests == 10  # 11 records, the empty response is not scored
        pdt.assert_frame_equal(shared[alone.columns], alone, check_exact=True)
        assert shared["halludetect.score"].notna().sum() == 10

    again = compute_signals(_frame(), _pair(lm, lm))  # the next window calls again: nothing stale is read
    assert lm.calls == 2
    pdt.assert_frame_equal(again[alone.columns], alone, check_exact=True)


def test_calls_that_differ_are_not_shared() -> None:
    """halludetect v2 scores the responses with and without the question in one call: not uncertainty's call, so
    each signal calls the model (as before), and neither reads the other's numbers."""
    lm = _CountingLM("model-v2")
    sigs = _pair(lm, lm, artifact="builtin:halludetect-v2.json")
    out = compute_signals(_frame(), sigs)
    assert lm.calls == 2 and lm.requests == 10 + 20
    alone = compute_signals(_frame(), _pair(_CountingLM("u"), _CountingLM("h"), artifact="builtin:halludetect-v2.json"))
    pdt.assert_frame_equal(out[alone.columns], alone, check_exact=True)

    lone = _CountingLM("lone")  # one proxy signal on its model: every window is a call of its own
    sig = ProxyUncertaintySignal(lm=lone)  # type: ignore[arg-type]
    first = sig.compute(_frame())
    pdt.assert_frame_equal(sig.compute(_frame()), first, check_exact=True)
    assert lone.calls == 2

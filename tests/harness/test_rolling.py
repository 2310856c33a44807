"""Rolling loglikelihood (perplexity) equals lm-eval's loglikelihood_rolling per document."""

from __future__ import annotations

from pathlib import Path

import pytest

from evalmon.backends.hf.model import HFCausalLM, HFSettings, rolling_windows
from evalmon.core.lm import RollingRequest
from evalmon.harness.cache import ResponseCache
from evalmon.harness.engine import run_rolling

TEXTS = [
    "Short text.",
    "Permission is hereby granted, free of charge, to any person obtaining a copy of this software. " * 12,
    "x",
    "The GNU General Public License is a free, copyleft license for software and other kinds of works. " * 5,
]


def test_windows_match_lm_eval_utils() -> None:
    from lm_eval.utils import get_rolling_token_windows, make_disjoint_window

    for n in [0, 1, 5, 16, 17, 40, 100]:
        toks = list(range(10, 10 + n))
        for max_len in [4, 16, 33]:
            theirs = [make_disjoint_window(w) for w in get_rolling_token_windows(toks, 1, max_len, 1)]
            assert rolling_windows(toks, 1, max_len) == [(list(a), list(b)) for a, b in theirs]


@pytest.mark.parametrize("max_length", [None, 32])
def test_rolling_matches_lm_eval(tiny_checkpoint: Path, max_length: int | None, tmp_path: Path) -> None:
    from lm_eval.api.instance import Instance
    from lm_eval.models.huggingface import HFLM

    extra = {"max_length": max_length} if max_length else {}
    ours = HFCausalLM(HFSettings(path=str(tiny_checkpoint), batch_size=4, max_length=max_length))
    lm = HFLM(pretrained=str(tiny_checkpoint), batch_size=4, dtype="float32", device="cpu", **extra)
    theirs = lm.loglikelihood_rolling([Instance(request_type="loglikelihood_rolling", doc={}, arguments=(t,), idx=i)
                                       for i, t in enumerate(TEXTS)], disable_tqdm=True)
    cache = ResponseCache(tmp_path / "c.sqlite")
    mine, stats = run_rolling(ours, [RollingRequest(t) for t in TEXTS], cache)
    assert stats.computed == len(TEXTS)
    for a, b in zip(mine, theirs, strict=True):
        assert abs(a.logprob - b) <= 1e-4
    again, stats2 = run_rolling(ours, [RollingRequest(t) for t in TEXTS], cache)
    assert stats2.computed == 0 and [r.logprob for r in again] == [r.logprob for r in mine]

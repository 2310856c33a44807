"""Response cache + engine runner: dedupe, resume after interrupt, nothing recomputed on rerun."""

from __future__ import annotations

from pathlib import Path

import pytest

from evalmon.backends.hf.model import HFCausalLM, HFSettings
from evalmon.core.lm import EngineStats, LLRequest
from evalmon.harness.cache import ResponseCache
from evalmon.harness.engine import run_loglikelihood


class CountingLM:
    """Wraps the real tiny model and counts requests forwarded; can raise Ctrl-C after N batches."""

    def __init__(self, inner: HFCausalLM, interrupt_after_batches: int | None = None) -> None:
        self.inner = inner
        self.fingerprint = inner.fingerprint
        self.capabilities = inner.capabilities
        self.forwarded = 0
        self.interrupt_after = interrupt_after_batches

    def token_count(self, text: str) -> int:
        return self.inner.token_count(text)

    def stats(self) -> EngineStats:
        return self.inner.stats()

    def loglikelihood(self, reqs, progress=None):  # type: ignore[no-untyped-def]
        batches = 0

        def on_batch(done):  # type: ignore[no-untyped-def]
            nonlocal batches
            self.forwarded += len(done)
            if progress:
                progress(done)
            batches += 1
            if self.interrupt_after is not None and batches >= self.interrupt_after:
                raise KeyboardInterrupt

        self.inner.batch_size = 2
        return self.inner.loglikelihood(reqs, progress=on_batch)


def _requests() -> list[LLRequest]:
    reqs = [LLRequest(f"Question {i}: what is {i}+{i}?\nAnswer:", f" {c}") for i in range(6) for c in "ABCD"]
    return reqs + reqs[:5]  # duplicates


@pytest.mark.parametrize("scoring", ["packed", "plain"])
def test_dedupe_cache_and_resume(tiny_checkpoint: Path, tmp_path: Path, scoring: str) -> None:
    # small token budget / batch so the requests span several packs or batches
    lm = HFCausalLM(HFSettings(path=str(tiny_checkpoint), scoring=scoring, token_budget=40))
    reqs = _requests()
    reference, stats = run_loglikelihood(lm, reqs, None)
    assert stats.unique == 24 and stats.computed == 24 and stats.requests == 29
    assert reference[24].logprob == reference[0].logprob  # duplicate answered from the same score

    cache = ResponseCache(tmp_path / "cache.sqlite")
    interrupted = CountingLM(lm, interrupt_after_batches=2)  # MMLU-style rows: 4 requests share a row
    with pytest.raises(KeyboardInterrupt):
        run_loglikelihood(interrupted, reqs, cache)
    saved = cache.count(lm.fingerprint.cache_key())
    assert 0 < saved < 24  # what was scored before Ctrl-C is on disk

    resumed = CountingLM(lm)
    advanced: list[int] = []
    results, stats = run_loglikelihood(resumed, reqs, cache, advanced.append)
    assert resumed.forwarded == 24 - saved  # only the rest is computed
    assert stats.cached == saved and sum(advanced) == len(reqs)
    assert [r.logprob for r in results] == pytest.approx([r.logprob for r in reference], abs=1e-5)

    rerun = CountingLM(lm)
    results2, stats2 = run_loglikelihood(rerun, reqs, cache)
    assert rerun.forwarded == 0 and stats2.computed == 0
    assert [r.logprob for r in results2] == [r.logprob for r in results]


def test_cache_keyed_by_model(tiny_checkpoint: Path, tiny_lora: Path, tmp_path: Path) -> None:
    cache = ResponseCache(tmp_path / "c.sqlite")
    base = HFCausalLM(HFSettings(path=str(tiny_checkpoint)))
    tuned = CountingLM(HFCausalLM(HFSettings(path=str(tiny_checkpoint), adapter=str(tiny_lora))))
    reqs = _requests()[:8]
    run_loglikelihood(base, reqs, cache)
    run_loglikelihood(tuned, reqs, cache)
    assert tuned.forwarded == 8  # a different model never reads another model's scores


def test_unwritable_cache_is_a_clear_error(tmp_path: Path) -> None:
    from evalmon.core.errors import OutputError

    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(OutputError, match=r"cache\.path"):
        ResponseCache(blocker / "sub" / "cache.sqlite")

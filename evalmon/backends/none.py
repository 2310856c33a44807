"""``none`` backend: no model, for suites whose tasks score existing outputs (e.g. vendor transcripts).

It has no capabilities, so the harness refuses a task that sends requests before anything runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from evalmon.core.errors import ModelError
from evalmon.core.lm import EngineStats, LLRequest, LLResult, ModelFingerprint


class NoModel:
    fingerprint = ModelFingerprint(backend="none", model="none", dtype="n/a", device="n/a", bos_policy="n/a",
                                   max_length=0, batch_size=0)
    capabilities: frozenset[str] = frozenset()

    def loglikelihood(self, reqs: Sequence[LLRequest], progress: Any = None) -> list[LLResult]:
        raise ModelError("this suite has no model (model.backend: none) but a task asks for loglikelihoods",
                         hint="set model.backend to hf/openai, or keep only tasks that score existing outputs")

    def stats(self) -> EngineStats:
        return EngineStats()

    def token_count(self, text: str) -> int:
        return 0

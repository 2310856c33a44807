"""Imports every task module so it registers its tasks and groups (see ``base._ensure_loaded``).

Cheap by design: the task modules import no torch/transformers/datasets at module level.
"""

from __future__ import annotations

from evalmon.tasks import (
    asr,
    bbh,
    classification,
    hellaswag,
    medical,
    mmlu,
    mtbench,
    perplexity,
    translation,
    truthfulqa,
    truthfulqa_gen,
)

__all__ = ["asr", "bbh", "classification", "hellaswag", "medical", "mmlu", "mtbench", "perplexity", "translation",
           "truthfulqa", "truthfulqa_gen"]

"""Imports every task module so it registers its tasks and groups (see ``base._ensure_loaded``).

Cheap by design: the task modules import no torch/transformers/datasets at module level.
"""

from __future__ import annotations

from evalmon.tasks import hellaswag, medical, mmlu, truthfulqa

__all__ = ["hellaswag", "medical", "mmlu", "truthfulqa"]

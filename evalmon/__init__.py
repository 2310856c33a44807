"""evalmon: evaluate fine-tuned LLMs with lm-eval-equal numbers, monitor them, gate regressions.

The public Python API mirrors the CLI (``evalmon.api``): ``load_suite``, ``run_suite``, ``load_monitor``,
``run_monitor``, ``compare``, ``gate``; the contracts (``LM``, request types, ``ModelFingerprint``, ``Task``)
and the one registry (``evalmon.registry.tasks.register(...)`` etc.) for plugins. Names load on first use,
so ``import evalmon`` stays cheap (no torch, transformers, mlflow or pandas).
"""

from __future__ import annotations

import importlib
from typing import Any

from evalmon.core.version import __version__

_LAZY = {
    "load_suite": "evalmon.api", "run_suite": "evalmon.api", "load_monitor": "evalmon.api",
    "run_monitor": "evalmon.api", "compare": "evalmon.api",
    "LM": "evalmon.core.lm", "LLRequest": "evalmon.core.lm", "LLResult": "evalmon.core.lm",
    "GenRequest": "evalmon.core.lm", "RollingRequest": "evalmon.core.lm", "ModelFingerprint": "evalmon.core.lm",
    "TranscribeRequest": "evalmon.core.lm", "Transcription": "evalmon.core.lm", "EngineStats": "evalmon.core.lm",
    "RunResult": "evalmon.core.results", "TaskResult": "evalmon.core.results",
    "Task": "evalmon.tasks.base", "Stage": "evalmon.tasks.base", "StageOutputs": "evalmon.tasks.base",
    "EvalmonError": "evalmon.core.errors",
}

__all__ = ["__version__", "gate", "registry", *_LAZY]


def __getattr__(name: str) -> Any:
    if name == "gate":  # the package evalmon.gate is itself callable: evalmon.gate(baseline, candidate, ...)
        return importlib.import_module("evalmon.gate")
    if name == "registry":
        return importlib.import_module("evalmon.core.registry")
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'evalmon' has no attribute {name!r}")

"""evalmon: evaluate fine-tuned LLMs with lm-eval-equal numbers, monitor them, gate regressions.

The public Python API mirrors the CLI: ``run_suite``, ``load_suite``, ``list_tasks``.
Heavy libraries (torch, transformers, mlflow) are imported lazily by the functions that need them.
"""

from __future__ import annotations

from evalmon.core.version import __version__

__all__ = ["__version__"]

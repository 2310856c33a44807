"""Where the installed lm-eval keeps its task YAMLs and prompts, found without importing ``lm_eval``.

Task loaders read lm-eval's own files from here (BBH's chain-of-thought prompts) and the parity export
(``evalmon.harness.parity``) ``include:``s its built-in YAMLs.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from evalmon.core.errors import ConfigError


def lmeval_tasks_dir() -> Path:
    """The installed ``lm_eval/tasks`` folder (found without importing lm_eval's heavy modules)."""
    spec = importlib.util.find_spec("lm_eval")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError("lm-eval is not installed", hint="pip install 'lm-eval==0.4.13'")
    return Path(next(iter(spec.submodule_search_locations))) / "tasks"


__all__ = ["lmeval_tasks_dir"]

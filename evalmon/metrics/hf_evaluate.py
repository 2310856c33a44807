"""Metrics from the Hugging Face ``evaluate`` library, named in a suite as ``{evaluate: <name>}``.

``evaluate.load(<name>)`` fetches the metric's script from the hub (or its cache); offline and
uncached that always fails, so the failure becomes one ``ConfigError`` line saying why and what to
use instead. ``<name>`` may also be a local metric folder (``evaluate.load(<dir>)`` works offline).
``import evaluate`` costs ~5 s, so it happens only when a suite names such a metric.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from evalmon.core.errors import ConfigError
from evalmon.data.hub import offline_env

HINT = ("use a built-in metric (bleu, chrf, ter), a local metric folder ({evaluate: ./my_metric}), "
        "or run where the Hugging Face hub is reachable once to cache it")


def load_metric(name: str, task: str, base_dir: Path | None = None) -> Any:
    """The loaded ``evaluate`` module for ``name`` (hub id or local folder), or a one-line ConfigError."""
    local = Path(name).expanduser()
    if not local.is_absolute() and base_dir is not None and (Path(base_dir) / local).exists():
        local = Path(base_dir) / local
    try:
        import evaluate
    except ImportError:
        raise ConfigError(f"{task}: metric {{evaluate: {name}}} needs the evaluate package",
                          hint="pip install evaluate") from None
    try:
        return evaluate.load(str(local) if local.exists() else name)
    except Exception as e:  # FileNotFoundError, ConnectionError, ImportError of a script's dependency, ...
        var = offline_env()
        why = (f"the Hugging Face hub is offline ({var}=1) and the metric script is not cached" if var
               else " ".join(f"{type(e).__name__}: {e}".split())[:200])
        raise ConfigError(f"{task}: evaluate metric {name!r} cannot be loaded: {why}", hint=HINT) from None


def compute(module: Any, predictions: Sequence[str], references: Sequence[Sequence[str]]) -> dict[str, float]:
    """Numeric outputs of ``module.compute``; one reference stream is passed as a flat list of strings."""
    refs: Any = list(references[0]) if len(references) == 1 else [list(r) for r in zip(*references, strict=True)]
    out = module.compute(predictions=list(predictions), references=refs) or {}
    return {k: float(v) for k, v in out.items() if isinstance(v, int | float) and not isinstance(v, bool)}


def metric_label(name: str) -> str:
    """``sacrebleu`` → ``sacrebleu``; ``./metrics/my_metric`` → ``my_metric``."""
    return Path(name).name or name

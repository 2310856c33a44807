"""Hugging Face hub loader: the exact dataset ids/configs/splits lm-eval's YAML files use.

``datasets`` is imported lazily (importing it costs ~1 s). Every failure — offline mode, no network,
unknown id, gated dataset, a dataset script the installed ``datasets`` no longer runs — becomes one
:class:`~evalmon.core.errors.DataError` saying the hub is unreachable and how to use a local mirror instead.
"""

from __future__ import annotations

import os
import sys
from functools import lru_cache
from typing import Any

from evalmon.core.errors import DataError

_TRUE = {"1", "ON", "YES", "TRUE"}


def offline_env() -> str | None:
    """The offline variable that is set (``HF_HUB_OFFLINE`` / ``HF_DATASETS_OFFLINE``), if any."""
    for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"):
        if os.environ.get(var, "").upper() in _TRUE:
            return var
    return None


def _unreachable(task: str, dataset: str, reason: str) -> DataError:
    return DataError(
        f"{task}: the Hugging Face hub is unreachable for {dataset} ({reason})",
        hint="set data.data_dir to a local mirror laid out like shared/benchmarks",
    )


def load_hub_rows(path: str, name: str | None, split: str, *, task: str) -> tuple[dict[str, Any], ...]:
    """Rows of ``datasets.load_dataset(path, name, split=split)`` as plain dicts (cached)."""
    dataset = f"{path}" + (f":{name}" if name else "") + f" split={split}"
    var = offline_env()
    if var is not None and "datasets" in sys.modules:
        # The offline flag was set after datasets read its config: it would still go online
        # (and retry for ~25 s), so honour the variable here.
        import datasets

        if not datasets.config.HF_HUB_OFFLINE:
            raise _unreachable(task, dataset, f"{var}=1 is set")
    try:
        return _load(path, name, split)
    except DataError:
        raise
    except Exception as e:  # anything datasets/huggingface_hub/fsspec raise
        reason = f"{var}=1 is set" if var else " ".join(f"{type(e).__name__}: {e}".split())[:300]
        raise _unreachable(task, dataset, reason) from None


@lru_cache(maxsize=256)
def _load(path: str, name: str | None, split: str) -> tuple[dict[str, Any], ...]:
    import datasets

    ds = datasets.load_dataset(path, name, split=split)
    return tuple(dict(row) for row in ds)

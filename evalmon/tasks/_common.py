"""Small helpers shared by the task modules (source selection, few-shot checks, hub rows)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from evalmon.core.errors import ConfigError, DataError
from evalmon.data.hub import load_hub_rows
from evalmon.data.schema import Rows
from evalmon.tasks.base import MCDoc, TaskOptions


def zero_shot_only(task: str, options: TaskOptions) -> int:
    """Tasks whose lm-eval few-shot pool we cannot reproduce exactly (random sampler over a train
    split we do not mirror) accept ``num_fewshot`` None or 0 only."""
    if options.num_fewshot not in (None, 0):
        raise ConfigError(
            f"{task} supports num_fewshot=0 only (got {options.num_fewshot})",
            hint="lm-eval samples its few-shot examples at random from a train split that is not mirrored",
        )
    return 0


def check_limit(task: str, limit: int | None) -> int | None:
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
        raise ConfigError(f"{task}: limit must be a non-negative integer (got {limit!r})")
    return limit


def hub_rows(
    task: str,
    dataset: str,
    config: str | None,
    split: str,
    make_id: Callable[[int, dict[str, Any]], str],
) -> Rows:
    """Rows of a hub split, with ids built by ``make_id(index, row)``."""
    rows = load_hub_rows(dataset, config, split, task=task)
    source = f"hub:{dataset}" + (f":{config}" if config else "") + f"/{split}"
    return Rows(rows, tuple(make_id(i, r) for i, r in enumerate(rows)), source)


def data_dir_of(options: TaskOptions) -> Path | None:
    return Path(options.data_dir).expanduser() if options.data_dir is not None else None


def to_docs(rows: Rows, render: Callable[[dict[str, Any], str], MCDoc], *, task: str) -> tuple[MCDoc, ...]:
    """Render every row; a row the renderer cannot handle becomes a DataError naming it."""
    docs: list[MCDoc] = []
    for row, doc_id in zip(rows.rows, rows.ids, strict=True):
        try:
            docs.append(render(row, doc_id))
        except DataError:
            raise
        except (KeyError, IndexError, TypeError, ValueError, AttributeError) as e:
            raise DataError(
                f"{task}: cannot render row {doc_id} from {rows.source}: {type(e).__name__}: {e}"
            ) from None
    return tuple(docs)

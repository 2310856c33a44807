"""HellaSwag (Zellers et al.), validation split, 0-shot — mirrors lm-eval 0.4.13 ``tasks/hellaswag``.

Row schema (``Rowan/hellaswag``): ``activity_label``, ``ctx_a``, ``ctx_b``, ``ctx``, ``endings`` [4],
``label`` (a string "0".."3").

lm-eval's ``process_docs`` (reproduced in :func:`doc_from_row`)::

    query   = preprocess(activity_label + ": " + ctx_a + " " + ctx_b.capitalize())
    choices = [preprocess(e) for e in endings]
    gold    = int(label)

where ``preprocess`` strips, turns " [title]" into ". ", deletes every ``[...]`` and replaces double
spaces once. ``doc_to_text`` = query, one request per ending: ``(query, " " + ending)``; metrics acc
and acc_norm (length-normalised by characters).

Local source: ``<data_dir>/hellaswag/klosax-hellaswag_text_data/hellaswag_val_full.txt.bz2``, six
lines per item — ``activity_label + ": " + ctx``, the gold label, then the four endings (the
exporter already applied an lm-eval-like preprocess). It is mapped to the hub schema as
``activity_label`` = text before the first ": ", ``ctx_a`` = the rest, ``ctx_b`` = "" (lm-eval's
``ctx_a + " " + ""`` then loses the trailing space in ``preprocess``).

**Caveat**: the text export loses the ``ctx_a``/``ctx_b`` split, so the first letter of ``ctx_b`` is
not capitalised as lm-eval does on the hub rows (e.g. "...on a roof. he" instead of "... He").
Numbers on the local export can therefore differ slightly from hub-based lm-eval numbers; parity
with lm-eval holds on the same rows (see :mod:`evalmon.harness.parity`). Document ids: ``validation/<index>``.

Few-shot: lm-eval samples at random from the train split, which is not mirrored → 0-shot only.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from evalmon.core import registry
from evalmon.data.local import malformed, read_lines, require_file
from evalmon.data.schema import LMEvalExport, Rows
from evalmon.tasks._chat import multiple_choice
from evalmon.tasks._common import check_limit, data_dir_of, hub_rows, to_docs, zero_shot_only
from evalmon.tasks.base import MCDoc, MultipleChoiceTask, TaskOptions

NAME = "hellaswag"
HUB_DATASET = "Rowan/hellaswag"
LOCAL_FILE = "hellaswag/klosax-hellaswag_text_data/hellaswag_val_full.txt.bz2"
LINES_PER_ITEM = 6


def preprocess(text: str) -> str:
    """lm-eval's ``hellaswag/utils.py::preprocess``, verbatim."""
    text = text.strip()
    # NOTE: Brackets are artifacts of the WikiHow dataset portion of HellaSwag.
    text = text.replace(" [title]", ". ")
    text = re.sub("\\[.*?\\]", "", text)
    text = text.replace("  ", " ")
    return text


def doc_from_row(row: dict[str, Any], doc_id: str) -> MCDoc:
    """``Rowan/hellaswag`` row → MCDoc via lm-eval's ``process_docs``."""
    ctx = row["ctx_a"] + " " + row["ctx_b"].capitalize()
    endings = tuple(preprocess(e) for e in row["endings"])
    gold = int(row["label"])
    if not 0 <= gold < len(endings):
        raise ValueError(f"label {gold} out of range for {len(endings)} endings")
    return MCDoc(id=doc_id, query=preprocess(row["activity_label"] + ": " + ctx), choices=endings, gold=gold)


def load_local(data_dir: Path) -> Rows:
    """The klosax 6-lines-per-item text export → hub-schema rows (see the module caveat)."""
    path = require_file(data_dir, LOCAL_FILE, task=NAME)
    lines = read_lines(path)
    if len(lines) % LINES_PER_ITEM:
        raise malformed(
            path,
            f"line {len(lines)}",
            f"{len(lines)} lines is not a multiple of {LINES_PER_ITEM} (header, label, 4 endings)",
        )
    rows: list[dict[str, Any]] = []
    for start in range(0, len(lines), LINES_PER_ITEM):
        header, label, *endings = lines[start : start + LINES_PER_ITEM]
        activity, sep, ctx = header.partition(": ")
        if not sep:
            raise malformed(path, f"line {start + 1}", "expected 'activity_label: context'")
        if label.strip() not in {"0", "1", "2", "3"}:
            raise malformed(path, f"line {start + 2}", f"label must be 0..3, got {label!r}")
        rows.append(
            {
                "activity_label": activity,
                "ctx_a": ctx,
                "ctx_b": "",
                "ctx": ctx,
                "endings": list(endings),
                "label": label.strip(),
            }
        )
    return Rows(tuple(rows), tuple(f"validation/{i}" for i in range(len(rows))), str(path))


def load_rows(data_dir: Path | None) -> Rows:
    if data_dir is not None:
        return load_local(data_dir)
    return hub_rows(NAME, HUB_DATASET, None, "validation", lambda i, _r: f"validation/{i}")


def build(options: TaskOptions) -> MultipleChoiceTask:
    zero_shot_only(NAME, options)
    rows = load_rows(data_dir_of(options)).head(check_limit(NAME, options.limit))
    return multiple_choice(
        options,
        name=NAME,
        source=rows.source,
        documents=to_docs(rows, doc_from_row, task=NAME),
        scoring="acc",
        lm_eval_task=NAME,
    )


def lmeval_export(
    name: str, data_dir: Path | None, limit: int | None, num_fewshot: int | None
) -> LMEvalExport:
    zero_shot_only(name, TaskOptions(num_fewshot=num_fewshot))
    return LMEvalExport(
        builtin_yaml="hellaswag/hellaswag.yaml",
        splits={"validation": load_rows(data_dir).head(limit)},
        split_config={"training_split": None, "validation_split": "validation", "test_split": None},
    )


registry.tasks.add(
    NAME,
    build,
    family="hellaswag",
    local_source=LOCAL_FILE,
    hub_source=f"{HUB_DATASET} (validation)",
    default_fewshot=0,
    lmeval_export=lmeval_export,
)

"""Training rows that evalmon does not evaluate, and the proof of it.

The medical suite evaluates the first ``limit`` rows of MedMCQA's dev file (``evalmon run … --limit N``
keeps the head of each task). The training set is the rest of that file, minus every row whose question
text also occurs anywhere in what the suite evaluates at that limit: MedMCQA repeats some questions under
different ids, and a question could also appear in another task's prompts. The evaluated side is built
by evalmon itself (suite file → ``--limit`` override → the same task objects ``evalmon run`` builds), so
the proof covers exactly the prompts the run scores, few-shot examples included.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evalmon.config.suite import apply_overrides, load_suite
from evalmon.harness.run import plan_tasks
from evalmon.tasks.base import MCDoc, build_task
from evalmon.tasks.medical import LETTERS, MEDMCQA, load_rows, medmcqa_doc

_SPACE = re.compile(r"\s+")


def norm(text: str) -> str:
    """Case- and whitespace-insensitive form used for the text-overlap checks."""
    return _SPACE.sub(" ", text).strip().lower()


N = 5  # word n-grams of the substring pre-filter


def _grams(words: list[str]) -> set[int]:
    return {hash(tuple(words[i:i + N])) for i in range(len(words) - N + 1)}


@dataclass
class Evaluated:
    """What ``evalmon run <suite> --limit N`` scores: every document id and every prompt text."""

    ids: dict[str, set[str]] = field(default_factory=dict)  # task -> document ids
    texts: set[str] = field(default_factory=set)  # normalised contexts / continuations / texts
    _blob: str = ""
    _grams: set[int] = field(default_factory=set)

    @property
    def n_docs(self) -> int:
        return sum(len(v) for v in self.ids.values())

    def index(self) -> None:
        self._blob = "\x00".join(sorted(self.texts))
        self._grams = set().union(*(_grams(t.split(" ")) for t in self.texts))

    def contains(self, text: str) -> bool:
        """Whether ``norm(text)`` is a substring of any evaluated text.

        Exact (``in`` on the joined texts); word 5-grams only skip the scan when they prove absence: a
        substring's inner words (all but the first and last, which may be word fragments) are whole words
        of the text that contains it, so every inner 5-gram is one of its 5-grams.
        """
        needle = norm(text)
        inner = needle.split(" ")[1:-1]
        if len(inner) >= N and not _grams(inner) <= self._grams:
            return False
        return needle in self._blob


def evaluated(suite: Path, limit: int) -> tuple[Evaluated, Path]:
    """The documents the suite evaluates with ``--limit limit`` (all of its tasks) and its data dir."""
    cfg = apply_overrides(load_suite(suite), limit=limit, no_tracking=True)
    if cfg.data.data_dir is None:
        raise SystemExit(f"{suite}: data.data_dir is null; this example reads the local benchmark mirror")
    planned, _groups = plan_tasks(cfg)
    out = Evaluated()
    for p in planned:
        task = build_task(p.name, p.options)
        ids = out.ids.setdefault(p.name, set())
        for doc in task.docs():
            ids.add(str(doc.id))
            for req in task.requests(doc):
                for attr in ("context", "continuation", "text"):
                    value = getattr(req, attr, None)
                    if isinstance(value, str) and value.strip():
                        out.texts.add(norm(value))
    out.index()
    return out, Path(cfg.data.data_dir)


@dataclass
class TrainingSet:
    rows: list[dict[str, Any]]
    source: str
    skipped_evaluated: int  # the head of the file that the run evaluates
    skipped_duplicate_text: int  # later rows whose question text occurs in an evaluated prompt


def training_rows(ev: Evaluated, data_dir: Path, limit: int) -> TrainingSet:
    """MedMCQA dev rows after the evaluated head whose question text appears in no evaluated prompt."""
    rows = load_rows(MEDMCQA, data_dir)
    evaluated_ids = set().union(*ev.ids.values())
    kept, dup = [], 0
    for row, doc_id in list(zip(rows.rows, rows.ids, strict=True))[limit:]:
        if doc_id in evaluated_ids:
            continue
        if ev.contains(row["question"]):
            dup += 1
            continue
        kept.append({**row, "id": doc_id})
    return TrainingSet(kept, rows.source, skipped_evaluated=min(limit, len(rows.rows)), skipped_duplicate_text=dup)


def assert_disjoint(train: TrainingSet, ev: Evaluated) -> dict[str, int]:
    """Fail loudly unless no training id, question or rendered training prompt occurs in the evaluation."""
    evaluated_ids = set().union(*ev.ids.values())
    shared_ids = {r["id"] for r in train.rows} & evaluated_ids
    assert not shared_ids, f"training rows share ids with evaluated documents: {sorted(shared_ids)[:5]}"
    medmcqa_questions = {t for t in ev.texts if t.startswith("question: ")}
    shared_q = [r["id"] for r in train.rows if ev.contains(r["question"])]
    assert not shared_q, f"training questions occur in evaluated prompts: {shared_q[:5]}"
    shared_prompts = [r["id"] for r in train.rows if norm(medmcqa_doc(r, r["id"]).query) in medmcqa_questions]
    assert not shared_prompts, f"rendered training prompts equal evaluated prompts: {shared_prompts[:5]}"
    return {"evaluated_documents": ev.n_docs, "evaluated_medmcqa": len(ev.ids.get("medmcqa", ())),
            "training_rows": len(train.rows), "shared_ids": 0, "shared_question_texts": 0,
            "shared_prompts": 0, "skipped_duplicate_text": train.skipped_duplicate_text}


def render_example(row: dict[str, Any], rng: random.Random) -> tuple[str, str]:
    """(context, continuation) exactly as evalmon's medmcqa task renders a row, options shuffled.

    Shuffling the four options (and moving the gold letter with them) makes the answer letter uniform,
    so the adapter cannot gain accuracy by learning MedMCQA's letter prior (A is gold in 32% of rows).
    """
    options = [row["opa"], row["opb"], row["opc"], row["opd"]]
    order = list(range(4))
    rng.shuffle(order)
    shuffled = {**row, **{k: options[i] for k, i in zip(("opa", "opb", "opc", "opd"), order, strict=True)},
                "cop": order.index(int(row["cop"]))}
    doc: MCDoc = medmcqa_doc(shuffled, str(row["id"]))
    return doc.query, " " + LETTERS[doc.gold]

"""Prompt parity with lm-eval 0.4.13: lm-eval's own task configs render our rows into the same requests.

:func:`evalmon.harness.parity.export_lmeval_tasks` writes our rows plus YAMLs that ``include:`` lm-eval's
built-in configs; lm-eval then builds its requests (``build_all_requests``) and we compare every
``(context, continuation)`` pair, in order, and the gold index with ``task.requests(doc)``.
No model is involved.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from evalmon.harness.parity import PREFIX, export_lmeval_tasks
from evalmon.tasks.base import MultipleChoiceTask, TaskOptions, build_task

BENCH = Path(__file__).resolve().parents[3] / "shared" / "benchmarks"
LIMIT = 10
TASKS = [
    "mmlu_anatomy",
    "mmlu_college_medicine",
    "hellaswag",
    "truthfulqa_mc1",
    "truthfulqa_mc2",
    "medqa",
    "medmcqa",
    "pubmedqa",
]

pytestmark = pytest.mark.usefixtures("benchmarks_dir")  # missing data fails, never skips


@pytest.fixture(scope="module")
def lm_tasks(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    out = tmp_path_factory.mktemp("lmeval_parity")
    mapping = export_lmeval_tasks(TASKS, BENCH, out, LIMIT)
    assert mapping == {t: PREFIX + t for t in TASKS}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")
        mp.setenv("HF_DATASETS_OFFLINE", "1")
        from lm_eval.tasks import TaskManager

        manager = TaskManager(include_path=str(out), include_defaults=False)
        loaded = manager.load(list(mapping.values()))["tasks"]  # lm-eval 0.4.13: {"tasks", "groups", ...}
        yield {ours: loaded[theirs] for ours, theirs in mapping.items()}


def _lm_requests(lm_task: Any) -> list[tuple[dict[str, Any], list[tuple[str, str]]]]:
    """Per document (in doc order): lm-eval's doc and its (context, continuation) pairs in idx order."""
    lm_task.build_all_requests(limit=LIMIT, rank=0, world_size=1)
    by_doc: dict[int, list[Any]] = defaultdict(list)
    for inst in lm_task.instances:
        by_doc[inst.doc_id].append(inst)
    out = []
    for doc_id in sorted(by_doc):
        insts = sorted(by_doc[doc_id], key=lambda i: i.idx)
        out.append((insts[0].doc, [tuple(i.arguments[:2]) for i in insts]))
    return out


def _lm_gold(lm_task: Any, doc: dict[str, Any]) -> int:
    gold = lm_task.doc_to_target(doc)
    if isinstance(gold, str):
        gold = lm_task.doc_to_choice(doc).index(gold)
    return int(gold)


@pytest.mark.parametrize("name", TASKS)
def test_requests_match_lmeval(name: str, lm_tasks: dict[str, Any]) -> None:
    lm_task = lm_tasks[name]
    ours = build_task(name, TaskOptions(data_dir=BENCH, limit=LIMIT))
    assert isinstance(ours, MultipleChoiceTask)
    theirs = _lm_requests(lm_task)
    assert len(theirs) == len(ours.docs()) == LIMIT
    assert lm_task.config.num_fewshot == ours.num_fewshot
    for doc, (lm_doc, lm_pairs) in zip(ours.docs(), theirs, strict=True):
        assert [(r.context, r.continuation) for r in ours.requests(doc)] == lm_pairs, doc.id
        assert doc.gold == _lm_gold(lm_task, lm_doc), doc.id
        if name == "truthfulqa_mc2":
            assert doc.labels == tuple(lm_doc["mc2_targets"]["labels"]), doc.id


def test_mmlu_is_five_shot_with_description(lm_tasks: dict[str, Any]) -> None:
    (_, pairs), *_ = _lm_requests(lm_tasks["mmlu_college_medicine"])
    ctx = pairs[0][0]
    assert ctx.startswith(
        "The following are multiple choice questions (with answers) about college medicine.\n\n"
    )
    assert ctx.count("\nAnswer: ") == 5


def test_mc2_scoring_matches_lmeval(lm_tasks: dict[str, Any]) -> None:
    lm_task = lm_tasks["truthfulqa_mc2"]
    ours = build_task("truthfulqa_mc2", TaskOptions(data_dir=BENCH, limit=LIMIT))
    from evalmon.core.lm import LLResult

    for doc, (lm_doc, pairs) in zip(ours.docs(), _lm_requests(lm_task), strict=True):
        lls = [-0.5 * (i + 1) + 0.1 * (i % 3) for i in range(len(pairs))]
        theirs = lm_task.process_results(lm_doc, [(ll, False) for ll in lls])["acc"]
        mine = ours.score(doc, [LLResult(ll, False) for ll in lls])["mc2"]
        assert mine == pytest.approx(theirs, abs=1e-12)

"""Medical QA: ``medqa`` (lm-eval ``medqa_4options``), ``medmcqa``, ``pubmedqa`` — lm-eval 0.4.13, 0-shot.

**medqa** — rows of ``GBaker/MedQA-USMLE-4-options-hf`` (test): ``id``, ``sent1`` (question),
``sent2`` (""), ``ending0..3``, ``label`` int. Prompt (``preprocess_medqa.doc_to_text``)::

    Question: {sent1}\\nA. {ending0}\\nB. {ending1}\\nC. {ending2}\\nD. {ending3}\\nAnswer:

choices A–D, gold ``label``. Local: ``medqa/phrases_no_exclude_test.jsonl`` ({question, options
{A..D}, answer_idx letter, ...}; ``id`` is synthesised as ``test-<index:05d>``, ``sent2`` = ""); ids ``test/<index>``.

**medmcqa** — rows of ``openlifescienceai/medmcqa`` (lm-eval evaluates the ``validation`` split):
``id``, ``question``, ``opa..opd``, ``cop`` (0-based), ``choice_type``, ``exp``, ``subject_name``,
``topic_name``. Prompt (``utils_medmcqa.doc_to_text``)::

    Question: {question}\\nChoices:\\nA. {opa}\\nB. {opb}\\nC. {opc}\\nD. {opd}\\nAnswer:

choices A–D, gold ``cop``. Local: ``medmcqa/dev.json`` (JSON lines) whose ``cop`` is **1-based** and
is shifted to 0-based here; ids are the dataset's own ``id``.

**pubmedqa** — rows of ``bigbio/pubmed_qa`` config ``pubmed_qa_labeled_fold0_source`` (test):
``QUESTION``, ``CONTEXTS`` [str], ``LABELS``, ``MESHES``, ``YEAR``, ``reasoning_required_pred``,
``reasoning_free_pred``, ``final_decision``, ``LONG_ANSWER``. Prompt
(``preprocess_pubmedqa.doc_to_text``)::

    Abstract: {"\\n".join(CONTEXTS)}\\nQuestion: {QUESTION}\\nAnswer:

choices ``yes``/``no``/``maybe``, gold = index of ``final_decision``. Local: ``pubmedqa/test_set.json``
(object PMID → record, the same fields); ids are the PMIDs.

All three requests are ``(context, " " + choice)``; metrics acc and acc_norm (pubmedqa: lm-eval
reports acc only). Few-shot in lm-eval comes from a randomly sampled train split that is not
mirrored, so these tasks are 0-shot only.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evalmon.core import registry
from evalmon.data.local import malformed, read_json, read_jsonl, require_file
from evalmon.data.schema import LMEvalExport, Rows
from evalmon.tasks._chat import multiple_choice
from evalmon.tasks._common import check_limit, data_dir_of, hub_rows, to_docs, zero_shot_only
from evalmon.tasks.base import MCDoc, MultipleChoiceTask, TaskOptions

LETTERS = ("A", "B", "C", "D")
PUBMEDQA_CHOICES = ("yes", "no", "maybe")


# ------------------------------------------------------------------------------------ rendering


def medqa_doc(row: dict[str, Any], doc_id: str) -> MCDoc:
    options = {"A": row["ending0"], "B": row["ending1"], "C": row["ending2"], "D": row["ending3"]}
    answers = "".join(f"{k}. {v}\n" for k, v in options.items())
    return MCDoc(
        id=doc_id,
        query=f"Question: {row['sent1']}\n{answers}Answer:",
        choices=LETTERS,
        gold=_in_range(int(row["label"]), 4),
    )


def medmcqa_doc(row: dict[str, Any], doc_id: str) -> MCDoc:
    options = {"A": row["opa"], "B": row["opb"], "C": row["opc"], "D": row["opd"]}
    prompt = "Question: " + row["question"] + "\nChoices:\n"
    for choice, option in options.items():
        prompt += f"{choice.upper()}. {option}\n"
    prompt += "Answer:"
    return MCDoc(
        id=doc_id,
        query=prompt,
        choices=LETTERS,
        gold=_in_range(int(row["cop"]), 4),
        meta={"subject": row.get("subject_name"), "choice_type": row.get("choice_type")},
    )


def pubmedqa_doc(row: dict[str, Any], doc_id: str) -> MCDoc:
    ctxs = "\n".join(row["CONTEXTS"])
    decision = row["final_decision"]
    if decision not in PUBMEDQA_CHOICES:
        raise ValueError(f"final_decision must be yes/no/maybe, got {decision!r}")
    return MCDoc(
        id=doc_id,
        query=f"Abstract: {ctxs}\nQuestion: {row['QUESTION']}\nAnswer:",
        choices=PUBMEDQA_CHOICES,
        gold=PUBMEDQA_CHOICES.index(decision),
    )


def _in_range(gold: int, n: int) -> int:
    if not 0 <= gold < n:
        raise ValueError(f"gold index {gold} out of range 0..{n - 1}")
    return gold


# -------------------------------------------------------------------------------- local loaders


def _medqa_local(data_dir: Path, task: str) -> Rows:
    path = require_file(data_dir, MEDQA.local_file, task=task)
    rows: list[dict[str, Any]] = []
    for line, rec in read_jsonl(path):
        try:
            opts, idx = rec["options"], rec["answer_idx"]
            row = {
                "id": f"test-{len(rows):05d}",
                "sent1": rec["question"],
                "sent2": "",
                "ending0": opts["A"],
                "ending1": opts["B"],
                "ending2": opts["C"],
                "ending3": opts["D"],
                "label": LETTERS.index(idx),
            }
        except (KeyError, TypeError, ValueError) as e:
            raise malformed(
                path,
                f"line {line}",
                f"expected question, options A..D and answer_idx A..D ({type(e).__name__}: {e})",
            ) from None
        rows.append(row)
    return Rows(tuple(rows), tuple(f"test/{i}" for i in range(len(rows))), str(path))


def _medmcqa_local(data_dir: Path, task: str) -> Rows:
    path = require_file(data_dir, MEDMCQA.local_file, task=task)
    rows: list[dict[str, Any]] = []
    for line, rec in read_jsonl(path):
        try:
            cop = rec["cop"]
            if isinstance(cop, bool) or cop not in (1, 2, 3, 4):
                raise ValueError(f"cop must be 1..4 (1-based), got {cop!r}")
            if not isinstance(rec["question"], str):
                raise ValueError("question must be a string")
            row = {
                "id": rec["id"],
                "question": rec["question"],
                "opa": rec["opa"],
                "opb": rec["opb"],
                "opc": rec["opc"],
                "opd": rec["opd"],
                "cop": cop - 1,
                "choice_type": rec.get("choice_type"),
                "exp": rec.get("exp"),
                "subject_name": rec.get("subject_name"),
                "topic_name": rec.get("topic_name"),
            }
        except (KeyError, TypeError, ValueError) as e:
            raise malformed(path, f"line {line}", f"{type(e).__name__}: {e}") from None
        rows.append(row)
    return Rows(tuple(rows), tuple(str(r["id"]) for r in rows), str(path))


_PUBMEDQA_FIELDS = (
    "QUESTION",
    "CONTEXTS",
    "LABELS",
    "MESHES",
    "YEAR",
    "reasoning_required_pred",
    "reasoning_free_pred",
    "final_decision",
    "LONG_ANSWER",
)


def _pubmedqa_local(data_dir: Path, task: str) -> Rows:
    path = require_file(data_dir, PUBMEDQA.local_file, task=task)
    data = read_json(path)
    if not isinstance(data, dict):
        raise malformed(path, "top level", "expected a JSON object PMID -> record")
    rows: list[dict[str, Any]] = []
    for pmid, rec in data.items():
        if (
            not isinstance(rec, dict)
            or not isinstance(rec.get("QUESTION"), str)
            or not isinstance(rec.get("CONTEXTS"), list)
            or rec.get("final_decision") not in PUBMEDQA_CHOICES
        ):
            raise malformed(
                path,
                f"record {pmid}",
                "expected QUESTION (str), CONTEXTS (list) and final_decision yes/no/maybe",
            )
        rows.append({k: rec.get(k) for k in _PUBMEDQA_FIELDS})
    return Rows(tuple(rows), tuple(str(k) for k in data), str(path))


# --------------------------------------------------------------------------------------- specs


@dataclass(frozen=True)
class MedicalSpec:
    name: str
    lm_eval_task: str
    builtin_yaml: str
    hub_dataset: str
    hub_config: str | None
    split: str  # the split lm-eval evaluates (its test_split)
    local_file: str
    render: Callable[[dict[str, Any], str], MCDoc]
    load_local: Callable[[Path, str], Rows]
    make_id: Callable[[int, dict[str, Any]], str]


MEDQA = MedicalSpec(
    "medqa",
    "medqa_4options",
    "medqa/medqa.yaml",
    "GBaker/MedQA-USMLE-4-options-hf",
    None,
    "test",
    "medqa/phrases_no_exclude_test.jsonl",
    medqa_doc,
    _medqa_local,
    lambda i, _r: f"test/{i}",
)
MEDMCQA = MedicalSpec(
    "medmcqa",
    "medmcqa",
    "medmcqa/medmcqa.yaml",
    "openlifescienceai/medmcqa",
    None,
    "validation",
    "medmcqa/dev.json",
    medmcqa_doc,
    _medmcqa_local,
    lambda i, r: str(r.get("id", i)),
)
PUBMEDQA = MedicalSpec(
    "pubmedqa",
    "pubmedqa",
    "pubmedqa/pubmedqa.yaml",
    "bigbio/pubmed_qa",
    "pubmed_qa_labeled_fold0_source",
    "test",
    "pubmedqa/test_set.json",
    pubmedqa_doc,
    _pubmedqa_local,
    lambda i, r: str(r.get("PUBMED_ID", f"test/{i}")),
)
SPECS: dict[str, MedicalSpec] = {s.name: s for s in (MEDQA, MEDMCQA, PUBMEDQA)}


def load_rows(spec: MedicalSpec, data_dir: Path | None) -> Rows:
    if data_dir is not None:
        return spec.load_local(data_dir, spec.name)
    return hub_rows(spec.name, spec.hub_dataset, spec.hub_config, spec.split, spec.make_id)


def build(name: str, options: TaskOptions) -> MultipleChoiceTask:
    spec = SPECS[name]
    zero_shot_only(name, options)
    rows = load_rows(spec, data_dir_of(options)).head(check_limit(name, options.limit))
    return multiple_choice(
        options,
        name=name,
        source=rows.source,
        documents=to_docs(rows, spec.render, task=name),
        scoring="acc_only" if name == "pubmedqa" else "acc",  # as each lm-eval metric_list
        lm_eval_task=spec.lm_eval_task,
    )


def lmeval_export(
    name: str, data_dir: Path | None, limit: int | None, num_fewshot: int | None
) -> LMEvalExport:
    spec = SPECS[name]
    zero_shot_only(name, TaskOptions(num_fewshot=num_fewshot))
    return LMEvalExport(
        builtin_yaml=spec.builtin_yaml,
        splits={spec.split: load_rows(spec, data_dir).head(limit)},
        split_config={"training_split": None, "validation_split": None, "test_split": spec.split},
    )


for _spec in SPECS.values():
    registry.tasks.add(
        _spec.name,
        lambda options, n=_spec.name: build(n, options),
        family="medical",
        local_source=_spec.local_file,
        hub_source=f"{_spec.hub_dataset}"
            + (f":{_spec.hub_config}" if _spec.hub_config else "")
            + f" ({_spec.split})",
        default_fewshot=0,
        lmeval_export=lmeval_export,
    )

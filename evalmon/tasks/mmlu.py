"""MMLU (Hendrycks et al.): 57 subjects as ``mmlu_<subject>``, groups ``mmlu`` and ``mmlu_medical``.

Mirrors lm-eval 0.4.13 ``tasks/mmlu/default`` exactly.

Row schema (``cais/mmlu``): ``question`` str, ``subject`` str, ``choices`` [4 str], ``answer`` int 0..3.

Prompt (``doc_to_text``)::

    {question.strip()}
    A. {choices[0]}
    B. {choices[1]}
    C. {choices[2]}
    D. {choices[3]}
    Answer:

``doc_to_choice`` = ``["A", "B", "C", "D"]``, ``doc_to_target`` = ``answer``. Each request is
``(context, " " + letter)``. The description
``"The following are multiple choice questions (with answers) about {subject with _ → space}.\\n\\n"``
is prepended even at 0-shot. Few-shot: ``first_n`` sampler over the ``dev`` split (5 rows per
subject), so ``num_fewshot`` may be 0..5; each shot is ``query + " " + letter + "\\n\\n"``. lm-eval's
own default is 0-shot; evalmon's is the customary 5-shot (record it — it is in ``config()``).

Sources: local ``<data_dir>/mmlu/{test,dev}/<subject>_{test,dev}.csv`` (header-less CSV: question,
A, B, C, D, answer letter; fields may contain newlines) or hub ``cais/mmlu`` config ``<subject>``.
Document ids: ``<subject>/<split>/<row index>``.

Groups: ``mmlu`` = lm-eval's four category groups ``mmlu_stem``, ``mmlu_other``,
``mmlu_social_sciences``, ``mmlu_humanities`` (subject → category copied from lm-eval's YAML tags);
``mmlu_medical`` = the MMLU-Med subjects. lm-eval aggregates ``acc`` only, weighted by size.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from evalmon.core import registry
from evalmon.core.errors import ConfigError
from evalmon.data.local import malformed, read_csv, require_file
from evalmon.data.schema import LMEvalExport, Rows
from evalmon.tasks._chat import multiple_choice
from evalmon.tasks._common import check_limit, data_dir_of, hub_rows, to_docs
from evalmon.tasks.base import MCDoc, MultipleChoiceTask, TaskOptions

HUB_DATASET = "cais/mmlu"
LETTERS = ("A", "B", "C", "D")
DEFAULT_FEWSHOT = 5

#: subject → lm-eval category (the ``tag: mmlu_<category>_tasks`` of each lm-eval subject YAML).
SUBJECT_CATEGORIES: dict[str, str] = {
    "abstract_algebra": "stem",
    "anatomy": "stem",
    "astronomy": "stem",
    "business_ethics": "other",
    "clinical_knowledge": "other",
    "college_biology": "stem",
    "college_chemistry": "stem",
    "college_computer_science": "stem",
    "college_mathematics": "stem",
    "college_medicine": "other",
    "college_physics": "stem",
    "computer_security": "stem",
    "conceptual_physics": "stem",
    "econometrics": "social_sciences",
    "electrical_engineering": "stem",
    "elementary_mathematics": "stem",
    "formal_logic": "humanities",
    "global_facts": "other",
    "high_school_biology": "stem",
    "high_school_chemistry": "stem",
    "high_school_computer_science": "stem",
    "high_school_european_history": "humanities",
    "high_school_geography": "social_sciences",
    "high_school_government_and_politics": "social_sciences",
    "high_school_macroeconomics": "social_sciences",
    "high_school_mathematics": "stem",
    "high_school_microeconomics": "social_sciences",
    "high_school_physics": "stem",
    "high_school_psychology": "social_sciences",
    "high_school_statistics": "stem",
    "high_school_us_history": "humanities",
    "high_school_world_history": "humanities",
    "human_aging": "other",
    "human_sexuality": "social_sciences",
    "international_law": "humanities",
    "jurisprudence": "humanities",
    "logical_fallacies": "humanities",
    "machine_learning": "stem",
    "management": "other",
    "marketing": "other",
    "medical_genetics": "other",
    "miscellaneous": "other",
    "moral_disputes": "humanities",
    "moral_scenarios": "humanities",
    "nutrition": "other",
    "philosophy": "humanities",
    "prehistory": "humanities",
    "professional_accounting": "other",
    "professional_law": "humanities",
    "professional_medicine": "other",
    "professional_psychology": "social_sciences",
    "public_relations": "social_sciences",
    "security_studies": "social_sciences",
    "sociology": "social_sciences",
    "us_foreign_policy": "social_sciences",
    "virology": "other",
    "world_religions": "humanities",
}
SUBJECTS: tuple[str, ...] = tuple(sorted(SUBJECT_CATEGORIES))
#: lm-eval's ``_mmlu.yaml`` member order.
CATEGORIES: tuple[str, ...] = ("stem", "other", "social_sciences", "humanities")
MEDICAL_SUBJECTS: tuple[str, ...] = (
    "anatomy",
    "clinical_knowledge",
    "college_biology",
    "college_medicine",
    "medical_genetics",
    "professional_medicine",
    "nutrition",
    "virology",
    "high_school_biology",
)


def task_name(subject: str) -> str:
    return f"mmlu_{subject}"


def description(subject: str) -> str:
    """lm-eval's per-subject ``description`` (prepended once, before the few-shot examples)."""
    return (
        f"The following are multiple choice questions (with answers) about {subject.replace('_', ' ')}.\n\n"
    )


def doc_from_row(row: dict[str, Any], doc_id: str) -> MCDoc:
    """``cais/mmlu`` row → MCDoc, exactly lm-eval's doc_to_text / doc_to_choice / doc_to_target."""
    c = row["choices"]
    query = f"{row['question'].strip()}\nA. {c[0]}\nB. {c[1]}\nC. {c[2]}\nD. {c[3]}\nAnswer:"
    gold = int(row["answer"])
    if not 0 <= gold < len(LETTERS):
        raise ValueError(f"answer {gold} out of range 0..3")
    return MCDoc(id=doc_id, query=query, choices=LETTERS, gold=gold, meta={"subject": row.get("subject")})


def local_path(subject: str, split: str) -> str:
    return f"mmlu/{split}/{subject}_{split}.csv"


def load_local(data_dir: Path, subject: str, split: str) -> Rows:
    """Local CSV → ``cais/mmlu`` rows (answer letter → int)."""
    task = task_name(subject)
    path = require_file(data_dir, local_path(subject, split), task=task)
    rows: list[dict[str, Any]] = []
    for line, fields in read_csv(path):
        if len(fields) != 6:
            raise malformed(
                path, f"line {line}", f"expected 6 fields (question, A, B, C, D, answer), got {len(fields)}"
            )
        letter = fields[5].strip()
        if letter not in LETTERS:
            raise malformed(path, f"line {line}", f"answer must be one of A/B/C/D, got {fields[5]!r}")
        rows.append(
            {
                "question": fields[0],
                "subject": subject,
                "choices": list(fields[1:5]),
                "answer": LETTERS.index(letter),
            }
        )
    return Rows(tuple(rows), tuple(f"{subject}/{split}/{i}" for i in range(len(rows))), str(path))


def load_rows(subject: str, split: str, data_dir: Path | None) -> Rows:
    """``split`` ∈ {test, dev, validation}; local mirror when ``data_dir`` is set, else the hub."""
    if data_dir is not None:
        return load_local(data_dir, subject, "val" if split == "validation" else split)
    return hub_rows(task_name(subject), HUB_DATASET, subject, split, lambda i, _r: f"{subject}/{split}/{i}")


def resolve_fewshot(subject: str, num_fewshot: int | None) -> int:
    n = DEFAULT_FEWSHOT if num_fewshot is None else num_fewshot
    if isinstance(n, bool) or not isinstance(n, int) or not 0 <= n <= DEFAULT_FEWSHOT:
        raise ConfigError(
            f"{task_name(subject)}: num_fewshot must be 0..5 (got {num_fewshot!r})",
            hint="lm-eval draws MMLU few-shot examples from the dev split (first_n), which has 5 rows per subject",
        )
    return n


def build(subject: str, options: TaskOptions) -> MultipleChoiceTask:
    name = task_name(subject)
    n_shot = resolve_fewshot(subject, options.num_fewshot)
    data_dir = data_dir_of(options)
    test = load_rows(subject, "test", data_dir).head(check_limit(name, options.limit))
    fewshot: tuple[MCDoc, ...] = ()
    if n_shot:
        dev = load_rows(subject, "dev", data_dir)
        if len(dev) < n_shot:
            raise ConfigError(f"{name}: num_fewshot={n_shot} but {dev.source} has only {len(dev)} rows")
        fewshot = to_docs(dev.head(n_shot), doc_from_row, task=name)
    return multiple_choice(
        options,
        name=name,
        source=test.source,
        documents=to_docs(test, doc_from_row, task=name),
        fewshot=fewshot,
        description=description(subject),
        num_fewshot=n_shot,
        scoring="acc_only",  # lm-eval's MMLU config lists acc only
        lm_eval_task=name,
    )


def lmeval_export(
    name: str, data_dir: Path | None, limit: int | None, num_fewshot: int | None
) -> LMEvalExport:
    """Rows + split overrides for re-running ``name`` through lm-eval's ``mmlu_<subject>.yaml``."""
    subject = name.removeprefix("mmlu_")
    n_shot = resolve_fewshot(subject, num_fewshot)
    return LMEvalExport(
        builtin_yaml=f"mmlu/default/{name}.yaml",
        splits={
            "test": load_rows(subject, "test", data_dir).head(limit),
            "dev": load_rows(subject, "dev", data_dir),
        },
        split_config={"test_split": "test", "fewshot_split": "dev"},
        num_fewshot=n_shot,
    )


def _register() -> None:
    for subject in SUBJECTS:
        registry.tasks.add(
            task_name(subject),
            lambda options, s=subject: build(s, options),
            family="mmlu",
            local_source=f"{local_path(subject, 'test')} (+ {local_path(subject, 'dev')} for few-shot)",
            hub_source=f"{HUB_DATASET}:{subject} (test; dev for few-shot)",
            default_fewshot=DEFAULT_FEWSHOT,
            lmeval_export=lmeval_export,
        )
    for category in CATEGORIES:
        registry.task_groups.add(
            f"mmlu_{category}",
            tuple(task_name(s) for s in SUBJECTS if SUBJECT_CATEGORIES[s] == category),
            metrics=("acc",),
            description=f"MMLU {category.replace('_', ' ')} subjects (lm-eval group mmlu_{category})",
        )
    registry.task_groups.add(
        "mmlu",
        tuple(f"mmlu_{c}" for c in CATEGORIES),
        metrics=("acc",),
        description="all 57 MMLU subjects, micro-averaged (lm-eval group mmlu, weight_by_size)",
    )
    registry.task_groups.add(
        "mmlu_medical",
        tuple(task_name(s) for s in MEDICAL_SUBJECTS),
        metrics=("acc",),
        description="MMLU medical subjects (MMLU-Med + nutrition, virology, high_school_biology)",
    )


_register()

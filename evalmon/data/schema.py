"""Row containers shared by the task loaders and the lm-eval parity export.

Every loader yields rows in the **schema of the hub dataset lm-eval uses** for that task, whichever
source they came from, so exactly one function per task renders a row the way lm-eval does:

=================  ==============================================  ====================================
task               hub dataset (config, split)                     row fields
=================  ==============================================  ====================================
mmlu_<subject>     cais/mmlu (<subject>, test; few-shot: dev)      question, subject, choices[4], answer
hellaswag          Rowan/hellaswag (validation)                    activity_label, ctx_a, ctx_b, ctx,
                                                                   endings[4], label (str "0".."3")
truthfulqa_mc1/2   truthfulqa/truthful_qa (multiple_choice,        question, mc1_targets{choices,labels},
                   validation)                                     mc2_targets{choices,labels}
medqa              GBaker/MedQA-USMLE-4-options-hf (test)          id, sent1, sent2, ending0..3, label
medmcqa            openlifescienceai/medmcqa (validation)          id, question, opa..opd, cop (0-based),
                                                                   choice_type, exp, subject_name, topic_name
pubmedqa           bigbio/pubmed_qa (pubmed_qa_labeled_fold0_      QUESTION, CONTEXTS, LABELS, MESHES, YEAR,
                   source, test)                                   reasoning_*_pred, final_decision,
                                                                   LONG_ANSWER
=================  ==============================================  ====================================
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Rows:
    """One split's HF-schema rows, their stable document ids and where they came from."""

    rows: tuple[dict[str, Any], ...]
    ids: tuple[str, ...]
    source: str  # file path or "hub:<id>[:<config>]"

    def __post_init__(self) -> None:
        if len(self.rows) != len(self.ids):  # pragma: no cover - programming error
            raise ValueError("rows and ids differ in length")

    def __len__(self) -> int:
        return len(self.rows)

    def head(self, limit: int | None) -> Rows:
        """The first ``limit`` rows (lm-eval's ``--limit N``), all when ``limit`` is None."""
        if limit is None:
            return self
        return Rows(self.rows[:limit], self.ids[:limit], self.source)


@dataclass(frozen=True)
class LMEvalExport:
    """What :mod:`evalmon.harness.parity` needs to re-run one of our tasks through lm-eval's own config.

    ``builtin_yaml`` is relative to the installed ``lm_eval/tasks`` folder; ``splits`` maps the
    split names written into ``dataset_kwargs.data_files`` to rows; ``split_config`` overrides
    ``training_split``/``validation_split``/``test_split``/``fewshot_split`` so they point at them.
    """

    builtin_yaml: str
    splits: dict[str, Rows]
    split_config: dict[str, str | None] = field(default_factory=dict)
    num_fewshot: int = 0

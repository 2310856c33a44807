"""Task contract, multiple-choice building blocks and the task/group registry.

A task turns documents into ``LLRequest``s and scores the model's answers per document; it never
touches a model. Numerics follow lm-eval's ``multiple_choice`` output type exactly:
context = description + Σ(fewshot_query + " " + fewshot_answer + "\n\n") + query,
one request per choice with continuation ``" " + choice``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from evalmon.core.errors import UnknownNameError, did_you_mean
from evalmon.core.lm import LLRequest, LLResult, Request

TARGET_DELIMITER = " "
FEWSHOT_DELIMITER = "\n\n"


@dataclass(frozen=True)
class MetricSpec:
    """How a per-sample metric aggregates.

    Default: ``mean`` of per-document floats with the sample stderr (lm-eval's ``mean_stderr``).
    Corpus metrics (BLEU, corpus WER, perplexity) set ``corpus``: the per-document values are items
    (e.g. ``[hypothesis, reference]``) and ``corpus(items) -> float`` computes the statistic; its
    stderr is a seeded bootstrap over documents (``bootstrap_iters``).
    """

    name: str
    higher_is_better: bool = True
    aggregation: str = "mean"  # mean | corpus
    kind: str = "binary"  # binary (McNemar-able) | continuous | corpus
    corpus: Callable[[list[Any]], float] | None = None
    bootstrap_iters: int = 1000
    # optional fast bootstrap ``(items, iters, seed) -> stderr`` (e.g. sacrebleu's resampling of
    # sufficient statistics); default: recompute ``corpus`` on ``bootstrap_iters`` document resamples
    stderr_fn: Callable[[list[Any], int, int], float | None] | None = None


@dataclass(frozen=True)
class MCDoc:
    """One multiple-choice document, already rendered with the task's template."""

    id: str
    query: str  # doc_to_text
    choices: tuple[str, ...]  # doc_to_choice (without the target delimiter)
    gold: int  # index of the correct choice
    labels: tuple[int, ...] | None = None  # mc2: 1 for every true choice
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TaskOptions:
    """What a suite may set per task; factories read what applies to them."""

    data_dir: Path | None = None
    num_fewshot: int | None = None
    limit: int | None = None
    seed: int = 1234
    extra: dict[str, Any] = field(default_factory=dict)
    base_dir: Path | None = None  # the suite file's directory: relative paths in ``extra`` resolve against it


@runtime_checkable
class Task(Protocol):
    """Documents → requests (loglikelihood, generation or rolling) → per-document scores.

    ``docs()`` items need an ``id``; ``score`` returns floats for mean metrics and JSON-able items
    for corpus metrics. Optional: ``sample_fields(doc, responses) -> dict`` adds what the samples
    file should keep (target, choices, generations).
    """

    name: str
    source: str  # where the documents came from (path or hub id), for provenance
    num_fewshot: int
    metrics: dict[str, MetricSpec]

    def docs(self) -> Sequence[Any]: ...

    def requests(self, doc: Any) -> Sequence[Request]: ...

    def score(self, doc: Any, results: Sequence[Any]) -> dict[str, Any]: ...

    def config(self) -> dict[str, Any]: ...


def config_hash(config: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:16]


@dataclass
class MultipleChoiceTask:
    """lm-eval ``output_type: multiple_choice`` over pre-rendered documents.

    ``scoring`` is ``"acc"`` (acc + acc_norm), ``"acc_only"`` (tasks whose lm-eval config lists only
    acc: MMLU, PubMedQA), ``"mc1"`` (acc named mc1) or ``"mc2"`` (normalised probability mass on the
    true answers, lm-eval's ``process_results_mc2``).
    """

    name: str
    source: str
    documents: Sequence[MCDoc]
    fewshot: Sequence[MCDoc] = ()
    description: str = ""
    num_fewshot: int = 0
    scoring: str = "acc"
    template_version: str = "1"
    lm_eval_task: str | None = None  # the lm-eval task this mirrors, for the parity record
    metrics: dict[str, MetricSpec] = field(init=False)

    def __post_init__(self) -> None:
        if self.scoring == "acc":
            self.metrics = {"acc": MetricSpec("acc"), "acc_norm": MetricSpec("acc_norm")}
        elif self.scoring == "acc_only":
            self.metrics = {"acc": MetricSpec("acc")}
        elif self.scoring == "mc1":
            self.metrics = {"mc1": MetricSpec("mc1")}
        elif self.scoring == "mc2":
            self.metrics = {"mc2": MetricSpec("mc2", kind="continuous")}
        else:  # pragma: no cover - programming error
            raise ValueError(f"unknown scoring {self.scoring!r}")
        self._prefix = self.description + "".join(
            d.query + TARGET_DELIMITER + d.choices[d.gold] + FEWSHOT_DELIMITER
            for d in list(self.fewshot)[: self.num_fewshot]
        )

    def docs(self) -> Sequence[MCDoc]:
        return self.documents

    def context(self, doc: MCDoc) -> str:
        return self._prefix + doc.query

    def requests(self, doc: MCDoc) -> list[LLRequest]:
        ctx = self.context(doc)
        return [LLRequest(ctx, TARGET_DELIMITER + c) for c in doc.choices]

    def score(self, doc: MCDoc, results: Sequence[LLResult]) -> dict[str, float]:
        import numpy as np  # lazy: `evalmon tasks` / `--help` must not pay numpy's import

        ll = np.array([r.logprob for r in results], dtype=np.float64)
        if self.scoring == "mc2":
            return {"mc2": mc2_score(ll, doc.labels or ())}
        acc = float(int(np.argmax(ll)) == doc.gold)
        if self.scoring == "mc1":
            return {"mc1": acc}
        if self.scoring == "acc_only":
            return {"acc": acc}
        lengths = np.array([float(len(c)) for c in doc.choices])
        acc_norm = float(int(np.argmax(ll / lengths)) == doc.gold)
        return {"acc": acc, "acc_norm": acc_norm}

    def sample_fields(self, doc: MCDoc, results: Sequence[LLResult]) -> dict[str, Any]:
        return {"target": doc.gold, "choices": list(doc.choices),
                "loglikelihoods": [r.logprob for r in results], "is_greedy": [r.is_greedy for r in results]}

    def config(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "scoring": self.scoring,
            "num_fewshot": self.num_fewshot,
            "description": self.description,
            "fewshot_ids": [d.id for d in list(self.fewshot)[: self.num_fewshot]],
            "template_version": self.template_version,
            "target_delimiter": TARGET_DELIMITER,
            "fewshot_delimiter": FEWSHOT_DELIMITER,
        }


def mc2_score(ll: Any, labels: Sequence[int]) -> float:
    """lm-eval's ``process_results_mc2``: exp, normalise, sum over true answers."""
    import numpy as np

    probs = np.exp(ll)
    probs_norm = probs / np.sum(probs)
    return float(np.sum(probs_norm[np.array(labels) == 1]))


# --------------------------------------------------------------------------- registry

TaskFactory = Callable[[TaskOptions], Task]


@dataclass(frozen=True)
class TaskInfo:
    name: str
    factory: TaskFactory
    family: str
    local_source: str  # path pattern under data_dir
    hub_source: str  # hub dataset id lm-eval uses
    default_fewshot: int = 0


@dataclass(frozen=True)
class GroupInfo:
    """A group aggregates member tasks' metrics, micro-averaged (weighted by size) like lm-eval."""

    name: str
    members: tuple[str, ...]
    metrics: tuple[str, ...] = ("acc",)
    description: str = ""


TASKS: dict[str, TaskInfo] = {}
GROUPS: dict[str, GroupInfo] = {}


def register_task(info: TaskInfo) -> None:
    TASKS[info.name] = info


def register_group(info: GroupInfo) -> None:
    GROUPS[info.name] = info


def _ensure_loaded() -> None:
    # Import task modules for their registration side effect (cheap: no torch/datasets imports).
    from evalmon.tasks import _catalog  # noqa: F401


def all_names() -> list[str]:
    _ensure_loaded()
    return sorted(set(TASKS) | set(GROUPS))


def expand(name: str) -> list[str]:
    """Task or group name → leaf task names (groups may nest)."""
    _ensure_loaded()
    if name in TASKS:
        return [name]
    if name in GROUPS:
        out: list[str] = []
        for member in GROUPS[name].members:
            out.extend(t for t in expand(member) if t not in out)
        return out
    raise UnknownNameError(f"unknown task or group {name!r}{did_you_mean(name, all_names())}",
                           hint="run `evalmon tasks` to list them")


def get_task_info(name: str) -> TaskInfo:
    _ensure_loaded()
    if name not in TASKS:
        raise UnknownNameError(f"unknown task {name!r}{did_you_mean(name, all_names())}",
                               hint="run `evalmon tasks` to list them")
    return TASKS[name]


def build_task(name: str, options: TaskOptions) -> Task:
    return get_task_info(name).factory(options)

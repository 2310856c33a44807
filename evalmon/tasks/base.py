"""Task contract, multiple-choice building blocks and the task/group registry.

A task turns documents into requests and scores the model's answers per document; it never touches a
model. Its ``stages()`` say which model ROLE answers which requests (one "candidate" stage by default;
MT-Bench: the candidate answers, then a "judge" grades) and the harness runs them. Numerics of
``MultipleChoiceTask`` follow lm-eval's ``multiple_choice`` output type exactly:
context = description + Σ(fewshot_query + " " + fewshot_answer + "\n\n") + query,
one request per choice with continuation ``" " + choice``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from evalmon.core import registry
from evalmon.core.errors import UnknownNameError, did_you_mean
from evalmon.core.jsonout import canonical_hash
from evalmon.core.lm import LLRequest, LLResult, ModelFingerprint, Request, needed_capabilities

if TYPE_CHECKING:
    from evalmon.core.results import SampleRecord, TaskResult
    from evalmon.metrics.intervals import BootstrapEstimate

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
    # sufficient statistics); default: recompute ``corpus`` on ``bootstrap_iters`` document resamples.
    # Returning a ``BootstrapEstimate`` (stderr + percentile interval) sets the reported 95% CI; a bare
    # stderr gets the normal approximation value ± 1.96·stderr (``ci_method="normal"``)
    stderr_fn: Callable[[list[Any], int, int], float | BootstrapEstimate | None] | None = None


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


CANDIDATE = "candidate"  # the role of the suite's model (the model under test)

StageRequests = Callable[[Any, Sequence[Sequence[Any]]], Sequence[Request]]


@dataclass(frozen=True)
class Stage:
    """One step of a task: the model ROLE that answers it and the requests it asks per document.

    ``requests(doc, prior)``: this document's requests, given its responses to the earlier stages
    (``prior[k]`` = the responses to stage k, in request order). ``needs``: the capabilities the role's
    model must have (checked before anything runs). ``model``: the role's model config — None for
    "candidate" (the suite's model); any other role names the config the harness builds it from (one
    judge factory, any backend). ``max_new_tokens`` + ``option``: a generation budget that must fit
    below the role's model's ``max_length`` (checked before the stage runs; ``option`` names the task
    option in the error).
    """

    role: str
    requests: StageRequests
    needs: frozenset[str] = frozenset()
    model: Any = None
    max_new_tokens: int | None = None
    option: str = "max_new_tokens"


class StageOutputs(list[Any]):
    """One document's responses to the task's LAST stage (a list, what ``score`` reads), with ``stages``:
    its responses to every stage in stage order (multi-stage tasks read the earlier ones there), and
    ``answered_by``: per stage, the fingerprint of the model that answered (None: no requests)."""

    def __init__(self, stages: Sequence[Sequence[Any]],
                 answered_by: Sequence[ModelFingerprint | None] = ()) -> None:
        super().__init__(stages[-1] if stages else ())
        self.stages: tuple[list[Any], ...] = tuple(list(s) for s in stages)
        self.answered_by: tuple[ModelFingerprint | None, ...] = tuple(answered_by) or (None,) * len(stages)


class Task:
    """Documents → requests (by stage and model role) → per-document scores. Subclass it.

    Required: ``name``, ``source`` (where the documents came from, for provenance), ``num_fewshot``,
    ``metrics``, ``docs()``, ``score(doc, results)`` (floats for mean metrics, JSON-able items for corpus
    metrics), ``config()`` (what the config hash covers), and ``requests(doc)`` — or ``stages()`` for a
    task with several steps or model roles. ``docs()`` items need an ``id``. The other hooks have defaults.
    """

    name: str
    source: str
    num_fewshot: int
    metrics: dict[str, MetricSpec]
    lm_eval_task: str | None = None  # the lm-eval task this mirrors, for the parity record

    def docs(self) -> Sequence[Any]:
        raise NotImplementedError

    def requests(self, doc: Any) -> Sequence[Request]:
        """The requests of a single-stage task (the default ``stages()`` asks the candidate for them)."""
        raise NotImplementedError

    def score(self, doc: Any, results: Sequence[Any]) -> dict[str, Any]:
        """Per-document metric values from ``results`` (a ``StageOutputs``: the last stage's responses)."""
        raise NotImplementedError

    def config(self) -> dict[str, Any]:
        raise NotImplementedError

    def stages(self) -> list[Stage]:
        """Default: one "candidate" stage of ``requests(doc)``, needing what those requests need."""
        needs = needed_capabilities(r for d in self.docs() for r in self.requests(d))
        return [Stage(CANDIDATE, lambda doc, prior: self.requests(doc), needs=needs)]

    def progress_total(self) -> int:
        """Requests the progress bar counts (default: those of the single stage)."""
        return sum(len(self.requests(d)) for d in self.docs())

    def sample_fields(self, doc: Any, results: Sequence[Any]) -> dict[str, Any]:
        """Extra ``SampleRecord`` fields for a document (target, choices, outputs, extra; ``prompt_hash``
        overrides the default). Default: none (generations are kept as ``outputs``)."""
        return {}

    def finish(self, result: TaskResult, per_metric: dict[str, list[Any]], seed: int,
               samples: Sequence[SampleRecord] = (), outputs: Sequence[StageOutputs] = ()) -> TaskResult:
        """Last word on the result after aggregation (notes, curves, joint CIs, task-level metrics), given the
        per-metric values, the documents' sample records and their responses (both in document order)."""
        return result


def config_hash(config: dict[str, Any]) -> str:
    return canonical_hash(config)


@dataclass
class MultipleChoiceTask(Task):
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
# Tasks and groups live in the one registry (``evalmon.core.registry.tasks`` / ``task_groups``): a task module
# registers ``registry.tasks.add(name, factory, family=…, local_source=…, hub_source=…, default_fewshot=…)``
# (optional ``lmeval_export=fn`` for the lm-eval parity export) and groups ``registry.task_groups.add(name,
# members, metrics=…, description=…)``; modules are found through the entry-point group ``evalmon.tasks``
# (evalmon's own pyproject lists its task modules, a plugin lists its own). TASKS/GROUPS are read-only views.

TaskFactory = Callable[[TaskOptions], Task]


@dataclass(frozen=True)
class TaskInfo:
    """A registered task: its factory plus the metadata it was registered with."""

    name: str
    factory: TaskFactory
    family: str = "custom"
    local_source: str = ""  # path pattern under data_dir
    hub_source: str = ""  # hub dataset id lm-eval uses
    default_fewshot: int = 0


@dataclass(frozen=True)
class GroupInfo:
    """A group aggregates member tasks' metrics, micro-averaged (weighted by size) like lm-eval."""

    name: str
    members: tuple[str, ...]
    metrics: tuple[str, ...] = ("acc",)
    description: str = ""


_TASK_META = ("family", "local_source", "hub_source", "default_fewshot")
_GROUP_META = ("metrics", "description")


class _TaskView(Mapping[str, TaskInfo]):
    """Read-only ``name → TaskInfo`` over the registry (loads the entry points on first use)."""

    def __getitem__(self, name: str) -> TaskInfo:
        if name not in registry.tasks:
            raise KeyError(name)
        meta = registry.tasks.meta(name)
        return TaskInfo(name, registry.tasks.get(name), **{k: meta[k] for k in _TASK_META if k in meta})

    def __iter__(self) -> Iterator[str]:
        return iter(registry.tasks.names())

    def __len__(self) -> int:
        return len(registry.tasks.names())


class _GroupView(Mapping[str, GroupInfo]):
    """Read-only ``name → GroupInfo`` over the registry."""

    def __getitem__(self, name: str) -> GroupInfo:
        if name not in registry.task_groups:
            raise KeyError(name)
        meta = registry.task_groups.meta(name)
        fields = {k: tuple(meta[k]) if k == "metrics" else meta[k] for k in _GROUP_META if k in meta}
        return GroupInfo(name, tuple(registry.task_groups.get(name)), **fields)

    def __iter__(self) -> Iterator[str]:
        return iter(registry.task_groups.names())

    def __len__(self) -> int:
        return len(registry.task_groups.names())


TASKS: Mapping[str, TaskInfo] = _TaskView()
GROUPS: Mapping[str, GroupInfo] = _GroupView()


def all_names() -> list[str]:
    return sorted(set(registry.tasks.names()) | set(registry.task_groups.names()))


def unknown_name_error(name: str, *, what: str = "task or group") -> UnknownNameError:
    """The one-line error for a name that is neither a task nor a group, with "did you mean"."""
    return UnknownNameError(f"unknown {what} {name!r}{did_you_mean(name, all_names())}",
                            hint="run `evalmon tasks` to list them")


def expand(name: str) -> list[str]:
    """Task or group name → leaf task names (groups may nest)."""
    if name in registry.tasks:
        return [name]
    if name in registry.task_groups:
        out: list[str] = []
        for member in registry.task_groups.get(name):
            out.extend(t for t in expand(member) if t not in out)
        return out
    raise unknown_name_error(name)


def get_task_info(name: str) -> TaskInfo:
    if name not in registry.tasks:
        raise unknown_name_error(name, what="task")
    return TASKS[name]


def build_task(name: str, options: TaskOptions) -> Task:
    return get_task_info(name).factory(options)

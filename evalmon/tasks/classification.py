"""``classification`` task type: label probabilities from loglikelihoods → PR-AUC, ROC-AUC, F1, ECE, Brier.

Per document one ``LLRequest(context, " " + label)`` per label (lm-eval's ``multiple_choice``
requests); the label scores are the softmax of the label loglikelihoods (probabilities renormalised
over the label set). Metrics (scikit-learn via ``evalmon.metrics.ranking``), computed over the corpus:

* binary (two labels; the second is the positive class): ``pr_auc`` (average precision), ``roc_auc``,
  ``f1`` at ``threshold`` (default 0.5) on P(positive), ``accuracy`` (same threshold), ``ece``
  (10 equal-width bins on P(positive)), ``brier``;
* multi-class: one-vs-rest macro ``pr_auc`` / ``roc_auc`` over the classes that have both outcomes,
  argmax ``accuracy`` and ``f1_macro``, top-label ``ece``, multi-class ``brier`` (Σ over classes).

A metric that is undefined (labels of one class only) is NaN with the reason in ``TaskResult.notes``.
The stderr of every metric comes from one joint bootstrap over documents (seeded; replicates where a
metric is undefined are skipped and counted in the notes). ``TaskResult.curves`` keeps the PR curve(s)
and the reliability diagram for the HTML report.

Tasks: ``pubmedqa_cls`` (yes/no/maybe, lm-eval's pubmedqa prompt), ``enterprise_pii`` (binary, the
MosaicML gauntlet query; positive = yes), ``halueval_qa`` (binary: is this answer hallucinated?
HaluEval's QA judge instruction + ``#Question#``/``#Answer#``/``#Your Judgement#:``; each question
yields its right answer (No) and its hallucinated answer (Yes)), and ``classification`` (any JSONL:
options ``path``, ``text_field``, ``label_field``, ``labels``, ``template``). All take ``threshold``,
``bins``, ``bootstrap_iters`` (default 1000) and ``order`` (``file`` or ``shuffled`` before ``limit``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from evalmon.core import registry
from evalmon.core.errors import ConfigError, DataError
from evalmon.core.lm import LLRequest, LLResult
from evalmon.core.results import MetricValue, SampleRecord, TaskResult
from evalmon.data.local import malformed, read_jsonl, require_file
from evalmon.tasks._common import check_limit, data_dir_of, zero_shot_only
from evalmon.tasks._options import check_keys, get_float, get_int, get_paths
from evalmon.tasks.base import MetricSpec, StageOutputs, Task, TaskOptions

BINARY_METRICS = ("pr_auc", "roc_auc", "f1", "accuracy", "ece", "brier")
MULTI_METRICS = ("pr_auc", "roc_auc", "f1_macro", "accuracy", "ece", "brier")
LOWER_IS_BETTER = {"ece", "brier"}
COMMON_OPTIONS = ("threshold", "bins", "bootstrap_iters", "order")


@dataclass(frozen=True)
class ClsDoc:
    id: str
    context: str
    label: int  # index into the task's labels


def softmax(lls: Sequence[float]) -> list[float]:
    top = max(lls)
    exps = [math.exp(v - top) for v in lls]
    total = sum(exps)
    return [e / total for e in exps]


def _no_stderr(items: list[Any], iters: int, seed: int) -> float | None:
    return None  # the joint bootstrap in ``finish`` fills every metric's stderr at once


@dataclass
class ClassificationTask(Task):
    name: str
    source: str
    documents: Sequence[ClsDoc]
    labels: tuple[str, ...]
    threshold: float = 0.5
    bins: int = 10
    bootstrap_iters: int = 1000
    prompt_note: str = ""
    num_fewshot: int = 0
    lm_eval_task: str | None = None
    metrics: dict[str, MetricSpec] = field(init=False)

    def __post_init__(self) -> None:
        from evalmon.metrics.ranking import metric_from_items

        if len(self.labels) < 2 or len(set(self.labels)) != len(self.labels):
            raise ConfigError(f"{self.name}: labels must be at least two distinct strings (got {list(self.labels)})")
        for d in self.documents:
            if not 0 <= d.label < len(self.labels):  # pragma: no cover - loaders check first
                raise DataError(f"{self.name}: document {d.id} has label index {d.label} outside {list(self.labels)}")
        names = BINARY_METRICS if self.binary else MULTI_METRICS
        self.metrics = {m: MetricSpec(m, higher_is_better=m not in LOWER_IS_BETTER, aggregation="corpus", kind="corpus",
                                      corpus=metric_from_items(m), bootstrap_iters=self.bootstrap_iters,
                                      stderr_fn=_no_stderr) for m in names}

    @property
    def binary(self) -> bool:
        return len(self.labels) == 2

    def docs(self) -> Sequence[ClsDoc]:
        return self.documents

    def requests(self, doc: ClsDoc) -> list[LLRequest]:
        return [LLRequest(doc.context, " " + label) for label in self.labels]

    def score(self, doc: ClsDoc, results: Sequence[LLResult]) -> dict[str, Any]:
        item = [doc.label, softmax([r.logprob for r in results]), self.threshold]
        return {m: item for m in self.metrics}

    def sample_fields(self, doc: ClsDoc, results: Sequence[LLResult]) -> dict[str, Any]:
        return {"target": doc.label, "choices": list(self.labels), "loglikelihoods": [r.logprob for r in results],
                "is_greedy": [r.is_greedy for r in results]}

    def config(self) -> dict[str, Any]:
        return {"name": self.name, "type": "classification", "labels": list(self.labels),
                "mode": "binary (positive = last label)" if self.binary else "one-vs-rest macro",
                "threshold": self.threshold, "bins": self.bins, "label_scores": "softmax over label loglikelihoods",
                "request": "(context, ' ' + label)", "prompt": self.prompt_note, "template_version": "1"}

    def finish(self, result: TaskResult, per_metric: dict[str, list[Any]], seed: int,
               samples: Sequence[SampleRecord] = (), outputs: Sequence[StageOutputs] = ()) -> TaskResult:
        """Point values, a joint bootstrap stderr, notes for undefined metrics and the plot points."""
        import numpy as np

        from evalmon.metrics.intervals import percentile_interval
        from evalmon.metrics.ranking import bootstrap_metrics, report_from_items

        items = next(iter(per_metric.values()), [])
        if not items:
            return result
        rep = report_from_items(items, self.bins, self.labels)
        notes = {m: f"undefined: {why}" for m, why in rep.undefined.items() if m in self.metrics}
        if "classes_without_both_outcomes" in rep.undefined:
            notes["ovr"] = ("one-vs-rest averages exclude classes without both outcomes: "
                            + rep.undefined["classes_without_both_outcomes"])
        reps: dict[str, list[float]] = {m: [] for m in self.metrics}
        if len(items) > 1 and self.bootstrap_iters > 1:
            rng = np.random.default_rng(seed)
            resamples = rng.integers(0, len(items), size=(self.bootstrap_iters, len(items)))
            replicates = bootstrap_metrics(items, resamples, self.bins, self.labels)  # all resamples at once
            for m in self.metrics:
                reps[m] = [float(v) for v in replicates.get(m, ()) if math.isfinite(v)]
        for m in self.metrics:
            value = rep.metrics.get(m)
            vals = reps[m]
            se = float(np.std(vals, ddof=1)) if len(vals) > 1 and value is not None else None
            if value is not None and 0 < len(vals) < self.bootstrap_iters:
                notes.setdefault(m, f"stderr from {len(vals)}/{self.bootstrap_iters} bootstrap replicates "
                                    "(the others had one class only)")
            ci = percentile_interval(vals) if se is not None else None
            result.metrics[m] = MetricValue.with_ci(float("nan") if value is None else float(value), se,
                                                    m not in LOWER_IS_BETTER, ci=ci.bounds if ci else None,
                                                    ci_method=ci.method if ci else None)
        result.notes = {**result.notes, **notes}
        result.curves = {**result.curves, **self._curves(items, rep)}
        return result

    def _curves(self, items: list[Any], rep: Any) -> dict[str, Any]:
        import numpy as np
        from sklearn.metrics import average_precision_score, precision_recall_curve

        y = np.asarray([int(it[0]) for it in items])
        proba = np.asarray([it[1] for it in items], dtype=float)
        classes = [len(self.labels) - 1] if self.binary else range(len(self.labels))
        pr = []
        for c in classes:
            yc = (y == c).astype(int)
            if 0 < yc.sum() < len(yc):
                prec, rec, _ = precision_recall_curve(yc, proba[:, c])
                step = max(1, len(prec) // 200)
                pr.append({"label": self.labels[c], "precision": prec[::step].tolist(), "recall": rec[::step].tolist(),
                           "ap": float(average_precision_score(yc, proba[:, c])), "prevalence": float(yc.mean())})
        return {"pr": pr, "reliability": rep.curves.get("reliability", []),
                "reliability_of": f"P({self.labels[-1]})" if self.binary else "top-label confidence"}


def common_options(task: str, options: TaskOptions, extra_keys: tuple[str, ...] = ()) -> dict[str, Any]:
    extra = check_keys(task, options, (*COMMON_OPTIONS, *extra_keys))
    return {"threshold": get_float(task, extra, "threshold", 0.5, 0.0, 1.0), "bins": get_int(task, extra, "bins", 10, 1),
            "bootstrap_iters": get_int(task, extra, "bootstrap_iters", 1000), "extra": extra}


# ---------------------------------------------------------------------------------------- loaders
def _limit(docs: list[ClsDoc], options: TaskOptions, task: str) -> list[ClsDoc]:
    """The first ``limit`` documents — in file order, or after a shuffle seeded by the suite seed
    (option ``order: shuffled``; e.g. PubMedQA's file is sorted by label, so its first N are all "yes")."""
    order = (options.extra or {}).get("order", "file")
    if order not in ("file", "shuffled"):
        raise ConfigError(f"{task}: option order must be file or shuffled (got {order!r})")
    if order == "shuffled":
        import random

        docs = list(docs)
        random.Random(options.seed).shuffle(docs)
    limit = check_limit(task, options.limit)
    return docs[:limit] if limit is not None else docs


def _label_index(task: str, value: Any, labels: Sequence[str], where: str) -> int:
    if value not in labels:
        raise DataError(f"{task}: {where} has label {value!r}, not one of the task's labels {list(labels)}",
                        hint="the label set of the data and of the task must match")
    return list(labels).index(value)


def build_pubmedqa(options: TaskOptions) -> ClassificationTask:
    from evalmon.tasks.medical import PUBMEDQA, load_rows, pubmedqa_doc

    name = "pubmedqa_cls"
    zero_shot_only(name, options)
    opts = common_options(name, options)
    rows = load_rows(PUBMEDQA, data_dir_of(options))
    labels = ("yes", "no", "maybe")
    docs = [ClsDoc(i, pubmedqa_doc(r, i).query, _label_index(name, r.get("final_decision"), labels, f"record {i}"))
            for r, i in zip(rows.rows, rows.ids, strict=True)]
    return ClassificationTask(name=name, source=rows.source, documents=_limit(docs, options, name), labels=labels,
                              prompt_note="lm-eval pubmedqa: Abstract: …\nQuestion: …\nAnswer:",
                              lm_eval_task="pubmedqa", **_kw(opts))


def build_enterprise_pii(options: TaskOptions) -> ClassificationTask:
    name = "enterprise_pii"
    zero_shot_only(name, options)
    opts = common_options(name, options)
    data_dir = data_dir_of(options)
    if data_dir is None:
        raise DataError(f"{name}: read from the local mirror only", hint="set data.data_dir (enterprise_pii/…)")
    path = require_file(data_dir, "enterprise_pii/enterprise_pii_classification.jsonl", task=name)
    labels = ("no", "yes")
    docs = []
    for ln, row in read_jsonl(path):
        if not isinstance(row, dict) or not isinstance(row.get("query"), str):
            raise malformed(path, f"line {ln}", "expected {query, choices, gold}")
        if list(row.get("choices") or []) != list(labels):
            raise DataError(f"{name}: {path}:line {ln} has choices {row.get('choices')!r}, not {list(labels)}",
                            hint="the label set of the data and of the task must match")
        gold = row.get("gold")
        if gold not in (0, 1) or isinstance(gold, bool):
            raise DataError(f"{name}: {path}:line {ln} has gold {gold!r}, not an index into {list(labels)}")
        docs.append(ClsDoc(str(ln), row["query"], int(gold)))
    return ClassificationTask(name=name, source=str(path), documents=_limit(docs, options, name), labels=labels,
                              prompt_note="MosaicML gauntlet query (…Answer:), positive = yes", **_kw(opts))


def halueval_instruction(text: str) -> str:
    """HaluEval's qa_evaluation_instruction.txt is a Python string fragment (``\\"Yes\\" or \\"No\\"".``):
    unescape the quotes and drop the stray closing one."""
    t = text.strip().replace('\\"', '"')
    return t[:-3] + '".' if t.endswith('"".') else t


def build_halueval(options: TaskOptions) -> ClassificationTask:
    name = "halueval_qa"
    zero_shot_only(name, options)
    opts = common_options(name, options, ("instruction",))
    data_dir = data_dir_of(options)
    if data_dir is None:
        raise DataError(f"{name}: read from the local mirror only", hint="set data.data_dir (halueval/…)")
    path = require_file(data_dir, "halueval/generation/qa/qa_one-turn_data.json", task=name)
    use_instruction = opts["extra"].get("instruction", True)
    if not isinstance(use_instruction, bool):
        raise ConfigError(f"{name}: option instruction must be true or false")
    head = ""
    if use_instruction:
        ipath = require_file(data_dir, "halueval/evaluation/qa/qa_evaluation_instruction.txt", task=name)
        head = halueval_instruction(ipath.read_text(encoding="utf-8")) + "\n\n"
    docs = []
    for ln, row in read_jsonl(path):
        if not isinstance(row, dict) or not all(isinstance(row.get(k), str) for k in
                                                ("question", "right_answer", "hallucinated_answer")):
            raise malformed(path, f"line {ln}", "expected question, right_answer and hallucinated_answer strings")
        for kind, answer, label in (("right", row["right_answer"], 0), ("hallucinated", row["hallucinated_answer"], 1)):
            ctx = f"{head}#Question#: {row['question']}\n#Answer#: {answer}\n#Your Judgement#:"
            docs.append(ClsDoc(f"{ln}/{kind}", ctx, label))
    return ClassificationTask(name=name, source=str(path), documents=_limit(docs, options, name), labels=("No", "Yes"),
                              prompt_note="HaluEval QA judge instruction + #Question#/#Answer#/#Your Judgement#:, "
                                          "positive = Yes (hallucinated)" + ("" if use_instruction else ", no instruction"),
                              **_kw(opts))


def build_generic(options: TaskOptions) -> ClassificationTask:
    name = "classification"
    zero_shot_only(name, options)
    opts = common_options(name, options, ("path", "text_field", "label_field", "labels", "template"))
    extra = opts["extra"]
    labels = extra.get("labels")
    if not isinstance(labels, list) or not all(isinstance(x, str) and x for x in labels):
        raise ConfigError(f"{name}: option labels must be a list of label strings (binary: [negative, positive])")
    template = extra.get("template", "{text}\nAnswer:")
    text_field, label_field = extra.get("text_field", "text"), extra.get("label_field", "label")
    if not isinstance(template, str) or "{text}" not in template:
        raise ConfigError(f"{name}: option template must be a string containing {{text}}")
    (path,) = get_paths(name, options, {"path": extra.get("path")}, "path")[:1]
    docs = []
    for ln, row in read_jsonl(path):
        if not isinstance(row, dict) or not isinstance(row.get(text_field), str):
            raise malformed(path, f"line {ln}", f"expected an object with a string field {text_field!r}")
        label = _label_index(name, row.get(label_field), labels, f"{path}:line {ln}")
        docs.append(ClsDoc(str(ln), template.replace("{text}", row[text_field]), label))
    if not docs:
        raise DataError(f"{name}: no documents in {path}")
    return ClassificationTask(name=name, source=str(path), documents=_limit(docs, options, name), labels=tuple(labels),
                              prompt_note=template, **_kw(opts))


def _kw(opts: dict[str, Any]) -> dict[str, Any]:
    return {k: opts[k] for k in ("threshold", "bins", "bootstrap_iters")}


for _name, _factory, _local, _hub in (
    ("pubmedqa_cls", build_pubmedqa, "pubmedqa/test_set.json", "bigbio/pubmed_qa:pubmed_qa_labeled_fold0_source (test)"),
    ("enterprise_pii", build_enterprise_pii, "enterprise_pii/enterprise_pii_classification.jsonl", "(local mirror only)"),
    ("halueval_qa", build_halueval, "halueval/generation/qa/qa_one-turn_data.json", "(local mirror only)"),
    ("classification", build_generic, "options.path", "(local files only)"),
):
    registry.tasks.add(_name, _factory, family="classification", local_source=_local, hub_source=_hub)

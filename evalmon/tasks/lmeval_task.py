"""``lm_eval:<name>``: one of lm-eval's own tasks, run on evalmon's engine.

lm-eval builds the requests (its ``Task.build_all_requests``: its templates, few-shot sampler, process_docs),
evalmon answers them (packed scoring, response cache, progress, tracking), and lm-eval scores them again: its
filter pipelines, ``process_results`` and aggregation functions, with its stderr rules (``mean_stderr`` for
means, its seeded bootstrap for perplexity/BLEU/F1/MCC…). So the numbers equal ``lm_eval.simple_evaluate``'s
on the same rows and model.

Mapping of lm-eval's request types: ``loglikelihood`` → ``LLRequest`` (response ``(logprob, is_greedy)``),
``loglikelihood_rolling`` → ``RollingRequest`` (response: the float), ``generate_until`` → ``GenRequest``
(greedy only; ``until`` + ``max_gen_toks``). lm-eval metric ``m`` under filter ``none`` is evalmon's ``m``,
under another filter ``f`` it is ``m_f`` (as ``evalmon export`` names them). Mean metrics keep per-document
scores in ``samples.jsonl.gz`` (what ``gate`` pairs); other aggregations are corpus metrics.

``multiple_input`` tasks (winogrande: one context per option) and multiple gold targets are plain loglikelihood
requests scored by lm-eval's ``process_results``: they map. What does not map (one-line ``ConfigError``):
``repeats`` > 1, sampling (``do_sample``/``temperature`` > 0) and generation kwargs other than
``until``/``max_gen_toks``. lm-eval's chat-template rendering is never asked for (evalmon builds the requests
as ``simple_evaluate`` does without ``apply_chat_template``). lm-eval is imported
lazily (``evalmon.tasks.lmeval_catalogue`` loads the tasks).
"""

from __future__ import annotations

import hashlib
import json
import random
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from evalmon.core.errors import ConfigError
from evalmon.core.lm import GenRequest, LLRequest, LLResult, Request, RollingRequest
from evalmon.tasks._options import check_keys, get_int
from evalmon.tasks.base import MetricSpec, Task, TaskOptions

PREFIX = "lm_eval:"
DEFAULT_BOOTSTRAP_ITERS = 100000  # lm-eval's simple_evaluate default
OUTPUT_TYPES = ("loglikelihood", "multiple_choice", "loglikelihood_rolling", "generate_until")
BINARY = frozenset({"acc", "acc_norm", "exact_match", "mc1", "em", "acc_mutual_info", "pass@1"})
_GREEDY_KWARGS = frozenset({"until", "max_gen_toks", "do_sample", "temperature"})
_SMALL_BOOTSTRAP = ("bleu", "chrf", "chrf++", "ter")  # lm-eval caps their bootstrap at 100 draws


def evalmon_metric(metric: str, filter_name: str) -> str:
    """lm-eval's ``metric,filter`` → evalmon's metric name (``m`` for filter ``none``, else ``m_f``)."""
    return metric if filter_name == "none" else f"{metric}_{filter_name}"


@dataclass
class LMEvalDoc:
    """One lm-eval document with its instances (sorted by ``idx``) and the evalmon requests they become."""

    id: str
    doc_id: int
    doc: Any
    instances: list[Any]
    reqs: list[Request]


def _to_request(task: str, inst: Any) -> Request:
    args = inst.args
    kind = inst.request_type
    if kind == "loglikelihood":
        context, continuation = args
        return LLRequest(str(context), str(continuation))
    if kind == "loglikelihood_rolling":
        return RollingRequest(str(args[0]))
    if kind == "generate_until":
        context, gen = args[0], dict(args[1] or {})
        unknown = sorted(set(gen) - _GREEDY_KWARGS)
        if gen.get("do_sample") or float(gen.get("temperature") or 0.0) > 0.0:
            raise ConfigError(f"{task}: sampling generation (do_sample/temperature > 0) does not map onto evalmon "
                              "with lm-eval-identical numbers",
                              hint="set generation_kwargs do_sample: false, temperature: 0.0 in the task YAML")
        if unknown:
            raise ConfigError(f"{task}: generation_kwargs {', '.join(unknown)} have no evalmon equivalent",
                              hint="evalmon generates greedily with until + max_gen_toks; drop the others "
                                   "in the task YAML (--include-path)")
        until = gen.get("until") or ()
        until = (until,) if isinstance(until, str) else tuple(str(u) for u in until)
        return GenRequest(str(context), until=until, max_gen_toks=int(gen.get("max_gen_toks", 256)))
    raise ConfigError(f"{task}: lm-eval request type {kind!r} has no evalmon equivalent",
                      hint=f"lm_eval: tasks of output types {', '.join(OUTPUT_TYPES)} run on evalmon")


def _lm_response(kind: str, result: Any) -> Any:
    """evalmon's response in the form lm-eval's HFLM returns it."""
    if kind == "loglikelihood":
        return (float(result.logprob), bool(result.is_greedy))
    if kind == "loglikelihood_rolling":
        return float(result.logprob)
    return str(result)


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str, ensure_ascii=False))


def bootstrap_stderr(fn: Any, items: list[Any], iters: int) -> float:
    """lm-eval's ``bootstrap_stderr`` draws (``random.Random(chunk)`` per chunk of ≤ 1000, ``rnd.choices``),
    without its process pool, stdout line and tqdm bar; its ``sample_stddev`` of the replicates."""
    from lm_eval.api.metrics import sample_stddev

    chunk = min(1000, iters)
    reps: list[float] = []
    for i in range(iters // chunk):
        rnd = random.Random(i)
        reps.extend(fn(rnd.choices(items, k=len(items))) for _ in range(chunk))
    return float(sample_stddev(reps))


def _stderr_fn(metric: str, agg: Any) -> Any:
    """evalmon ``stderr_fn(items, iters, seed)`` doing what lm-eval's ``stderr_for_metric`` does."""
    from lm_eval.api import metrics as lm

    def stderr(items: list[Any], iters: int, seed: int) -> float | None:
        if iters <= 0 or len(items) < 2:
            return None
        fn = lm.stderr_for_metric(agg, iters)
        if fn is None:
            return None
        if getattr(fn, "__name__", "") == "<lambda>":  # the bootstrappable ones
            return bootstrap_stderr(agg, items, min(iters, 100) if metric in _SMALL_BOOTSTRAP else iters)
        return float(fn(items))

    return stderr


@dataclass
class LMEvalTask(Task):
    """An lm-eval ``Task`` object (already loaded by ``TaskManager``) as an evalmon task."""

    name: str
    lm_task: Any
    options: TaskOptions
    source: str = ""
    num_fewshot: int = 0
    lm_eval_task: str | None = None
    metrics: dict[str, MetricSpec] = field(init=False)

    def __post_init__(self) -> None:
        extra = check_keys(self.name, self.options, ("bootstrap_iters",))
        self.bootstrap_iters = get_int(self.name, extra, "bootstrap_iters", DEFAULT_BOOTSTRAP_ITERS)
        task = self.lm_task
        self.lm_eval_task = task.config.task
        self.output_type = task.get_config("output_type")
        if self.output_type not in OUTPUT_TYPES:
            raise ConfigError(f"{self.name}: lm-eval output_type {self.output_type!r} does not map onto evalmon",
                              hint=f"lm_eval: tasks of output types {', '.join(OUTPUT_TYPES)} run on evalmon")
        if (task.get_config("repeats") or 1) != 1:
            raise ConfigError(f"{self.name}: repeats: {task.get_config('repeats')} (several samples per document) "
                              "does not map onto evalmon's cached greedy requests",
                              hint="set repeats: 1 in the task YAML (--include-path)")
        self._set_fewshot()
        self.source = _source(task)
        self._build_docs()
        self.metrics = self._metric_specs()

    # ------------------------------------------------------------------ construction
    def _set_fewshot(self) -> None:
        """simple_evaluate's rule: a suite's num_fewshot overrides the config's, except a config's explicit 0."""
        task, wanted = self.lm_task, self.options.num_fewshot
        default = task.get_config("num_fewshot")
        if wanted is not None and default != 0:
            task.set_config(key="num_fewshot", value=wanted)
        elif default is None:
            task.set_config(key="num_fewshot", value=0)
        task.set_fewshot_seed(seed=self.options.seed)
        self.num_fewshot = int(task.get_config("num_fewshot") or 0)

    def _build_docs(self) -> None:
        from lm_eval.evaluator_utils import get_sample_size

        task = self.lm_task
        task._instances = None
        task.build_all_requests(limit=get_sample_size(task, self.options.limit), rank=0, world_size=1)
        by_doc: dict[int, list[Any]] = defaultdict(list)
        for inst in task.instances:
            by_doc[inst.doc_id].append(inst)
        self.documents: list[LMEvalDoc] = []
        for doc_id, insts in sorted(by_doc.items()):
            insts.sort(key=lambda x: x.idx)
            reqs = [_to_request(self.name, i) for i in insts]
            self.documents.append(LMEvalDoc(str(doc_id), doc_id, insts[0].doc, insts, reqs))

    def _metric_specs(self) -> dict[str, MetricSpec]:
        from lm_eval.api.metrics import mean

        task = self.lm_task
        aggs, hib = task.aggregation(), task.higher_is_better()
        filters = [f.name for f in getattr(task, "_filters", [])] or ["none"]
        specs: dict[str, MetricSpec] = {}
        for flt in filters:
            for metric, agg in aggs.items():
                name = evalmon_metric(metric, flt)
                higher = bool(hib.get(metric, True))
                if agg is mean:
                    specs[name] = MetricSpec(name, higher, kind="binary" if metric in BINARY else "continuous",
                                             stderr_fn=None)
                else:
                    iters = min(self.bootstrap_iters, 100) if metric in _SMALL_BOOTSTRAP else self.bootstrap_iters
                    specs[name] = MetricSpec(name, higher, aggregation="corpus", kind="corpus", corpus=agg,
                                             bootstrap_iters=iters, stderr_fn=_stderr_fn(metric, agg))
        self._mean_metrics = {n for n, s in specs.items() if s.corpus is None}
        self._filters = filters
        return specs

    # ------------------------------------------------------------------ the Task contract
    def docs(self) -> Sequence[LMEvalDoc]:
        return self.documents

    def requests(self, doc: LMEvalDoc) -> list[Request]:
        return doc.reqs

    def progress_total(self) -> int:
        return sum(len(d.reqs) for d in self.documents)

    def _filtered(self, doc: LMEvalDoc, results: Sequence[Any]) -> None:
        for inst, res in zip(doc.instances, results, strict=True):
            inst.resps = [_lm_response(inst.request_type, res)]
            inst.filtered_resps = {}
        for ensemble in getattr(self.lm_task, "_filters", []):
            ensemble.apply(doc.instances)

    def score(self, doc: LMEvalDoc, results: Sequence[Any]) -> dict[str, Any]:
        self._filtered(doc, results)
        out: dict[str, Any] = {}
        for flt in doc.instances[0].filtered_resps:
            scores = self.lm_task.process_results(doc.doc, [i.filtered_resps[flt] for i in doc.instances])
            for metric, value in scores.items():
                name = evalmon_metric(metric, flt)
                if name not in self.metrics:
                    raise ConfigError(f"{self.name}: process_results returned metric {metric!r}, which the task's "
                                      "metric_list does not declare",
                                      hint="list it under metric_list (with its aggregation) in the task YAML")
                out[name] = float(value) if name in self._mean_metrics else value
        return out

    def sample_fields(self, doc: LMEvalDoc, results: Sequence[Any]) -> dict[str, Any]:
        fields: dict[str, Any] = {"target": _jsonable(self.lm_task.doc_to_target(doc.doc)),
                                  "extra": {"lm_eval_doc_id": doc.doc_id, "filtered_resps": {
                                      flt: [_jsonable(i.filtered_resps.get(flt)) for i in doc.instances]
                                      for flt in self._filters}}}
        if results and isinstance(results[0], LLResult):
            fields["loglikelihoods"] = [float(r.logprob) for r in results]
            if self.output_type != "loglikelihood_rolling":
                fields["is_greedy"] = [bool(r.is_greedy) for r in results]
        return fields

    def config(self) -> dict[str, Any]:
        cfg = _jsonable(self.lm_task.dump_config())
        digest = hashlib.sha256(json.dumps(cfg, sort_keys=True).encode()).hexdigest()[:16]
        return {"name": self.name, "type": "lm_eval", "lm_eval_task": self.lm_eval_task,
                "output_type": self.output_type, "num_fewshot": self.num_fewshot,
                "fewshot_seed": self.options.seed, "limit": self.options.limit,
                "lm_eval_version": _lm_eval_version(), "lm_eval_config_hash": digest, "lm_eval_config": cfg}


def _lm_eval_version() -> str:
    from importlib.metadata import version

    return version("lm_eval")


def _source(task: Any) -> str:
    """Where lm-eval read the documents: ``dataset_path[/dataset_name]`` (+ local data files)."""
    cfg = task.config
    where = str(cfg.dataset_path) + (f"/{cfg.dataset_name}" if cfg.dataset_name else "")
    files = (cfg.dataset_kwargs or {}).get("data_files")
    if files:
        where += f" ({_jsonable(files)})"
    return f"lm-eval {cfg.task}: {where}"

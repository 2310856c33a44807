"""Model × variant planning: every task for a reference and each variant on the same documents, paired results.

A *variant* is an adapter of one loaded model (``model.adapters``, this module's ``AdapterRuns``; reference
``base``) or a checkpoint of a ``models:`` list (``harness/model_matrix.py``; reference: the first entry). Both
share the storage layout, the ranked paired table (``comparison_table``) and the child runs below.

A suite whose model lists ``adapters:`` (``evalmon.config.models.HFModelConfig``) is evaluated for every
variant of the one loaded model — ``base`` (adapters off) and each adapter — through the backend's
``adapters`` capability (``core.lm.AdapterLM.variant``). Each variant answers through its own fingerprint,
so the response cache is kept per adapter and a plain run's cached base answers are reused.

Storage (docs/adapters.md): ``reports/<run>/`` is the base's run, laid out exactly like a single-model run
(results.json, samples.jsonl.gz, reports); each adapter's run is a complete run directory
``reports/<run>/adapters/<name>/`` (run id ``<run>#<name>``), so every reader — ``evalmon gate RUN#name``,
export, sync — reads it unchanged. Every variant scores the same documents (same task objects, same
doc ids): the samples are paired. The suite run's ``results.json`` gets an ``adapters`` section: the ranked
table (``comparison_table``) of every adapter against the base (and the best adapter), with the gate's
paired tests (``evalmon.metrics.paired``: exact McNemar for 0/1 metrics, paired bootstrap for continuous
and registered corpus metrics) and Holm's correction across the adapter × task/metric family.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from evalmon.core.errors import ModelError
from evalmon.core.lm import LM
from evalmon.core.redact import redact_obj
from evalmon.core.results import RunResult, SampleRecord, TaskResult
from evalmon.harness.engine import Advance, require
from evalmon.harness.roles import Models
from evalmon.metrics.paired import (
    PairedTest,
    corpus_statistic,
    derive_seed,
    holm,
    mcnemar_test,
    paired_bootstrap_corpus,
    paired_bootstrap_mean,
)

BASE = "base"
ADAPTERS_DIR = "adapters"
MODELS_DIR = "models"
DIRS = {"adapter": ADAPTERS_DIR, "checkpoint": MODELS_DIR}  # variant kind → folder under the suite run
ALPHA = 0.05


def adapter_variants(cfg: Any, lm: LM) -> list[tuple[str, LM]]:
    """``[(name, variant LM), …]`` for every adapter the suite's model lists (``[]`` without ``adapters:``);
    a backend without the ``adapters`` capability is a one-line error before anything runs."""
    names = list(getattr(cfg.model, "adapters", None) or {})
    if not names:
        return []
    require(lm, {"adapters"}, "model.adapters", "candidate")
    variant = getattr(type(lm), "variant", None)  # on the type: a lazy model must not load for the check
    if not callable(variant):
        raise ModelError(f"model.adapters: backend {lm.fingerprint.backend!r} declares adapters but cannot "
                         "switch between them (no variant())", hint="use model.backend: hf")
    return [(name, lm.variant(name)) for name in names]  # type: ignore[attr-defined]


def variant_dir(run_dir: Path, name: str, kind: str = "adapter") -> Path:
    return Path(run_dir) / DIRS[kind] / name


def variant_run(parent: RunResult, name: str, fingerprint: dict[str, Any], kind: str = "adapter") -> RunResult:
    """A fresh ``RunResult`` for variant ``name`` (an adapter, or a checkpoint) of the suite run ``parent``."""
    section = {"variant": name, "parent_run_id": parent.run_id} | ({} if kind == "adapter" else {"kind": kind})
    return RunResult(run_id=f"{parent.run_id}#{name}", suite_name=parent.suite_name, suite_hash=parent.suite_hash,
                     suite_path=parent.suite_path, suite_config=parent.suite_config, started_at=parent.started_at,
                     provenance=parent.provenance, model=fingerprint, adapters=section)


# ------------------------------------------------------------------ the paired comparison
def _by_doc(samples: Sequence[SampleRecord], task: str) -> dict[str, SampleRecord]:
    return {s.doc_id: s for s in samples if s.task == task}


def paired_test(task: TaskResult, metric: str, base: dict[str, SampleRecord], other: dict[str, SampleRecord],
                seed: int, key: str) -> PairedTest | None:
    """The gate's test for ``metric`` on the documents both variants scored (None: nothing to pair)."""
    ids = [d for d in base if d in other]
    if not ids:
        return None
    rng = derive_seed(seed, key)
    if all(metric in base[d].scores and metric in other[d].scores for d in ids):
        a = np.array([base[d].scores[metric] for d in ids], dtype=float)
        b = np.array([other[d].scores[metric] for d in ids], dtype=float)
        if task.metric_kinds.get(metric) == "binary":
            return mcnemar_test(a, b)
        return paired_bootstrap_mean(a, b, seed=seed, rng=rng)
    statistic = corpus_statistic(metric)
    if statistic is not None and all(metric in base[d].items and metric in other[d].items for d in ids):
        return paired_bootstrap_corpus([base[d].items[metric] for d in ids], [other[d].items[metric] for d in ids],
                                       statistic, seed=seed, rng=rng)
    return None


def comparison_table(base: RunResult, base_samples: Sequence[SampleRecord],
                     variants: dict[str, tuple[RunResult, Sequence[SampleRecord]]], *, seed: int,
                     dirs: dict[str, str], reference: str = BASE, kind: str = "adapter") -> dict[str, Any]:
    """The ranked variant table: per task/metric every variant's value, Δ vs the reference (``base``, or the
    first checkpoint) with its paired test and Holm-adjusted p (family: every variant × task/metric test), Δ vs
    the best variant; then the ranking. (Row keys ``base``/``adapters`` and ranking key ``adapter`` name the
    reference and the variants whatever their kind.)"""
    rows: list[dict[str, Any]] = []
    tests: list[tuple[dict[str, Any], PairedTest | None]] = []
    for tname, task in base.tasks.items():
        b_docs = _by_doc(base_samples, tname)
        for metric, mv in task.metrics.items():
            row: dict[str, Any] = {"task": tname, "metric": metric, "kind": task.metric_kinds.get(metric, "corpus"),
                                   "higher_is_better": mv.higher_is_better, "base": mv.value, "n": task.n,
                                   "adapters": {}}
            for name, (run, samples) in variants.items():
                other = run.tasks.get(tname)
                if other is None or metric not in other.metrics:
                    continue
                test = paired_test(task, metric, b_docs, _by_doc(samples, tname), seed, f"{name}/{tname}/{metric}")
                cell = {"value": other.metrics[metric].value, "delta": other.metrics[metric].value - mv.value,
                        "test": test.test if test else "none", "n": test.n if test else 0,
                        "delta_ci": [test.ci_low, test.ci_high] if test and test.ci_low is not None else None,
                        "p": test.p_value if test else None}
                row["adapters"][name] = cell
                tests.append((cell, test))
            rows.append(row)
    adjusted = holm([t.p_value if t else None for _, t in tests])
    for (cell, _), p in zip(tests, adjusted, strict=True):
        cell["p_holm"] = None if math.isnan(p) else float(p)
    ranking = _rank(rows, list(variants))
    best = ranking[0]["adapter"] if ranking else None
    for row in rows:
        if best in row["adapters"]:
            for cell in row["adapters"].values():
                cell["delta_vs_best"] = cell["value"] - row["adapters"][best]["value"]
    n_tests = sum(1 for _, t in tests if t and t.p_value is not None)
    return {"variants": [reference, *variants], "dirs": dirs, "best": best, "ranking": ranking, "rows": rows,
            "alpha": ALPHA, "family": f"Holm over {n_tests} {kind} × task/metric tests vs {reference}",
            "tests": "exact McNemar (0/1 metrics), paired bootstrap of the mean (continuous), paired bootstrap "
                     "of the corpus statistic (registered corpus metrics); evalmon.metrics.paired"} \
        | ({} if kind == "adapter" else {"kind": kind, "reference": reference})


def _rank(rows: list[dict[str, Any]], names: list[str]) -> list[dict[str, Any]]:
    """Adapters by mean rank over task/metric columns (1 = best, ties share the mean rank), then name;
    with counts of Holm-significant wins and losses against the base."""
    ranks: dict[str, list[float]] = {n: [] for n in names}
    for row in rows:
        cells = row["adapters"]
        sign = 1.0 if row["higher_is_better"] else -1.0
        scored = sorted(((-sign * c["value"], n) for n, c in cells.items() if math.isfinite(c["value"])))
        i = 0
        while i < len(scored):
            j = i
            while j + 1 < len(scored) and scored[j + 1][0] == scored[i][0]:
                j += 1
            for k in range(i, j + 1):
                ranks[scored[k][1]].append((i + j) / 2 + 1)
            i = j + 1
    out = []
    for name in names:
        better = worse = 0
        for row in rows:
            cell = row["adapters"].get(name)
            if cell and cell.get("p_holm") is not None and cell["p_holm"] < ALPHA and cell["delta"] != 0:
                good = (cell["delta"] > 0) == row["higher_is_better"]
                better, worse = better + good, worse + (not good)
        mean_rank = sum(ranks[name]) / len(ranks[name]) if ranks[name] else math.inf
        out.append({"adapter": name, "mean_rank": mean_rank, "better_than_base": better, "worse_than_base": worse})
    out.sort(key=lambda r: (r["mean_rank"], -r["better_than_base"], r["worse_than_base"], r["adapter"]))
    for i, r in enumerate(out, 1):
        r["rank"] = i
    return out


# ------------------------------------------------------------------ the adapters' runs beside the suite run
Evaluate = Callable[[Any, Models, Advance], tuple[TaskResult, list[SampleRecord]]]
Aggregate = Callable[[RunResult], None]
Finalize = Callable[[RunResult, Path, Sequence[SampleRecord], Any, Callable[[str], None]], None]


class AdapterRuns:
    """Each adapter's run: evaluated task by task after the base (same task objects: paired documents),
    saved to ``adapters/<name>/results.json`` after every task; compared and finalised with the suite run."""

    def __init__(self, variants: list[tuple[str, LM]], parent: RunResult, run_dir: Path, models: Models) -> None:
        self.run_dir = run_dir
        self.models = {name: models.with_candidate(lm) for name, lm in variants}  # judges (…) shared
        self.runs = {name: variant_run(parent, name, redact_obj(lm.fingerprint.to_dict())) for name, lm in variants}
        self.samples: dict[str, list[SampleRecord]] = {name: [] for name, _ in variants}

    def evaluate(self, task: Any, progress: Any, evaluate: Evaluate, aggregate: Aggregate) -> None:
        for name, models in self.models.items():
            with progress.task(f"{task.name} [{name}]", task.progress_total()) as advance:
                result, samples = evaluate(task, models, advance)
            run = self.runs[name]
            run.tasks[task.name] = result.model_copy(update={"config": redact_obj(result.config)})
            self.samples[name].extend(samples)
            aggregate(run)
            directory = variant_dir(self.run_dir, name)
            directory.mkdir(parents=True, exist_ok=True)
            run.save(directory)

    def compare(self, parent: RunResult, base_samples: Sequence[SampleRecord], seed: int,
                aggregate: Aggregate, say: Callable[[str], None]) -> None:
        """The adapters' runs take the suite run's status; the ranked table goes into ``parent.adapters``
        (a failure here is one warning line: the runs themselves are still written)."""
        for run in self.runs.values():
            run.status, run.error, run.finished_at = parent.status, parent.error, parent.finished_at
            aggregate(run)
        compare_runs(parent, base_samples, self.runs, self.samples, seed=seed, say=say)

    def finalize(self, parent: RunResult, cfg: Any, say: Callable[[str], None], finalize: Finalize) -> None:
        """Write (and log to MLflow, as child runs of the suite run) every adapter's run."""
        finalize_runs(parent, self.runs, self.samples, self.run_dir, cfg, say, finalize)


def compare_runs(parent: RunResult, base_samples: Sequence[SampleRecord], runs: dict[str, RunResult],
                 samples: dict[str, list[SampleRecord]], *, seed: int, say: Callable[[str], None],
                 reference: str = BASE, kind: str = "adapter") -> None:
    """The ranked table of ``runs`` against ``parent`` (the reference) into ``parent.adapters`` (a failure here
    is one warning line: the runs themselves are still written)."""
    pairs = {name: (run, samples[name]) for name, run in runs.items()}
    dirs = {name: f"{DIRS[kind]}/{name}" for name in runs}
    try:
        parent.adapters = comparison_table(parent, base_samples, pairs, seed=seed, dirs=dirs, reference=reference,
                                           kind=kind)
    except Exception as exc:  # the computed runs must still be written
        parent.adapters = {"variants": [reference, *runs], "dirs": dirs, "error": f"{type(exc).__name__}: {exc}"} \
            | ({} if kind == "adapter" else {"kind": kind, "reference": reference})
        say(f"warning: the {kind} comparison failed ({type(exc).__name__}: {exc}); every run is still saved")


def finalize_runs(parent: RunResult, runs: dict[str, RunResult], samples: dict[str, list[SampleRecord]],
                  run_dir: Path, cfg: Any, say: Callable[[str], None], finalize: Finalize, kind: str = "adapter") -> None:
    """Write (and log to MLflow, as child runs of the suite run ``parent``, already logged) every variant's run."""
    for name, run in runs.items():
        if parent.mlflow.get("run_id"):
            run.adapters["parent_mlflow_run_id"] = parent.mlflow["run_id"]
        directory = variant_dir(run_dir, name, kind)
        directory.mkdir(parents=True, exist_ok=True)
        finalize(run, directory, samples[name], cfg, say)

"""Normalise lm-eval's and evalmon's outputs for one task and compare them (bench_vs_lmeval's checks).

Both harnesses' results become a :class:`Scored`: per document (in document order) the numbers
that were scored — one loglikelihood per choice, one rolling sum per document — the raw
generation and filtered answer of a generative task, the per-document scores, and the task's
metrics. :func:`compare` then gives the max |Δ| of those numbers, which metrics differ, how many
documents' generations differ and how many per-document scores flipped — for lm-eval vs evalmon
(parity) and for a harness in bfloat16 vs the same harness in float32 (how far bf16 moves).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

#: evalmon metric → lm-eval's metric key (TruthfulQA MC1/MC2 report ``acc``)
LMEVAL_KEY = {"mc1": "acc", "mc2": "acc"}
#: per-document 0/1 scores whose changes count as flips
FLIP_METRICS = ("acc", "acc_norm", "mc1", "exact_match")
#: smooth in the loglikelihoods: compared with a tolerance instead of exactly
SMOOTH_ABS = {"mc2": 1e-5}
SMOOTH_REL = {"word_perplexity": 1e-6, "byte_perplexity": 1e-6, "bits_per_byte": 1e-6}


@dataclass
class Doc:
    numbers: list[float]  # loglikelihood per request (MC), rolling sum (perplexity), none (generation)
    scores: dict[str, float] = field(default_factory=dict)  # per-document 0/1 (or mc2) scores
    output: str | None = None  # raw generation
    filtered: str | None = None  # filtered answer (generation)


@dataclass
class Scored:
    docs: list[Doc]
    metrics: dict[str, float]


@dataclass
class Comparison:
    worst: float | None  # max |Δ| over the scored numbers (None: nothing numeric, e.g. generation)
    metrics_differ: list[str]  # metric names whose values differ beyond their tolerance
    outputs_differ: int  # documents whose raw generation or filtered answer differs
    flips: dict[str, int]  # per 0/1 metric: documents whose score changed
    deltas: dict[str, float] = field(default_factory=dict)  # metric → b - a, for the metrics that differ

    def moved(self) -> str:
        """The metrics that differ and by how much (``none`` if all are equal)."""
        return ", ".join(f"{m} {self.deltas[m]:+.1e}" for m in self.metrics_differ) or "none"

    @property
    def same(self) -> bool:
        return not self.metrics_differ and self.outputs_differ == 0


def from_evalmon(result: Any, samples: list[Any]) -> Scored:
    docs = [Doc(numbers=[float(x) for x in s.loglikelihoods], scores=dict(s.scores),
                output=s.outputs[0] if s.outputs else None, filtered=s.extra.get("filtered"))
            for s in samples]
    return Scored(docs, {m: float(mv.value) for m, mv in result.metrics.items()})


def _lmeval_metric(results: dict[str, Any], metric: str) -> float:
    key = LMEVAL_KEY.get(metric, metric)
    for name, value in results.items():
        if name.split(",")[0] == key and not name.startswith(f"{key}_stderr"):
            return float(value)
    raise KeyError(f"lm-eval reported no {key!r} (has {sorted(results)})")


def from_lmeval(out: dict[str, Any], lm_name: str, metrics: list[str], kind: str) -> Scored:
    """lm-eval's ``simple_evaluate(log_samples=True)`` output for ``lm_name`` (metrics named as evalmon's)."""
    docs = []
    for s in sorted(out["samples"][lm_name], key=lambda s: s["doc_id"]):
        scores = {m: float(s[LMEVAL_KEY.get(m, m)]) for m in metrics
                  if m in FLIP_METRICS or m in SMOOTH_ABS}
        if kind == "generate":
            docs.append(Doc([], scores, output=s["resps"][0][0], filtered=s["filtered_resps"][0]))
        elif kind == "rolling":
            docs.append(Doc([float(s["resps"][0][0])], scores))
        else:
            docs.append(Doc([float(r[0][0]) for r in s["resps"]], scores))
    results = out["results"][lm_name]
    return Scored(docs, {m: _lmeval_metric(results, m) for m in metrics})


def _close(metric: str, a: float, b: float) -> bool:
    if metric in SMOOTH_REL:
        return math.isclose(a, b, rel_tol=SMOOTH_REL[metric])
    return abs(a - b) <= SMOOTH_ABS.get(metric, 1e-9)


def compare(a: Scored, b: Scored) -> Comparison:
    if len(a.docs) != len(b.docs):
        raise ValueError(f"{len(a.docs)} documents vs {len(b.docs)}")
    worst: float | None = None
    outputs = 0
    flips = {m: 0 for m in FLIP_METRICS if m in a.metrics}
    for da, db in zip(a.docs, b.docs, strict=True):
        if len(da.numbers) != len(db.numbers):
            raise ValueError(f"{len(da.numbers)} scored numbers vs {len(db.numbers)} in one document")
        for x, y in zip(da.numbers, db.numbers, strict=True):
            worst = max(worst or 0.0, abs(x - y))
        outputs += (da.output, da.filtered) != (db.output, db.filtered)
        for m in flips:
            flips[m] += da.scores.get(m) != db.scores.get(m)
    differ = [m for m, v in a.metrics.items() if m not in b.metrics or not _close(m, v, b.metrics[m])]
    deltas = {m: b.metrics.get(m, math.nan) - a.metrics[m] for m in differ}
    return Comparison(worst, differ, outputs, flips, deltas)

"""Pairwise judging with position swap, FastChat's tie rule, and the adjusted win rate with a bootstrap CI.

Each (question, turn) is judged twice: game 1 shows the model as assistant A and the baseline as B, game 2
swaps them (FastChat ``play_a_match_pair``). Outcome for the model (FastChat ``show_result``):

* either game without a verdict → ``error`` (excluded from the rates, counted);
* game 1 a tie, or the two games disagree (position bias) → ``tie`` (``inconsistent`` is counted too);
* otherwise the agreed winner → ``win`` / ``loss``.

``win_rate`` = (win + 0.5·tie) / (win + loss + tie) — FastChat's ``win_rate_adjusted``. Its CI is a
percentile bootstrap over *questions* (a question's two turns are resampled together), seeded.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from evalmon.core.results import MetricValue
from evalmon.judge.parse import Verdict

Outcome = str  # win | loss | tie | error


@dataclass(frozen=True)
class PairResult:
    """One (question, turn) judged in both orders."""

    outcome: Outcome
    inconsistent: bool
    g1: str | None  # game 1 winner as the judge said it (A = model, B = baseline), None = no verdict
    g2: str | None  # game 2 (A = baseline, B = model)


def combine(g1: Verdict, g2: Verdict) -> PairResult:
    """Position-swapped verdicts → outcome for the model (FastChat ``show_result`` rules)."""
    a = g1.value if g1.ok else None
    b = g2.value if g2.ok else None
    if a is None or b is None:
        return PairResult("error", False, _s(a), _s(b))
    m1 = {"A": "win", "B": "loss", "tie": "tie"}[str(a)]  # game 1: A is the model
    m2 = {"A": "loss", "B": "win", "tie": "tie"}[str(b)]  # game 2: A is the baseline
    if m1 == "tie" or m1 != m2:
        return PairResult("tie", m1 != m2, str(a), str(b))
    return PairResult(m1, False, str(a), str(b))


def _s(v: object) -> str | None:
    return None if v is None else str(v)


def outcome_value(outcome: Outcome) -> float | None:
    return {"win": 1.0, "tie": 0.5, "loss": 0.0}.get(outcome)


def counts(outcomes: Sequence[Outcome]) -> dict[str, int]:
    return {k: sum(o == k for o in outcomes) for k in ("win", "loss", "tie", "error")}


def win_rate(outcomes: Sequence[Outcome]) -> float | None:
    """(win + 0.5·tie) / (win + loss + tie); None when nothing was judged."""
    vals = [v for o in outcomes if (v := outcome_value(o)) is not None]
    return sum(vals) / len(vals) if vals else None


@dataclass(frozen=True)
class BootstrapCI:
    value: float
    stderr: float | None
    low: float | None
    high: float | None
    iters: int
    seed: int
    level: float = 0.95


def bootstrap_win_rate(by_question: Mapping[str, Sequence[Outcome]], *, iters: int = 1000, seed: int = 1234,
                       level: float = 0.95) -> BootstrapCI | None:
    """Adjusted win rate with a percentile bootstrap CI over questions (clusters of turns)."""
    import numpy as np  # lazy: keeps `evalmon tasks` fast

    groups = [[v for o in outs if (v := outcome_value(o)) is not None] for _, outs in sorted(by_question.items())]
    groups = [g for g in groups if g]
    if not groups:
        return None
    sums = np.array([sum(g) for g in groups], dtype=np.float64)
    ns = np.array([len(g) for g in groups], dtype=np.float64)
    value = float(sums.sum() / ns.sum())
    if len(groups) < 2 or iters <= 0:
        return BootstrapCI(value, None, None, None, iters, seed, level)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(groups), size=(iters, len(groups)))
    stats = sums[idx].sum(axis=1) / ns[idx].sum(axis=1)
    alpha = (1.0 - level) / 2
    low, high = np.quantile(stats, [alpha, 1.0 - alpha])
    return BootstrapCI(value, float(stats.std(ddof=1)), float(low), float(high), iters, seed, level)


TurnRecords = Mapping[str, Sequence[Mapping[str, Any]]]  # question id → per-turn records (outcome, turn, …)


def pairwise_metrics(per_q: TurnRecords, categories: Mapping[str, str], *, iters: int, seed: int
                     ) -> tuple[dict[str, MetricValue], dict[str, str]]:
    """``win_rate`` overall / per turn / per category (bootstrap CI) and the outcome counts."""
    subsets: dict[str, dict[str, list[str]]] = {}
    keys = sorted({(t["turn"], categories[q]) for q, turns in per_q.items() for t in turns})
    names = ["win_rate", *sorted({f"win_rate_turn{k[0]}" for k in keys}), *sorted({f"win_rate_{k[1]}" for k in keys})]
    for name in names:
        subsets[name] = {}
    for qid, turns in per_q.items():
        for t in turns:
            for name in ("win_rate", f"win_rate_turn{t['turn']}", f"win_rate_{categories[qid]}"):
                subsets[name].setdefault(qid, []).append(t["outcome"])
    metrics: dict[str, MetricValue] = {}
    kinds: dict[str, str] = {}
    for name, by_q in subsets.items():
        ci = bootstrap_win_rate(by_q, iters=iters, seed=seed)
        if ci is not None:
            metrics[name] = MetricValue(value=ci.value, stderr=ci.stderr, ci_low=ci.low, ci_high=ci.high,
                                        ci_method="bootstrap percentile (questions resampled)")
            kinds[name] = "continuous"
    flat = [t for turns in per_q.values() for t in turns]
    c = counts([t["outcome"] for t in flat])
    tallies = {"wins": (c["win"], True), "losses": (c["loss"], False), "ties": (c["tie"], False),
               "inconsistent": (sum(bool(t.get("inconsistent")) for t in flat), False),
               "errors": (c["error"], False),
               "parse_failures": (sum(len(t.get("parse_failures", ())) for t in flat), False)}
    for name, (v, hib) in tallies.items():
        metrics[name] = MetricValue(value=float(v), higher_is_better=hib)
        kinds[name] = "count"
    return metrics, kinds

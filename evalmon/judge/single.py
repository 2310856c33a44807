"""Single-answer grading: a 1–10 rating per (question, turn), aggregated as FastChat's ``show_result``.

Ratings that failed to parse (FastChat's ``score == -1``) are excluded and counted. ``score`` is the mean
over every judged turn (FastChat's "Average"), ``score_turn1``/``score_turn2`` per turn and
``score_<category>`` per category; each with the sample stderr (n-1)/√n and a seeded BCa bootstrap 95% CI.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from evalmon.core.results import MetricValue
from evalmon.metrics.intervals import mean_interval
from evalmon.metrics.stats import mean_stderr


@dataclass(frozen=True)
class Rating:
    question_id: str
    category: str
    turn: int
    score: float | None  # None = no parsable rating


@dataclass(frozen=True)
class MeanScore:
    value: float
    stderr: float | None
    n: int


def mean_score(values: Sequence[float]) -> MeanScore | None:
    if not values:
        return None
    return MeanScore(sum(values) / len(values), mean_stderr(list(values)), len(values))


def rating_groups(ratings: Sequence[Rating]) -> dict[str, list[float]]:
    """The parsed ratings behind ``score``, ``score_turn<k>`` and ``score_<category>``."""
    ok = [r for r in ratings if r.score is not None]
    groups: dict[str, list[float]] = {"score": [r.score for r in ok if r.score is not None]}
    for r in sorted(ok, key=lambda r: r.turn):
        assert r.score is not None
        groups.setdefault(f"score_turn{r.turn}", []).append(r.score)
    for r in sorted(ok, key=lambda r: r.category):
        assert r.score is not None
        groups.setdefault(f"score_{r.category}", []).append(r.score)
    return groups


def aggregate(ratings: Sequence[Rating]) -> dict[str, MeanScore]:
    """``score``, ``score_turn<k>`` and ``score_<category>`` over the parsed ratings."""
    out: dict[str, MeanScore] = {}
    for name, vals in rating_groups(ratings).items():
        ms = mean_score(vals)
        if ms is not None:
            out[name] = ms
    return out


def single_metrics(per_q: Mapping[str, Sequence[Mapping[str, Any]]], categories: Mapping[str, str]
                   ) -> tuple[dict[str, MetricValue], dict[str, str]]:
    """Scores (mean ± stderr) from per-question turn records ``{turn, score, parse_failures}``, plus counts."""
    ratings = [Rating(q, categories[q], int(t["turn"]), t["score"]) for q, turns in per_q.items() for t in turns]
    metrics: dict[str, MetricValue] = {}
    for name, vals in rating_groups(ratings).items():
        ms = mean_score(vals)
        if ms is None:
            continue
        ci = mean_interval(vals)  # seeded BCa bootstrap of the ratings (never past 1–10 as value ± 1.96·se can be)
        metrics[name] = MetricValue.with_ci(ms.value, ms.stderr, ci=(ci.low, ci.high) if ci else None,
                                            ci_method=ci.method if ci else None)
    kinds = dict.fromkeys(metrics, "continuous")
    failures = sum(len(t.get("parse_failures", ())) for turns in per_q.values() for t in turns)
    metrics["parse_failures"] = MetricValue(value=float(failures), higher_is_better=False)
    metrics["judged"] = MetricValue(value=float(sum(r.score is not None for r in ratings)))
    kinds.update(parse_failures="count", judged="count")
    return metrics, kinds

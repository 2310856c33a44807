"""Score existing hypotheses against references without a model (``evalmon score``)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from evalmon.errors import ConfigError
from evalmon.metrics.asr import ASR_METRICS, Normalization, asr_score
from evalmon.metrics.text import TEXT_METRICS, CorpusScore, corpus_score, read_lines

METRICS = TEXT_METRICS + ASR_METRICS


def score_files(metric: str, hyp: str | Path, refs: Sequence[str | Path], *, n_bootstrap: int = 1000,
                seed: int = 12345, norm: Normalization | None = None) -> CorpusScore:
    """Corpus ``metric`` of the line-aligned hypothesis file against one or more reference files."""
    if metric not in METRICS:
        from evalmon.errors import did_you_mean

        raise ConfigError(f"unknown metric {metric!r}{did_you_mean(metric, METRICS)}",
                          hint=f"use one of {', '.join(METRICS)}")
    if not refs:
        raise ConfigError("--ref: at least one reference file is required")
    hyps = read_lines(hyp, "--hyp file")
    streams = [read_lines(r, "--ref file") for r in refs]
    from evalmon.metrics.text import check_parallel

    check_parallel(hyps, streams, hyp_name=str(hyp), ref_names=[str(r) for r in refs])
    if metric in ASR_METRICS:
        if len(streams) != 1:
            raise ConfigError(f"{metric} takes exactly one --ref file (got {len(streams)})")
        return asr_score(metric, hyps, streams[0], norm=norm, n_bootstrap=n_bootstrap, seed=seed)
    return corpus_score(metric, hyps, streams, n_bootstrap=n_bootstrap, seed=seed)

"""Score existing hypotheses against references without a model (``evalmon score``)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from evalmon.core.errors import ConfigError, DataError
from evalmon.metrics.asr import ASR_METRICS, Normalization, asr_score
from evalmon.metrics.text import TEXT_METRICS, CorpusScore, corpus_score, read_lines

METRICS = TEXT_METRICS + ASR_METRICS


def score_files(metric: str, hyp: str | Path, refs: Sequence[str | Path], *, n_bootstrap: int = 1000,
                seed: int = 12345, norm: Normalization | None = None) -> CorpusScore:
    """Corpus ``metric`` of the line-aligned hypothesis file against one or more reference files.

    With one reference, either side may also be a Rev ``.nlp`` file (one segment) or a folder of
    transcripts (one segment per file, paired by file stem) — e.g. Earnings-21's ``output/<vendor>``
    against ``transcripts/nlp_references``.
    """
    if metric not in METRICS:
        from evalmon.core.errors import did_you_mean

        raise ConfigError(f"unknown metric {metric!r}{did_you_mean(metric, METRICS)}",
                          hint=f"use one of {', '.join(METRICS)}")
    if not refs:
        raise ConfigError("--ref: at least one reference file is required")
    if len(refs) == 1 and any(Path(p).is_dir() or Path(p).suffix == ".nlp" for p in (hyp, refs[0])):
        from evalmon.data.transcripts import paired_segments  # folders of transcripts / Rev .nlp files

        _, hyps, ref_stream = paired_segments(hyp, refs[0])
        streams = [ref_stream]
    else:
        hyps = read_lines(hyp, "--hyp file")
        streams = [read_lines(r, "--ref file") for r in refs]
    from evalmon.metrics.text import check_parallel

    check_parallel(hyps, streams, hyp_name=str(hyp), ref_names=[str(r) for r in refs])
    if metric in ASR_METRICS:
        if len(streams) != 1:
            raise ConfigError(f"{metric} takes exactly one --ref file (got {len(streams)})")
        norm = norm or Normalization()
        if not any(norm.apply(r).strip() for r in streams[0]):  # jiwer refuses empty references; WER is 0/0
            raise DataError(f"every reference in {refs[0]} is empty after normalisation ({norm.describe()}): "
                            f"{metric} is undefined", hint="check the --ref file, or keep what the normalisation "
                                                           "removes (--keep-punctuation, --keep-case)")
        return asr_score(metric, hyps, streams[0], norm=norm, n_bootstrap=n_bootstrap, seed=seed)
    return corpus_score(metric, hyps, streams, n_bootstrap=n_bootstrap, seed=seed)

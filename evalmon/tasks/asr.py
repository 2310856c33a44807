"""``asr`` task type: corpus WER / CER / MER (jiwer) for speech checkpoints and for existing transcripts.

Metrics are corpus statistics (total edits / total reference units — never a mean of per-utterance
rates) over per-document items ``[hypothesis, reference]``, both already normalised with the task's
``Normalization`` (``evalmon.metrics.asr``; default lower-case + punctuation → space + whitespace
collapsed; option ``normalization: {lowercase, remove_punctuation, expand_contractions}``). The
stderr is a seeded bootstrap over documents of the per-document error counts.

Tasks:

* ``asr`` — a speech model (``model.backend: hf_asr``) transcribes audio files. Option ``manifest``:
  a JSONL (``{"audio": "a.wav", "text": "…"}`` per line) or CSV (header with those columns) file;
  ``audio_field`` / ``text_field`` / ``id_field`` rename the columns; audio paths are relative to the
  manifest. Audio is read and resampled to the model's rate by ``evalmon.data.audio`` (``resample:
  false`` makes another rate an error). Each document is one ``TranscribeRequest``: the harness engine
  decodes the audio, dedupes and caches transcripts by (model, audio content hash) like any request.
* ``asr_text`` — no model: options ``hypotheses`` and ``references``, each a line file (one segment
  per line), an ``.nlp`` file, or a folder of transcripts paired by file stem
  (``evalmon.data.transcripts``). Runs with ``model.backend: none``.
* ``earnings21_<vendor>`` (amazon, google, microsoft, speechmatics) — the Eval-10 recordings' vendor
  transcripts vs Rev's references, one document per recording; option ``alternatives`` (default
  true) reads tagged reference spans as any of their ``.norm.json`` verbalisations, an approximation of
  fstalign (``evalmon.data.earnings21``).

All take ``metrics`` (default ``[wer, cer, mer]``; CER aligns characters, ~3 s per 100k words) and
``bootstrap_iters`` (default 1000). An empty reference counts every hypothesis word as an insertion;
references that are all empty, or hypothesis/reference counts that differ, are a ``DataError``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from evalmon.core import registry
from evalmon.core.errors import ConfigError, DataError
from evalmon.core.lm import TranscribeRequest, Transcription
from evalmon.metrics.intervals import BootstrapEstimate, estimate_of
from evalmon.tasks._common import check_limit, data_dir_of, zero_shot_only
from evalmon.tasks._options import check_keys, get_int, get_paths, get_str, resolve
from evalmon.tasks.base import MetricSpec, StageOutputs, Task, TaskOptions

if TYPE_CHECKING:
    from evalmon.core.results import SampleRecord, TaskResult

METRIC_NAMES = ("wer", "cer", "mer")
COMMON_OPTIONS = ("normalization", "metrics", "bootstrap_iters")


@dataclass(frozen=True)
class ASRDoc:
    id: str
    reference: str  # normalised
    hypothesis: str | None = None  # normalised; None: the model transcribes ``audio``
    audio: str | None = None


def _norm(task: str, extra: dict[str, Any]) -> Any:
    from evalmon.metrics.asr import Normalization

    raw = extra.get("normalization", {})
    allowed = ("lowercase", "remove_punctuation", "expand_contractions")
    if not isinstance(raw, dict) or any(k not in allowed or not isinstance(v, bool) for k, v in raw.items()):
        raise ConfigError(f"{task}: option normalization must map {', '.join(allowed)} to true/false (got {raw!r})")
    return Normalization(**raw)


def _identity() -> Any:
    from evalmon.metrics.asr import Normalization

    return Normalization(lowercase=False, remove_punctuation=False)


def _metric_names(task: str, extra: dict[str, Any]) -> tuple[str, ...]:
    names = extra.get("metrics", list(METRIC_NAMES))
    if not isinstance(names, list) or not names or any(n not in METRIC_NAMES for n in names):
        raise ConfigError(f"{task}: option metrics must be a non-empty list of {', '.join(METRIC_NAMES)} (got {names!r})")
    return tuple(dict.fromkeys(names))


def _stderr_fn(metric: str) -> Any:
    def fn(items: list[Any], iters: int, seed: int) -> BootstrapEstimate:
        from evalmon.metrics.asr import asr_score

        return estimate_of(asr_score(metric, [i[0] for i in items], [i[1] for i in items], norm=_identity(),
                                     n_bootstrap=iters, seed=seed))

    return fn


def check_references(task: str, refs: Sequence[str], source: str) -> None:
    if not refs:
        raise DataError(f"{task}: no documents in {source}")
    if all(not r.strip() for r in refs):
        raise DataError(f"{task}: every reference in {source} is empty after normalisation",
                        hint="WER is undefined without reference words")


@dataclass
class ASRTask(Task):
    name: str
    source: str
    documents: Sequence[ASRDoc]
    norm: Any  # Normalization (already applied to the documents' texts)
    metric_names: tuple[str, ...] = METRIC_NAMES
    bootstrap_iters: int = 1000
    resample: bool = True
    num_fewshot: int = 0
    lm_eval_task: str | None = None
    extra_config: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, MetricSpec] = field(init=False)

    def __post_init__(self) -> None:
        from evalmon.metrics.asr import corpus_from_items

        self.metrics = {m: MetricSpec(m, higher_is_better=False, aggregation="corpus", kind="corpus",
                                      corpus=corpus_from_items(m, _identity()), bootstrap_iters=self.bootstrap_iters,
                                      stderr_fn=_stderr_fn(m)) for m in self.metric_names}
        if len({d.hypothesis is None for d in self.documents}) > 1:  # pragma: no cover - programming error
            raise ValueError("mixed speech and text documents")

    @property
    def speech(self) -> bool:
        """Speech mode: the model transcribes the documents' audio (text mode: hypotheses are given)."""
        return any(d.hypothesis is None for d in self.documents)

    def docs(self) -> Sequence[ASRDoc]:
        return self.documents

    def requests(self, doc: ASRDoc) -> list[TranscribeRequest]:
        if doc.hypothesis is not None or doc.audio is None:
            return []  # text mode: nothing to ask a model
        return [TranscribeRequest(doc.audio, resample=self.resample)]

    def score(self, doc: ASRDoc, results: Sequence[Any]) -> dict[str, Any]:
        hyp = doc.hypothesis if doc.hypothesis is not None else self.norm.apply(str(results[0]))
        return {m: [hyp, doc.reference] for m in self.metric_names}

    def sample_fields(self, doc: ASRDoc, results: Sequence[Any]) -> dict[str, Any]:
        out: dict[str, Any] = {"target": doc.reference}
        if doc.audio is not None and results:
            heard: Transcription = results[0]
            out.update(outputs=[heard.text], prompt_hash=audio_key(heard.digest)[:16],
                       extra={"audio": doc.audio, "seconds": round(heard.seconds, 3), "source_rate": heard.source_rate})
        return out

    def finish(self, result: TaskResult, per_metric: dict[str, list[Any]], seed: int,
               samples: Sequence[SampleRecord] = (), outputs: Sequence[StageOutputs] = ()) -> TaskResult:
        """Speech mode: the rate the model heard, the audio duration and the real-time factor."""
        heard: list[Transcription] = [o[0] for o in outputs if o]
        if not heard:
            return result
        audio_s = sum(t.seconds for t in heard)
        secs = result.timing.seconds
        result.config = {**result.config, "sampling_rate": heard[0].sampling_rate,
                         "audio_seconds": round(audio_s, 3),
                         "real_time_factor": round(secs / audio_s, 4) if audio_s else None}
        return result

    def config(self) -> dict[str, Any]:
        return {"name": self.name, "type": "asr", "mode": "speech" if self.speech else "text",
                "normalization": self.norm.describe(), "metrics": list(self.metric_names),
                "corpus_level": "total edits / total reference units", "resample": self.resample,
                "n_docs": len(self.documents), **self.extra_config, "template_version": "1"}


# ---------------------------------------------------------------------------------------- factories
def build_speech(options: TaskOptions) -> ASRTask:
    name = "asr"
    zero_shot_only(name, options)
    extra = check_keys(name, options, ("manifest", "audio_field", "text_field", "id_field", "resample",
                                       *COMMON_OPTIONS))
    if "manifest" not in extra:
        raise ConfigError(f"{name}: option manifest is required", hint="a JSONL/CSV file with audio and text columns")
    (manifest,) = get_paths(name, options, {"manifest": extra["manifest"]}, "manifest")[:1]
    resample = extra.get("resample", True)
    if not isinstance(resample, bool):
        raise ConfigError(f"{name}: option resample must be true or false (got {resample!r})")
    from evalmon.tasks.asr_speech import read_manifest

    norm = _norm(name, extra)
    rows = read_manifest(name, manifest, get_str(name, extra, "audio_field", "audio") or "audio",
                         get_str(name, extra, "text_field", "text") or "text", get_str(name, extra, "id_field"))
    rows = rows[: check_limit(name, options.limit)] if options.limit is not None else rows
    docs = [ASRDoc(doc_id, norm.apply(text), None, audio) for doc_id, audio, text in rows]
    check_references(name, [d.reference for d in docs], str(manifest))
    return ASRTask(name=name, source=str(manifest), documents=docs, norm=norm, resample=resample,
                   metric_names=_metric_names(name, extra), bootstrap_iters=get_int(name, extra, "bootstrap_iters", 1000))


def build_text(options: TaskOptions) -> ASRTask:
    from evalmon.data.transcripts import paired_segments
    from evalmon.metrics.text import check_parallel

    name = "asr_text"
    extra = check_keys(name, options, ("hypotheses", "references", *COMMON_OPTIONS))
    for key in ("hypotheses", "references"):
        if not isinstance(extra.get(key), str):
            raise ConfigError(f"{name}: option {key} is required (a line file, an .nlp file or a folder)")
    hyp_path, ref_path = resolve(options, extra["hypotheses"]), resolve(options, extra["references"])
    for p in (hyp_path, ref_path):
        if not p.exists():
            raise DataError(f"{name}: not found: {p}", hint="paths are relative to the suite file")
    ids, hyps, refs = paired_segments(hyp_path, ref_path)
    try:
        check_parallel(hyps, [refs], hyp_name=str(hyp_path), ref_names=[str(ref_path)])
    except DataError as e:
        raise DataError(f"{name}: {e.message}", hint=e.hint) from None
    norm = _norm(name, extra)
    docs = [ASRDoc(i, norm.apply(r), norm.apply(h)) for i, h, r in zip(ids, hyps, refs, strict=True)]
    limit = check_limit(name, options.limit)
    docs = docs[:limit] if limit is not None else docs
    check_references(name, [d.reference for d in docs], str(ref_path))
    return ASRTask(name=name, source=f"{hyp_path} vs {ref_path}", documents=docs, norm=norm,
                   metric_names=_metric_names(name, extra), bootstrap_iters=get_int(name, extra, "bootstrap_iters", 1000))


def build_earnings21(vendor: str, options: TaskOptions) -> ASRTask:
    from evalmon.data.earnings21 import PUBLISHED_EVAL10_WER, load_pairs

    name = f"earnings21_{vendor}"
    extra = check_keys(name, options, ("alternatives", *COMMON_OPTIONS))
    data_dir = data_dir_of(options)
    if data_dir is None:
        raise DataError(f"{name}: Earnings-21 is read from the local mirror only",
                        hint="set data.data_dir to a mirror containing earnings21/")
    alternatives = extra.get("alternatives", True)
    if not isinstance(alternatives, bool):
        raise ConfigError(f"{name}: option alternatives must be true or false (got {alternatives!r})")
    norm = _norm(name, extra)
    pairs = load_pairs(Path(data_dir), vendor, task=name, norm=norm, alternatives=alternatives,
                       limit=check_limit(name, options.limit))
    docs = [ASRDoc(fid, ref, hyp) for fid, hyp, ref in pairs]
    check_references(name, [d.reference for d in docs], str(data_dir))
    return ASRTask(name=name, source=str(Path(data_dir) / "earnings21" / "output" / vendor), documents=docs,
                   norm=norm, metric_names=_metric_names(name, extra),
                   bootstrap_iters=get_int(name, extra, "bootstrap_iters", 1000),
                   extra_config={"reference": "norm.json alternatives (fstalign-like)" if alternatives else "plain",
                                 "published_eval10_wer": PUBLISHED_EVAL10_WER[vendor]})


def audio_key(digest: str) -> str:
    return hashlib.sha256(f"asr:{digest}".encode()).hexdigest()


registry.tasks.add(
    "asr",
    build_speech,
    family="asr",
    local_source="options.manifest",
    hub_source="(local files only)",
)
registry.tasks.add(
    "asr_text",
    build_text,
    family="asr",
    local_source="options.hypotheses + options.references",
    hub_source="(local files only)",
)
for _vendor in ("amazon", "google", "microsoft", "speechmatics"):
    registry.tasks.add(
        f"earnings21_{_vendor}",
        lambda o, v=_vendor: build_earnings21(v, o),
        family="asr",
        local_source=f"earnings21/output/{_vendor}/*.nlp",
        hub_source="(local mirror only)",
    )

__all__ = ["ASRDoc", "ASRTask", "audio_key", "build_earnings21", "build_speech", "build_text"]

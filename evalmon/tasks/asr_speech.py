"""Speech mode of the ``asr`` task: manifest reading and the transcribe → score → aggregate loop.

Every audio file is read (and resampled) before the model runs, so a bad file fails the task at once.
Transcripts are cached in the response cache's text table under (model fingerprint, audio hash);
duplicates are transcribed once.
"""

from __future__ import annotations

import csv
import time
from pathlib import Path
from typing import Any

from evalmon.core.errors import DataError, ModelError
from evalmon.core.results import SampleRecord, TaskResult, TaskTiming
from evalmon.data.local import malformed, read_jsonl


def read_manifest(task: str, manifest: Path, audio_field: str, text_field: str,
                  id_field: str | None) -> list[tuple[str, str, str]]:
    """``(id, audio path, reference text)`` rows of a JSONL or CSV manifest (paths relative to it)."""
    rows: list[tuple[int, dict[str, Any]]]
    if manifest.suffix == ".csv":
        try:
            with manifest.open(encoding="utf-8", newline="") as fh:
                rows = [(i + 2, dict(r)) for i, r in enumerate(csv.DictReader(fh))]
        except (OSError, UnicodeDecodeError, csv.Error) as e:
            raise DataError(f"{task}: cannot read manifest {manifest}: {type(e).__name__}: {e}") from None
    else:
        rows = [(ln, v) for ln, v in read_jsonl(manifest)]
    out = []
    for ln, row in rows:
        if not isinstance(row, dict):
            raise malformed(manifest, f"line {ln}", "expected an object")
        audio, text = row.get(audio_field), row.get(text_field)
        if not isinstance(audio, str) or not audio:
            raise malformed(manifest, f"line {ln}", f"no audio path in field {audio_field!r}")
        if not isinstance(text, str):
            raise malformed(manifest, f"line {ln}", f"no reference text in field {text_field!r}")
        path = Path(audio).expanduser()
        path = path if path.is_absolute() else manifest.parent / path
        doc_id = str(row.get(id_field)) if id_field and row.get(id_field) is not None else f"{ln}"
        out.append((doc_id, str(path), text))
    return out


def evaluate_speech(task: Any, lm: Any, cache: Any, advance: Any, seed: int) -> tuple[TaskResult, list[SampleRecord]]:
    from evalmon.data.audio import load_audio
    from evalmon.harness.evaluate import aggregate, with_bootstrap_record
    from evalmon.tasks.asr import audio_key
    from evalmon.tasks.base import config_hash

    transcribe = getattr(lm, "transcribe", None)
    rate = getattr(lm, "sampling_rate", None)
    if transcribe is None or rate is None:
        raise ModelError(f"{task.name}: needs a speech-recognition model (model.backend: hf_asr), "
                         f"got backend {lm.fingerprint.backend!r}",
                         hint="e.g. model: {backend: hf_asr, path: openai/whisper-tiny}")
    t0 = time.perf_counter()
    docs = list(task.docs())
    audios = [load_audio(d.audio, int(rate), resample=task.resample) for d in docs]
    keys = [audio_key(a.digest()) for a in audios]
    model_key = lm.fingerprint.cache_key()
    have: dict[str, str] = cache.get_texts(model_key, list(dict.fromkeys(keys))) if cache else {}
    n_cached = sum(1 for k in keys if k in have)
    if advance and n_cached:
        advance(n_cached)
    todo = list(dict.fromkeys(k for k in keys if k not in have))
    first = {k: i for i, k in reversed(list(enumerate(keys)))}

    def on_batch(done: list[tuple[int, str]]) -> None:
        items = [(todo[i], text) for i, text in done]
        have.update(items)
        if cache:
            cache.put_texts(model_key, items)
        if advance:
            advance(sum(keys.count(k) for k, _ in items))

    if todo:
        transcribe([audios[first[k]].samples for k in todo], progress=on_batch)
    samples: list[SampleRecord] = []
    per_metric: dict[str, list[Any]] = {m: [] for m in task.metrics}
    for doc, audio, key in zip(docs, audios, keys, strict=True):
        raw = have[key]
        scores = task.score(doc, [raw])
        for m, v in scores.items():
            per_metric[m].append(v)
        samples.append(SampleRecord(task=task.name, doc_id=doc.id, prompt_hash=key[:16], target=doc.reference,
                                    outputs=[raw], items=scores,
                                    extra={"audio": doc.audio, "seconds": round(audio.seconds, 3),
                                           "source_rate": audio.source_rate}))
    metrics = {m: aggregate(task.metrics[m], v, seed) for m, v in per_metric.items() if v}
    secs = time.perf_counter() - t0
    audio_s = sum(a.seconds for a in audios)
    timing = TaskTiming(seconds=round(secs, 4), requests=len(docs), unique_requests=len(set(keys)),
                        cached=len(set(keys)) - len(todo), computed=len(todo),
                        requests_per_s=round(len(docs) / secs, 2) if secs > 0 else 0.0)
    cfg = task.config()
    cfg_out = {**with_bootstrap_record(cfg, task.metrics, seed), "sampling_rate": int(rate),
               "audio_seconds": round(audio_s, 3), "real_time_factor": round(secs / audio_s, 4) if audio_s else None}
    result = TaskResult(name=task.name, n=len(docs), num_fewshot=0, source=task.source,
                        config_hash=config_hash(cfg), config=cfg_out, metrics=metrics,
                        metric_kinds={m: s.kind for m, s in task.metrics.items()}, timing=timing)
    return result, samples

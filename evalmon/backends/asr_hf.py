"""``hf_asr`` backend: any Hugging Face ``automatic-speech-recognition`` model (Whisper, Wav2Vec2-CTC, …).

Runs the transformers ASR ``pipeline`` on float32 mono arrays that are already at the model's
sampling rate (``evalmon.data.audio`` reads and resamples them), so neither ffmpeg nor torchaudio is
needed. Decoding is the model's own default (Whisper: greedy, its generation config) unless
``max_new_tokens`` / ``language`` are set. The fingerprint follows ``hf.py``: weights hash, dtype,
device, tokenizer hash, plus the sampling rate and generation settings.

Its one capability is "transcribe": the harness engine decodes each ``TranscribeRequest``'s file at
``sampling_rate`` (``evalmon.data.audio``), looks the transcript up in the response cache by audio content
hash and hands the rest to ``transcribe`` (``loglikelihood`` raises).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evalmon.core.errors import ModelError
from evalmon.core.lm import EngineStats, LLRequest, LLResult, ModelFingerprint, TranscribeRequest

OnTexts = Callable[[list[tuple[int, str]]], None]


@dataclass(frozen=True)
class ASRSettings:
    path: str
    revision: str | None = None
    dtype: str = "float32"
    device: str = "cpu"
    batch_size: int = 8
    max_new_tokens: int | None = None
    language: str | None = None  # Whisper only: e.g. "en"
    chunk_length_s: float | None = None  # long audio: pipeline chunking (None = the model's window)


class HFSpeechRecognizer:
    """A transformers speech-recognition pipeline behind a ``transcribe`` method."""

    capabilities = frozenset({"transcribe"})

    def __init__(self, settings: ASRSettings) -> None:
        from evalmon.backends.hf.identity import weights_fingerprint
        from evalmon.backends.hf.model import _looks_local, _resolve_device

        self.settings = settings
        local = _looks_local(settings.path)
        path = str(Path(settings.path).expanduser().resolve()) if local else settings.path
        if local and not (Path(path) / "config.json").is_file():
            raise ModelError(f"model.path: {path} is not a Hugging Face checkpoint directory (no config.json)")
        self.device = _resolve_device(settings.device)
        self._pipe = self._load(path, settings)
        self.sampling_rate = int(self._pipe.feature_extractor.sampling_rate)
        self.batch_size = settings.batch_size
        self.last_seconds = 0.0
        gen = self.generate_kwargs()
        self.fingerprint = ModelFingerprint(
            backend="hf_asr", model=path, revision=settings.revision,
            weights_hash=weights_fingerprint(Path(path)) if local else None,
            dtype=str(self._pipe.model.dtype).replace("torch.", ""), device=self.device,
            bos_policy="n/a", max_length=int(getattr(self._pipe.model.config, "max_target_positions", 0) or 0),
            batch_size=self.batch_size, tokenizer_hash=self._tokenizer_hash(),
            extra={"architecture": type(self._pipe.model).__name__, "sampling_rate": self.sampling_rate,
                   "generate_kwargs": json.dumps(gen, sort_keys=True), "chunk_length_s": settings.chunk_length_s,
                   "task": "automatic-speech-recognition"})

    def _load(self, path: str, s: ASRSettings) -> Any:
        import torch
        from transformers import AutoConfig, pipeline
        from transformers.models.auto.modeling_auto import (
            MODEL_FOR_CTC_MAPPING_NAMES,
            MODEL_FOR_SPEECH_SEQ_2_SEQ_MAPPING_NAMES,
        )

        try:
            config = AutoConfig.from_pretrained(path, revision=s.revision)
        except (OSError, ValueError) as e:
            raise ModelError(f"model.path: cannot load {path}: {str(e).splitlines()[0] if str(e) else type(e).__name__}",
                             hint="a local checkpoint dir, or a hub id with network access") from None
        if config.model_type not in MODEL_FOR_SPEECH_SEQ_2_SEQ_MAPPING_NAMES | MODEL_FOR_CTC_MAPPING_NAMES:
            raise ModelError(f"model.path: {path} is not a speech-recognition model (model_type {config.model_type})",
                             hint="the hf_asr backend runs automatic-speech-recognition checkpoints (e.g. Whisper)")
        if s.dtype not in ("float32", "bfloat16", "float16"):
            raise ModelError(f"model.dtype: unknown dtype {s.dtype!r}", hint="use float32, bfloat16 or float16")
        try:
            return pipeline("automatic-speech-recognition", model=path, revision=s.revision, device=self.device,
                            dtype=getattr(torch, s.dtype))
        except (OSError, ValueError) as e:
            raise ModelError(f"model.path: cannot build a speech-recognition pipeline for {path}: "
                             f"{' '.join(str(e).split())[:200]}") from None

    def _tokenizer_hash(self) -> str | None:
        tok = getattr(self._pipe, "tokenizer", None)
        if tok is None:
            return None
        return hashlib.sha256(repr(sorted(tok.get_vocab().items())).encode()).hexdigest()[:16]

    def generate_kwargs(self) -> dict[str, Any]:
        if not getattr(self._pipe.model, "can_generate", lambda: False)():
            return {}  # CTC models decode by argmax
        out: dict[str, Any] = {}
        if self.settings.max_new_tokens is not None:
            out["max_new_tokens"] = self.settings.max_new_tokens
        if self.settings.language is not None:
            out["language"] = self.settings.language
        return out

    def transcribe(self, reqs: Sequence[TranscribeRequest], progress: OnTexts | None = None) -> list[str]:
        """Transcripts of prepared requests: their ``samples`` are mono float32 at ``self.sampling_rate``
        (batches of ``batch_size``)."""
        import time

        t0 = time.perf_counter()
        audios = [r.samples for r in reqs]
        if any(a is None for a in audios):  # pragma: no cover - programming error
            raise ValueError("transcribe() needs prepared requests (decoded audio)")
        out: list[str] = []
        kwargs: dict[str, Any] = {"batch_size": self.batch_size}
        gen = self.generate_kwargs()
        if gen:
            kwargs["generate_kwargs"] = gen
        if self.settings.chunk_length_s:
            kwargs["chunk_length_s"] = self.settings.chunk_length_s
        for start in range(0, len(audios), self.batch_size):
            chunk = [a for a in audios[start:start + self.batch_size]]
            texts = [str(r["text"]) for r in self._pipe(chunk, **kwargs)]
            out.extend(texts)
            if progress:
                progress([(start + i, t) for i, t in enumerate(texts)])
        self.last_seconds = time.perf_counter() - t0
        return out

    def stats(self) -> EngineStats:
        return EngineStats()  # no tokens: audio in, text out

    # ---- no text capabilities
    def loglikelihood(self, reqs: Sequence[LLRequest], progress: Any = None) -> list[LLResult]:
        raise ModelError("the hf_asr backend transcribes audio; it cannot score text loglikelihoods",
                         hint="use it with asr tasks only")

    def token_count(self, text: str) -> int:
        return len(text.split())


def load_asr(model_cfg: Any) -> HFSpeechRecognizer:
    return HFSpeechRecognizer(ASRSettings(
        path=str(model_cfg.path), revision=model_cfg.revision, dtype=model_cfg.dtype, device=model_cfg.device,
        batch_size=model_cfg.batch_size, max_new_tokens=model_cfg.max_new_tokens, language=model_cfg.language,
        chunk_length_s=model_cfg.chunk_length_s))

"""Audio loading for the ``asr`` task: mono float32 at the model's sampling rate.

Readers: ``soundfile`` when it is installed (WAV, FLAC, OGG, …); otherwise ``scipy.io.wavfile``
(PCM 8/16/24/32-bit and float WAV). No ffmpeg or torchaudio is needed. Multi-channel audio is
averaged to mono; integer PCM is scaled to [-1, 1]. A rate other than the model's is resampled with
``scipy.signal.resample_poly`` (polyphase, Kaiser window) unless resampling is disabled, in which case
it is an error. Every failure is a one-line :class:`~evalmon.core.errors.DataError` naming the file.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from math import gcd
from pathlib import Path
from typing import Any

import numpy as np

from evalmon.core.errors import DataError


@dataclass(frozen=True)
class Audio:
    samples: Any  # np.ndarray float32, mono
    sampling_rate: int
    source_rate: int  # the file's own rate
    path: str

    @property
    def seconds(self) -> float:
        return len(self.samples) / self.sampling_rate

    def digest(self) -> str:
        """Content hash of the (resampled) samples — the response-cache key of a transcription."""
        h = hashlib.sha256(np.ascontiguousarray(self.samples, dtype=np.float32).tobytes())
        h.update(str(self.sampling_rate).encode())
        return h.hexdigest()


def _read(path: Path) -> tuple[np.ndarray, int]:
    try:
        import soundfile

        data, rate = soundfile.read(str(path), dtype="float32", always_2d=False)
        return np.asarray(data), int(rate)
    except ImportError:
        pass
    except Exception as e:  # soundfile.LibsndfileError and friends
        raise DataError(f"cannot read audio file {path}: {' '.join(str(e).split())[:200]}",
                        hint="use a WAV/FLAC/OGG file") from None
    if path.suffix.lower() != ".wav":
        raise DataError(f"cannot read audio file {path}: only .wav is supported without the soundfile package",
                        hint="convert it to WAV or `pip install soundfile`")
    from scipy.io import wavfile

    try:
        rate, data = wavfile.read(str(path))
    except (ValueError, OSError, EOFError) as e:
        raise DataError(f"cannot read audio file {path}: {' '.join(str(e).split())[:200]}",
                        hint="is it a valid RIFF/WAVE file?") from None
    if data.dtype.kind in "iu":
        bits = data.dtype.itemsize * 8
        offset = 2 ** (bits - 1) if data.dtype.kind == "u" else 0
        data = (data.astype(np.float64) - offset) / 2 ** (bits - 1)
    return np.asarray(data, dtype=np.float32), int(rate)


def load_audio(path: str | Path, target_rate: int, *, resample: bool = True) -> Audio:
    """``path`` as mono float32 samples at ``target_rate`` Hz."""
    p = Path(path)
    if not p.is_file():
        raise DataError(f"audio file not found: {p}", hint="check the manifest's audio paths (relative to the manifest)")
    data, rate = _read(p)
    if data.ndim == 2:
        data = data.mean(axis=1)
    if data.ndim != 1 or data.size == 0:
        raise DataError(f"audio file {p} has no samples")
    if not np.all(np.isfinite(data)):
        raise DataError(f"audio file {p} contains NaN or infinite samples")
    if rate != target_rate:
        if not resample:
            raise DataError(f"audio file {p} is sampled at {rate} Hz but the model expects {target_rate} Hz",
                            hint="resample it, or set the task option resample: true")
        from scipy.signal import resample_poly

        g = gcd(rate, target_rate)
        data = resample_poly(data, target_rate // g, rate // g).astype(np.float32)
    return Audio(samples=data.astype(np.float32), sampling_rate=target_rate, source_rate=rate, path=str(p))

"""Latency and token usage: logged values passed through, plus derived throughput.

``usage.output_tokens_per_s`` = output tokens / (latency in seconds) — NaN when either is missing or
latency ≤ 0. With ``estimate_missing_tokens`` a missing token count is filled in and
``usage.tokens_estimated`` says so (0/1), so a window mixing logged and filled counts is visible:

* the model's own tokenizer where the record's ``model`` is known: ``tokenizers: {<model>: <local dir or
  tokenizer.json>}`` (``"*"`` for every model), loaded with the ``tokenizers`` library — the text's token
  count without special tokens or the chat template's framing (a server's logged count includes those);
* otherwise ``ceil(chars / chars_per_token)``.

tiktoken is not used: its encodings are downloaded from OpenAI's CDN on first use (unreachable offline).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from evalmon.core.errors import ConfigError
from evalmon.monitor.contracts import INPUT_TOKENS, LATENCY_MS, MODEL, OUTPUT_TOKENS, PROMPT, RESPONSE
from evalmon.monitor.signals.base import BaseSignal, numeric_series, text_series


def load_tokenizer(path: str) -> Any:
    """A ``tokenizers.Tokenizer`` from a model directory (its ``tokenizer.json``) or the file itself."""
    from tokenizers import Tokenizer

    file = Path(path).expanduser()
    file = file / "tokenizer.json" if file.is_dir() else file
    try:
        return Tokenizer.from_file(str(file))
    except Exception as exc:  # tokenizers raises a bare Exception for a missing/corrupt file
        raise ConfigError(f"signals.usage.tokenizers: cannot load {file} ({str(exc).splitlines()[0][:120]})",
                          hint="give a local model directory with a tokenizer.json, or the tokenizer.json itself"
                          ) from None


class UsageSignal(BaseSignal):
    name: ClassVar[str] = "usage"
    version: ClassVar[str] = "1"
    cacheable: ClassVar[bool] = False
    columns = ("usage.latency_ms", "usage.input_tokens", "usage.output_tokens", "usage.total_tokens",
               "usage.output_tokens_per_s", "usage.tokens_estimated")
    inputs = (LATENCY_MS, INPUT_TOKENS, OUTPUT_TOKENS, PROMPT, RESPONSE)

    def __init__(self, *, estimate_missing_tokens: bool = True, chars_per_token: float = 4.0,
                 tokenizers: Mapping[str, str] | None = None) -> None:
        self.estimate_missing_tokens = estimate_missing_tokens
        self.chars_per_token = chars_per_token
        self.tokenizers = dict(tokenizers or {})
        self._loaded: dict[str, Any] = {}
        for path in dict.fromkeys(self.tokenizers.values()):  # a bad path is an error when the monitor is built,
            load_tokenizer(path)  # not on the first record without counts, perhaps weeks later (kept lazy: pickled)

    def options(self) -> dict[str, Any]:
        opts: dict[str, Any] = {"estimate_missing_tokens": self.estimate_missing_tokens,
                                "chars_per_token": self.chars_per_token}
        if self.tokenizers:  # absent when unset: the options (and cache keys) of existing monitors stay the same
            opts["tokenizers"] = self.tokenizers
        return opts

    def _tokenizer(self, model: str) -> Any:
        path = self.tokenizers.get(model, self.tokenizers.get("*"))
        if path is None:
            return None
        if path not in self._loaded:
            self._loaded[path] = load_tokenizer(path)
        return self._loaded[path]

    def _fill(self, frame: pd.DataFrame, missing: pd.Series, text_col: str) -> pd.Series:
        texts = text_series(frame.loc[missing], text_col)
        out = np.ceil(texts.str.len().astype(float) / self.chars_per_token)
        if self.tokenizers and MODEL in frame.columns:
            models = frame.loc[missing, MODEL].astype("string").fillna("")
            for model in models.unique():
                tok = self._tokenizer(str(model))
                if tok is not None:
                    rows = models.index[models == model]
                    enc = tok.encode_batch(texts.loc[rows].tolist(), add_special_tokens=False)
                    out.loc[rows] = [float(len(e.ids)) for e in enc]
        return out

    def compute(self, frame: pd.DataFrame) -> pd.DataFrame:
        latency = numeric_series(frame, LATENCY_MS)
        latency = latency.where(latency >= 0)
        inp = numeric_series(frame, INPUT_TOKENS)
        outp = numeric_series(frame, OUTPUT_TOKENS)
        estimated = pd.Series(0.0, index=frame.index)
        if self.estimate_missing_tokens:
            for col, text_col in ((inp, PROMPT), (outp, RESPONSE)):
                missing = col.isna()
                if missing.any():
                    col.loc[missing] = self._fill(frame, missing, text_col)
                    estimated.loc[missing] = 1.0
        seconds = latency / 1000.0
        tps = (outp / seconds).where(seconds > 0)
        return pd.DataFrame({
            "usage.latency_ms": latency,
            "usage.input_tokens": inp,
            "usage.output_tokens": outp,
            "usage.total_tokens": inp + outp,
            "usage.output_tokens_per_s": tps,
            "usage.tokens_estimated": estimated,
        }, index=frame.index)

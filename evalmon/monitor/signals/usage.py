"""Latency and token usage: logged values passed through, plus derived throughput.

``usage.output_tokens_per_s`` = output tokens / (latency in seconds) — NaN when either is missing or
latency ≤ 0. With ``estimate_missing_tokens`` a missing token count is filled with
``ceil(chars / 4)`` of the prompt/response and ``usage.tokens_estimated`` says so (0/1), so a window
mixing logged and estimated counts is visible.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import pandas as pd

from evalmon.monitor.contracts import INPUT_TOKENS, LATENCY_MS, OUTPUT_TOKENS, PROMPT, RESPONSE
from evalmon.monitor.signals.base import BaseSignal, numeric_series, text_series


class UsageSignal(BaseSignal):
    name: ClassVar[str] = "usage"
    version: ClassVar[str] = "1"
    cacheable: ClassVar[bool] = False
    columns = ("usage.latency_ms", "usage.input_tokens", "usage.output_tokens", "usage.total_tokens",
               "usage.output_tokens_per_s", "usage.tokens_estimated")
    inputs = (LATENCY_MS, INPUT_TOKENS, OUTPUT_TOKENS, PROMPT, RESPONSE)

    def __init__(self, *, estimate_missing_tokens: bool = True, chars_per_token: float = 4.0) -> None:
        self.estimate_missing_tokens = estimate_missing_tokens
        self.chars_per_token = chars_per_token

    def options(self) -> dict[str, Any]:
        return {"estimate_missing_tokens": self.estimate_missing_tokens, "chars_per_token": self.chars_per_token}

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
                    chars = text_series(frame.loc[missing], text_col).str.len().astype(float)
                    col.loc[missing] = np.ceil(chars / self.chars_per_token)
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

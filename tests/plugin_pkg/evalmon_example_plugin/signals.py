"""The monitor signal ``shout``: the share of upper-case letters in each response (``shout.upper_ratio``)."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import pandas as pd

from evalmon.core import registry
from evalmon.monitor.contracts import RESPONSE, Signal
from evalmon.monitor.signals import BaseSignalConfig
from evalmon.monitor.signals.base import BaseSignal, text_series


class ShoutConfig(BaseSignalConfig):
    name: Literal["shout"] = "shout"
    field: str = RESPONSE


class ShoutSignal(BaseSignal):
    name: ClassVar[str] = "shout"
    version: ClassVar[str] = "1"
    cacheable: ClassVar[bool] = False
    columns = ("shout.upper_ratio",)

    def __init__(self, field: str = RESPONSE) -> None:
        self.field = field
        self.inputs = (field,)

    def options(self) -> dict[str, Any]:
        return {"field": self.field}

    def compute(self, frame: pd.DataFrame) -> pd.DataFrame:
        text = text_series(frame, self.field)
        letters = text.str.count(r"[A-Za-z]").astype(float)
        upper = text.str.count(r"[A-Z]").astype(float)
        return pd.DataFrame({"shout.upper_ratio": (upper / letters).where(letters > 0)}, index=frame.index)


@registry.signals.register("shout", config=ShoutConfig)
def build(cfg: ShoutConfig, **_: Any) -> Signal:
    return ShoutSignal(cfg.field)

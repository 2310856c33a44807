"""``tracking:``, the MLflow section shared by suite and monitor YAMLs: whether to log, to which store, into
which experiment. Each pipeline subclasses it only for what differs (its default experiment, the monitor's
trace assessments), so a suite and a monitor accept and reject the same ``uri``/``experiment`` values."""

from __future__ import annotations

from typing import Any

from pydantic import Field, field_validator

from evalmon.config.models import _Strict


class TrackingConfig(_Strict):
    enabled: bool = True
    uri: str | None = Field(None, min_length=1)  # None: the embedded store (.evalmon/mlflow.db); http://… or sqlite:///…
    experiment: str | None = Field(None, min_length=1)  # None: the pipeline's default

    @field_validator("uri", mode="before")
    @classmethod
    def _blank(cls, v: Any) -> Any:
        return None if isinstance(v, str) and not v.strip() else v  # `uri: ${MLFLOW_TRACKING_URI:-}`

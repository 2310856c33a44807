"""``tracking:``, the MLflow section shared by suite and monitor YAMLs: whether to log, to which store, into
which experiment. Each pipeline subclasses it only for what differs (its default experiment, the monitor's
trace assessments), so a suite and a monitor accept and reject the same ``uri``/``experiment`` values."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping
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


TRACKING_ENV = "MLFLOW_TRACKING_URI"
FROM_FLAG, FROM_YAML, FROM_ENV, FROM_LOCAL = "--tracking-uri", "tracking.uri", f"${TRACKING_ENV}", "local store"


def choose_tracking_uri(flag: str | None, configured: str | None,
                        env: Mapping[str, str] | None = None) -> tuple[str | None, str]:
    """The one rule every command follows for where MLflow lives, and why:
    ``--tracking-uri`` > the YAML's ``tracking.uri`` > ``$MLFLOW_TRACKING_URI`` > the local store
    (``None``: ``.evalmon/mlflow.db``). Blank values count as unset. Returns ``(uri, source)``."""
    env = os.environ if env is None else env
    for value, source in ((flag, FROM_FLAG), (configured, FROM_YAML), (env.get(TRACKING_ENV), FROM_ENV)):
        if value is not None and value.strip():
            return value.strip(), source
    return None, FROM_LOCAL


@contextlib.contextmanager
def using_tracking_uri(uri: str) -> Iterator[None]:
    """MLflow's fluent API pointed at ``uri`` for the block, then put back exactly as it was. ``mlflow.
    set_tracking_uri`` also writes ``$MLFLOW_TRACKING_URI`` (for child processes), and "restoring" the previous
    URI leaves that variable set to it — so a monitor that read MLflow traces left the process looking as if the
    user had set ``MLFLOW_TRACKING_URI`` (a later suite in the same process then resolved its store from it)."""
    import mlflow

    env_before = os.environ.get(TRACKING_ENV)
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(uri)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(previous)
        if env_before is None:
            os.environ.pop(TRACKING_ENV, None)
        else:
            os.environ[TRACKING_ENV] = env_before

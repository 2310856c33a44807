"""What the Spark executor's parity tests compare: two monitor results window by window."""

from __future__ import annotations

import math
from typing import Any

import pytest

# summaries Spark merges in another order (float sums): equal to 1e-9; every other metric exactly
APPROX = ("mean/", "std/", "p50/", "p90/", "p99/", "drift_hist/")


def assert_same_windows(local: Any, spark: Any) -> None:
    """Per window: the same metric names, values (NaN = NaN; ``APPROX`` ones to 1e-9) and alert messages."""
    assert len(local.windows) == len(spark.windows)
    for a, b in zip(local.windows, spark.windows, strict=True):
        assert a.metrics.keys() == b.metrics.keys()
        for k, v in a.metrics.items():
            w = b.metrics[k]
            same = (math.isnan(v) and math.isnan(w)) or (
                v == pytest.approx(w, rel=1e-9) if k.startswith(APPROX) else v == w)
            assert same, (a.window.key, k, v, w)
        assert [x.message() for x in a.alerts] == [x.message() for x in b.alerts]

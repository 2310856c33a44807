"""``spark_session``: one local[2] Spark session per test process, shared by the Spark executor's tests (its JVM
start is their slow part); stopped when the session ends."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest


@pytest.fixture(scope="session")
def spark_session() -> Iterator[Any]:
    from evalmon.config.monitor import SparkConfig
    from evalmon.monitor.executors.spark_session import session

    spark = session(SparkConfig(master="local[2]", conf={"spark.sql.shuffle.partitions": "2"}))
    yield spark
    spark.stop()

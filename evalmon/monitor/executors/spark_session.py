"""The SparkSession of ``executor: spark``: pyspark imported lazily, a one-line error when it or Java is absent.

An active session (a Databricks notebook, ``spark-submit``) is used as it is; otherwise one is built from
``spark:`` of the monitor YAML (``master``, ``app_name``, ``conf``). Locally the Python workers must run this
interpreter (the venv that has evalmon and pyarrow): ``PYSPARK_PYTHON`` defaults to it.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
from typing import TYPE_CHECKING, Any

from evalmon.core.errors import ConfigError

if TYPE_CHECKING:
    from evalmon.config.monitor import SparkConfig

INSTALL_HINT = "pip install 'evalmon[spark]' (pyspark) and Java 17 (Debian: apt-get install openjdk-17-jre-headless)"


def import_pyspark() -> Any:
    """``pyspark.sql`` or a one-line ``ConfigError`` naming the extra."""
    try:
        import pyspark.sql
    except ImportError:
        raise ConfigError("executor: spark needs pyspark, which is not installed", hint=INSTALL_HINT) from None
    return pyspark.sql


def session(cfg: SparkConfig) -> Any:
    """The active SparkSession, or a new one from ``cfg`` (Java checked first: a clear line, not a JVM trace)."""
    sql = import_pyspark()
    active = sql.SparkSession.getActiveSession()
    if active is not None:
        return active
    if not (os.environ.get("JAVA_HOME") or shutil.which("java")):
        raise ConfigError("executor: spark needs Java (no `java` on PATH and JAVA_HOME unset)", hint=INSTALL_HINT)
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    builder = sql.SparkSession.builder.appName(cfg.app_name)
    if cfg.master:
        builder = builder.master(cfg.master)
    elif not os.environ.get("SPARK_HOME") and "spark.master" not in cfg.conf:
        builder = builder.master("local[*]")
    settings = {"spark.ui.enabled": "false", "spark.ui.showConsoleProgress": "false", "spark.sql.execution.arrow.pyspark.enabled": "true",
                "spark.python.worker.reuse": "true", **cfg.conf}
    for key, value in settings.items():
        builder = builder.config(key, value)
    try:
        spark = builder.getOrCreate()
    except Exception as exc:  # the JVM failed to start: its message, on one line
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(f"executor: spark: cannot start a Spark session ({first})", hint=INSTALL_HINT) from None
    spark.sparkContext.setLogLevel("FATAL")  # a failed job is one line (collect), not task stack traces
    return spark


_EVALMON_ERROR = re.compile(r"^evalmon\.core\.errors\.(\w+): (.*)$", re.MULTILINE)
_JAVA_ERROR = re.compile(r"^(?::\s*)?(?:Caused by: )?[\w.$]+(?:Exception|Error): (.+)$", re.MULTILINE)


def collect(frame: Any, what: str) -> list[Any]:
    """``frame.collect()``; a Spark job that fails is one line (``job_error``), not a Java stack trace."""
    try:
        return list(frame.collect())
    except Exception as exc:
        raise job_error(exc, what) from None


def job_error(exc: Exception, what: str) -> Exception:
    """The error to raise for ``exc``, a failed Spark job doing ``what``: an evalmon error raised inside a task
    as itself; a failure of the JVM side (a file Spark cannot read, a lost executor) as a one-line ``DataError``
    with Spark's message (the error class and the file it names) and its root cause; anything else — a Python
    exception in our task code, a bug — unchanged (it keeps its traceback)."""
    from evalmon.core import errors

    if not type(exc).__module__.startswith(("py4j", "pyspark")):
        return exc
    text = str(exc)
    found = _EVALMON_ERROR.findall(text)
    if found:
        cls = getattr(errors, found[-1][0], None)
        if isinstance(cls, type) and issubclass(cls, errors.EvalmonError):
            return cls(found[-1][1])
    if "Traceback (most recent call last)" in text or "PythonException" in text:
        return exc
    causes = [m.strip() for m in _JAVA_ERROR.findall(text)]
    if not causes:
        return exc
    detail = causes[0] if len(causes) == 1 or causes[-1] in causes[0] else f"{causes[0]} (cause: {causes[-1]})"
    return errors.DataError(f"Spark job failed ({what}): {detail[:600]}",
                            hint="fix or remove the file it names, or set spark.reads: python to read with the "
                                 "source's own reader")

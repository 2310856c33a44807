"""The public Python API: everything the CLI does, as plain calls (``evalmon.<name>`` re-exports these).

Each function accepts either a loaded config object or a path to its YAML, so a notebook, a scheduler or
another tool can drive evalmon without the CLI::

    import evalmon
    result = evalmon.run_suite("suites/medical.yaml", limit=20)
    verdict = evalmon.gate("reports/<baseline-run-id>", f"reports/{result.run_id}")

Heavy libraries (torch, transformers, mlflow, pandas) load inside the calls that need them.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from evalmon.config.monitor import MonitorConfig
    from evalmon.config.suite import SuiteConfig
    from evalmon.core.results import RunResult
    from evalmon.gate.compare import Comparison
    from evalmon.gate.verdict import GateVerdict
    from evalmon.monitor.runner import MonitorResult


def load_suite(path: str | Path) -> SuiteConfig:
    """Parse and validate a suite YAML (``file:line: key: what — what to do`` on bad input)."""
    from evalmon.config.suite import load_suite as _load

    return _load(path)


def run_suite(suite: SuiteConfig | str | Path | None = None, *, model: str | None = None,
              limit: int | None = None, tasks: list[str] | None = None, output_dir: str | Path | None = None,
              tracking_uri: str | None = None, experiment: str | None = None,
              no_tracking: bool = False) -> RunResult:
    """Run a suite (the embedded default suite when ``suite`` is None); same overrides as ``evalmon run``."""
    from evalmon.config.suite import apply_overrides, default_suite
    from evalmon.harness.run import run_suite as _run

    cfg = default_suite() if suite is None else suite if not isinstance(suite, str | Path) else load_suite(suite)
    cfg = apply_overrides(cfg, model=model, limit=limit, tasks=tasks,
                          output=Path(output_dir) if output_dir is not None else None,
                          tracking_uri=tracking_uri, experiment=experiment, no_tracking=no_tracking)
    return _run(cfg)


def load_monitor(path: str | Path) -> MonitorConfig:
    """Parse and validate a monitor YAML."""
    from evalmon.config.monitor import load_monitor as _load

    return _load(path)


def run_monitor(monitor: MonitorConfig | str | Path, *, backfill: tuple[datetime, datetime] | None = None,
                now: datetime | None = None, tracking_uri: str | None = None) -> MonitorResult:
    """Process every complete, unprocessed window once (or re-process the ``backfill`` range); the tracking
    store follows the CLI's rule (``tracking_uri`` > YAML > ``$MLFLOW_TRACKING_URI`` > local store)."""
    from evalmon.config.monitor import apply_overrides
    from evalmon.monitor.runner import run_monitor as _run

    cfg = load_monitor(monitor) if isinstance(monitor, str | Path) else monitor
    return _run(apply_overrides(cfg, tracking_uri=tracking_uri), backfill=backfill, now=now)


def _pair(baseline: str, candidate: str, tracking_uri: str | None) -> tuple[Any, Any]:
    from evalmon.gate.resolve import resolve_run

    return resolve_run(baseline, tracking_uri), resolve_run(candidate, tracking_uri)


def compare(baseline: str, candidate: str, *, tracking_uri: str | None = None, **options: Any) -> Comparison:
    """Paired comparison of two runs (run dirs, ``mlflow:`` refs or run ids) on every shared metric."""
    from evalmon.gate.compare import compare as _compare

    return _compare(*_pair(baseline, candidate, tracking_uri), **options)


def gate(baseline: str, candidate: str, *, policy: str | Path | None = None, tracking_uri: str | None = None,
         **options: Any) -> GateVerdict:
    """Regression gate: paired tests + policy → a verdict whose ``exit_code`` is what ``evalmon gate`` exits with."""
    import evalmon.gate

    return evalmon.gate(baseline, candidate, policy=policy, tracking_uri=tracking_uri, **options)  # type: ignore[operator]

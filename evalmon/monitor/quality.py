"""Data quality of a window with great-expectations (1.x, ephemeral context, pandas data source).

Expectations (each configurable in ``evalmon.config.quality.QualityConfig``, re-exported here; ``mostly``
= the fraction of rows that must pass): required columns exist, no nulls in timestamp/prompt/response,
value ranges (latency and token counts ≥ 0), unique request ids, and timestamps increasing in *arrival*
order (the frame is re-ordered by the ``arrival`` column that sources add; frames are otherwise sorted by
time). A share of quarantined rows can be checked too (``max_quarantined_fraction``). great_expectations
is imported on first use (~3 s).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import pandas as pd

from evalmon.config.quality import QualityConfig, RangeSpec
from evalmon.monitor.contracts import ARRIVAL

__all__ = ["ExpectationResult", "QualityConfig", "QualityReport", "RangeSpec", "check_quality", "quarantined_fraction"]


@dataclass
class ExpectationResult:
    name: str  # "not_null.prompt", "between.latency_ms", "unique.request_id", …
    expectation: str  # great-expectations type, e.g. expect_column_values_to_not_be_null
    column: str | None
    success: bool
    unexpected_count: int
    unexpected_percent: float | None
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class QualityReport:
    rows: int
    expectations: list[ExpectationResult] = field(default_factory=list)

    @property
    def failed(self) -> int:
        return sum(not e.success for e in self.expectations)

    @property
    def success(self) -> bool:
        return self.failed == 0

    def to_dict(self) -> dict[str, Any]:
        return {"rows": self.rows, "success": self.success, "failed": self.failed,
                "expectations": [asdict(e) for e in self.expectations]}

    def metrics(self, prefix: str = "quality") -> dict[str, float]:
        """Flat numbers for a metrics sink: failed count and each expectation's unexpected count."""
        out = {f"{prefix}.failed": float(self.failed)}
        for e in self.expectations:
            out[f"{prefix}.{e.name}.unexpected"] = float(e.unexpected_count)
        return out


_CTX: dict[str, Any] = {}


def _batch_definition() -> Any:
    """One ephemeral context + pandas data source per process (creating them is the slow part)."""
    if "bd" not in _CTX:
        import great_expectations as gx

        ctx = gx.get_context(mode="ephemeral")
        try:
            from great_expectations.data_context.types.base import ProgressBarsConfig

            ctx.variables.progress_bars = ProgressBarsConfig(globally=False)
        except (ImportError, AttributeError):  # older/newer layout: bars stay on
            pass
        asset = ctx.data_sources.add_pandas("evalmon_monitor").add_dataframe_asset("window")
        _CTX["bd"] = asset.add_batch_definition_whole_dataframe("whole_window")
    return _CTX["bd"]


def _short(values: Any, n: int = 5) -> list[str]:
    return [str(v)[:80] for v in list(values or [])[:n]]


def check_quality(frame: pd.DataFrame, config: QualityConfig | None = None, *,
                  quarantined: int = 0) -> QualityReport:
    """Validate one window's canonical frame; ``quarantined`` = rows of the window that were quarantined."""
    cfg = config or QualityConfig()
    report = QualityReport(rows=len(frame))
    if not cfg.enabled:
        return report
    import great_expectations as gx
    import great_expectations.expectations as gxe

    planned: list[tuple[str, str | None, Any]] = []
    present = set(map(str, frame.columns))
    for col in cfg.required_columns:
        planned.append((f"exists.{col}", col, gxe.ExpectColumnToExist(column=col)))
    for col in cfg.not_null:
        if col in present:
            planned.append((f"not_null.{col}", col,
                            gxe.ExpectColumnValuesToNotBeNull(column=col, mostly=cfg.not_null_mostly)))
    for col, spec in cfg.ranges.items():
        if col in present:
            planned.append((f"between.{col}", col, gxe.ExpectColumnValuesToBeBetween(
                column=col, min_value=spec.min, max_value=spec.max, mostly=spec.mostly)))
    for col in cfg.unique:
        if col in present:
            planned.append((f"unique.{col}", col, gxe.ExpectColumnValuesToBeUnique(column=col, mostly=cfg.unique_mostly)))
    if cfg.increasing and cfg.increasing in present:
        planned.append((f"increasing.{cfg.increasing}", cfg.increasing,
                        gxe.ExpectColumnValuesToBeIncreasing(column=cfg.increasing, mostly=cfg.increasing_mostly)))
    used = [c for c in dict.fromkeys(col for _, col, _ in planned if col in present) if c is not None]
    data = frame.sort_values(ARRIVAL, kind="mergesort") if ARRIVAL in present else frame
    data = data[used].reset_index(drop=True)
    for col in used:  # GX handles scalars; list/dict cells (never validated here) are made hashable
        if data[col].dtype == object and data[col].map(lambda v: isinstance(v, (list, dict))).any():
            data[col] = data[col].map(lambda v: str(v) if isinstance(v, (list, dict)) else v)
    batch_definition = _batch_definition()  # creates the context the suite needs
    suite = gx.ExpectationSuite(name="evalmon_quality")
    for _, _, exp in planned:
        suite.add_expectation(exp)
    result = batch_definition.get_batch(batch_parameters={"dataframe": data}).validate(suite)
    by_key = {(str(r.expectation_config.type), r.expectation_config.kwargs.get("column")): r for r in result.results}
    for name, col, exp in planned:
        res = by_key[(str(exp.expectation_type), col)]
        raw = dict(res.result or {})
        exc = res.exception_info or {}
        details: dict[str, Any] = {}
        if raw.get("partial_unexpected_list"):
            details["examples"] = _short(raw["partial_unexpected_list"])
        if raw.get("missing_count"):
            details["missing_count"] = int(raw["missing_count"])
        if isinstance(exc, dict) and exc.get("raised_exception"):
            details["error"] = str(exc.get("exception_message", ""))[:300]
        pct = raw.get("unexpected_percent")
        count = int(raw.get("unexpected_count") or 0)
        if name.startswith("exists.") and not res.success:
            count = report.rows
            details["missing_column"] = col
        report.expectations.append(ExpectationResult(
            name=name, expectation=str(res.expectation_config.type), column=col, success=bool(res.success),
            unexpected_count=count, unexpected_percent=None if pct is None or math.isnan(pct) else float(pct),
            details=details))
    if cfg.max_quarantined_fraction is not None:
        report.expectations.append(quarantined_fraction(report.rows, quarantined, cfg.max_quarantined_fraction))
    return report


def quarantined_fraction(rows: int, quarantined: int, max_fraction: float) -> ExpectationResult:
    """``max_quarantined_fraction``: quarantined records over all the window's records."""
    total = rows + quarantined
    frac = quarantined / total if total else 0.0
    return ExpectationResult(
        name="quarantined.fraction", expectation="evalmon_quarantined_fraction_at_most", column=None,
        success=frac <= max_fraction, unexpected_count=quarantined,
        unexpected_percent=100.0 * frac, details={"max_fraction": max_fraction})

"""What ``evalmon monitor`` prints, and the glue for its flags (kept out of cli.py so it stays thin)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from evalmon.config.monitor import MonitorConfig
from evalmon.core.errors import ConfigError, EvalmonError
from evalmon.core.redact import redact_text
from evalmon.monitor.runner import MonitorResult
from evalmon.monitor.windows import as_utc


class RedactingConsole:
    """Every line ``evalmon monitor`` prints goes through ``redact_text``: rule names, notes and paths come
    from the YAML and may hold a URI with a password. Printed as plain text (no rich markup)."""

    def __init__(self, console: Any) -> None:
        self.console = console

    def print(self, message: object = "", **kwargs: Any) -> None:
        kwargs.setdefault("markup", False)
        self.console.print(redact_text(str(message)), **kwargs)


def parse_backfill(values: tuple[str, str]) -> tuple[datetime, datetime]:
    """``--backfill FROM TO`` → two UTC datetimes (ISO times or dates; naive = UTC)."""
    out = []
    for name, text in zip(("FROM", "TO"), values, strict=True):
        try:
            out.append(as_utc(text))
        except (TypeError, ValueError):
            raise ConfigError(f"--backfill: {name} {text!r} is not an ISO time",
                              hint="write e.g. 2024-03-01 or 2024-03-01T06:00:00Z") from None
    if out[1] <= out[0]:
        raise ConfigError(f"--backfill: TO ({values[1]}) must be after FROM ({values[0]})", hint="swap them")
    return out[0], out[1]


def _experiment_hint(cfg: MonitorConfig, result: MonitorResult) -> str | None:
    for o in result.windows:
        url = o.tracking.get("ui_url")
        if url:
            return url.split("/runs/")[0]
    return None


def accounting_line(result: MonitorResult) -> str:
    """``12 records read = 9 processed + 3 quarantined (reason n, …); 1 unplaced (…)``."""
    reasons = ", ".join(f"{k} {v}" for k, v in result.by_reason.items())
    line = (f"{result.rows_read} records read = {result.processed} processed + {result.quarantined} quarantined"
            + (f" ({reasons})" if reasons else ""))
    if result.unplaced:
        line += (f"; {result.unplaced} unplaced (no usable time: reported by every run that reads them, "
                 "logged as records/unplaced on the last window)")
    return line


def print_result(cfg: MonitorConfig, result: MonitorResult, out: Any, err: Any) -> None:
    """Summary after the per-window lines: counts, quarantine, MLflow, alerts, webhook."""
    for note in result.notes:
        out.print(note, soft_wrap=True)
    if result.synced:
        ok = sum(o["status"] == "logged" for o in result.synced)
        out.print(f"synced {ok}/{len(result.synced)} window(s) kept locally by earlier runs", soft_wrap=True)
    if result.rows_read or result.windows:
        out.print(f"accounting: {accounting_line(result)}", soft_wrap=True)
    if result.quarantine_file:
        out.print(f"quarantined records: {result.quarantine_file}", soft_wrap=True)
    if not result.windows:
        return
    wm = result.watermark.isoformat() if result.watermark else "—"
    out.print(f"monitor '{cfg.name}' ({result.mode}): {len(result.windows)} window(s), {result.processed} records, "
              f"{result.quarantined} quarantined, {len(result.alerts)} alert(s) in {result.seconds:.1f} s; "
              f"watermark {wm}; results in {cfg.run_dir}", soft_wrap=True)
    pending = [o for o in result.windows if o.tracking.get("status") == "pending"]
    if pending:
        reason = pending[0].tracking.get("reason")
        err.print(f"warning: MLflow logging failed for {len(pending)} window(s) ({reason}); they are kept in "
                  f"{cfg.run_dir / 'windows'} and the next `evalmon monitor` run uploads them", soft_wrap=True)
    url = _experiment_hint(cfg, result)
    if url:
        out.print(f"MLflow: {url}", soft_wrap=True)
        logged = next(o.tracking for o in reversed(result.windows) if o.tracking.get("ui_url"))
        keys = [k for k in ("drift/share", *(r.metric for r in cfg.alerts.rules)) if k in result.windows[-1].metrics]
        from evalmon.sinks.mlflow.windows import chart_url, timeline_url

        out.print(f"MLflow dashboard: {timeline_url(logged['tracking_uri'], logged['experiment_id'])}", soft_wrap=True)
        if keys:

            chart = chart_url(logged["tracking_uri"], logged["experiment_id"], logged["timeline_run_id"],
                              list(dict.fromkeys(keys))[:4])
            out.print(f"timeline chart: {chart}", soft_wrap=True)
    if result.alerts:
        err.print(f"{alert_summary(result.alerts)} — exit code 1", soft_wrap=True)


def alert_summary(alerts: list[Any]) -> str:
    """``3 alert(s)``, and how many of them are rules that could not be evaluated (and which)."""
    from evalmon.monitor.alerts import NOT_EVALUATED

    missing = [a for a in alerts if a.status == NOT_EVALUATED]
    if not missing:
        return f"{len(alerts)} alert(s)"
    rules = ", ".join(dict.fromkeys(f"'{a.rule}'" for a in missing))
    return (f"{len(alerts)} alert(s), {len(missing)} of them NOT EVALUATED windows (rule {rules}: metric missing "
            "or coverage below min_coverage; set on_missing: ignore on a rule to accept that)")


def scheduled_job(cfg: MonitorConfig, out: Any, err: Any,
                  after: Callable[[MonitorResult], None] | None = None) -> Callable[[], None]:
    """One scheduled tick: run, print, then ``after(result)`` (the CLI's ``on_alert`` actions, which live above
    the monitor layer); a held lock or a user error is reported and the schedule goes on."""
    from evalmon.monitor.runner import run_monitor

    def job() -> None:
        try:
            result = run_monitor(cfg, log_fn=lambda m: out.print(m, soft_wrap=True))
        except EvalmonError as exc:
            err.print(f"skipped this tick: {exc.one_line()}", soft_wrap=True)
            return
        print_result(cfg, result, out, err)
        if after is not None:
            after(result)

    return job

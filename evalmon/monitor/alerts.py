"""Threshold alerts on window metrics, and the optional webhook.

A rule ``{metric: rate/safety.unsafe, op: ">", value: 0.1}`` fires for a window whose metric compares
true. A rule that cannot be evaluated — its metric is missing or NaN (no data, a typo, a signal that scored
nothing), or the share of the window's records its column could score (``coverage/<column>``, else
``1 - null_rate/<column>``) is below ``min_coverage`` — is a ``not evaluated`` alert (``status``), unless
the rule (or ``alerts.on_missing``) says ``ignore``: then it is a note. Any alert in a run makes
``evalmon monitor`` exit 1. The webhook gets one JSON POST
per monitor run listing every alert (``post_webhook``): a connection error, timeout or HTTP 5xx is
retried ``retries`` times with a short backoff; a 4xx is not retried. Delivery problems are returned,
never raised — an alert is still an alert when the webhook is down.
"""

from __future__ import annotations

import math
import operator
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from evalmon.config.alerts import AlertRule, WebhookConfig
from evalmon.core.jsonout import to_json
from evalmon.core.redact import redact_text, redact_webhook
from evalmon.monitor.windows import Window

OPS: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le, "==": operator.eq, "!=": operator.ne,
}
USER_AGENT = "evalmon-monitor"
NOT_EVALUATED = "not evaluated"


@dataclass
class Alert:
    monitor: str
    rule: str  # the rule's label
    metric: str
    op: str
    threshold: float
    value: float
    window_start: str
    window_end: str
    window_index: int
    status: str = "fired"  # "fired" or NOT_EVALUATED
    reason: str = ""  # why a rule was not evaluated

    def message(self) -> str:
        if self.status == NOT_EVALUATED:
            return f"NOT EVALUATED {self.monitor} window {self.window_start}: rule '{self.rule}': {self.reason}"
        return (f"ALERT {self.monitor} window {self.window_start}: {self.metric} = {self.value:.4g} "
                f"{self.op} {self.threshold:g} ({self.rule})")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class RuleCheck:
    """Alerts of one window plus the rules that could not be evaluated (metric missing / NaN)."""

    alerts: list[Alert] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def metric_column(metric: str) -> str | None:
    """The record column a window metric is computed from (``rate/pii.any`` → ``pii.any``,
    ``share/model/x`` → ``model``); None for window-level metrics (``records``, ``drift/share``)."""
    stat, _, rest = metric.partition("/")
    if not rest or stat not in COLUMN_STATS:
        return None
    return rest.split("/")[0] if stat == "share" else rest


COLUMN_STATS = ("rate", "mean", "std", "p50", "p90", "p99", "max", "null_rate", "share", "distinct")


def coverage_of(metrics: Mapping[str, float], column: str) -> float | None:
    """Share of the window's records that have a value in ``column`` (``coverage/<col>``, else
    ``1 - null_rate/<col>``); None when the window does not say."""
    cov = metrics.get(f"coverage/{column}")
    if cov is None and f"null_rate/{column}" in metrics:
        cov = 1.0 - float(metrics[f"null_rate/{column}"])
    return None if cov is None or math.isnan(float(cov)) else float(cov)


def _why_not(rule: AlertRule, metrics: Mapping[str, float], floor: float) -> str | None:
    value = metrics.get(rule.metric)
    if value is None:
        return f"no metric '{rule.metric}' in this window"
    if isinstance(value, float) and math.isnan(value):
        column = metric_column(rule.metric)
        cov = coverage_of(metrics, column) if column else None
        scored = f" (coverage/{column} = {cov:.0%}: no record scored)" if cov is not None else " (no data)"
        return f"{rule.metric} is NaN in this window{scored}"
    column = metric_column(rule.metric)
    cov = coverage_of(metrics, column) if column and floor > 0 else None
    if cov is not None and cov < floor:
        return f"coverage/{column} = {cov:.1%} of records scored, below min_coverage {floor:g}"
    return None


def evaluate(rules: Sequence[AlertRule], metrics: Mapping[str, float], *, monitor: str, window: Window) -> RuleCheck:
    """Alerts of one window: fired rules, and ``not evaluated`` alerts for rules whose metric is missing/NaN or
    whose column's coverage is below the rule's ``min_coverage`` (``on_missing: ignore`` makes them notes;
    the config fills both from ``alerts.on_missing`` / ``alerts.min_coverage``)."""
    out = RuleCheck()
    for rule in rules:
        why = _why_not(rule, metrics, rule.min_coverage or 0.0)
        if why is not None:
            if rule.on_missing == "ignore":
                out.notes.append(f"rule '{rule.label}': {why}")
            else:
                value = metrics.get(rule.metric)
                out.alerts.append(Alert(monitor, rule.label, rule.metric, rule.op, rule.threshold,
                                        math.nan if value is None else float(value), window.start.isoformat(),
                                        window.end.isoformat(), window.index, status=NOT_EVALUATED, reason=why))
            continue
        value = float(metrics[rule.metric])
        if OPS[rule.op](value, rule.threshold):
            out.alerts.append(Alert(monitor, rule.label, rule.metric, rule.op, rule.threshold, value,
                                    window.start.isoformat(), window.end.isoformat(), window.index))
    return out


@dataclass
class WebhookOutcome:
    ok: bool
    attempts: int
    status: int | None = None
    error: str | None = None

    def line(self, url: str) -> str:
        """What the console prints: the webhook's path and query are its credential (only the host shows)."""
        where = redact_webhook(url)
        if self.ok:
            return f"webhook: delivered to {where} (HTTP {self.status})"
        why = redact_text(str(self.error))
        return f"warning: webhook {where} failed after {self.attempts} attempt(s): {why}"


def payload(monitor: str, alerts: Sequence[Alert], *, experiment: str | None = None,
            ui_urls: Mapping[str, str] | None = None) -> dict[str, Any]:
    return {"source": "evalmon", "monitor": monitor, "experiment": experiment, "alert_count": len(alerts),
            "alerts": [a.to_dict() | {"ui_url": (ui_urls or {}).get(a.window_start)} for a in alerts],
            "text": "\n".join(a.message() for a in alerts)}


class _Transient(Exception):
    """A delivery failure worth another attempt (connection error, timeout, HTTP 5xx)."""

    def __init__(self, status: int | None, error: str) -> None:
        super().__init__(error)
        self.status, self.error = status, error


def _post_once(cfg: WebhookConfig, data: bytes, headers: dict[str, str]) -> WebhookOutcome:
    req = urllib.request.Request(cfg.url, data=data, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=cfg.timeout_s) as resp:
            return WebhookOutcome(True, 1, resp.status)
    except urllib.error.HTTPError as exc:
        if exc.code < 500:  # a client error is not retried
            return WebhookOutcome(False, 1, exc.code, f"HTTP {exc.code} {exc.reason}")
        raise _Transient(exc.code, f"HTTP {exc.code} {exc.reason}") from None
    except (OSError, ValueError) as exc:  # URLError, refused, timeouts
        error = f"{type(exc).__name__}: {getattr(exc, 'reason', None) or exc}"
        raise _Transient(None, error.replace(cfg.url, redact_webhook(cfg.url))) from None


def post_webhook(cfg: WebhookConfig, body: Mapping[str, Any], *, sleep: Callable[[float], None] = time.sleep,
                 backoff_s: float = 0.5) -> WebhookOutcome:
    """POST ``body`` as strict JSON (an infinite value is null); retries connection errors, timeouts and 5xx
    (not 4xx) ``cfg.retries`` times, waiting ``backoff_s·2^(attempt-1)`` (tenacity)."""
    from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential

    data = to_json(body, indent=None).encode()
    headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT, **cfg.headers}
    retrying = Retrying(stop=stop_after_attempt(cfg.retries + 1), wait=wait_exponential(multiplier=backoff_s),
                        retry=retry_if_exception_type(_Transient), sleep=sleep, reraise=True)
    try:
        outcome = retrying(_post_once, cfg, data, headers)
    except _Transient as exc:
        return WebhookOutcome(False, cfg.retries + 1, exc.status, exc.error)
    return replace(outcome, attempts=retrying.statistics["attempt_number"])

"""MLflow traces of an experiment as traffic (``mlflow.search_traces(locations=[experiment_id])``).

Per trace: ``trace_id`` (kept so per-record scores can be attached later as assessments), request id =
tag ``evalmon.request_id`` → ``client_request_id`` → trace id, timestamp = ``request_time`` (ms), latency =
``execution_duration``, prompt/response from the trace's request/response payloads (chat messages,
OpenAI-style choices or plain values), contexts from RETRIEVER spans' documents, tokens from
``mlflow.trace.tokenUsage`` / ``mlflow.chat.tokenUsage``, model from span attributes
(``gen_ai.request.model``, ``llm.model_name``, …). Span attributes, ``tags.*`` and ``metadata.*`` can be
named in the ``columns:`` mapping. A windowed read also returns the traces whose time is outside the
plausible span (quarantined *unplaced*), so a server-side time filter never hides one. The monitor reads
one window at a time (the experiment is one partition; the time filter is pushed to the server).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

from evalmon.config.tracking import using_tracking_uri
from evalmon.core.errors import DataError
from evalmon.monitor.contracts import (
    CONTEXTS,
    INPUT_TOKENS,
    LATENCY_MS,
    MODEL,
    OUTPUT_TOKENS,
    PROMPT,
    REQUEST_ID,
    RESPONSE,
    TIMESTAMP,
    TRACE_ID,
    SourceBatch,
)
from evalmon.monitor.parsing import WrongType, flatten, to_text, to_text_list
from evalmon.monitor.schema import normalize_records
from evalmon.monitor.sources.base import Part, check_window, merge
from evalmon.monitor.sources.sql import resolve_url
from evalmon.monitor.timeparse import Plausible

REQUEST_ID_TAG = "evalmon.request_id"


def _usage(value: Any) -> dict[str, Any]:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return {}
    return value if isinstance(value, dict) else {}


def _payload(value: Any, roles: tuple[str, ...]) -> str | None:
    """MLflow stores request/response as JSON text: decode it, then take the chat text out of it."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return value
    try:
        return to_text(value, roles=roles)
    except WrongType:
        return json.dumps(value)


def trace_to_record(trace: Any) -> dict[str, Any]:
    """One ``mlflow.entities.Trace`` → a flat raw record (canonical names where known)."""
    info, data = trace.info, trace.data
    spans = list(data.spans)
    roots = [s for s in spans if s.parent_id is None]
    rec: dict[str, Any] = {}
    for span in [*[s for s in spans if s.parent_id is not None], *roots]:  # root attributes win
        attrs = {k: v for k, v in (span.attributes or {}).items() if not k.startswith("mlflow.")}
        rec.update(flatten(attrs))
    rec.update({f"tags.{k}": v for k, v in (info.tags or {}).items()})
    rec.update({f"metadata.{k}": v for k, v in (info.trace_metadata or {}).items()})
    tags = info.tags or {}
    rec[TRACE_ID] = info.trace_id
    rec[REQUEST_ID] = tags.get(REQUEST_ID_TAG) or info.client_request_id or info.trace_id
    rec["timestamp_ms"] = info.request_time
    rec[LATENCY_MS] = info.execution_duration
    rec[PROMPT] = _payload(data.request if data.request is not None else info.request_preview, ("user", "human"))
    rec[RESPONSE] = _payload(data.response if data.response is not None else info.response_preview, ("assistant",))
    docs: list[str] = []
    for span in spans:
        if str(span.span_type) == "RETRIEVER" and span.outputs is not None:
            docs.extend(to_text_list(span.outputs))
    if docs:
        rec[CONTEXTS] = docs
    usage = _usage((info.trace_metadata or {}).get("mlflow.trace.tokenUsage"))
    for root in roots:
        usage = usage or _usage((root.attributes or {}).get("mlflow.chat.tokenUsage"))
    if usage:
        rec.setdefault(INPUT_TOKENS, usage.get("input_tokens"))
        rec.setdefault(OUTPUT_TOKENS, usage.get("output_tokens"))
    return rec


class MlflowTracesSource:
    def __init__(self, name: str, experiment: str, base_dir: Path, *, tracking_uri: str | None,
                 columns: dict[str, str], assume_timezone: str, keep: Sequence[str] = (),
                 max_results: int | None = None, plausible: Plausible | None = None) -> None:
        self.name = name
        self.experiment = experiment
        self.tracking_uri = resolve_url(tracking_uri, base_dir) if tracking_uri else None
        self.columns = dict(columns)
        self.assume_timezone = assume_timezone
        self.keep = list(keep)
        self.max_results = max_results
        self.plausible = plausible or Plausible()
        self._experiment_id: str | None = None

    def _uri(self) -> str:
        import mlflow

        return self.tracking_uri or mlflow.get_tracking_uri()

    def experiment_id(self) -> str:
        if self._experiment_id is not None:
            return self._experiment_id
        from mlflow.exceptions import MlflowException

        from evalmon.sinks.mlflow.client import connect

        uri = self._uri()
        client = connect(uri, DataError, f"MLflow tracking server at {uri}")  # nothing to keep: a data fault
        try:
            exp = client.get_experiment_by_name(self.experiment)
            if exp is None and self.experiment.isdigit():
                exp = client.get_experiment(self.experiment)
        except MlflowException as exc:
            if "does not exist" not in str(exc).lower() and "not found" not in str(exc).lower():
                raise DataError(f"MLflow at {uri}: {str(exc).splitlines()[0]}") from exc
            exp = None
        if exp is None:
            raise DataError(f"MLflow experiment {self.experiment!r} not found at {uri}")
        self._experiment_id = str(exp.experiment_id)
        return self._experiment_id

    def read(self, start: datetime | None = None, end: datetime | None = None) -> SourceBatch:
        import mlflow
        from mlflow.exceptions import MlflowException

        lo, hi = check_window(start, end)
        exp_id = self.experiment_id()
        clauses = []
        if lo is not None:
            clauses.append(f"trace.timestamp_ms >= {int(lo.value // 1_000_000)}")
        if hi is not None:
            clauses.append(f"trace.timestamp_ms < {-(-hi.value // 1_000_000)}")
        filters = [" AND ".join(clauses) or None]
        if clauses:  # MLflow filters AND only: traces outside the plausible span are searched for apart
            p_lo, p_hi = self.plausible.bounds()
            filters += [f"trace.timestamp_ms < {int(p_lo.value // 1_000_000)}",
                        f"trace.timestamp_ms > {int(p_hi.value // 1_000_000)}"]
        traces: dict[str, Any] = {}
        try:
            with using_tracking_uri(self._uri()):
                for flt in filters:
                    found = mlflow.search_traces(locations=[exp_id], filter_string=flt, return_type="list",
                                                 max_results=None if self.max_results is None else self.max_results + 1)
                    if self.max_results is not None and len(found) > self.max_results:  # the rest would vanish
                        span = f"[{lo}, {hi})" if flt == filters[0] else "outside the plausible time span"
                        raise DataError(f"MLflow experiment {self.experiment!r}: more than source.max_results="
                                        f"{self.max_results} traces {span} (the rest would never be counted)",
                                        hint="raise source.max_results or leave it out (no cap)")
                    for t in found:
                        traces.setdefault(t.info.trace_id, t)
        except MlflowException as exc:
            raise DataError(f"MLflow search_traces on experiment {self.experiment!r}: {str(exc).splitlines()[0]}") from exc
        records = [trace_to_record(t) for t in traces.values()]
        norm = normalize_records(records, source=f"mlflow:{self.experiment}",
                                 locations=[f"trace {r[TRACE_ID]}" for r in records], mapping=self.columns,
                                 assume_timezone=self.assume_timezone, keep=self.keep, plausible=self.plausible)
        return merge([Part(name=self.experiment, norm=norm)], start, end,
                     {"source": self.name, "experiment_id": exp_id, "traces": len(records), "files": 0})

    def partitions(self, start: datetime | None, end: datetime | None) -> list[str]:
        return [self.experiment]  # one partition: the time filter runs on the server

    def read_partition(self, partition: str, start: datetime | None, end: datetime | None) -> SourceBatch:
        return self.read(start, end)


def log_traces(frame: pd.DataFrame, *, experiment_id: str, name: str = "chat") -> list[str]:
    """Log canonical records as MLflow traces with their own timestamps (tests and demos).

    The caller sets the tracking URI; call ``mlflow.flush_trace_async_logging()`` before reading back.
    """
    import mlflow

    ids: list[str] = []
    for row in frame.itertuples(index=False):
        rec = row._asdict()
        start_ns = int(pd.Timestamp(rec[TIMESTAMP]).value)
        latency = rec.get(LATENCY_MS)
        end_ns = start_ns + int((latency if latency == latency and latency is not None else 0) * 1e6)
        attrs: dict[str, Any] = {"gen_ai.request.model": rec.get(MODEL)}
        for key in (INPUT_TOKENS, OUTPUT_TOKENS):
            value = rec.get(key)
            if value is not None and value == value:
                attrs[f"gen_ai.usage.{key}"] = int(value)
        root = mlflow.start_span_no_context(
            name, span_type="CHAT_MODEL", inputs={"messages": [{"role": "user", "content": rec[PROMPT]}]},
            attributes={k: v for k, v in attrs.items() if v is not None},
            tags={REQUEST_ID_TAG: str(rec[REQUEST_ID])}, experiment_id=experiment_id, start_time_ns=start_ns)
        contexts = rec.get(CONTEXTS)
        if contexts is not None and len(contexts):
            child = mlflow.start_span_no_context("retrieve", span_type="RETRIEVER", parent_span=root,
                                                 inputs={"query": rec[PROMPT]}, start_time_ns=start_ns)
            child.set_outputs([{"page_content": c, "metadata": {}} for c in contexts])
            child.end(end_time_ns=start_ns + 1)
        root.set_outputs({"choices": [{"message": {"role": "assistant", "content": rec[RESPONSE]}}]})
        root.end(end_time_ns=end_ns)
        ids.append(root.trace_id)
    return ids

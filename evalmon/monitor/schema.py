"""Raw logged records → the canonical frame of :mod:`evalmon.monitor.contracts`.

Field names are resolved in this order: the YAML ``columns:`` mapping (``{canonical: source_column}``),
then the aliases of ``evalmon.core.records.ALIASES`` (OpenTelemetry GenAI, OpenInference, MLflow trace
fields, plain names). Nested dicts are flattened by dotted path (``{"attributes": {"gen_ai.request.model":
…}}`` → ``attributes.gen_ai.request.model``) and the span prefixes ``attributes.`` / ``span.attributes.``
are ignored when matching. When several alias columns are present they are coalesced in alias order.

Timestamps are parsed by the one routine every source shares, :mod:`evalmon.monitor.timeparse` (ISO 8601
with ``T`` or a space, with or without offset; epoch s/ms/µs/ns by field name or magnitude; datetimes;
naive = ``assume_timezone``, UTC by default). Everything becomes ``datetime64[ns, UTC]``. Offsets seen are
counted in ``stats["timezones"]`` and ``stats["mixed_timezones"]``.

Per-row problems never raise: the row becomes a :class:`QuarantinedRecord` with the reason —
``timestamp.missing`` / ``timestamp.unparseable`` / ``timestamp.implausible`` (outside the source's
plausible span), ``record.no_known_field`` (not one field maps to a canonical column), ``missing required
field: prompt``, ``wrong type for …``. Each quarantined row keeps a time to be counted on: its own, or —
with ``place_by_neighbour`` (log files, whose line order is the logging order) — the nearest earlier
row's (else the first later one's); otherwise it has none (``None``: the *unplaced* bucket).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import pandas as pd

from evalmon.core.errors import ConfigError, DataError
from evalmon.core.records import (
    ALIASES,
    ARRIVAL,
    CANONICAL_COLUMNS,
    CONTEXTS,
    INPUT_TOKENS,
    LATENCY_MS,
    MODEL,
    OPTIONAL_ALIASES,
    OUTPUT_TOKENS,
    PROMPT,
    REQUEST_ID,
    REQUIRED_COLUMNS,
    RESPONSE,
    SAMPLES,
    SESSION_ID,
    TIMESTAMP,
    TRACE_ID,
)
from evalmon.monitor.contracts import QuarantinedRecord
from evalmon.monitor.parsing import (
    WrongType,
    flatten,
    gc_paused,
    is_missing,
    to_text,
    to_text_list,
    truncate_raw,
    valid_unicode,
)
from evalmon.monitor.quarantine import NO_KNOWN_FIELD
from evalmon.monitor.timeparse import MISSING, Plausible, parse_times

# epoch unit by field name; other numeric timestamps are guessed from the magnitude
TIME_UNITS = {"start_time_unix_nano": "ns", "startTimeUnixNano": "ns", "timeUnixNano": "ns",
              "end_time_unix_nano": "ns", "endTimeUnixNano": "ns", "timestamp_ms": "ms", "request_time": "ms"}
# (start, end) pairs from which latency is derived when no latency field is logged
SPAN_TIMES = (("start_time_unix_nano", "end_time_unix_nano"), ("startTimeUnixNano", "endTimeUnixNano"),
              ("start_time", "end_time"), ("startTime", "endTime"))
# fields whose string values may be JSON (message arrays, MLflow request/response payloads); a response
# that merely looks like JSON in a plain field stays verbatim
STRUCTURED = {"gen_ai.input.messages", "gen_ai.output.messages", "gen_ai.prompt", "gen_ai.completion",
              "llm.input_messages", "llm.output_messages", "request", "response_preview", "request_preview",
              "inputs", "outputs", "messages"}
# OpenInference values are JSON only when their mime type says so
MIME_TYPED = {"input.value": "input.mime_type", "output.value": "output.mime_type"}
PREFIXES = ("attributes.", "span.attributes.", "span_attributes.")


@dataclass
class Normalized:
    """``frame`` sorted by timestamp. ``quarantined_times``: each quarantined row's own (plausible)
    timestamp, else — ``place_by_neighbour`` — the previous row's (arrival order), so a window can claim it
    exactly once, else ``None`` (unplaced); ``row_times``: that effective time for every input row, in
    input order (NaT where nothing is known)."""

    frame: pd.DataFrame
    quarantined: list[QuarantinedRecord] = field(default_factory=list)
    quarantined_times: list[pd.Timestamp | None] = field(default_factory=list)
    stats: dict[str, Any] = field(default_factory=dict)
    row_times: pd.Series | None = None


def resolve_timezone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ConfigError(f"assume_timezone: unknown time zone {name!r}", hint="use an IANA name such as UTC or Europe/Berlin") from exc


def _lookup(columns: Sequence[str]) -> dict[str, str]:
    """Alias name → actual column (exact names win over prefix-stripped ones)."""
    found: dict[str, str] = {}
    for col in columns:
        for prefix in PREFIXES:
            if col.startswith(prefix):
                found.setdefault(col[len(prefix):], col)
    for col in columns:
        found[col] = col
    return found


def resolve_columns(columns: Sequence[str], mapping: Mapping[str, str] | None = None) -> dict[str, list[str]]:
    """Canonical name → source columns (alias order) present in ``columns``."""
    lookup = _lookup([str(c) for c in columns])
    out: dict[str, list[str]] = {}
    for canon, aliases in ALIASES.items():
        if mapping and canon in mapping:
            out[canon] = [mapping[canon]] if mapping[canon] in lookup.values() else []
            continue
        out[canon] = list(dict.fromkeys(lookup[a] for a in aliases if a in lookup))
    return out


def resolve_optional(columns: Sequence[str]) -> dict[str, list[str]]:
    """Optional record field → source columns present (``core.records.OPTIONAL_ALIASES``), only those found."""
    lookup = _lookup([str(x) for x in columns])
    found = {canon: list(dict.fromkeys(lookup[a] for a in aliases if a in lookup))
             for canon, aliases in OPTIONAL_ALIASES.items()}
    return {k: v for k, v in found.items() if v}


def _coalesce(df: pd.DataFrame, cols: list[str]) -> pd.Series:
    series = df[cols[0]]
    for col in cols[1:]:
        series = series.where(series.notna(), df[col])
    return series


def _source_of(df: pd.DataFrame, cols: list[str]) -> pd.Series:
    """Per row, the first column of ``cols`` that has a value (for per-field parsing rules)."""
    which = pd.Series(cols[0], index=df.index, dtype=object)
    seen = df[cols[0]].notna()
    for col in cols[1:]:
        which = which.where(seen, col)
        seen = seen | df[col].notna()
    return which


# Required fields a record may lack without being quarantined, while ``relaxed_fields`` holds. A monitor needs all of
# REQUIRED_COLUMNS (its windows are by time; its signals read both texts); ``evalmon signals score`` scores a labelled
# set of prompts or of responses with no time (a detector audit), so it lifts them: a record then needs a prompt or a
# response, a missing text is "", and a missing or unusable timestamp is left empty (NaT).
_RELAXED: ContextVar[frozenset[str]] = ContextVar("evalmon_relaxed_fields", default=frozenset())


@contextmanager
def relaxed_fields(*names: str) -> Iterator[None]:
    """Within this block, records read by any source may lack ``names`` (of TIMESTAMP, PROMPT, RESPONSE)."""
    unknown = set(names) - set(REQUIRED_COLUMNS)
    if unknown:
        raise ValueError(f"relaxed_fields: {sorted(unknown)} are not required fields")
    token = _RELAXED.set(frozenset(names))
    try:
        yield
    finally:
        _RELAXED.reset(token)


def normalize_frame(df: pd.DataFrame, **kwargs: Any) -> Normalized:
    """Map a raw frame (one row per logged request) to canonical columns; bad rows are quarantined.

    Keywords: ``source`` (label), ``locations`` (per row, e.g. "line 7"), ``raws`` (per row raw text),
    ``mapping`` ({canonical: column}), ``assume_timezone``, ``keep`` (extra columns passed through),
    ``strict_columns`` (DataError when a required field has no column at all), ``arrival_offset``,
    ``plausible`` (:class:`~evalmon.monitor.timeparse.Plausible`, the span a timestamp must be in),
    ``place_by_neighbour`` (a quarantined row without a usable time of its own takes its neighbour's).
    """
    with gc_paused():
        return _normalize_frame(df, **kwargs)


def _normalize_frame(df: pd.DataFrame, *, source: str, locations: Sequence[str] | None = None,
                     raws: Sequence[str] | None = None, mapping: Mapping[str, str] | None = None,
                     assume_timezone: str = "UTC", keep: Sequence[str] = (), strict_columns: bool = False,
                     arrival_offset: int = 0, plausible: Plausible | None = None,
                     place_by_neighbour: bool = False) -> Normalized:
    tz = resolve_timezone(assume_timezone)
    df = df.reset_index(drop=True)
    n = len(df)
    if n == 0:
        return Normalized(frame=empty_frame(), stats={"rows_read": 0, "rows": 0, "quarantined": 0},
                          row_times=pd.Series([], dtype="datetime64[ns, UTC]"))
    locs = list(locations) if locations is not None else [f"row {i + 1}" for i in range(n)]
    resolved = resolve_columns(list(df.columns), mapping)
    relaxed = _RELAXED.get()
    texts_optional = {PROMPT, RESPONSE} <= relaxed
    if strict_columns and n:
        absent = [c for c in REQUIRED_COLUMNS if not resolved[c] and c not in relaxed]
        if texts_optional and not resolved[PROMPT] and not resolved[RESPONSE]:
            absent += [PROMPT, RESPONSE]
        if absent and not (absent == [TIMESTAMP] and _span_pair(df)):
            looked = "; ".join(f"{c}: {mapping[c] if mapping and c in mapping else ', '.join(ALIASES[c])}" for c in absent)
            raise DataError(f"{source}: no column for required field(s) {', '.join(absent)} (looked for {looked}; "
                            f"columns are {', '.join(map(str, df.columns[:20]))})",
                            hint="map them with `columns: {canonical: source_column}`")
    problems: dict[int, list[str]] = {}  # sparse: row → reasons

    def flag(mask: pd.Series, reason: str | pd.Series) -> None:
        for i in np.flatnonzero(mask.to_numpy()):
            problems.setdefault(int(i), []).append(reason if isinstance(reason, str) else str(reason.iloc[i]))

    out = pd.DataFrame(index=df.index)
    tz_counts: dict[str, int] = {}
    # timestamp (+ latency derived from span start/end)
    pair = _span_pair(df)
    ts_cols = resolved[TIMESTAMP] or ([pair[0]] if pair else [])
    times_dropped = 0  # values in a timestamp field that were unusable, under relaxed_fields
    if ts_cols:
        ts = pd.Series(pd.NaT, index=df.index, dtype="datetime64[ns, UTC]")
        ts_reasons = pd.Series(MISSING, index=df.index, dtype=object)  # no value in any timestamp column
        which = _source_of(df, ts_cols)
        for col in ts_cols:
            rows = (which == col) & df[col].notna()
            if rows.any():
                parsed = parse_times(df.loc[rows, col], unit=TIME_UNITS.get(_bare(col)), tz=tz,
                                     plausible=plausible, tz_counts=tz_counts)
                ts[rows] = parsed.times
                ts_reasons[rows] = parsed.reasons
        if TIMESTAMP not in relaxed:
            flag(ts_reasons.notna(), ts_reasons)
        else:  # an unusable time is no time — counted (a value was there), so the caller can say so
            unusable = ts_reasons.notna() & (ts_reasons != MISSING)
            times_dropped = int(unusable.sum())
            ts[ts_reasons.notna()] = pd.NaT
    else:
        ts = pd.Series(pd.NaT, index=df.index, dtype="datetime64[ns, UTC]")
        if TIMESTAMP not in relaxed:
            flag(pd.Series(True, index=df.index), MISSING)
    out[TIMESTAMP] = ts
    # text fields
    for canon, roles in ((PROMPT, ("user", "human")), (RESPONSE, ("assistant", "ai"))):
        cols = resolved[canon]
        texts: list[str | None] = [None] * n
        json_rows = _json_mime(df, cols)
        if len(cols) == 1 and _bare(cols[0]) not in STRUCTURED and not json_rows.any() and \
                pd.api.types.infer_dtype(df[cols[0]], skipna=True) in ("string", "empty"):
            column = df[cols[0]]
            if canon not in relaxed:
                flag(column.isna(), f"missing required field: {canon}")
            out[canon] = column.astype(object).where(column.notna(), None)
            continue
        if cols:
            which = _source_of(df, cols).to_numpy()
            values = _coalesce(df, cols).to_numpy()
            for i in range(n):
                try:
                    texts[i] = to_text(values[i], structured=_bare(which[i]) in STRUCTURED or json_rows[i],
                                       roles=roles)
                except WrongType as exc:
                    problems.setdefault(i, []).append(f"wrong type for {canon}: {exc}")
                    continue
                if texts[i] is None and canon not in relaxed:
                    problems.setdefault(i, []).append(f"missing required field: {canon}")
        elif canon not in relaxed:
            for i in range(n):
                problems.setdefault(i, []).append(f"missing required field: {canon}")
        out[canon] = pd.Series(texts, index=df.index, dtype=object)
    if texts_optional:
        flag(out[PROMPT].isna() & out[RESPONSE].isna(), f"missing required field: {PROMPT} or {RESPONSE}")
    for canon in relaxed & {PROMPT, RESPONSE}:
        out[canon] = out[canon].where(out[canon].notna(), "")
    for canon in (CONTEXTS, SAMPLES):
        lists: list[list[str]] = [[] for _ in range(n)]
        if resolved[canon]:
            values = _coalesce(df, resolved[canon]).to_numpy()
            for i in range(n):
                try:
                    lists[i] = to_text_list(values[i])
                except WrongType as exc:
                    problems.setdefault(i, []).append(f"wrong type for {canon}: {exc}")
        out[canon] = pd.Series(lists, index=df.index, dtype=object)
    replaced = 0  # lone UTF-16 surrogates (a JSON "\\ud800") → U+FFFD: no tokenizer, Parquet or MLflow takes them
    for canon in (PROMPT, RESPONSE, CONTEXTS, SAMPLES):
        out[canon], k = valid_unicode(out[canon])
        replaced += k
    # numbers
    for canon in (LATENCY_MS, INPUT_TOKENS, OUTPUT_TOKENS):
        if resolved[canon]:
            raw = _coalesce(df, resolved[canon])
            nums = pd.to_numeric(raw.map(lambda v: None if isinstance(v, bool) else v), errors="coerce")
            bad = raw.notna() & ~np.isfinite(nums)  # "NaN", "abc", JSON Infinity/-Infinity: not a measurement
            # str(), not astype(str): that decodes a bytes value (a SQLite BLOB) as UTF-8 and raises
            flag(bad, f"wrong type for {canon}: " + raw.map(str).str.slice(0, 40))
            out[canon] = nums.astype("float64")
        else:
            out[canon] = np.nan
        if canon == LATENCY_MS and pair and out[canon].isna().any():
            start = parse_times(df[pair[0]], unit=TIME_UNITS.get(_bare(pair[0])), tz=tz, check=False).times
            end = parse_times(df[pair[1]], unit=TIME_UNITS.get(_bare(pair[1])), tz=tz, check=False).times
            out[canon] = out[canon].fillna((end - start).dt.total_seconds() * 1000.0)
    # identifiers
    generated = 0
    for canon in (REQUEST_ID, MODEL, SESSION_ID, TRACE_ID):
        if resolved[canon]:
            raw = _coalesce(df, resolved[canon])
            out[canon], k = valid_unicode(raw.map(lambda v: None if is_missing(v) else str(v)).astype(object))
            replaced += k
        else:
            out[canon] = pd.Series([None] * n, index=df.index, dtype=object)
    missing_id = out[REQUEST_ID].isna().to_numpy()
    if missing_id.any():
        generated = int(missing_id.sum())
        out.loc[missing_id, REQUEST_ID] = [
            hashlib.sha1(f"{source}|{locs[i]}".encode(), usedforsecurity=False).hexdigest()[:16]
            for i in np.flatnonzero(missing_id)]
    out[ARRIVAL] = np.arange(arrival_offset, arrival_offset + n, dtype="int64")
    for col in keep:
        out[col] = df[col] if col in df.columns else None
    extra = [c for c in resolve_optional(list(df.columns)) if c not in keep]  # optional fields (core.records)
    for canon, cols in resolve_optional(list(df.columns)).items():
        out[canon] = _coalesce(df, cols).astype(object)
    _no_known_field(df, resolved, pair, problems)
    # split good / quarantined
    bad_rows = np.zeros(n, dtype=bool)
    bad_rows[list(problems)] = True
    quarantined: list[QuarantinedRecord] = []
    q_times: list[pd.Timestamp | None] = []
    row_times = ts.ffill().bfill() if place_by_neighbour else ts
    for i in np.flatnonzero(bad_rows):
        raw = raws[i] if raws is not None else json.dumps(df.iloc[i].to_dict(), ensure_ascii=False, default=str)
        quarantined.append(QuarantinedRecord(source=source, location=locs[i], reason="; ".join(problems[i]),
                                             raw=truncate_raw(raw)))
        t = row_times.iloc[i]
        q_times.append(None if pd.isna(t) else t)
    good = out[~bad_rows]
    ts_good = good[TIMESTAMP]
    out_of_order = int((ts_good < ts_good.cummax().shift(1)).sum())
    frame = good.sort_values(TIMESTAMP, kind="mergesort").reset_index(drop=True)
    frame = frame[[*CANONICAL_COLUMNS, ARRIVAL, *extra, *[c for c in keep if c not in CANONICAL_COLUMNS]]]
    labels = {k for k, v in tz_counts.items() if k != "epoch" and v > 0}
    stats: dict[str, Any] = {"rows_read": n, "rows": len(frame), "quarantined": len(quarantined),
                             "out_of_order": out_of_order, "timezones": tz_counts,
                             "mixed_timezones": len(labels) > 1, "request_ids_generated": generated,
                             "invalid_unicode_replaced": replaced, "timestamps_dropped": times_dropped,
                             "columns_used": {k: v for k, v in resolved.items() if v}}
    return Normalized(frame=frame, quarantined=quarantined, quarantined_times=q_times, stats=stats,
                      row_times=row_times)


def _no_known_field(df: pd.DataFrame, resolved: Mapping[str, list[str]], pair: tuple[str, str] | None,
                    problems: dict[int, list[str]]) -> None:
    """A row where not one column that maps to a canonical field has a value: one reason, naming its keys."""
    known = list(dict.fromkeys([*(c for cols in resolved.values() for c in cols), *(pair or ())]))
    empty = df[known].isna().all(axis=1).to_numpy() if known else np.ones(len(df), dtype=bool)
    for i in np.flatnonzero(empty):
        row = df.iloc[int(i)]
        keys = [str(k) for k, v in row.items() if not is_missing(v)]
        shown = ", ".join(keys[:8]) + (f" (+{len(keys) - 8})" if len(keys) > 8 else "")
        problems[int(i)] = [f"{NO_KNOWN_FIELD}: " + (f"keys {shown}" if keys else "no keys")]


def _json_mime(df: pd.DataFrame, cols: list[str]) -> np.ndarray:
    """Rows whose OpenInference ``*.value`` column is declared ``application/json``."""
    flags = np.zeros(len(df), dtype=bool)
    lookup = _lookup([str(c) for c in df.columns])
    for col in cols:
        mime = MIME_TYPED.get(_bare(col))
        if mime and mime in lookup:
            flags |= (df[lookup[mime]].astype(str).str.contains("json", na=False) & df[col].notna()).to_numpy()
    return flags


def _bare(col: str) -> str:
    for prefix in PREFIXES:
        if col.startswith(prefix):
            return col[len(prefix):]
    return col


def _span_pair(df: pd.DataFrame) -> tuple[str, str] | None:
    lookup = _lookup([str(c) for c in df.columns])
    for start, end in SPAN_TIMES:
        if start in lookup and end in lookup:
            return lookup[start], lookup[end]
    return None


def normalize_records(records: Sequence[Mapping[str, Any]], **kwargs: Any) -> Normalized:
    """Dict records (JSON lines, trace dicts) → canonical; nested dicts are flattened first."""
    flat = [flatten(r) if any(isinstance(v, dict) for v in r.values()) else r for r in records]
    try:
        df = pd.DataFrame.from_records(flat, index=range(len(flat))) if flat else pd.DataFrame()  # `{}` is a row too
    except OverflowError:  # a JSON integer no float holds (401 digits): pandas cannot build the column
        flat = [{k: _float_or_text(v) for k, v in r.items()} for r in flat]
        df = pd.DataFrame.from_records(flat, index=range(len(flat)))
    return normalize_frame(df, **kwargs)


def _float_or_text(value: Any) -> Any:
    """An int beyond float's range becomes its digits (a wrong type where a number is due); the rest as is."""
    if isinstance(value, int) and not isinstance(value, bool):
        try:
            float(value)
        except OverflowError:
            return str(value)
    return value


def empty_frame() -> pd.DataFrame:
    frame = pd.DataFrame({c: pd.Series(dtype=object) for c in CANONICAL_COLUMNS})
    frame[TIMESTAMP] = pd.Series(dtype="datetime64[ns, UTC]")
    for col in (LATENCY_MS, INPUT_TOKENS, OUTPUT_TOKENS):
        frame[col] = pd.Series(dtype="float64")
    frame[ARRIVAL] = pd.Series(dtype="int64")
    return frame

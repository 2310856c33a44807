"""The one timestamp routine every monitor source uses: raw values → UTC times, or a reason per row.

Accepted values (vectorised over a pandas Series, ``parse_times``; one value: ``parse_time``):

- ISO 8601 text with ``T`` or a space between date and time, with ``Z`` / ``±HH:MM`` / ``±HHMM`` or no
  offset, optional fractions, or a date alone (``2026-11-01``). Other layouts (``11/01/2026``, RFC 2822)
  are not guessed: they are ``timestamp.unparseable``.
- **Naive values** (no offset: text, ``datetime``, ``datetime64`` columns) are wall-clock times in the
  source's ``assume_timezone``, which is **UTC unless configured**.
- Numbers and numeric text are Unix epochs. The unit comes from the field name when it says so
  (``timestamp_ms``, ``start_time_unix_nano``, …: ``unit=``), otherwise from the magnitude:
  ``|v| < 1e11`` seconds, ``< 1e14`` milliseconds, ``< 1e17`` microseconds, else nanoseconds (every
  date from 1973 to 5138 has one reading only). Booleans are not epochs.
- Python/pandas ``datetime`` objects and ``datetime64`` columns (aware ones are converted to UTC).

Each row either gets a time or one reason, never both:

- ``timestamp.missing``: null, NaN or blank text;
- ``timestamp.unparseable``: anything else that is not a time (``'garbage'``, ``2026-13-45``, ``inf``, a list);
- ``timestamp.implausible``: a time outside ``[Plausible.not_before, now + Plausible.max_ahead]`` —
  by default before 2000-01-01 (``0`` and ``-1`` are 1970 and 1969: a missing value written as a number)
  or more than one day in the future. Both bounds are the source's ``timestamp_min`` / ``timestamp_max_ahead``.

Sources quarantine rows with a reason (they are never dropped); ``ParsedTimes.parsed`` keeps the
implausible time for the message.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

MISSING = "timestamp.missing"
UNPARSEABLE = "timestamp.unparseable"
IMPLAUSIBLE = "timestamp.implausible"
REASONS = (MISSING, UNPARSEABLE, IMPLAUSIBLE)

DEFAULT_NOT_BEFORE = pd.Timestamp("2000-01-01", tz="UTC")
DEFAULT_MAX_AHEAD = timedelta(days=1)
UNIT_FACTORS = {"s": 1e9, "ms": 1e6, "us": 1e3, "ns": 1.0}
MAGNITUDE_BANDS = ((1e11, "s"), (1e14, "ms"), (1e17, "us"))  # |v| below the bound → that unit; else ns
_TZ_RE = r"(Z|z|[+-]\d{2}:?\d{2})$"
_NUMERIC_RE = r"^\s*[-+]?\d+(\.\d*)?\s*$"
_UTC = ZoneInfo("UTC")


@dataclass(frozen=True)
class Plausible:
    """The span a real request time can be in: ``[not_before, now + max_ahead]``.

    ``now``: the clock pinned for one monitor run (``pinned``), so that every read of the run — the fit and
    summary passes, every Spark cell — draws the same upper bound; unpinned, the wall clock at each read."""

    not_before: pd.Timestamp = DEFAULT_NOT_BEFORE
    max_ahead: timedelta = DEFAULT_MAX_AHEAD
    now: pd.Timestamp | None = None

    def pinned(self, now: datetime | pd.Timestamp) -> Plausible:
        return replace(self, now=_utc(pd.Timestamp(now)))

    def bounds(self, now: datetime | pd.Timestamp | None = None) -> tuple[pd.Timestamp, pd.Timestamp]:
        clock = now if now is not None else self.now
        ref = pd.Timestamp.now(tz="UTC") if clock is None else _utc(pd.Timestamp(clock))
        return _utc(pd.Timestamp(self.not_before)), ref + self.max_ahead


@dataclass
class ParsedTimes:
    """``times``: UTC, NaT where ``reasons`` has one; ``parsed``: the time read even when implausible."""

    times: pd.Series
    reasons: pd.Series
    parsed: pd.Series
    tz_counts: dict[str, int] = field(default_factory=dict)


def _utc(ts: pd.Timestamp) -> pd.Timestamp:
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def unit_of(magnitude: float) -> str:
    """The epoch unit a number of this magnitude is read in (the documented bands)."""
    return next((unit for bound, unit in MAGNITUDE_BANDS if abs(magnitude) < bound), "ns")


def _unit_factor(values: np.ndarray, unit: str | None) -> np.ndarray:
    if unit is not None:
        return np.full(values.shape, UNIT_FACTORS[unit])
    mag = np.abs(values)
    return np.select([mag < b for b, _ in MAGNITUDE_BANDS], [UNIT_FACTORS[u] for _, u in MAGNITUDE_BANDS], 1.0)


def _epoch(values: pd.Series, unit: str | None) -> pd.Series:
    nums = pd.to_numeric(values, errors="coerce")
    out = pd.Series(pd.NaT, index=values.index, dtype="datetime64[ns, UTC]")
    arr = nums.to_numpy(dtype="float64", na_value=np.nan)
    factor = _unit_factor(arr, unit)
    ns = arr * factor
    ok = np.isfinite(ns) & (np.abs(ns) < 9.2e18)
    if not ok.any():
        return out
    if pd.api.types.is_integer_dtype(nums.dtype):  # exact: float64 would round ns epochs to 256 ns
        exact = nums.to_numpy(dtype="int64")[ok] * factor[ok].astype("int64")
    else:
        full = np.zeros(len(arr), dtype="int64")
        full[ok] = ns[ok].astype("int64")
        # integers (or digit strings) in a column that also holds floats: exact too — pd.to_numeric made the whole
        # column float64, which put 1793491200123 ms at …00.123000064
        whole = ok & (values.map(_is_integral).to_numpy(dtype=bool) if values.dtype == object else False)
        if np.any(whole):
            full[whole] = [int(str(v).strip()) * int(f) for v, f in zip(values.to_numpy()[whole], factor[whole],
                                                                         strict=True)]
        exact = full[ok]
    out[ok] = pd.to_datetime(exact, unit="ns", utc=True)
    return out


def _is_integral(v: Any) -> bool:
    """An int (not a bool) or a text of digits: exact in integer arithmetic."""
    if isinstance(v, bool | np.bool_):
        return False
    if isinstance(v, int | np.integer):
        return True
    return isinstance(v, str) and v.strip().lstrip("+-").isdigit()


def _offset_label(tz: str) -> str:
    if tz in ("Z", "z"):
        return "+00:00"
    return tz if ":" in tz else f"{tz[:3]}:{tz[3:]}"


def _count(tz_counts: dict[str, int], label: str, n: int) -> None:
    if n:
        tz_counts[label] = tz_counts.get(label, 0) + int(n)


def _localize(naive: pd.Series, tz: ZoneInfo) -> pd.Series:
    return naive.dt.tz_localize(tz, ambiguous="NaT", nonexistent="NaT").dt.tz_convert("UTC")


def _parse(raw: pd.Series, unit: str | None, tz: ZoneInfo, tz_counts: dict[str, int]) -> pd.Series:
    """Values → UTC (NaT where not a time); no plausibility check."""
    out = pd.Series(pd.NaT, index=raw.index, dtype="datetime64[ns, UTC]")
    if pd.api.types.is_datetime64_any_dtype(raw.dtype):
        if getattr(raw.dt, "tz", None) is None:
            _count(tz_counts, "naive", int(raw.notna().sum()))
            return _localize(raw, tz)
        _count(tz_counts, str(raw.dt.tz), int(raw.notna().sum()))
        return raw.dt.tz_convert("UTC")
    if pd.api.types.is_bool_dtype(raw.dtype):
        return out
    if pd.api.types.is_numeric_dtype(raw.dtype):
        present = raw.notna()
        _count(tz_counts, "epoch", int(present.sum()))
        return _epoch(raw, unit) if present.any() else out
    values = raw[raw.notna()]
    if not len(values):
        return out
    is_num = values.map(lambda v: isinstance(v, (int, float, np.number)) and not isinstance(v, (bool, np.bool_)))
    is_str = values.map(lambda v: isinstance(v, str))
    strings = values[is_str].astype(str).str.strip()
    numeric_str = strings.str.match(_NUMERIC_RE)
    num_parts = [p for p in (values[is_num], strings[numeric_str]) if len(p)]
    if num_parts:
        num = pd.concat(num_parts) if len(num_parts) > 1 else num_parts[0]
        out[num.index] = _epoch(num.astype(object), unit)
        _count(tz_counts, "epoch", len(num))
    iso = strings[~numeric_str & (strings != "")]
    if len(iso):
        offsets = iso.str.extract(_TZ_RE, expand=False)
        aware = offsets.notna()
        if aware.any():
            parsed = pd.to_datetime(iso[aware], utc=True, format="ISO8601", errors="coerce")
            out[iso.index[aware]] = parsed
            for label, n in offsets[aware][parsed.notna()].map(_offset_label).value_counts().items():
                _count(tz_counts, str(label), int(n))
        if (~aware).any():
            naive = pd.to_datetime(iso[~aware], format="ISO8601", errors="coerce")
            out[iso.index[~aware]] = _localize(naive, tz)
            _count(tz_counts, "naive", int(naive.notna().sum()))
    other = values[~is_num & ~is_str]
    for idx, value in other.items():  # datetimes, pandas Timestamps, numpy datetime64 (object columns)
        if not isinstance(value, (datetime, np.datetime64)):
            continue
        ts = pd.Timestamp(value)
        if ts is pd.NaT:
            continue
        _count(tz_counts, "naive" if ts.tzinfo is None else "aware", 1)
        try:  # a local time the DST change repeats or skips is NaT, as in ``_localize`` (pytz's errors are no ValueError)
            local = ts.tz_localize(tz, ambiguous="NaT", nonexistent="NaT") if ts.tzinfo is None else ts
            out[idx] = local.tz_convert("UTC").as_unit("ns")  # as_unit: 9999-12-31 (a sentinel) fits no ns column
        except (ValueError, OverflowError):  # out of range
            continue
    return out


def _blank(raw: pd.Series) -> pd.Series:
    """Null, NaN, NaT or whitespace-only text."""
    missing = raw.isna()
    if raw.dtype == object:
        missing |= raw.map(lambda v: isinstance(v, str) and not v.strip())
    return missing


def _show(value: Any) -> str:
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= 60 else text[:57] + "..."


def parse_times(raw: pd.Series, *, unit: str | None = None, tz: str | ZoneInfo = "UTC",
                plausible: Plausible | None = None, now: datetime | pd.Timestamp | None = None,
                tz_counts: dict[str, int] | None = None, check: bool = True) -> ParsedTimes:
    """Parse a column of raw timestamps (see the module docstring for the rules and the reasons);
    ``plausible`` defaults to ``Plausible()``, ``check=False`` skips the plausibility bounds."""
    zone = tz if isinstance(tz, ZoneInfo) else ZoneInfo(tz)
    counts = tz_counts if tz_counts is not None else {}
    parsed = _parse(raw, unit, zone, counts)
    reasons = np.full(len(raw), None, dtype=object)
    missing = _blank(raw).to_numpy()
    reasons[missing] = MISSING
    bad = ~missing & parsed.isna().to_numpy()
    reasons[bad] = [f"{UNPARSEABLE}: {_show(v)}" for v in raw[bad]]
    times = parsed.copy()
    if check:
        lo, hi = (plausible or Plausible()).bounds(now)
        early = (parsed.notna() & (parsed < lo)).to_numpy()
        late = (parsed.notna() & (parsed > hi)).to_numpy()
        reasons[early] = [f"{IMPLAUSIBLE}: {t.isoformat()} is before {lo.isoformat()} (source.timestamp_min)"
                          for t in parsed[early]]
        reasons[late] = [f"{IMPLAUSIBLE}: {t.isoformat()} is after {hi.isoformat()} (now + "
                         "source.timestamp_max_ahead)" for t in parsed[late]]
        times[early | late] = pd.NaT
    return ParsedTimes(times=times, reasons=pd.Series(reasons, index=raw.index, dtype=object), parsed=parsed,
                       tz_counts=counts)


def parse_time(value: Any, *, unit: str | None = None, tz: str | ZoneInfo = "UTC",
               plausible: Plausible | None = None,
               now: datetime | pd.Timestamp | None = None) -> tuple[pd.Timestamp | None, str | None]:
    """One value → ``(UTC timestamp, None)`` or ``(None, reason)``."""
    out = parse_times(pd.Series([value], dtype=object), unit=unit, tz=tz, plausible=plausible, now=now)
    t, reason = out.times.iloc[0], out.reasons.iloc[0]
    return (None, reason) if reason is not None else (pd.Timestamp(t), None)

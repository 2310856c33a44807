"""Per-record signals on any traffic file: ``evalmon signals score FILE --signals a,b --out FILE``.

How users audit a detector, label disagreements and retrain: the file is read by the monitor's own sources
(``jsonl`` / ``csv`` / ``parquet`` by extension, or ``kind``) with the same column aliases (``columns``:
canonical name → your field; OTel GenAI / OpenInference names work as they are), partition by partition
(a file, a Parquet fragment), and the signals run on batches of ``batch_size`` records whose rows are written
as they are done — JSONL lines, or Parquet row groups (the first batch fixes the schema). Quarantined
records (malformed lines, wrong types) are counted and left out, as the monitor does — but a record needs no
timestamp and only one of prompt / response (``schema.relaxed_fields``: a labelled set of prompts to audit a
detector on has neither times nor answers; a missing text is "", a missing or unusable time is left empty).

Output columns: ``request_id``, ``timestamp``, ``model`` and (unless ``text=False``) ``prompt`` /
``response`` — what a reviewer needs next to a score —, the ``keep`` fields of the file as they are (``--keep
label``: what a detector is audited against), then every signal column.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from evalmon.core.errors import ConfigError
from evalmon.monitor.contracts import MODEL, PROMPT, REQUEST_ID, RESPONSE, TIMESTAMP

if TYPE_CHECKING:
    import pandas as pd

KINDS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl", ".gz": "jsonl", ".csv": "csv", ".tsv": "csv",
         ".parquet": "parquet"}
OUT_FORMATS = (".jsonl", ".parquet")
ID_COLUMNS = (REQUEST_ID, TIMESTAMP, MODEL)
TEXT_COLUMNS = (PROMPT, RESPONSE)


@dataclass
class ScoreResult:
    out: Path
    records: int
    quarantined: int
    columns: list[str]
    seconds: float
    scored: dict[str, int] = field(default_factory=dict)  # per signal: records with a value in any of its columns
    why_quarantined: str = ""  # the most common reason records were left out ("" when none was)
    keep_empty: list[str] = field(default_factory=list)  # ``keep`` fields no scored record had (a typo, most likely)
    inputs_empty: dict[str, list[str]] = field(default_factory=dict)  # prompt/response no record had → its readers
    timestamps_dropped: int = 0  # records whose time field held a value that could not be read (written empty)
    quarantine_file: Path | None = None  # the quarantined records (source, line, reason, raw), when there were any

    def coverage(self) -> dict[str, float]:
        """Per signal, the share of records it could score (the monitors' ``coverage/`` metric, per signal)."""
        return {name: n / self.records if self.records else float("nan") for name, n in self.scored.items()}

    @property
    def per_second(self) -> float:
        return self.records / self.seconds if self.seconds > 0 else float("nan")


def source_kind(path: Path) -> str:
    """The source kind of a traffic path by extension (a directory: date-partitioned Parquet)."""
    if path.is_dir():
        return "parquet"
    suffixes = [s.lower() for s in path.suffixes]
    for s in reversed(suffixes):
        if s in KINDS and not (s == ".gz" and len(suffixes) > 1 and suffixes[-2] in KINDS):
            return KINDS[s]
    raise ConfigError(f"{path}: cannot tell the format from the extension",
                      hint="name it .jsonl/.csv/.parquet or pass --kind jsonl|csv|parquet")


def _jsonable(v: Any) -> Any:
    import numpy as np

    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, np.generic):
        return v.item()
    if (isinstance(v, float) and v != v) or type(v).__name__ == "NaTType":
        return None
    if hasattr(v, "isoformat"):
        return v.isoformat()
    return v


class _Writer:
    """Rows out as they are scored: JSONL lines or Parquet row groups."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fh: Any = None
        self._pq: Any = None
        self._schema: Any = None

    def write(self, frame: pd.DataFrame) -> None:
        if self.path.suffix == ".jsonl":
            if self._fh is None:
                self._fh = open(self.path, "w", encoding="utf-8")  # noqa: SIM115 — closed in close()
            cols = list(frame.columns)
            for row in frame.itertuples(index=False, name=None):
                self._fh.write(json.dumps({c: _jsonable(v) for c, v in zip(cols, row, strict=True)},
                                          ensure_ascii=False) + "\n")
            return
        import pyarrow as pa
        import pyarrow.parquet as pq

        if self._pq is None:
            inferred = pa.Table.from_pandas(frame, preserve_index=False).schema
            # a column with no value in the first batch (no record had a `model`, every language unknown)
            # infers as null, which no later value fits ("Invalid null value" mid-file): text it is
            self._schema = pa.schema([f.with_type(pa.string()) if pa.types.is_null(f.type) else f
                                      for f in inferred], metadata=inferred.metadata)
            self._pq = pq.ParquetWriter(str(self.path), self._schema)
        table = pa.Table.from_pandas(frame, schema=self._schema, preserve_index=False, safe=False)
        self._pq.write_table(table)

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
        if self._pq is not None:
            self._pq.close()


def check_writable(out: Path, *, what: str = "--out", example: str = "scores.parquet") -> None:
    """``--out`` (``what``) can be written: its folder exists or is created, and the file opens for writing —
    an ``OutputError`` naming it before anything is scored (a file that did not exist is not left behind)."""
    from evalmon.core.errors import OutputError

    if out.is_dir():
        raise OutputError(f"{what} {out}: is a directory", hint=f"name a file, e.g. {example}")
    existed = out.exists()
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        with open(out, "ab"):
            pass
    except OSError as exc:
        where = f": {exc.filename}" if exc.filename and str(exc.filename) != str(out) else ""
        raise OutputError(f"{what} {out}: cannot write there ({exc.strerror or exc}{where})",
                          hint="choose a writable folder") from None
    if not existed:
        out.unlink(missing_ok=True)


PROXY_SIGNALS = ("uncertainty", "halludetect")  # the signals that score responses under a proxy model


def with_proxy_model(signals: Sequence[str | Mapping[str, Any]], model: Mapping[str, Any] | None, *,
                     chat: bool | None = None) -> list[str | Mapping[str, Any]]:
    """``signals`` with ``model`` (an evalmon model config; ``--model``) as the proxy model of ``uncertainty``
    and ``halludetect`` and/or ``chat`` (``--no-chat``: prompts as plain text, for a model without a chat
    template); an error when none of those signals is asked for."""
    extra = {**({"model": dict(model)} if model is not None else {}), **({"chat": chat} if chat is not None else {})}
    if not extra:
        return list(signals)
    out: list[str | Mapping[str, Any]] = []
    for s in signals:
        entry = {"name": s} if isinstance(s, str) else dict(s)
        if entry.get("name") == "uncertainty":
            out.append({**entry, **extra})
        elif entry.get("name") == "halludetect":
            out.append({**entry, "uncertainty": {**dict(entry.get("uncertainty") or {}), **extra}})
        else:
            out.append(s)
    if not any(isinstance(s, Mapping) and s.get("name") in PROXY_SIGNALS for s in out):
        flag = "--model" if model is not None else "--no-chat"
        raise ConfigError(f"{flag}: no signal here uses a proxy model (it is for {' and '.join(PROXY_SIGNALS)})",
                          hint=f"add uncertainty or halludetect to --signals, or drop {flag}")
    return out


def score_file(path: str | Path, signals: Sequence[str | Mapping[str, Any]], out: str | Path, *,
               kind: str | None = None, columns: Mapping[str, str] | None = None, batch_size: int = 512,
               text: bool = True, cache_path: str | Path | None = None,
               log_fn: Callable[[str], None] | None = None,
               proxy_model: Mapping[str, Any] | None = None, proxy_chat: bool | None = None,
               delimiter: str | None = None, keep: Sequence[str] = ()) -> ScoreResult:
    """Score every record of ``path`` with ``signals`` (names or signal configs) into ``out`` (.jsonl/.parquet);
    ``proxy_model``: the model ``uncertainty`` / ``halludetect`` score responses under (default: the embedded
    checkpoint); ``proxy_chat=False``: its prompts as plain text (a model without a chat template)."""
    from evalmon.checkpoints.heartbeat import heartbeat
    from evalmon.monitor.quarantine import write_quarantine
    from evalmon.monitor.schema import relaxed_fields
    from evalmon.monitor.signals import SignalCache, build_signals, compute_signals
    from evalmon.monitor.sources.base import partitions_of, read_partition

    src_path, out_path = Path(path), Path(out)
    if out_path.suffix not in OUT_FORMATS:
        raise ConfigError(f"--out {out_path}: unknown output format", hint="name it .jsonl or .parquet")
    if not src_path.exists():
        raise ConfigError(f"{src_path}: no such file or directory", hint="pass a traffic file (jsonl/csv/parquet)")
    if src_path.is_file() and src_path.resolve() in out_path.resolve().parents:
        raise ConfigError(f"--out {out_path}: its folder {src_path} is a file (the traffic being scored), not a "
                          "folder", hint="write the scores to a new file, e.g. scores.parquet")
    if out_path.resolve() == src_path.resolve() or src_path.resolve() in out_path.resolve().parents:
        raise ConfigError(f"--out {out_path}: is the traffic being scored ({src_path}): it would be overwritten",
                          hint="write the scores to a new file, e.g. scores.parquet")
    if batch_size < 1:
        raise ConfigError(f"--batch-size {batch_size}: must be at least 1", hint="e.g. 512")
    if not signals:
        raise ConfigError("--signals: no signal named", hint="e.g. --signals pii,refusal,safety")
    built = build_signals(with_proxy_model(signals, proxy_model, chat=proxy_chat), option="--signals")
    keep = list(dict.fromkeys(keep))
    clash = [k for k in keep if k in (*ID_COLUMNS, *(TEXT_COLUMNS if text else ())) or any(k in s.columns for s in built)]
    if clash:
        raise ConfigError(f"--keep {clash[0]}: is a column the output already has",
                          hint="keep a field of the file that is not an output column (e.g. label)")
    source = _source(src_path, kind, columns, delimiter, keep)
    check_writable(out_path)
    cache = SignalCache(cache_path)
    writer = _Writer(out_path)
    done, bad, dropped, t0 = 0, 0, 0, time.perf_counter()
    q_path = out_path.with_name(f"{out_path.name}.quarantined.jsonl")  # renamed into place with the output
    q_part = q_path.with_name(q_path.name + ".partial")
    q_part.unlink(missing_ok=True)
    reasons: Counter[str] = Counter()  # why records were quarantined (named when none is usable)
    produced: list[str] = []
    scored: Counter[str] = Counter({sig.name: 0 for sig in built})
    seen: set[str] = set()  # the keep fields some record had
    readers = {f: [s.name for s in built if f in (getattr(s, "inputs", ()) or ())] for f in (PROMPT, RESPONSE)}
    filled: set[str] = set()  # the text fields (prompt, response) some record had

    def beat(elapsed: float) -> str:
        return f"signals score: {done} records scored, {done / max(elapsed, 1e-9):.1f} records/s, {elapsed:.0f} s"

    try:
        with heartbeat(log_fn, "signals score", line=beat), relaxed_fields(TIMESTAMP, PROMPT, RESPONSE):
            for part in partitions_of(source, None, None):
                batch = read_partition(source, part, None, None)
                bad += len(batch.quarantined)
                if batch.quarantined:  # each with its line and reason, beside the output (as a monitor writes them)
                    write_quarantine(batch.quarantined, q_part, append=q_part.exists())
                dropped += int(batch.stats.get("timestamps_dropped", 0))
                reasons.update(q.reason for q in batch.quarantined)
                frame = batch.frame.reset_index(drop=True)
                for lo in range(0, len(frame), batch_size):
                    chunk = compute_signals(frame.iloc[lo:lo + batch_size], built, cache)
                    produced = [c for s in built for c in s.columns]
                    head = [c for c in (*ID_COLUMNS, *(TEXT_COLUMNS if text else ())) if c in chunk.columns]
                    writer.write(chunk[head + keep + produced])
                    seen.update(k for k in keep if chunk[k].notna().any())
                    filled.update(f for f in readers if f in chunk.columns and f not in filled
                                  and chunk[f].astype("string").str.strip().fillna("").str.len().gt(0).any())
                    done += len(chunk)
                    for sig in built:
                        scored[sig.name] += int(chunk[list(sig.columns)].notna().any(axis=1).sum())
    except KeyboardInterrupt as exc:  # the CLI says what the partial output holds
        exc.scored = (done, out_path)  # type: ignore[attr-defined]
        raise
    finally:
        writer.close()
        cache.close()
        if not done:  # no output replaced the earlier one: nor does its quarantine file
            q_part.unlink(missing_ok=True)
        elif q_part.exists():  # beside the output written (complete, or the partial one of an interrupted run)
            q_part.replace(q_path)
        else:
            q_path.unlink(missing_ok=True)  # an earlier run's, for the output this run replaced
    if not done:
        why, n = reasons.most_common(1)[0] if reasons else ("", 0)
        what = (f"all {bad} records quarantined; {'all' if n == bad else f'{n}'} of them: {why}" if bad else
                "it holds no record")
        raise ConfigError(f"{src_path}: no usable record to score ({what})",
                          hint="check the file's format and --column mappings (prompt, response)")
    why = reasons.most_common(1)[0][0] if reasons else ""
    return ScoreResult(out_path, done, bad, produced, time.perf_counter() - t0, dict(scored), why,
                       [k for k in keep if k not in seen],
                       {f: names for f, names in readers.items() if names and f not in filled}, dropped,
                       q_path if bad else None)


# A source config key → the option of ``evalmon signals score`` that sets it (errors name the option).
_OPTIONS = {"source.kind": "--kind", "source.columns": "--column", "source.delimiter": "--delimiter",
            "source.keep": "--keep"}


def _source(path: Path, kind: str | None, columns: Mapping[str, str] | None, delimiter: str | None = None,
            keep: Sequence[str] = ()) -> Any:
    """The monitor source reading ``path``. Damaged lines (NUL bytes, a gzip stream that breaks off) are
    quarantined and counted like malformed ones (``on_corrupt: quarantine``) rather than stopping the whole
    file: there is no source YAML here whose ``on_corrupt`` a user could set."""
    from evalmon.monitor.sources import build_source

    cfg: dict[str, Any] = {"kind": kind or source_kind(path), "path": str(path.resolve()),
                           "columns": dict(columns or {}), "keep": list(keep)}
    if cfg["kind"] in ("jsonl", "csv"):
        cfg["on_corrupt"] = "quarantine"
    if delimiter is not None:
        if cfg["kind"] != "csv":
            raise ConfigError(f"--delimiter: {path} is read as {cfg['kind']}, not CSV",
                              hint="drop --delimiter, or pass --kind csv")
        cfg["delimiter"] = delimiter
    try:
        return build_source(cfg, Path.cwd())
    except ConfigError as exc:
        for key, option in _OPTIONS.items():
            if exc.message.startswith(key):
                raise ConfigError(option + exc.message.removeprefix(key), hint=exc.hint) from None
        raise

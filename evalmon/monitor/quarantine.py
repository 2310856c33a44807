"""Quarantined lines/rows → a JSONL file (one object per record) and a summary by reason.

File format (one line each): ``{"source": …, "location": "line 17", "reason": "…", "raw": "…"}`` — ``raw``
is the original text, truncated to a few KB. The summary groups reasons by their kind (the text before
the first ``:``, e.g. ``unparseable JSON``, ``timestamp.implausible``), so counts stay small when each
message names a value; ``reason_key`` makes a kind a metric-name part (``records/quarantined/<key>``).

Reason kinds set here and in ``timeparse``: ``timestamp.missing|unparseable|implausible``,
``record.no_known_field`` (a record none of whose fields maps to a canonical column) and ``file.corrupt``
(a file that cannot be read to its end: truncated/corrupt gzip, binary data — see the sources'
``on_corrupt``).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from evalmon.core.errors import OutputError
from evalmon.monitor.contracts import QuarantinedRecord

NO_KNOWN_FIELD = "record.no_known_field"
FILE_CORRUPT = "file.corrupt"
_KEY_BAD = re.compile(r"[^a-z0-9._-]+")


def reason_kind(reason: str) -> str:
    """``"unparseable timestamp: 'x'; missing required field: response"`` → ``"unparseable timestamp"``."""
    return reason.split(";")[0].split(":")[0].strip()


def reason_key(reason: str) -> str:
    """A reason (or its kind) → a metric-name part: ``"unparseable JSON: …"`` → ``"unparseable_json"``."""
    return _KEY_BAD.sub("_", reason_kind(reason).lower()).strip("_") or "other"


def count_by_key(records: Iterable[QuarantinedRecord]) -> dict[str, int]:
    """``{reason_key: count}``, largest first."""
    return dict(Counter(reason_key(r.reason) for r in records).most_common())


def write_quarantine(records: Iterable[QuarantinedRecord], path: Path | str, *, append: bool = False) -> int:
    """Write records as JSONL (``append`` adds to an existing file); returns how many were written."""
    target = Path(path)
    n = 0
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(target, "a" if append else "w", encoding="utf-8") as fh:
            for rec in records:
                fh.write(json.dumps(asdict(rec), ensure_ascii=False) + "\n")
                n += 1
    except OSError as exc:
        raise OutputError(f"cannot write quarantine file {target}: {exc}") from exc
    return n


def read_quarantine(path: Path | str) -> list[QuarantinedRecord]:
    with open(path, encoding="utf-8") as fh:
        return [QuarantinedRecord(**json.loads(line)) for line in fh if line.strip()]


def summarize(records: Iterable[QuarantinedRecord]) -> dict[str, Any]:
    """``{"total": n, "by_reason": {kind: count}, "by_source": {source: count}}`` (counts sorted, largest first)."""
    recs = list(records)
    by_reason = Counter(reason_kind(r.reason) for r in recs)
    by_source = Counter(r.source for r in recs)
    return {"total": len(recs), "by_reason": dict(by_reason.most_common()),
            "by_source": dict(by_source.most_common())}

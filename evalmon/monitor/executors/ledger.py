"""The run's quarantined records, counted as windows are read: ``read = processed + quarantined``.

A quarantined record counts on the window its time places it in; one with no usable time (*unplaced*)
is returned by every read of its partition, so it is counted once per run, on the first read of that
partition. Records go to ``<run dir>/quarantine/<time>.jsonl`` as they are read (the file is created at the
first one); records placed outside the run's windows (the previous window read as a reference) are not
this run's. ``quarantine_summary.json`` of a window carries the run's totals up to that window (the last
window's are the run's).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from evalmon.monitor.contracts import QuarantinedRecord
from evalmon.monitor.quarantine import reason_key, write_quarantine
from evalmon.monitor.windows import Window


@dataclass
class QuarantineLedger:
    run_dir: Path
    size: timedelta
    quarantined: int = 0
    by_reason: dict[str, int] = field(default_factory=dict)  # reason key → count, whole run
    per_window: dict[int, dict[str, int]] = field(default_factory=dict)  # window index → reason key → count
    unplaced: dict[str, int] = field(default_factory=dict)  # reason key → count
    quarantine_file: str | None = None
    _taken: set[str] = field(default_factory=set)  # partitions whose unplaced records are counted

    def add(self, partition: str, records: list[QuarantinedRecord], times: list[Any], *, in_run: bool) -> None:
        """The quarantined records one read of ``partition`` returned (``in_run``: for one of the run's windows)."""
        step_ns = round(self.size.total_seconds() * 1e9)  # window index = floor(ns since the epoch / size)
        first = partition not in self._taken
        self._taken.add(partition)
        kept = []
        for rec, t in zip(records, times, strict=True):
            key = reason_key(rec.reason)
            if t is None:
                if not first:
                    continue
                self.unplaced[key] = self.unplaced.get(key, 0) + 1
            elif in_run:
                counts = self.per_window.setdefault(int(t.value // step_ns), {})
                counts[key] = counts.get(key, 0) + 1
            else:
                continue
            self.by_reason[key] = self.by_reason.get(key, 0) + 1
            kept.append(rec)
        if kept:
            if self.quarantine_file is None:
                path = self.run_dir / "quarantine" / f"{datetime.now(UTC).strftime('%Y%m%dT%H%M%S%fZ')}.jsonl"
                self.quarantine_file = str(path)
            write_quarantine(kept, self.quarantine_file, append=True)
            self.quarantined += len(kept)
            self.by_reason = dict(sorted(self.by_reason.items(), key=lambda kv: (-kv[1], kv[0])))

    @property
    def n_unplaced(self) -> int:
        return sum(self.unplaced.values())

    def take(self, w: Window) -> int:
        """Quarantined records whose time falls in window ``w``."""
        return sum(self.per_window.get(w.index, {}).values())

    def metrics(self, w: Window, processed: int, *, last: bool) -> dict[str, float]:
        """``records/read = records/processed + records/quarantined`` (+ ``records/quarantined/<reason>``)
        for window ``w``; the run's last window also carries the ``records/unplaced[/<reason>]`` bucket."""
        mine = self.per_window.get(w.index, {})
        out = {"records/read": float(processed + sum(mine.values())), "records/processed": float(processed),
               "records/quarantined": float(sum(mine.values()))}
        out.update({f"records/quarantined/{k}": float(v) for k, v in mine.items()})
        if last:
            out["records/unplaced"] = float(self.n_unplaced)
            out.update({f"records/unplaced/{k}": float(v) for k, v in self.unplaced.items()})
        return out

    def summary(self, w: Window, *, last: bool) -> dict[str, Any]:
        """``quarantine_summary.json`` of window ``w`` (run totals so far)."""
        return {"quarantined_in_window": self.take(w), "by_reason_in_window": self.per_window.get(w.index, {}),
                **({"unplaced": self.unplaced} if last else {}),
                "quarantined_in_run": self.quarantined, "by_reason": self.by_reason,
                "unplaced_in_run": self.n_unplaced, "file": self.quarantine_file}

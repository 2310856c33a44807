"""Records that arrived after their window was processed.

A ``--once`` run processes the windows after the watermark; a record logged late (``window.delay`` shorter than
the logging lag, a file copied in hours later) lands in a window that is already behind the watermark and no
later run reads it: it would vanish from every count. Before each ``--once`` run, the ``window.late_check`` windows
just behind the watermark are read again and their records counted; where the source now holds more records
than the window's ``window.json`` recorded, the run says so (how many, which window, the ``--backfill`` that
recomputes it) — the window's numbers are not changed behind the user's back.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from evalmon.core.jsonout import read_json_object
from evalmon.core.records import TIMESTAMP
from evalmon.monitor.pipeline import within
from evalmon.monitor.windows import parse_duration, window_of

if TYPE_CHECKING:
    from evalmon.config.monitor import MonitorConfig
    from evalmon.monitor.contracts import Source
    from evalmon.monitor.windows import Window


@dataclass(frozen=True)
class LateRecords:
    window: Window
    recorded: int
    now: int

    def line(self, monitor: str) -> str:
        w = self.window
        return (f"warning: window {w.label()} now holds {self.now} records, {self.now - self.recorded} more than the "
                f"{self.recorded} processed: they arrived after the window was processed — recompute it with `evalmon "
                f"monitor {monitor} --backfill {w.start.isoformat()} {w.end.isoformat()}`, and raise window.delay "
                "to wait for late records")


def late_records(cfg: MonitorConfig, source: Source, watermark: datetime | None) -> list[LateRecords]:
    """The processed windows just behind ``watermark`` (``window.late_check`` of them) whose records the source now
    holds more of than their ``window.json`` recorded (windows without one are skipped). Windows cut on another
    column than the record time (``window.timestamp``) are not checked: a source reads by the record time."""
    if watermark is None or cfg.window.late_check == 0 or cfg.window.timestamp != TIMESTAMP:
        return []
    size = parse_duration(cfg.window.size)
    out: list[LateRecords] = []
    w = window_of(watermark - size, size)
    for _ in range(cfg.window.late_check):
        metrics = read_json_object(cfg.run_dir / "windows" / w.key / "window.json").get("metrics")
        recorded = metrics.get("records") if isinstance(metrics, dict) else None
        if isinstance(recorded, int | float):
            now = len(within(source.read(w.start, w.end).frame, TIMESTAMP, w.start, w.end))
            if now > recorded:
                out.append(LateRecords(w, int(recorded), now))
        w = window_of(w.start - size, size)
    return out[::-1]

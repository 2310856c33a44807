"""Speech mode of the ``asr`` task: reading the manifest of (id, audio file, reference text) rows.

Transcription itself is an ordinary request (``TranscribeRequest``): the harness engine decodes every audio
file before the model runs (a bad file fails the task at once), dedupes, and caches transcripts under
(model fingerprint, audio content hash).
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from evalmon.core.errors import DataError
from evalmon.data.local import malformed, read_jsonl


def read_manifest(task: str, manifest: Path, audio_field: str, text_field: str,
                  id_field: str | None) -> list[tuple[str, str, str]]:
    """``(id, audio path, reference text)`` rows of a JSONL or CSV manifest (paths relative to it)."""
    rows: list[tuple[int, dict[str, Any]]]
    if manifest.suffix == ".csv":
        try:
            with manifest.open(encoding="utf-8", newline="") as fh:
                rows = [(i + 2, dict(r)) for i, r in enumerate(csv.DictReader(fh))]
        except (OSError, UnicodeDecodeError, csv.Error) as e:
            raise DataError(f"{task}: cannot read manifest {manifest}: {type(e).__name__}: {e}") from None
    else:
        rows = [(ln, v) for ln, v in read_jsonl(manifest)]
    out = []
    for ln, row in rows:
        if not isinstance(row, dict):
            raise malformed(manifest, f"line {ln}", "expected an object")
        audio, text = row.get(audio_field), row.get(text_field)
        if not isinstance(audio, str) or not audio:
            raise malformed(manifest, f"line {ln}", f"no audio path in field {audio_field!r}")
        if not isinstance(text, str):
            raise malformed(manifest, f"line {ln}", f"no reference text in field {text_field!r}")
        path = Path(audio).expanduser()
        path = path if path.is_absolute() else manifest.parent / path
        doc_id = str(row.get(id_field)) if id_field and row.get(id_field) is not None else f"{ln}"
        out.append((doc_id, str(path), text))
    return out

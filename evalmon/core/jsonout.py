"""One JSON writer for every ``--json`` / ``--format json`` output: always strict, standard JSON.

``json.dumps`` fails on numpy scalars (sacrebleu's chrF is a ``float32``), paths and datetimes, and
writes ``NaN``/``Infinity``, which are not JSON (``jq``, JavaScript and strict parsers reject them).
``to_json`` converts first: numpy scalars/arrays → Python numbers/lists, NaN and ±inf → ``null`` (an
undefined value, as ``results.json`` writes it), paths → strings, datetimes/dates → ISO 8601, pydantic
models and dataclasses → their fields; anything else → ``str(value)``. numpy is never imported here.

``canonical_hash`` is the one content hash of a JSON-able value (suite, task and monitor configs, model
fingerprints, signal versions, monitor windows).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import hashlib
import json
import math
import sys
from collections.abc import Mapping
from pathlib import PurePath
from typing import Any


def jsonable(obj: Any) -> Any:
    """``obj`` as plain JSON data (dict/list/str/int/float/bool/None, every float finite)."""
    if obj is None or isinstance(obj, (str, bool)):
        return obj
    if isinstance(obj, int):
        return int(obj)
    if isinstance(obj, float):
        return float(obj) if math.isfinite(obj) else None
    np = sys.modules.get("numpy")
    if np is not None:
        if isinstance(obj, np.ndarray):
            return jsonable(obj.tolist())
        if isinstance(obj, np.generic):
            return jsonable(obj.item())
    if isinstance(obj, Mapping):
        return {str(k) if not isinstance(k, str) else k: jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set, frozenset)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, PurePath):
        return str(obj)
    if isinstance(obj, (dt.datetime, dt.date, dt.time)):
        return obj.isoformat()
    if isinstance(obj, dt.timedelta):
        return obj.total_seconds()
    if isinstance(obj, enum.Enum):
        return jsonable(obj.value)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return jsonable({f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)})
    dump = getattr(obj, "model_dump", None)  # pydantic models, without importing pydantic
    if callable(dump):
        return jsonable(dump())
    return str(obj)


def to_json(obj: Any, *, indent: int | None = 2, sort_keys: bool = False) -> str:
    """Strict JSON text for ``obj`` (see the module doc); ``allow_nan=False`` proves it."""
    return json.dumps(jsonable(obj), indent=indent, sort_keys=sort_keys, allow_nan=False)


def read_json_object(path: Any) -> dict[str, Any]:
    """The JSON object in the file at ``path``; ``{}`` when it is missing, unreadable, not JSON or not an object
    (state files and markers that a crash may have cut short)."""
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def canonical_hash(obj: Any, length: int = 16, *, compact: bool = False) -> str:
    """The first ``length`` hex digits of the sha256 of ``obj`` as key-sorted JSON (``str()`` for what JSON
    cannot hold), independent of key order.

    ``compact`` writes no space after ``,`` and ``:``. Each hash keeps the spelling it has always been
    recorded with — suite and monitor config hashes compact; task configs, model fingerprints (the response
    cache key), signal versions and monitor windows spaced — so results, caches and MLflow tags already
    written stay comparable.
    """
    text = json.dumps(obj, sort_keys=True, default=str, separators=(",", ":") if compact else None)
    return hashlib.sha256(text.encode()).hexdigest()[:length]

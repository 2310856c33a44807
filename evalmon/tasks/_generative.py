"""Building blocks of lm-eval ``output_type: generate_until`` tasks (BBH CoT, TruthfulQA generation).

* :func:`regex_extract` = lm-eval's ``regex`` filter (``RegexFilter``: ``findall``, pick
  ``group_select``, first non-empty group of a tuple match, ``strip()``, fallback ``"[invalid]"``);
* :func:`exact_match` = lm-eval's ``exact_match`` metric (HF ``evaluate``'s implementation on numpy
  string arrays — numpy ignores trailing NULs when comparing, and so do we, by using numpy);
* :func:`gen_options` reads the per-task suite options of generative tasks.
"""

from __future__ import annotations

import re
import string
from functools import lru_cache
from typing import Any

from evalmon.core.errors import ConfigError, UnknownNameError, did_you_mean
from evalmon.tasks.base import TaskOptions

INVALID = "[invalid]"

#: suite ``options`` a generative task accepts.
GEN_OPTION_KEYS = ("max_gen_toks",)


@lru_cache(maxsize=32)
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def regex_extract(text: Any, pattern: str, group_select: int = 0, fallback: str = INVALID) -> str:
    """lm-eval 0.4.13 ``RegexFilter.apply`` on one response."""
    if not isinstance(text, str):
        text = ""
    found = _compiled(pattern).findall(text)
    if not found:
        return fallback
    match = found[group_select]
    if isinstance(match, tuple):
        non_empty = [m for m in match if m]
        match = non_empty[0] if non_empty else fallback
    return str(match).strip()


def exact_match(prediction: str, reference: str, *, ignore_case: bool = False,
                ignore_punctuation: bool = False, ignore_numbers: bool = False,
                regexes_to_ignore: tuple[str, ...] = ()) -> float:
    """lm-eval's ``exact_match_hf_evaluate`` for one (prediction, reference) pair → 0.0 / 1.0."""
    import numpy as np

    preds, refs = [prediction], [reference]
    for pattern in regexes_to_ignore:
        preds = [re.sub(pattern, "", x) for x in preds]
        refs = [re.sub(pattern, "", x) for x in refs]
    p, r = np.asarray(preds), np.asarray(refs)
    if ignore_case:
        p, r = np.char.lower(p), np.char.lower(r)
    if ignore_punctuation:
        table = string.punctuation.maketrans("", "", string.punctuation)
        p, r = np.char.translate(p, table=table), np.char.translate(r, table=table)
    if ignore_numbers:
        table = string.digits.maketrans("", "", string.digits)
        p, r = np.char.translate(p, table=table), np.char.translate(r, table=table)
    return float(np.mean(p == r))


def gen_options(task: str, options: TaskOptions, default_max_gen_toks: int) -> int:
    """``max_gen_toks`` for ``task``: lm-eval's value unless the suite overrides it.

    An override changes the numbers relative to lm-eval's config; it is recorded in the task config
    (so in the config hash) and must be passed to lm-eval too (``gen_kwargs``) for a parity run.
    """
    unknown = [k for k in options.extra if k not in GEN_OPTION_KEYS]
    if unknown:
        raise UnknownNameError(
            f"{task}: unknown option {unknown[0]!r}{did_you_mean(unknown[0], GEN_OPTION_KEYS)}",
            hint=f"options accepted: {', '.join(GEN_OPTION_KEYS)}")
    value = options.extra.get("max_gen_toks", default_max_gen_toks)
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ConfigError(f"{task}: options.max_gen_toks must be a positive integer (got {value!r})")
    return value

"""The shared helpers the restructure deduplicated: one canonical hash, one number formatter, one reading of a
pydantic error, one strict config base — each pinned to what was recorded or printed before."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from pydantic import ValidationError

from evalmon.config.base import StrictConfig, first_error
from evalmon.core.jsonout import canonical_hash
from evalmon.core.numfmt import fmt_num, fmt_p

VALUE = {"tasks": [{"name": "x", "options": {"k": 1, "j": [1, 2.5]}}], "model": {"path": Path("/m"), "é": None}}


def test_canonical_hash_keeps_the_recorded_spellings() -> None:
    # sha256 of the key-sorted JSON (paths as str), spaced and compact: the bytes results.json, the response
    # cache and MLflow tags already hold — a change here would orphan every cached response and stored hash
    assert canonical_hash(VALUE) == "130ead643330eed0"
    assert canonical_hash(VALUE, compact=True) == "81a9dbe8ee3c62f8"
    assert canonical_hash(VALUE, 32).startswith(canonical_hash(VALUE)) and len(canonical_hash(VALUE, 32)) == 32
    reordered = {"model": {"é": None, "path": "/m"}, "tasks": [{"options": {"j": [1, 2.5], "k": 1}, "name": "x"}]}
    assert canonical_hash(reordered) == canonical_hash(VALUE)


def test_suite_and_task_hashes_use_the_canonical_hash() -> None:
    from evalmon.config.suite import load_suite_text, suite_hash
    from evalmon.tasks.base import config_hash

    cfg = load_suite_text("name: s\nmodel: {path: org/m}\ntasks: [a]\n", "s.yaml")
    assert suite_hash(cfg) == canonical_hash(cfg.model_dump(mode="json", exclude={"tracking"}), compact=True)
    assert config_hash({"b": 1, "a": [Path("/x")]}) == canonical_hash({"a": ["/x"], "b": 1})


@pytest.mark.parametrize(("x", "kwargs", "text"), [
    (None, {}, "—"),
    (0.123456, {}, "0.1235"),
    (3, {"digits": 2}, "3.00"),
    (-0.25, {"signed": True}, "-0.2500"),
    (0.25, {"signed": True}, "+0.2500"),
    (math.nan, {}, "nan"),  # the run report: an undefined metric says so
    (-math.inf, {}, "-inf"),
    (math.nan, {"spell_nonfinite": False}, "—"),  # gate tables: nothing to show
    (math.inf, {"signed": True, "spell_nonfinite": False}, "—"),
])
def test_fmt_num(x: float | None, kwargs: dict, text: str) -> None:
    assert fmt_num(x, **kwargs) == text


def test_fmt_p() -> None:
    assert [fmt_p(p) for p in (None, math.nan, 3e-5, 1e-4, 0.03125)] == ["—", "—", "<1e-4", "0.0001", "0.0312"]


class _Section(StrictConfig):
    size: int = 1
    name: str = "x"


def test_strict_config_and_first_error() -> None:
    with pytest.raises(ValidationError) as info:
        _Section.model_validate({"size": True})  # a boolean is no number (ConfigModel)
    err = first_error(info.value)
    assert (err.where, err.type, err.hint) == ("size", "int_type", None) and "got true" in err.msg
    with pytest.raises(ValidationError) as info:
        _Section.model_validate({"sise": 2})
    assert (first_error(info.value).where, first_error(info.value).type) == ("sise", "extra_forbidden")
    with pytest.raises(ValidationError):
        _Section().size = 2  # type: ignore[misc]  # frozen

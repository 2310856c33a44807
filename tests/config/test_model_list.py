"""``models:`` (config/model_list.py): several named checkpoints in one suite — YAML ↔ pydantic one to one, the
``--models`` flag, and every bad input as one line naming the file:line and key (exit 2 through the CLI)."""

from __future__ import annotations

from pathlib import Path

import pytest

from evalmon.config.model_list import split_models_flag
from evalmon.config.suite import apply_overrides, flatten, load_suite_text, suite_hash
from evalmon.core.errors import ConfigError, EvalmonError

TASKS = "tasks: [hellaswag]\n"
TWO = ("name: s\nmodels:\n  - {name: a, path: ./ckpt_a, batch_size: 3}\n"
       "  - {name: b, backend: openai, base_url: 'http://127.0.0.1:9/v1', model: m}\n" + TASKS)


def _load(text: str, tmp_path: Path):  # type: ignore[no-untyped-def]
    return load_suite_text(text, "suite.yaml", base_dir=tmp_path)


def test_models_list_maps_onto_model_configs(tmp_path: Path) -> None:
    cfg = _load(TWO, tmp_path)
    assert [m.name for m in cfg.models] == ["a", "b"]
    a, b = (m.config for m in cfg.models)
    assert (a.backend, a.path, a.batch_size) == ("hf", str(tmp_path / "ckpt_a"), 3)  # relative: from the suite
    assert (b.backend, b.model) == ("openai", "m")  # an openai entry's own `model` key is its served model
    assert cfg.model is a  # `model` reads as the reference (first) entry
    dumped = cfg.model_dump(mode="json")
    assert "model" not in dumped and dumped["models"][0]["name"] == "a" and dumped["models"][1]["model"] == "m"
    assert flatten(cfg)["models.1.base_url"] == "http://127.0.0.1:9/v1"
    again = apply_overrides(cfg, limit=2)  # a dump re-validates to the same list
    assert [m.name for m in again.models] == ["a", "b"] and again.model.path == a.path
    assert suite_hash(again) != suite_hash(cfg)  # (the limit changed)


def test_one_model_suites_dump_as_before(tmp_path: Path) -> None:
    cfg = _load("name: s\nmodel: {path: /ckpt}\n" + TASKS, tmp_path)
    assert cfg.models is None and "models" not in cfg.model_dump()  # suite hash and MLflow params unchanged
    assert suite_hash(cfg) == suite_hash(apply_overrides(cfg))


@pytest.mark.parametrize(("text", "needle"), [
    ("name: s\nmodel: {path: /a}\nmodels:\n  - {name: a, path: /a}\n" + TASKS,
     "suite.yaml:3: models: both `model` and `models` are given"),
    ("name: s\n" + TASKS, "suite.yaml:1: model: required key 'model' is missing"),
    ("name: s\nmodels:\n  - {name: a, path: /a}\n  - {name: a, path: /b}\n" + TASKS,
     "suite.yaml:4: models.1: model 'a' is listed twice (entries 0 and 1)"),
    ("name: s\nmodels:\n  - {name: a, path: /a}\n  - {path: /b}\n" + TASKS,
     "suite.yaml:4: models.1: this models entry has no `name`"),
    ("name: s\nmodels:\n  - {name: a, path: /a, dtyp: x}\n" + TASKS,
     "suite.yaml:3: models.0.dtyp: unknown key 'dtyp' (did you mean: dtype?)"),
    ("name: s\nmodels:\n  - name: a\n    path: /a\n    batch_size: 0\n" + TASKS,
     "suite.yaml:5: models.0.batch_size: must be ≥ 1, got 0"),
    ("name: s\nmodels:\n  - {name: a, path: /a, adapters: {x: /x}}\n" + TASKS,
     "suite.yaml:3: models.0: `adapters:` is not allowed in a models entry"),
    ("name: s\nmodels:\n  - {name: base, path: /a}\n" + TASKS, "models.0.name: model name 'base' is not allowed"),
    ("name: s\nmodels: []\n" + TASKS, "suite.yaml:2: models: must not be empty"),
    ("name: s\nmodels:\n  - {name: a, backend: nope}\n" + TASKS, "models.0.backend: unknown backend 'nope'"),
])
def test_bad_models_lists_are_one_line(tmp_path: Path, text: str, needle: str) -> None:
    with pytest.raises(EvalmonError) as exc:
        _load(text, tmp_path)
    line = exc.value.one_line()
    assert needle in line and "\n" not in line and exc.value.exit_code == 2, line


def test_models_flag(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert split_models_flag("a=./p,b=hf:./q,dtype=bfloat16,batch_size=2;c=openai:http://h:1/v1,model=m") == [
        "a=./p", "b=hf:./q,dtype=bfloat16,batch_size=2", "c=openai:http://h:1/v1,model=m"]
    cfg = _load("name: s\nmodel: {path: /ckpt, batch_size: 3}\n" + TASKS, tmp_path)
    out = apply_overrides(cfg, models="a=./p,b=hf:/q,dtype=bfloat16")
    got = [(m.name, m.config.path, m.config.dtype, m.config.batch_size) for m in out.models]
    assert got == [("a", str(tmp_path / "p"), "float32", 3), ("b", "/q", "bfloat16", 3)]  # suite settings kept
    one = apply_overrides(out, model="hf:/z")  # --model on a models suite: that one model instead of the list
    assert one.models is None and one.model.path == "/z" and one.model.batch_size == 3
    for kwargs, needle in ((dict(models="a=/x", model="/y"), "--models: conflicts with --model"),
                           (dict(models="a"), "--models: 'a' is not name=SPEC"),
                           (dict(models="a=/x,a=/y"), "--models: model 'a' given twice"),
                           (dict(models="base=/x"), "--models: model name 'base' is not allowed"),
                           (dict(models="a=nope:/x"), "--models: a: unknown backend 'nope'")):
        with pytest.raises(ConfigError, match=needle):
            apply_overrides(cfg, **kwargs)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="--adapters: the suite lists `models:`"):
        apply_overrides(out, adapters="x=/y")

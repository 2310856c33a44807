"""Suite config: schema, path resolution, env expansion, one-line file:line errors, CLI overrides."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import yaml

from evalmon.config import suite as C
from evalmon.core.errors import ConfigError, UnknownNameError

FULL = """\
name: medical
description: "medical QA"
seed: 7
output_dir: out/reports
limit: 50
model:
  backend: hf
  path: ./checkpoints/tiny
  revision: main
  dtype: bfloat16
  device: cuda:1
  batch_size: 4
  max_length: 2048
  adapter: ./lora
  trust_remote_code: true
  add_bos_token: false
data:
  data_dir: ../benchmarks
tasks:
  - mmlu_medical
  - name: medqa
    num_fewshot: 0
    limit: 100
    options: {split: test}
tracking:
  enabled: true
  uri: http://localhost:5000
  experiment: med
cache:
  enabled: false
  path: cache/c.sqlite
"""

MINI = "name: s\nmodel:\n  path: org/tiny\ntasks:\n  - a\n"


def load(text: str, tmp_path: Path | None = None, name: str = "suite.yaml") -> C.SuiteConfig:
    if tmp_path is None:
        return C.load_suite_text(textwrap.dedent(text), name)
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return C.load_suite(path)


def error(text: str, name: str = "suite.yaml", exc: type[Exception] = ConfigError) -> str:
    with pytest.raises(exc) as info:
        C.load_suite_text(textwrap.dedent(text), name)
    msg = str(info.value)
    assert "\n" not in msg and " — " in msg, msg
    return msg


# --------------------------------------------------------------------------- valid suites


def test_full_suite_fields_and_round_trip(tmp_path: Path) -> None:
    cfg = load(FULL, tmp_path, "suites/medical.yaml")
    base = tmp_path / "suites"
    assert cfg.name == "medical" and cfg.seed == 7 and cfg.limit == 50
    assert cfg.source_path == base / "medical.yaml"
    m = cfg.model
    assert (m.backend, m.revision, m.dtype, m.device, m.batch_size, m.max_length) == (
        "hf", "main", "bfloat16", "cuda:1", 4, 2048)
    assert m.trust_remote_code is True and m.add_bos_token is False and m.is_local
    assert [t.name for t in cfg.tasks] == ["mmlu_medical", "medqa"]
    assert cfg.tasks[1].num_fewshot == 0 and cfg.tasks[1].options == {"split": "test"}
    assert cfg.task_limit(cfg.tasks[0]) == 50 and cfg.task_limit(cfg.tasks[1]) == 100
    assert cfg.tracking.uri == "http://localhost:5000" and cfg.tracking.experiment == "med"
    assert cfg.cache.enabled is False
    # dump → YAML → load again is the same config (paths are absolute by now)
    again = C.load_suite_text(yaml.safe_dump(cfg.model_dump(mode="json")), "dumped.yaml")
    assert again.model_dump() == cfg.model_dump()
    assert C.suite_hash(again) == C.suite_hash(cfg)


def test_defaults_and_bare_string_tasks() -> None:
    cfg = load(MINI)
    assert cfg.tasks == [C.TaskEntry(name="a")]
    assert (cfg.seed, cfg.limit, cfg.output_dir) == (1234, None, Path("reports"))  # default stays relative
    assert cfg.model.dtype == "float32" and cfg.model.device == "cpu" and cfg.model.batch_size == 8
    assert cfg.data.data_dir is None and cfg.tracking.enabled and cfg.cache.path is None
    assert cfg.source_path is None


def test_relative_paths_resolve_against_suite_dir(tmp_path: Path) -> None:
    cfg = load(FULL, tmp_path, "suites/medical.yaml")
    base = tmp_path / "suites"
    assert cfg.model.path == str(base / "checkpoints" / "tiny")
    assert cfg.model.adapter == str(base / "lora")
    assert cfg.data.data_dir == tmp_path / "benchmarks"  # ../ normalised
    assert cfg.output_dir == base / "out" / "reports"
    assert cfg.cache.path == base / "cache" / "c.sqlite"


def test_hub_id_kept_existing_dir_resolved(tmp_path: Path) -> None:
    assert load(MINI, tmp_path).model.path == "org/tiny"
    (tmp_path / "org" / "tiny").mkdir(parents=True)  # now it exists next to the suite: local
    assert load(MINI, tmp_path).model.path == str(tmp_path / "org" / "tiny")
    home = load("name: s\nmodel: {path: ~/ckpt, adapter: me/lora}\ntasks: [a]\n", tmp_path)
    assert home.model.path == str(Path.home() / "ckpt") and home.model.adapter == "me/lora"


def test_pretrained_alias() -> None:
    cfg = load("name: s\nmodel:\n  pretrained: org/m\ntasks: [a]\n")
    assert cfg.model.path == "org/m"
    msg = error("name: s\nmodel:\n  path: a/b\n  pretrained: org/m\ntasks: [a]\n")
    assert msg.startswith("suite.yaml:2: model: both `path` and `pretrained`")


# --------------------------------------------------------------------------- env expansion


def test_env_expansion(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CKPT", "org/from-env")
    monkeypatch.delenv("BS", raising=False)
    monkeypatch.delenv("MAXLEN", raising=False)
    cfg = load("""\
        name: s
        description: "cost $${NOT_EXPANDED} and ${CKPT}"
        model:
          path: ${CKPT}
          batch_size: ${BS:-16}
          max_length: ${MAXLEN:-null}
          revision: "${REV:-}"
        tasks: ["${TASK:-mmlu_anatomy}"]
        """)
    assert cfg.model.path == "org/from-env"
    assert cfg.model.batch_size == 16 and cfg.model.max_length is None and cfg.model.revision == ""
    assert cfg.description == "cost ${NOT_EXPANDED} and org/from-env"
    assert cfg.tasks[0].name == "mmlu_anatomy"


def test_env_missing_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EVALMON_TEST_UNSET", raising=False)
    msg = error("name: s\nmodel:\n  path: ${EVALMON_TEST_UNSET}/ckpt\ntasks: [a]\n", name="med.yaml")
    assert msg.startswith("med.yaml:3: model.path: environment variable 'EVALMON_TEST_UNSET' is not set")
    assert "${EVALMON_TEST_UNSET:-default}" in msg


# --------------------------------------------------------------------------- errors with file:line: key


def test_malformed_yaml_line_and_column() -> None:
    msg = error("name: s\nmodel:\n  path: a\n   batch_size: 4\ntasks: [a]\n", name="bad.yaml")
    assert msg.startswith("bad.yaml:4:") and "invalid YAML" in msg


def test_tab_indentation_hint() -> None:
    msg = error("name: s\nmodel:\n\tpath: a\n", name="tab.yaml")
    assert msg.startswith("tab.yaml:3:") and "spaces, not tabs" in msg


def test_unknown_top_level_key() -> None:
    msg = error(MINI + "tracknig:\n  enabled: false\n")
    assert msg.startswith("suite.yaml:6: tracknig: unknown key 'tracknig' (did you mean: tracking?)")


def test_unknown_nested_key_did_you_mean() -> None:
    msg = error("name: s\nmodel:\n  path: org/m\n  bach_size: 4\ntasks: [a]\n")
    assert msg.startswith("suite.yaml:4: model.bach_size: unknown key 'bach_size' (did you mean: batch_size?)")


def test_unknown_key_without_close_match_lists_allowed() -> None:
    msg = error(MINI + "cache:\n  zzz: 1\n")
    assert msg.startswith("suite.yaml:7: cache.zzz: unknown key 'zzz'") and "allowed keys: enabled, path" in msg


def test_wrong_type_batch_size() -> None:
    msg = error("name: s\nmodel:\n  path: org/m\n  batch_size: eight\ntasks: [a]\n")
    assert msg.startswith("suite.yaml:4: model.batch_size: expected an integer, got 'eight'")


@pytest.mark.parametrize("value", [0, -1])
def test_task_limit_not_positive(value: int) -> None:
    msg = error(f"name: s\nmodel: {{path: org/m}}\ntasks:\n  - a\n  - name: b\n    limit: {value}\n")
    assert msg.startswith(f"suite.yaml:6: tasks.1.limit: must be > 0, got {value}")
    assert "positive integer" in msg


@pytest.mark.parametrize("value", [0, -1])
def test_global_limit_not_positive(value: int) -> None:
    msg = error(f"name: s\nlimit: {value}\nmodel: {{path: org/m}}\ntasks: [a]\n")
    assert msg.startswith(f"suite.yaml:2: limit: must be > 0, got {value}")


def test_num_fewshot_negative() -> None:
    msg = error("name: s\nmodel: {path: org/m}\ntasks:\n  - name: b\n    num_fewshot: -1\n")
    assert msg.startswith("suite.yaml:5: tasks.0.num_fewshot: must be ≥ 0, got -1")


@pytest.mark.parametrize("value", [-1, 2**32, 10**27])
def test_seed_out_of_range_is_refused_at_load(value: int) -> None:
    # numpy's default_rng refuses negatives, torch.manual_seed overflows past 64 bits: found only after
    # a task's requests were computed (walk-judge: `seed: -1` with medical_perplexity → internal error)
    msg = error(f"name: s\nseed: {value}\nmodel: {{path: org/m}}\ntasks: [a]\n")
    assert msg.startswith(f"suite.yaml:2: seed: must be {'≥ 0' if value < 0 else '≤ 4294967295'}, got {value}")
    assert "0 to 4294967295" in msg


def test_seed_bounds_are_accepted() -> None:
    assert load("name: s\nseed: 0\nmodel: {path: org/m}\ntasks: [a]\n").seed == 0
    assert load(f"name: s\nseed: {2**32 - 1}\nmodel: {{path: org/m}}\ntasks: [a]\n").seed == 2**32 - 1


def test_batch_size_zero_and_bad_enum() -> None:
    msg = error("name: s\nmodel:\n  path: org/m\n  batch_size: 0\ntasks: [a]\n")
    assert msg.startswith("suite.yaml:4: model.batch_size: must be ≥ 1, got 0")
    msg = error("name: s\nmodel:\n  path: org/m\n  dtype: bfloat\ntasks: [a]\n")
    assert msg.startswith("suite.yaml:4: model.dtype: must be one of") and "did you mean: bfloat16" in msg
    msg = error("name: s\nmodel:\n  path: org/m\n  device: gpu\ntasks: [a]\n")
    assert msg.startswith("suite.yaml:4: model.device: 'gpu' is not a valid device")


def test_missing_name_points_at_mapping_and_counts_more() -> None:
    msg = error("# a comment\nmodel: {path: org/m}\n")
    assert msg.startswith("suite.yaml:2: name: required key 'name' is missing")
    assert "(1 more problem in this file)" in msg


def test_missing_tasks() -> None:
    msg = error("name: s\nmodel: {path: org/m}\n")
    assert msg.startswith("suite.yaml:1: tasks: required key 'tasks' is missing")


def test_missing_nested_key_points_at_parent() -> None:
    msg = error("name: s\nmodel:\n  dtype: float32\ntasks: [a]\n")
    assert msg.startswith("suite.yaml:2: model.path: required key 'path' is missing")


def test_empty_tasks() -> None:
    msg = error("name: s\nmodel: {path: org/m}\ntasks: []\n")
    assert msg.startswith("suite.yaml:3: tasks: must not be empty")


def test_bad_task_item_and_bad_name() -> None:
    msg = error("name: s\nmodel: {path: org/m}\ntasks:\n  - a\n  - 5\n")
    assert msg.startswith("suite.yaml:5: tasks.1: expected a mapping, got 5")
    msg = error("name: my suite\nmodel: {path: org/m}\ntasks: [a]\n")
    assert msg.startswith("suite.yaml:1: name: 'my suite' is not a valid name")


def test_duplicate_key() -> None:
    msg = error("name: s\nmodel:\n  path: org/m\n  dtype: float32\n  dtype: float16\ntasks: [a]\n")
    assert msg.startswith("suite.yaml:5: model.dtype: duplicate key 'dtype' (first at line 4)")


def test_task_listed_twice() -> None:
    msg = error("name: s\nmodel: {path: org/m}\ntasks:\n  - a\n  - b\n  - name: a\n    limit: 3\n")
    assert msg.startswith("suite.yaml:6: tasks.2: task 'a' is listed twice (entries 0 and 2)")


def test_not_a_mapping_empty_and_missing_file(tmp_path: Path) -> None:
    assert error("- a\n- b\n").startswith("suite.yaml:1: top level must be a mapping, got a list")
    assert error("# nothing\n").startswith("suite.yaml:1: suite is empty")
    missing = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError, match=r"nope\.yaml: suite file not found"):
        C.load_suite(missing)
    with pytest.raises(ConfigError, match="is a directory"):
        C.load_suite(tmp_path)


def test_load_suite_errors_name_the_path_given(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text("name: s\nmodel: {path: org/m}\ntasks: []\n")
    with pytest.raises(ConfigError) as info:
        C.load_suite(path)
    assert str(info.value).startswith(f"{path}:3: tasks: must not be empty")


# --------------------------------------------------------------------------- task names


def test_check_task_names_ok() -> None:  # the real registry (evalmon's entry points)
    C.check_task_names(load("name: s\nmodel: {path: org/m}\ntasks: [mmlu_medical, medqa]\n"))


def test_unknown_task_name_with_suggestion() -> None:
    cfg = load("name: s\nmodel: {path: org/m}\ntasks:\n  - hellaswag\n  - name: mmlu_anatomyy\n    limit: 3\n",
               name="med.yaml")
    with pytest.raises(UnknownNameError) as info:
        C.check_task_names(cfg)
    msg = str(info.value)
    assert msg.startswith("med.yaml:5: tasks.1.name: unknown task or group 'mmlu_anatomyy'")
    assert "(did you mean: mmlu_anatomy," in msg and "evalmon tasks" in msg


def test_unknown_task_names_provider_and_flag_origin() -> None:
    cfg = load("name: s\nmodel: {path: org/m}\ntasks:\n  - a\n")
    C.check_task_names(cfg, names=["a", "b"])
    cfg2 = C.apply_overrides(cfg, tasks=["a,bb"])
    with pytest.raises(UnknownNameError, match=r"^--tasks: unknown task or group 'bb' \(did you mean: b\?\)"):
        C.check_task_names(cfg2, names=lambda: ["a", "b"])


# --------------------------------------------------------------------------- --model specs


def test_parse_model_spec_variants(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert C.parse_model_spec("hf:/ckpt/a").path == "/ckpt/a"
    assert C.parse_model_spec("hf:org/name").path == "org/name"
    assert C.parse_model_spec("./ckpt").path == str(tmp_path / "ckpt")  # bare path means hf
    m = C.parse_model_spec("hf:/p,adapter=./lora,dtype=bfloat16,revision=main,batch_size=4,device=cuda")
    assert (m.backend, m.path, m.adapter, m.dtype, m.revision, m.batch_size, m.device) == (
        "hf", "/p", str(tmp_path / "lora"), "bfloat16", "main", 4, "cuda")
    m = C.parse_model_spec("hf:pretrained=org/x,max_length=null,trust_remote_code=true")
    assert (m.path, m.max_length, m.trust_remote_code) == ("org/x", None, True)
    assert C.parse_model_spec("hf:a/b").model_fields_set == {"backend", "path"}


@pytest.mark.parametrize(("spec", "expected"), [
    ("", "--model: empty model spec"),
    ("hf:", "--model: no checkpoint path"),
    ("sglang:gpt", "--model: unknown backend 'sglang'"),  # vllm is a backend now (backends/vllm)
    ("hf:/p,dtyp=float16", "--model: unknown option 'dtyp' (did you mean: dtype?)"),
    ("hf:/p,dtype=fp8", "--model: dtype: must be one of"),
    ("hf:/p,batch_size=0", "--model: batch_size: must be ≥ 1, got 0"),
    ("hf:/p,batch_size=four", "--model: batch_size: expected an integer, got 'four'"),
    ("hf:/p,device=gpu", "--model: device: 'gpu' is not a valid device"),
    ("hf:/p,lora", "--model: option 'lora' is not key=value"),
    ("hf:/p,dtype=float16,dtype=float32", "--model: option 'dtype' given twice"),
])
def test_parse_model_spec_errors(spec: str, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        C.parse_model_spec(spec)
    assert str(info.value).startswith(expected), str(info.value)


# --------------------------------------------------------------------------- overrides


def test_apply_overrides(tmp_path: Path) -> None:
    cfg = load(FULL, tmp_path, "suites/medical.yaml")
    before = cfg.model_dump()
    out = C.apply_overrides(cfg, model="hf:org/other,dtype=float16", limit=5, tasks=["medqa,hellaswag"],
                            output=Path("elsewhere"), tracking_uri="sqlite:///m.db", experiment="exp2")
    assert cfg.model_dump() == before and out is not cfg  # the original is untouched
    # new checkpoint: path/revision/adapter replaced, runtime settings kept unless given
    assert (out.model.path, out.model.revision, out.model.adapter) == ("org/other", None, None)
    assert (out.model.dtype, out.model.device, out.model.batch_size) == ("float16", "cuda:1", 4)
    # --tasks replaces the list, keeping the suite's entry for names it had; --limit hits every task
    assert [t.name for t in out.tasks] == ["medqa", "hellaswag"]
    assert out.tasks[0].options == {"split": "test"} and out.tasks[0].num_fewshot == 0
    assert out.limit == 5 and all(t.limit == 5 for t in out.tasks)
    assert out.output_dir == Path.cwd() / "elsewhere"
    assert (out.tracking.uri, out.tracking.experiment, out.tracking.enabled) == ("sqlite:///m.db", "exp2", True)
    assert out.source_path == cfg.source_path
    assert out.task_origin(0).endswith("medical.yaml:21: tasks.1.name") and out.task_origin(1) == "--tasks"
    assert C.apply_overrides(cfg, no_tracking=True).tracking.enabled is False
    assert C.apply_overrides(cfg) == cfg


@pytest.mark.parametrize(("kwargs", "expected"), [
    ({"limit": 0}, "--limit: must be > 0"),
    ({"limit": -3}, "--limit: must be > 0"),
    ({"tasks": [" , "]}, "--tasks: no task names given"),
    ({"tasks": ["a,b,a"]}, "--tasks: 'a' is listed twice"),
    ({"tracking_uri": "http://x", "no_tracking": True}, "--tracking-uri: conflicts with --no-tracking"),
    ({"experiment": " "}, "--experiment: must not be empty"),
    ({"model": "hf:/p,dtype=fp8"}, "--model: dtype:"),
])
def test_apply_overrides_errors_name_the_flag(kwargs: dict, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        C.apply_overrides(load(MINI), **kwargs)
    assert str(info.value).startswith(expected)


def test_default_suite(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("EVALMON_DEFAULT_MODEL", raising=False)
    monkeypatch.delenv("EVALMON_DATA_DIR", raising=False)
    cfg = C.default_suite()
    assert cfg.name == "default" and [t.name for t in cfg.tasks] == list(C.DEFAULT_TASKS) and cfg.limit == 20
    assert cfg.model.path == str(tmp_path / C.DEFAULT_CHECKPOINT_DIR)
    assert C.DEFAULT_CHECKPOINT_DIR.name == "smollm2-135m-instruct"  # a real model; the toy only as a fallback
    assert {t.name: t.limit for t in cfg.tasks} == {"mmlu_anatomy": None, "hellaswag": 100, "truthfulqa_mc2": None}
    assert cfg.data.data_dir == tmp_path.parent / "shared" / "benchmarks"
    monkeypatch.setenv("EVALMON_DEFAULT_MODEL", "org/tiny")
    monkeypatch.setenv("EVALMON_DATA_DIR", "/data/bench")
    cfg = C.default_suite()
    assert cfg.model.path == "org/tiny" and cfg.data.data_dir == Path("/data/bench")


# --------------------------------------------------------------------------- identity


def test_flatten_and_hash_stable_across_key_order() -> None:
    a = load("name: s\nseed: 1\nmodel:\n  path: org/m\n  dtype: float16\ntasks:\n  - name: x\n    options: {k: 1, j: [1, 2]}\n")
    b = load("tasks:\n  - options: {j: [1, 2], k: 1}\n    name: x\nmodel:\n  dtype: float16\n  path: org/m\nseed: 1\nname: s\n")
    assert C.suite_hash(a) == C.suite_hash(b) and len(C.suite_hash(a)) == 16
    assert C.suite_hash(C.apply_overrides(a, limit=3)) != C.suite_hash(a)
    flat = C.flatten(a)
    assert flat == C.flatten(b)
    assert flat["model.dtype"] == "float16" and flat["tasks.0.name"] == "x" and flat["seed"] == "1"
    assert flat["tasks.0.options.k"] == "1" and flat["tasks.0.options.j.1"] == "2"
    assert flat["limit"] == "null" and flat["tracking.enabled"] == "true"
    assert all(isinstance(v, str) for v in flat.values())


def test_hash_ignores_where_results_are_logged(monkeypatch: pytest.MonkeyPatch) -> None:
    """A team store in $MLFLOW_TRACKING_URI, --tracking-uri or the local store: the same suite, the same hash (it
    was the store's URI that made two hashes — and an order-dependent test failure once MLflow leaked the env)."""
    a = load("name: s\nmodel: {path: org/m}\ntasks: [{name: x}]\n")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    local = C.suite_hash(C.apply_overrides(a))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow.team.example:5000")
    team = C.apply_overrides(a)
    assert team.tracking.uri == "http://mlflow.team.example:5000"
    assert C.suite_hash(team) == local == C.suite_hash(a) == C.suite_hash(C.apply_overrides(a, tracking_uri="x.db"))
    assert C.suite_hash(C.apply_overrides(a, limit=2)) != local  # what is run still counts


def test_using_tracking_uri_puts_the_environment_back(monkeypatch: pytest.MonkeyPatch) -> None:
    """mlflow.set_tracking_uri writes $MLFLOW_TRACKING_URI; restoring the previous URI left it set."""
    import os

    import mlflow

    from evalmon.config.tracking import using_tracking_uri

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    before = mlflow.get_tracking_uri()
    with using_tracking_uri("sqlite:////tmp/evalmon-using.db"):
        assert mlflow.get_tracking_uri() == "sqlite:////tmp/evalmon-using.db"
    assert "MLFLOW_TRACKING_URI" not in os.environ and mlflow.get_tracking_uri() == before
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://team:5000")
    with using_tracking_uri("sqlite:////tmp/evalmon-using.db"):
        pass
    assert os.environ["MLFLOW_TRACKING_URI"] == "http://team:5000"

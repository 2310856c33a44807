"""``lm_eval:<name>``: the suite entry form and the one-line errors for what cannot load or does not map.

The task YAMLs ``include:`` lm-eval's installed catalogue configs and are loaded without indexing the
built-ins (``include_defaults=False``), so these run in seconds.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from evalmon.config.suite import check_task_names, load_suite_text, suite_hash
from evalmon.core.errors import ConfigError, DataError
from evalmon.tasks.base import TaskOptions, build_task

SUITE = {"name": "s", "model": {"backend": "hf", "path": "./ckpt"}, "tracking": {"enabled": False}}


def test_suite_entry_form_and_include_path(tmp_path: Path) -> None:
    text = yaml.safe_dump({**SUITE, "lm_eval_include_path": "lmeval-tasks",
                           "tasks": [{"lm_eval": "arc_easy", "num_fewshot": 5, "limit": 3}, "lm_eval:gsm8k",
                                     "hellaswag"]})
    cfg = load_suite_text(text, "suite.yaml", base_dir=tmp_path)
    assert [(t.name, t.num_fewshot, t.limit) for t in cfg.tasks] == [
        ("lm_eval:arc_easy", 5, 3), ("lm_eval:gsm8k", None, None), ("hellaswag", None, None)]
    assert cfg.lm_eval_include_path == [tmp_path / "lmeval-tasks"]
    check_task_names(cfg)  # lm_eval: names are resolved when the suite is planned, not here
    plain = load_suite_text(yaml.safe_dump({**SUITE, "tasks": ["hellaswag"]}), "s.yaml", base_dir=tmp_path)
    assert "lm_eval_include_path" not in plain.model_dump(mode="json")  # other suites' hashes stay the same
    assert suite_hash(plain) != suite_hash(cfg)
    with pytest.raises(ConfigError, match=r"tasks\.0"):
        load_suite_text(yaml.safe_dump({**SUITE, "tasks": [{"lm_eval": "arc_easy", "shots": 5}]}), "s.yaml")


def _task_dir(tmp: Path, benchmarks: Path, **override: dict[str, Any]) -> Path:
    from evalmon.data.lmeval import lmeval_tasks_dir

    cat = lmeval_tasks_dir()
    gsm8k = {"include": str(cat / "gsm8k" / "gsm8k.yaml"), "tag": [], "dataset_path": "json", "dataset_name": None,
             "dataset_kwargs": {"data_files": {"test": str(benchmarks / "gsm8k" / "test.jsonl")}},
             "training_split": None, "fewshot_split": None, "num_fewshot": 0}
    tasks = {
        "pt_sampling": {**gsm8k, "generation_kwargs": {"until": ["Question:"], "do_sample": True,
                                                       "temperature": 0.7}},
        "pt_repeats": {**gsm8k, "repeats": 2},
        "pt_topk": {**gsm8k, "generation_kwargs": {"until": ["Question:"], "do_sample": False, "top_k": 5}},
        "pt_arc_hub": {"include": str(cat / "arc" / "arc_easy.yaml"), "tag": []},  # the hub dataset: offline
    }
    out = tmp / "tasks"
    out.mkdir()
    for name, cfg in tasks.items():
        (out / f"{name}.yaml").write_text(yaml.safe_dump({**cfg, "task": name}))
    return out


@pytest.fixture(scope="module")
def task_dir(benchmarks_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _task_dir(tmp_path_factory.mktemp("lmeval_errors"), benchmarks_dir)


@pytest.mark.parametrize(("task", "message"), [
    ("pt_sampling", "sampling generation"),
    ("pt_repeats", "repeats: 2"),
    ("pt_topk", "generation_kwargs top_k have no evalmon equivalent"),
])
def test_what_does_not_map_is_one_config_error(task_dir: Path, task: str, message: str) -> None:
    from evalmon.tasks.lmeval_catalogue import register_names

    assert register_names([f"lm_eval:{task}"], [task_dir]) == [task]
    with pytest.raises(ConfigError, match=message) as err:
        build_task(f"lm_eval:{task}", TaskOptions(limit=1))
    assert "\n" not in err.value.one_line() and err.value.one_line().startswith(f"lm_eval:{task}: ")


def test_offline_hub_dataset_names_dataset_and_fix(task_dir: Path) -> None:
    from evalmon.tasks.lmeval_catalogue import register_names

    with pytest.raises(DataError) as err:
        register_names(["lm_eval:pt_arc_hub"], [task_dir])
    line = err.value.one_line()
    assert line.startswith("lm_eval:pt_arc_hub: lm-eval cannot load dataset allenai/ai2_arc/ARC-Easy (")
    assert "--include-path" in line and "HF_DATASETS_CACHE" in line and "\n" not in line


def test_include_path_must_be_a_folder(tmp_path: Path) -> None:
    from evalmon.tasks.lmeval_catalogue import register_names

    with pytest.raises(DataError, match="is not a directory"):
        register_names(["lm_eval:x"], [tmp_path / "missing"])

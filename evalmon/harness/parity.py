"""Prove prompt parity with lm-eval: export our rows as an lm-eval task that reuses lm-eval's own config.

:func:`export_lmeval_tasks` writes, for each of our task names, the hub-schema rows our loaders
produced (JSON lines, one file per split) and a task YAML that ``include:``s the **installed**
lm-eval built-in YAML for that task (absolute path), overriding only:

- ``task`` → ``evalmon_parity_<name>`` (and ``tag`` → ``evalmon_parity``, so the copy never joins a
  built-in tag/group such as ``mmlu_stem_tasks``),
- ``dataset_path: json``, ``dataset_name: null``, ``dataset_kwargs: {data_files, cache_dir}``,
- the split names (``training_split`` / ``validation_split`` / ``test_split`` / ``fewshot_split``),
- ``num_fewshot`` (MMLU's built-in config has none; evalmon defaults to 5).

``doc_to_text``, ``doc_to_choice``, ``doc_to_target``, ``process_docs``, ``process_results``,
``description`` and the few-shot sampler therefore all come from lm-eval: its ``include`` loader
resolves ``!function utils.x`` relative to the *included* file, i.e. lm-eval's own ``utils.py``.
Rendering the same rows with lm-eval's templates and comparing request strings proves our rendering.

Load the result offline, without indexing the ~14k built-in YAMLs::

    TaskManager(include_path=str(out_dir), include_defaults=False)
"""

from __future__ import annotations

import importlib
import importlib.util
import json
from pathlib import Path
from typing import Any

from evalmon.core.errors import ConfigError, OutputError
from evalmon.data.schema import LMEvalExport
from evalmon.tasks.base import get_task_info

PREFIX = "evalmon_parity_"
TAG = "evalmon_parity"

#: task family → module with ``lmeval_export(name, data_dir, limit, num_fewshot) -> LMEvalExport``.
_EXPORTERS: dict[str, str] = {
    "mmlu": "evalmon.tasks.mmlu",
    "hellaswag": "evalmon.tasks.hellaswag",
    "truthfulqa": "evalmon.tasks.truthfulqa",
    "medical": "evalmon.tasks.medical",
    "bbh": "evalmon.tasks.bbh",
    "truthfulqa_gen": "evalmon.tasks.truthfulqa_gen",
}


def lmeval_tasks_dir() -> Path:
    """The installed ``lm_eval/tasks`` folder (found without importing lm_eval's heavy modules)."""
    spec = importlib.util.find_spec("lm_eval")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError("lm-eval is not installed", hint="pip install 'lm-eval==0.4.13'")
    return Path(next(iter(spec.submodule_search_locations))) / "tasks"


def lmeval_name(task_name: str) -> str:
    return PREFIX + task_name


def build_export(
    task_name: str, data_dir: Path | None, limit: int | None, num_fewshot: int | None = None
) -> LMEvalExport:
    """Our rows for ``task_name`` plus the lm-eval config it should be rendered with."""
    info = get_task_info(task_name)
    module_name = _EXPORTERS.get(info.family)
    if module_name is None:
        raise ConfigError(f"{task_name}: no lm-eval parity export for task family {info.family!r}")
    module = importlib.import_module(module_name)
    export: LMEvalExport = module.lmeval_export(task_name, data_dir, limit, num_fewshot)
    return export


def task_yaml(
    lm_name: str, export: LMEvalExport, data_files: dict[str, str], cache_dir: Path
) -> dict[str, Any]:
    builtin = lmeval_tasks_dir() / export.builtin_yaml
    if not builtin.is_file():
        raise ConfigError(
            f"lm-eval built-in config not found: {builtin}",
            hint="evalmon's parity export is written for lm-eval 0.4.13",
        )
    cfg: dict[str, Any] = {
        "include": str(builtin),
        "task": lm_name,
        "tag": [TAG],
        "dataset_path": "json",
        "dataset_name": None,
        "dataset_kwargs": {"data_files": data_files, "cache_dir": str(cache_dir)},
        **export.split_config,
        "num_fewshot": export.num_fewshot,
    }
    return cfg


def export_lmeval_tasks(
    task_names: list[str],
    data_dir: Path | None,
    out_dir: Path,
    limit: int | None,
    *,
    num_fewshot: int | None = None,
) -> dict[str, str]:
    """Write lm-eval task folders for ``task_names`` under ``out_dir``; return our name → lm-eval name.

    ``data_dir`` None exports hub rows. ``limit`` keeps the first N evaluation rows (few-shot
    pools are exported whole). ``num_fewshot`` None means each task's evalmon default.
    """
    import yaml

    out_dir = Path(out_dir).expanduser().resolve()
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputError(f"cannot create parity export folder {out_dir}: {e}") from None
    cache_dir = out_dir / ".hf_datasets_cache"
    mapping: dict[str, str] = {}
    for name in task_names:
        export = build_export(name, data_dir, limit, num_fewshot)
        lm_name = lmeval_name(name)
        folder = out_dir / lm_name
        folder.mkdir(parents=True, exist_ok=True)
        data_files: dict[str, str] = {}
        for split, rows in export.splits.items():
            path = folder / f"{split}.jsonl"
            with path.open("w", encoding="utf-8") as fh:
                for row in rows.rows:
                    fh.write(json.dumps(row, ensure_ascii=False) + "\n")
            data_files[split] = str(path)
        cfg = task_yaml(lm_name, export, data_files, cache_dir)
        (folder / f"{lm_name}.yaml").write_text(
            "# generated by evalmon.harness.parity — lm-eval's built-in config with evalmon's rows\n"
            + yaml.safe_dump(cfg, sort_keys=False, allow_unicode=True),
            encoding="utf-8",
        )
        mapping[name] = lm_name
    return mapping

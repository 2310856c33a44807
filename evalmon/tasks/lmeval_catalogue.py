"""Load ``lm_eval:<name>`` suite entries with lm-eval's ``TaskManager`` and register them by name.

``register_suite_tasks(cfg)`` (called when a suite is planned) resolves every ``lm_eval:<name>`` task entry —
a task, a group or a tag of lm-eval's catalogue or of the suite's ``lm_eval_include_path`` folders — and
registers in evalmon's registry: each leaf task as ``lm_eval:<task>`` (factory → ``LMEvalTask``), each group
as the group ``lm_eval:<group>`` (members ``lm_eval:<child>``; metrics: its ``aggregate_metric_list`` entries
that lm-eval weights by size, which evalmon's group aggregation reproduces: size-weighted mean + pooled
stderr), a tag as a group without metrics. Indexing lm-eval's ~14k built-in YAMLs costs ~5 s, so with
include paths that hold every name the built-ins are not indexed (``include_defaults=False``).

Offline, a catalogue task whose dataset is not in the HF datasets cache cannot load: a one-line ``DataError``
names the dataset and the fix.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from evalmon.core import registry
from evalmon.core.errors import DataError, EvalmonError, UnknownNameError, did_you_mean
from evalmon.tasks.base import TaskOptions
from evalmon.tasks.lmeval_task import PREFIX, LMEvalTask, evalmon_metric

_FIX = ("give a task YAML with a local copy (`dataset_path: json` + `dataset_kwargs: {data_files: …}`) "
        "through --include-path DIR / lm_eval_include_path, or fill the HF datasets cache "
        "($HF_DATASETS_CACHE) on a machine that reaches the hub")


def lmeval_names(names: Iterable[str]) -> list[str]:
    """The lm-eval names of the ``lm_eval:<name>`` entries among ``names``."""
    return [n[len(PREFIX):] for n in names if n.startswith(PREFIX)]


def _task_manager(wanted: Sequence[str], include_paths: Sequence[Path]) -> Any:
    for p in include_paths:
        if not Path(p).is_dir():
            raise DataError(f"lm_eval include path {p} is not a directory",
                            hint="pass a folder of lm-eval task YAMLs to --include-path / lm_eval_include_path")
    from lm_eval.tasks import TaskManager  # lazy: seconds to import

    paths = [str(p) for p in include_paths]
    if paths:
        tm = TaskManager(include_path=paths, include_defaults=False)
        if all(n in tm.all_tasks for n in wanted):
            return tm
        # a name not found while lm-eval skipped an unparsable YAML there: say so now (not "unknown task"
        # after indexing the ~14k built-ins for seconds)
        broken = _broken_yaml(include_paths)
        if broken:
            missing = next(n for n in wanted if n not in tm.all_tasks)
            raise UnknownNameError(f"lm_eval:{missing} is not in the include path: {broken} there is not valid "
                                   "YAML (lm-eval skips such files)", hint="fix that file's YAML")
    return TaskManager(include_path=paths or None)


def _dataset_of(tm: Any, name: str) -> str:
    """``dataset_path[/dataset_name]`` of a task's YAML, following ``include:`` (``?`` when it cannot be read)."""
    import yaml

    class _Loose(yaml.SafeLoader):
        pass

    _Loose.add_multi_constructor("!", lambda loader, suffix, node: None)  # !function …: not needed here
    entry = tm.task_index.get(name)
    cfg: dict[str, Any] = dict(getattr(entry, "cfg", None) or {})
    path = getattr(entry, "yaml_path", None)
    for _ in range(4):  # the dataset keys may come from an included YAML
        if cfg.get("dataset_path") or not cfg.get("include") or path is None:
            break
        path = (Path(path).parent / str(cfg.pop("include"))).resolve()
        try:
            cfg = {**(yaml.load(path.read_text(encoding="utf-8"), Loader=_Loose) or {}), **cfg}
        except (OSError, yaml.YAMLError):
            break
    where = str(cfg.get("dataset_path") or "?")
    return f"{where}/{cfg['dataset_name']}" if cfg.get("dataset_name") else where


def _broken_yaml(include_paths: Sequence[Path]) -> str:
    """The first include-path YAML that does not parse (lm-eval skips those with a log line only), or ''."""
    import yaml

    class _Loose(yaml.SafeLoader):
        pass

    _Loose.add_multi_constructor("!", lambda loader, suffix, node: None)  # !function …
    for path in sorted(f for p in include_paths for f in Path(p).rglob("*.y*ml")):
        try:
            yaml.load(path.read_text(encoding="utf-8"), Loader=_Loose)
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
            mark = getattr(exc, "problem_mark", None)
            return f"{path}:{mark.line + 1}" if mark is not None else str(path)
    return ""


def _load(tm: Any, name: str) -> dict[str, Any]:
    if name not in tm.all_tasks:
        raise UnknownNameError(f"unknown lm-eval task, group or tag {name!r}{did_you_mean(name, tm.all_tasks)}",
                               hint="`lm-eval ls tasks` lists lm-eval's catalogue; custom YAMLs need "
                                    "--include-path DIR")
    try:
        loaded: dict[str, Any] = tm.load(name)
    except EvalmonError:
        raise
    except Exception as exc:  # datasets/hub errors: one line that names the dataset
        first = (str(exc).strip().splitlines() or [""])[0][:200]
        raise DataError(f"{PREFIX}{name}: lm-eval cannot load dataset {_dataset_of(tm, name)} "
                        f"({type(exc).__name__}: {first})", hint=_FIX) from None
    return loaded


def _factory(lm_task: Any, name: str) -> Any:
    def build(options: TaskOptions) -> LMEvalTask:
        return LMEvalTask(name=name, lm_task=lm_task, options=options)

    return build


def _group_metrics(group: Any) -> list[str]:
    out: list[str] = []
    for agg in getattr(group, "aggregate_metric_list", None) or []:
        if not getattr(agg, "weight_by_size", True) or getattr(agg, "aggregation", "mean") != "mean":
            continue  # an unweighted mean of member means: evalmon's groups are size-weighted (left out)
        filters = getattr(agg, "filter_list", None) or ["none"]
        for flt in [filters] if isinstance(filters, str) else filters:
            out.append(evalmon_metric(agg.metric, flt))
    return out


def _register(loaded: dict[str, Any], name: str) -> None:
    for task_name, lm_task in loaded["tasks"].items():
        evalmon_name = PREFIX + task_name
        registry.tasks.remove(evalmon_name)  # a new suite in the same process: its own Task objects
        cfg = lm_task.config
        registry.tasks.add(evalmon_name, _factory(lm_task, evalmon_name), family="lm_eval",
                           local_source=str((cfg.dataset_kwargs or {}).get("data_files") or ""),
                           hub_source=str(cfg.dataset_path or ""), default_fewshot=cfg.num_fewshot or 0)
    for group_name, group in loaded["groups"].items():
        evalmon_name = PREFIX + group_name
        registry.task_groups.remove(evalmon_name)
        registry.task_groups.add(evalmon_name, [PREFIX + c for c in group.child_names],
                                 metrics=_group_metrics(group), description=f"lm-eval group {group_name}")
    if name not in loaded["groups"] and (len(loaded["tasks"]) != 1 or name not in loaded["tasks"]):  # a tag
        registry.task_groups.remove(PREFIX + name)
        registry.task_groups.add(PREFIX + name, [PREFIX + t for t in loaded["tasks"]], metrics=[],
                                 description=f"lm-eval tag {name}")


def register_names(names: Iterable[str], include_paths: Sequence[Path] = ()) -> list[str]:
    """Load and register the ``lm_eval:<name>`` entries of ``names``; returns the lm-eval names loaded."""
    wanted = list(dict.fromkeys(lmeval_names(names)))
    if not wanted:
        return []
    tm = _task_manager(wanted, include_paths)
    for name in wanted:
        _register(_load(tm, name), name)
    return wanted


def register_suite_tasks(cfg: Any) -> list[str]:
    """``register_names`` for a ``SuiteConfig``'s task entries and its ``lm_eval_include_path``."""
    return register_names([t.name for t in cfg.tasks], getattr(cfg, "lm_eval_include_path", None) or ())

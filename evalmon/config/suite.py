"""Suite configuration: pydantic models for ``suite.yaml``, loading with file:line errors, CLI overrides.

YAML keys map 1:1 onto fields; unknown keys are errors. Relative paths written in a suite file resolve
against the suite file's directory (defaults such as ``output_dir: reports`` stay relative to the
working directory). A model or adapter reference is local when it starts with ``/ ./ ../ ~`` or names
an existing directory next to the suite; anything else (``org/name``) is a hub id and is kept as is.
Parsing, ``${VAR}`` expansion and error locations live in ``evalmon.config.yamlio``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    create_model,
    field_validator,
    model_serializer,
    model_validator,
)
from pydantic_core import PydanticCustomError

from evalmon.config.base import MAX_SEED  # numpy's seed range (torch takes 64-bit seeds)
from evalmon.config.model_list import NamedModel, check_unique, entry_error_schema, parse_models_flag
from evalmon.config.model_list import inherit_settings as _inherit
from evalmon.config.model_spec import parse_adapters_flag, parse_model_spec
from evalmon.config.models import (
    _HINTS,
    _MODEL_TAGS,
    MODEL_BACKENDS,
    ASRModelConfig,
    HFModelConfig,
    ModelConfig,
    NoModelConfig,
    OpenAIModelConfig,
    _backend_tag,
    _base_dir,
    _Strict,
    is_local_ref,
    resolve_path,
    resolve_ref,
)
from evalmon.config.tracking import TrackingConfig, choose_tracking_uri
from evalmon.config.yamlio import (
    Loc,
    YamlDoc,
    describe_error,
    dotted,
    load_yaml,
    read_config_file,
    require_mapping,
    validation_error,
)
from evalmon.core.errors import ConfigError, UnknownNameError, did_you_mean
from evalmon.core.jsonout import canonical_hash
from evalmon.core.redact import redact_obj

# SmolLM2-135M-Instruct, fetched + converted on first use (evalmon.checkpoints.project); the toy without a registry
DEFAULT_CHECKPOINT_DIR = Path(".evalmon/checkpoints/smollm2-135m-instruct")  # relative to the working directory
DEFAULT_DATA_DIR = Path("../shared/benchmarks")  # relative to the working directory
DEFAULT_TASKS = ("mmlu_anatomy", "hellaswag", "truthfulqa_mc2")
DEFAULT_LIMIT = 20
DEFAULT_TASK_LIMITS = {"hellaswag": 100}  # enough documents for an above-chance HellaSwag acc_norm to show





class DataConfig(_Strict):
    data_dir: Path | None = None  # a local mirror laid out like ../shared/benchmarks; None = the hub

    @field_validator("data_dir")
    @classmethod
    def _resolve(cls, v: Path | None, info: ValidationInfo) -> Path | None:
        return None if v is None else resolve_path(v, _base_dir(info))


class TaskEntry(_Strict):
    name: str = Field(min_length=1)
    num_fewshot: int | None = Field(None, ge=0)
    limit: int | None = Field(None, gt=0)
    options: dict[str, Any] = Field(default_factory=dict)  # passed to the task factory as is


LM_EVAL_PREFIX = "lm_eval:"  # `lm_eval:<name>` / `{lm_eval: <name>}`: one of lm-eval's tasks, groups or tags


def _lm_eval_entry(raw: Any) -> Any:
    """``{lm_eval: arc_easy, num_fewshot: 5, …}`` → ``{name: "lm_eval:arc_easy", num_fewshot: 5, …}``."""
    if isinstance(raw, dict) and "lm_eval" in raw and "name" not in raw and isinstance(raw["lm_eval"], str):
        return {"name": LM_EVAL_PREFIX + raw["lm_eval"], **{k: v for k, v in raw.items() if k != "lm_eval"}}
    return raw


class SuiteTracking(TrackingConfig):
    experiment: str = Field("evalmon", min_length=1)


class CacheConfig(_Strict):
    enabled: bool = True
    path: Path | None = None  # None: <output_dir>/.cache/responses.sqlite (harness/run.py)

    @field_validator("path")
    @classmethod
    def _resolve(cls, v: Path | None, info: ValidationInfo) -> Path | None:
        return None if v is None else resolve_path(v, _base_dir(info))


class SamplesConfig(_Strict):
    text: bool = True  # false: samples.jsonl.gz keeps prompt hashes only (no prompt text)


class SuiteConfig(_Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    description: str | None = None
    seed: int = Field(1234, ge=0, le=MAX_SEED)  # numpy's default_rng refuses negatives; torch 64-bit seeds
    output_dir: Path = Path("reports")
    limit: int | None = Field(None, gt=0)  # per-task document limit where a task sets none
    model: ModelConfig = None  # one model, or (not both) `models:` — then `model` is the first entry's config
    models: list[NamedModel] | None = Field(None, min_length=1)  # several checkpoints (config/model_list.py)
    data: DataConfig = Field(default_factory=DataConfig)
    tasks: list[TaskEntry] = Field(min_length=1)
    tracking: SuiteTracking = Field(default_factory=SuiteTracking)
    cache: CacheConfig = Field(default_factory=CacheConfig)
    # folders of lm-eval task YAMLs for `lm_eval:<name>` entries (evalmon.tasks.lmeval_catalogue)
    lm_eval_include_path: list[Path] | None = None
    # what samples.jsonl.gz keeps; not in the suite hash (the numbers do not depend on it)
    samples: SamplesConfig = Field(default_factory=SamplesConfig, exclude=True)
    # where the model's requests are computed (harness/fleet.py: ray = `replicas` Ray actors); not in the suite
    # hash either (a ray run's numbers equal the local run's)
    executor: Literal["local", "ray"] = Field("local", exclude=True)
    replicas: int = Field(2, ge=1, le=1024, exclude=True)

    _source_path: Path | None = PrivateAttr(None)
    _task_origins: tuple[str, ...] = PrivateAttr(())  # "file:line: tasks.N.name" or "--tasks"

    @field_validator("output_dir")
    @classmethod
    def _resolve(cls, v: Path, info: ValidationInfo) -> Path:
        return resolve_path(v, _base_dir(info))

    @field_validator("models")
    @classmethod
    def _models(cls, v: list[NamedModel] | None, info: ValidationInfo) -> list[NamedModel] | None:
        if v is not None and info.data.get("model") is not None:
            raise PydanticCustomError("conflict", "both `model` and `models` are given",
                                      {"hint": "keep `model:` for one model, or list it as the first `models:` entry"})
        return None if v is None else check_unique(v)

    @model_validator(mode="after")
    def _one_model_or_list(self) -> SuiteConfig:
        if self.models:  # `model` reads as the reference (first) entry's config; dumps leave it out
            object.__setattr__(self, "model", self.models[0].config)
        elif self.model is None:
            raise PydanticCustomError("missing", "Field required", {"hint": _HINTS["missing:model"]})
        return self

    @field_validator("tasks", mode="before")
    @classmethod
    def _bare_names(cls, v: Any) -> Any:
        return [{"name": t} if isinstance(t, str) else _lm_eval_entry(t) for t in v] if isinstance(v, list) else v

    @field_validator("lm_eval_include_path", mode="before")
    @classmethod
    def _include_paths(cls, v: Any, info: ValidationInfo) -> Any:
        if v is None:
            return None
        items = [v] if isinstance(v, str | Path) else v
        return [resolve_path(Path(p), _base_dir(info)) if isinstance(p, str | Path) else p for p in items] \
            if isinstance(items, list) else v

    @model_serializer(mode="wrap")
    def _omit_unset_include(self, handler: Any) -> Any:
        data = handler(self)  # unset: absent, so suite hashes and MLflow params of other suites stay as they were
        if isinstance(data, dict) and self.lm_eval_include_path is None:
            data.pop("lm_eval_include_path", None)
        if isinstance(data, dict):  # one of `model` / `models`, as written (suite hashes of one-model suites unchanged)
            data.pop("model" if self.models else "models", None)
        return data

    @field_validator("tasks")
    @classmethod
    def _no_repeats(cls, v: list[TaskEntry]) -> list[TaskEntry]:
        first: dict[str, int] = {}
        for i, t in enumerate(v):
            if t.name in first:
                raise PydanticCustomError(
                    "duplicate_entry", "task '{name}' is listed twice (entries {first} and {index})",
                    {"name": t.name, "first": first[t.name], "index": i,
                     "hint": "list it once; a group that overlaps a task is fine"})
            first[t.name] = i
        return v

    @property
    def source_path(self) -> Path | None:
        """The suite file this config was loaded from (None for text/default/programmatic configs)."""
        return self._source_path

    def task_limit(self, entry: TaskEntry) -> int | None:
        return entry.limit if entry.limit is not None else self.limit

    def task_origin(self, index: int) -> str:
        """Where task ``index`` was written, as a message prefix."""
        if index < len(self._task_origins):
            return self._task_origins[index]
        return f"suite '{self.name}': tasks.{index}.name"


def _loc_fixup(err: Any, loc: Loc) -> Loc:
    ctx = err.get("ctx") or {}
    if len(loc) == 2 and loc[0] == "model" and loc[1] in _MODEL_TAGS:  # a whole-model error: drop the union tag
        loc = ("model",)
    if err["type"] == "missing" and not loc:  # neither `model` nor `models`
        loc = ("model",)
    return (*loc, ctx["index"]) if err["type"] == "duplicate_entry" and "index" in ctx else loc


# --------------------------------------------------------------------------- loading


def load_suite(path: str | Path) -> SuiteConfig:
    """Read and validate a suite file; every problem is a one-line ``ConfigError``."""
    text, p = read_config_file(path, "suite file", encode_as="suite")
    cfg = load_suite_text(text, str(path), base_dir=p.parent)
    cfg._source_path = p
    return cfg


def load_suite_text(text: str, source_name: str = "<string>", *, base_dir: Path | None = None) -> SuiteConfig:
    """Validate suite YAML text; relative paths resolve against ``base_dir`` (default: the cwd)."""
    doc = load_yaml(text, source_name)
    require_mapping(doc, source_name, "suite", empty_hint="write a mapping with at least `name:`, `model:` and `tasks:`",
                    keys_hint="write `name: …`, `model: …`, `tasks: …` as top-level keys")
    try:
        cfg = SuiteConfig.model_validate(doc.data, context={"base_dir": base_dir or Path.cwd()})
    except ValidationError as e:
        raise validation_error(e, doc, _error_schema(doc.data), hints=_HINTS, loc_fixup=_loc_fixup) from None
    cfg._task_origins = tuple(_entry_origin(doc, i, raw) for i, raw in enumerate(doc.data["tasks"]))
    if cfg.lm_eval_include_path and not any(t.name.startswith(LM_EVAL_PREFIX) for t in cfg.tasks):
        raise doc.error(("lm_eval_include_path",), "is set but no task is an lm-eval task, so nothing would read "
                        "these folders", "add `- {lm_eval: <task name>}` (or `lm_eval:<name>`) under tasks:, "
                        "or delete lm_eval_include_path")
    return cfg


def _error_schema(data: dict[str, Any]) -> type[BaseModel]:
    """SuiteConfig with ``model`` narrowed to the written backend, so "unknown key" hints list its keys."""
    model = data.get("model")
    if model is None and isinstance(data.get("models"), list):  # an entry's keys are its backend's plus `name`
        entry = entry_error_schema(data["models"])
        return SuiteConfig if entry is None else create_model(
            "SuiteConfig", __base__=SuiteConfig, models=(list[entry] | None, None))  # type: ignore[valid-type]
    backend = _backend_tag(model) if isinstance(model, dict) else "hf"
    if backend not in MODEL_BACKENDS or model is None:
        return SuiteConfig
    return create_model("SuiteConfig", __base__=SuiteConfig, model=(MODEL_BACKENDS[backend], ...))


def _entry_origin(doc: YamlDoc, i: int, raw: Any) -> str:
    return doc.where(("tasks", i, "name") if isinstance(raw, dict) else ("tasks", i))


def check_task_names(cfg: SuiteConfig,
                     names: Iterable[str] | Callable[[], Iterable[str]] | None = None) -> None:
    """Every task entry must name a registered task or group (default: the ``evalmon.core.registry`` names)."""
    if names is None:
        from evalmon.core import registry

        names = [*registry.tasks.names(), *registry.task_groups.names()]
    known = set(names() if callable(names) else names)
    for i, entry in enumerate(cfg.tasks):
        if entry.name not in known and not entry.name.startswith(LM_EVAL_PREFIX):  # lm-eval's: checked when planned
            raise UnknownNameError(
                f"{cfg.task_origin(i)}: unknown task or group '{entry.name}'"
                f"{did_you_mean(entry.name, sorted(known))}",
                hint="run `evalmon tasks` to list them")


# --------------------------------------------------------------------------- identity


def suite_hash(config: SuiteConfig) -> str:
    """Short sha256 of what the suite evaluates: the validated config's canonical JSON (independent of key order)
    without ``tracking`` — where the results are logged (the YAML's store, ``$MLFLOW_TRACKING_URI``'s team store
    or the local one) does not change what was run, and the same suite logged to two stores had two hashes."""
    return canonical_hash(config.model_dump(mode="json", exclude={"tracking"}), compact=True)


def flatten(config: SuiteConfig) -> dict[str, str]:
    """``{"model.dtype": "float32", "tasks.0.name": "medqa", …}`` for MLflow params (null → "null");
    URI credentials and secret query parameters are redacted (``evalmon.core.redact``)."""
    out: dict[str, str] = {}

    def visit(prefix: str, value: Any) -> None:
        if isinstance(value, dict) and value:
            for k, v in value.items():
                visit(f"{prefix}.{k}" if prefix else str(k), v)
        elif isinstance(value, list) and value:
            for i, v in enumerate(value):
                visit(f"{prefix}.{i}", v)
        else:
            out[prefix] = value if isinstance(value, str) else json.dumps(value, sort_keys=True)

    visit("", redact_obj(config.model_dump(mode="json")))  # results.json + MLflow params: no credentials
    return out


# --------------------------------------------------------------------------- CLI overrides


def apply_overrides(cfg: SuiteConfig, *, model: str | None = None, limit: int | None = None,
                    tasks: list[str] | None = None, output: Path | None = None,
                    tracking_uri: str | None = None, experiment: str | None = None,
                    no_tracking: bool = False, adapters: str | None = None, executor: str | None = None,
                    replicas: int | None = None, models: str | None = None,
                    include_path: Sequence[Path] | None = None) -> SuiteConfig:
    """A new config with CLI flags applied; errors name the flag.

    ``--model``: a new checkpoint (path, revision and adapter are replaced); runtime settings the spec
    does not give (dtype, device, batch_size, …) are kept from the suite when the backend is the same.
    ``trust_remote_code`` is never inherited: the suite's opt-in was for its own checkpoint, so another
    one's code runs only when the spec says ``trust_remote_code=true`` itself.
    ``--executor``/``--replicas``: where requests are computed (harness/fleet.py).
    ``--models a=SPEC,b=SPEC``: several checkpoints (``models:``, config/model_list.py) replacing the suite's
    model or models; ``--model`` on a suite with ``models:`` replaces the list with that one model.
    ``--tasks a,b`` replaces the task list (entries already in the suite keep their options).
    ``--include-path DIR``: folders of lm-eval task YAMLs, after the suite's ``lm_eval_include_path``; an error
    when no task of the run (after ``--tasks``) is an ``lm_eval:`` task, since nothing would read them.
    ``--limit N`` sets the global and every task's limit. ``--tracking-uri`` also enables tracking; without it
    the store is ``choose_tracking_uri``'s (the YAML's ``tracking.uri``, else ``$MLFLOW_TRACKING_URI``, else local).
    """
    if executor not in (None, "local", "ray"):
        raise ConfigError(f"--executor: must be local or ray, got {executor!r}", hint="e.g. --executor ray --replicas 2")
    if replicas is not None and replicas < 1:
        raise ConfigError(f"--replicas: must be at least 1, got {replicas}", hint="e.g. --executor ray --replicas 2")
    if replicas is not None and replicas > 1 and (executor or cfg.executor) != "ray":  # else: one process
        raise ConfigError(f"--replicas {replicas}: only --executor ray runs replicas (this run is local)",
                          hint="add --executor ray (or executor: ray in the suite), or drop --replicas")
    if models is not None and (model is not None or adapters is not None):
        raise ConfigError(f"--models: conflicts with {'--model' if model is not None else '--adapters'}",
                          hint="pass --models name=SPEC,… alone (an entry may carry adapter=PATH)")
    if adapters is not None and cfg.models and model is None:
        raise ConfigError("--adapters: the suite lists `models:` (several checkpoints)",
                          hint="give each adapter its own models entry with `adapter: path`")
    data = cfg.model_dump()
    data.update(samples=cfg.samples.model_dump(), executor=executor or cfg.executor,  # not dumped (not hashed)
                replicas=cfg.replicas if replicas is None else replicas)
    if model is not None and cfg.models:  # one model instead of the list (the reference's settings are kept)
        data["model"] = data.pop("models")[0]
        data["model"].pop("name")
    if models is not None:
        data.pop("model", None)
        data["models"] = [{"name": name, **_inherit(cfg.model, new)} for name, new in parse_models_flag(
            models, parse_model_spec)]
    origins = [cfg.task_origin(i) for i in range(len(cfg.tasks))]
    if model is not None:
        data["model"] = _inherit(cfg.model, parse_model_spec(model))
    if adapters is not None:
        data["model"] = {**data["model"], "adapters": parse_adapters_flag(adapters, data["model"])}
    if tasks is not None:
        names = [n.strip() for item in tasks for n in item.split(",") if n.strip()]
        if not names:
            raise ConfigError("--tasks: no task names given", hint="pass comma-separated names, e.g. --tasks a,b")
        repeated = next((n for i, n in enumerate(names) if n in names[:i]), None)
        if repeated:
            raise ConfigError(f"--tasks: '{repeated}' is listed twice", hint="list each task once")
        existing = {t["name"]: (t, origins[i]) for i, t in enumerate(data["tasks"])}
        data["tasks"] = [existing[n][0] if n in existing else {"name": n} for n in names]
        origins = [existing[n][1] if n in existing else "--tasks" for n in names]
    if include_path:
        if not any(t["name"].startswith(LM_EVAL_PREFIX) for t in data["tasks"]):
            raise ConfigError(f"--include-path {include_path[0]}: no task of this run is an lm-eval task, so nothing "
                              "would read the folder", hint="add an lm-eval task (--tasks lm_eval:<name>, or "
                              "`- {lm_eval: <name>}` under the suite's tasks:), or drop --include-path")
        data["lm_eval_include_path"] = [*(data.get("lm_eval_include_path") or []),
                                        *(Path(p).expanduser().resolve() for p in include_path)]
    if limit is not None:
        if isinstance(limit, bool) or not isinstance(limit, int) or limit <= 0:
            raise ConfigError(f"--limit: must be > 0, got {limit}", hint="pass a positive number of documents per task")
        data["limit"] = limit
        for t in data["tasks"]:
            t["limit"] = limit
    if output is not None:
        data["output_dir"] = Path(os.path.abspath(Path(output).expanduser()))
    if tracking_uri is not None:
        if no_tracking:
            raise ConfigError("--tracking-uri: conflicts with --no-tracking", hint="pass only one of them")
        if not tracking_uri.strip():
            raise ConfigError("--tracking-uri: must not be empty", hint="pass http://host:port or sqlite:///file.db")
        data["tracking"].update(uri=tracking_uri.strip(), enabled=True)
    else:  # the one precedence rule: the YAML's uri, else $MLFLOW_TRACKING_URI, else the local store
        data["tracking"]["uri"] = choose_tracking_uri(None, data["tracking"].get("uri"))[0]
    if experiment is not None:
        if not experiment.strip():
            raise ConfigError("--experiment: must not be empty", hint="pass an MLflow experiment name")
        data["tracking"]["experiment"] = experiment.strip()
    if no_tracking:
        data["tracking"]["enabled"] = False
    try:
        out = SuiteConfig.model_validate(data)
    except ValidationError as e:  # pragma: no cover - flags are checked above
        err = e.errors(include_url=False)[0]
        what, hint = describe_error(err, tuple(err["loc"]), SuiteConfig, _HINTS)
        raise ConfigError(f"overrides: {dotted(tuple(err['loc']))}: {what}", hint=hint) from None
    out._source_path = cfg._source_path
    out._task_origins = tuple(origins)
    return out


def default_suite() -> SuiteConfig:
    """The suite ``evalmon run`` uses without a file (paths relative to the working directory).

    Model: ``$EVALMON_DEFAULT_MODEL`` or ``DEFAULT_CHECKPOINT_DIR``; data: ``$EVALMON_DATA_DIR`` or
    ``DEFAULT_DATA_DIR``; tasks ``DEFAULT_TASKS`` with ``limit: 20`` (``DEFAULT_TASK_LIMITS`` per task).
    """
    cwd = Path.cwd()
    model = os.environ.get("EVALMON_DEFAULT_MODEL") or str(cwd / DEFAULT_CHECKPOINT_DIR)
    data_dir = os.environ.get("EVALMON_DATA_DIR") or str(DEFAULT_DATA_DIR)
    cfg = SuiteConfig.model_validate(
        {"name": "default", "description": "built-in smoke suite", "limit": DEFAULT_LIMIT,
         "model": {"backend": "hf", "path": model}, "data": {"data_dir": data_dir},
         "tasks": [{"name": t, "limit": DEFAULT_TASK_LIMITS.get(t)} for t in DEFAULT_TASKS]},
        context={"base_dir": cwd})
    cfg._task_origins = tuple(f"default suite: tasks.{i}.name" for i in range(len(DEFAULT_TASKS)))
    return cfg


__all__ = [
    "DEFAULT_CHECKPOINT_DIR", "DEFAULT_DATA_DIR", "DEFAULT_LIMIT", "DEFAULT_TASKS", "DEFAULT_TASK_LIMITS",
    "MODEL_BACKENDS",
    "ASRModelConfig", "CacheConfig", "DataConfig", "HFModelConfig", "ModelConfig", "NoModelConfig",
    "OpenAIModelConfig", "SuiteConfig", "TaskEntry",
    "TrackingConfig", "apply_overrides", "check_task_names", "default_suite", "flatten",
    "is_local_ref", "load_suite", "load_suite_text", "parse_model_spec", "resolve_path",
    "resolve_ref", "suite_hash",
]

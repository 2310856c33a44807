"""run_suite(): expand tasks, drive the engine, aggregate, write results, reports and MLflow.

Order matters for the user: everything that can fail on bad input (task names, data files, tracking
URI, output directory, checkpoint) fails before any compute; after that, every finished task is saved
to ``results.json`` at once, every scored batch goes to the response cache, and the status recorded is
always true: Ctrl-C or SIGTERM still writes a partial ``results.json`` + reports marked ``interrupted``,
any other exception marks them ``failed`` with the error (one line) — in MLflow too — before it propagates.
"""

from __future__ import annotations

import contextlib
import secrets
import shlex
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from evalmon.core import interrupts
from evalmon.core.errors import ConfigError, EvalmonError, OutputError
from evalmon.core.lm import LM
from evalmon.core.redact import redact_obj, redact_text
from evalmon.core.results import (
    GroupResult,
    MetricValue,
    RunResult,
    SampleRecord,
    write_error,
    write_samples,
)
from evalmon.harness import provenance
from evalmon.harness.cache import ResponseCache
from evalmon.harness.engine import Advance
from evalmon.harness.evaluate import evaluate_task
from evalmon.harness.matrix import AdapterRuns, adapter_variants
from evalmon.harness.roles import Models, check_tasks
from evalmon.metrics.intervals import group_interval
from evalmon.metrics.stats import aggregate_group
from evalmon.tasks import base as registry
from evalmon.tasks.base import TaskOptions

if TYPE_CHECKING:
    from evalmon.config.suite import SuiteConfig

Log = Callable[[str], None]


class Progress(Protocol):
    """Progress reporting (the CLI renders it with rich; the library default is silent)."""

    def task(self, name: str, total: int) -> AbstractContextManager[Advance]: ...


class _Silent:
    def task(self, name: str, total: int) -> AbstractContextManager[Advance]:
        return nullcontext(lambda n: None)


@dataclass(frozen=True)
class PlannedTask:
    name: str
    options: TaskOptions


def plan_tasks(cfg: SuiteConfig) -> tuple[list[PlannedTask], dict[str, list[str]]]:
    """Expand groups to leaf tasks (first mention wins) and collect the groups to aggregate."""
    from evalmon.tasks.lmeval_catalogue import register_suite_tasks

    register_suite_tasks(cfg)  # `lm_eval:<name>` entries: lm-eval's own tasks/groups, registered by name
    planned: dict[str, PlannedTask] = {}
    groups: dict[str, list[str]] = {}
    data_dir = Path(cfg.data.data_dir) if cfg.data.data_dir else None
    for entry in cfg.tasks:
        leaves = registry.expand(entry.name)
        if entry.name in registry.GROUPS:
            groups[entry.name] = leaves
            for sub in _subgroups(entry.name):
                groups.setdefault(sub, registry.expand(sub))
        limit = entry.limit if entry.limit is not None else cfg.limit
        for leaf in leaves:
            planned.setdefault(leaf, PlannedTask(leaf, TaskOptions(
                data_dir=data_dir, num_fewshot=entry.num_fewshot, limit=limit, seed=cfg.seed,
                extra=dict(entry.options), base_dir=cfg.source_path.parent if cfg.source_path else None)))
    return list(planned.values()), groups


def _subgroups(name: str) -> list[str]:
    out = []
    for member in registry.GROUPS[name].members:
        if member in registry.GROUPS:
            out.append(member)
            out.extend(_subgroups(member))
    return out


def new_run_id() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(3)


def prepare_run_dir(output_dir: Path, run_id: str) -> Path:
    run_dir = Path(output_dir) / run_id
    try:
        run_dir.mkdir(parents=True, exist_ok=False)
        probe = run_dir / ".write-test"
        probe.write_text("ok")
        probe.unlink()
    except OSError as exc:
        raise OutputError(f"output_dir: cannot write to {run_dir}: {exc.strerror or exc}",
                          hint="choose a writable directory with --output") from None
    return run_dir


def aggregate_groups(result: RunResult, groups: dict[str, list[str]]) -> None:
    for name, members in groups.items():
        done = [result.tasks[m] for m in members if m in result.tasks]
        if not done:
            continue
        info = registry.GROUPS[name]
        metrics: dict[str, MetricValue] = {}
        for metric in info.metrics:
            with_metric = [t for t in done if metric in t.metrics]
            if len(with_metric) != len(done):
                continue
            value, se = aggregate_group([t.metrics[metric].value for t in done],
                                        [t.metrics[metric].stderr for t in done], [t.n for t in done])
            ci = group_interval([t.metrics[metric].value for t in done], [t.n for t in done],
                                [t.metrics[metric].ci_method for t in done])  # Wilson if all are proportions
            metrics[metric] = MetricValue.with_ci(value, se, ci=ci.bounds if ci else None,
                                                  ci_method=ci.method if ci else None)
        result.groups[name] = GroupResult(name=name, n=sum(t.n for t in done),
                                          members=[t.name for t in done], metrics=metrics)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def load_model(cfg: SuiteConfig) -> LM:
    from evalmon.backends.registry import load_lm

    if getattr(cfg, "executor", "local") == "ray":  # replicas on Ray actors, one LM to the engine (harness/fleet)
        from evalmon.harness.fleet import load_fleet

        return load_fleet(cfg.model, cfg.replicas)
    return load_lm(cfg.model)


def run_suite(
    cfg: SuiteConfig,
    *,
    progress: Progress | None = None,
    log: Log | None = None,
    command: str | None = None,
    lm: LM | None = None,
) -> RunResult:
    """Evaluate ``cfg`` and return the finished (or interrupted) ``RunResult``.

    Writes ``<output_dir>/<run_id>/{results.json, samples.jsonl.gz, report.html, summary.md}``
    and logs the run to MLflow when tracking is enabled (kept on disk for ``evalmon sync`` when
    the server is unreachable). ``KeyboardInterrupt`` (``interrupts.Terminated`` for SIGTERM) and any
    other exception are re-raised after the partial run is saved as ``interrupted`` / ``failed``.
    """
    progress = progress or _Silent()
    say = log or (lambda _msg: None)
    planned, groups = plan_tasks(cfg)
    if cfg.tracking.enabled:  # a store that can never be written fails now, not after the compute
        from evalmon.sinks.mlflow import preflight

        warning = preflight(cfg.tracking.uri)
        if warning:
            say(warning)
    tasks = [registry.build_task(p.name, p.options) for p in planned]  # data errors surface here
    with interrupts.signals_as_interrupts():  # SIGTERM while loading or scoring: handled like Ctrl-C
        return _execute(cfg, tasks, groups, progress, say, command, lm)


def _execute(cfg: SuiteConfig, tasks: list[Any], groups: dict[str, list[str]], progress: Progress, say: Log,
             command: str | None, lm: LM | None) -> RunResult:
    run_id = new_run_id()
    run_dir = prepare_run_dir(Path(cfg.output_dir), run_id)
    if getattr(cfg, "models", None):  # several checkpoints (harness/model_matrix.py)
        from evalmon.harness.model_matrix import RunHooks, run_models

        if lm is not None:
            run_dir.rmdir()
            raise ConfigError("run_suite(lm=…) evaluates one model, but the suite lists `models:`",
                              hint="drop lm= (each models entry is built from its config) or use model:")

        parent = _new_result(cfg, run_id, command, {})
        return run_models(cfg, tasks, parent, run_dir, progress, say, RunHooks(
            aggregate=lambda r: aggregate_groups(r, groups), finalize=finalize, error_line=error_line, now=_now))
    try:
        owned, lm = lm is None, lm or load_model(cfg)
        models = Models(lm)  # the judge (…) models of the tasks' other roles: loaded and checked now
        check_tasks(tasks, models)  # a task the models cannot run fails before any task runs
        variants = adapter_variants(cfg, lm)  # model × adapter matrix (harness/matrix.py); [] without adapters
        cache = ResponseCache(cfg.cache.path or Path(cfg.output_dir) / ".cache" / "responses.sqlite",
                              warn=say) if cfg.cache.enabled else None
    except BaseException:  # bad checkpoint/adapter/cache: a run that never started leaves no empty dir
        with contextlib.suppress(OSError):
            run_dir.rmdir()
        raise
    result = _new_result(cfg, run_id, command, redact_obj(lm.fingerprint.to_dict()))  # base_url may carry ?api_key=…
    samples: list[SampleRecord] = []
    adapter_runs = AdapterRuns(variants, result, run_dir, models) if variants else None
    say(f"run {run_id}: {len(tasks)} tasks → {run_dir}")
    try:
        for task in tasks:
            with progress.task(task.name, task.progress_total()) as advance:
                task_result, task_samples = evaluate_task(task, models, cache, advance, cfg.seed,
                                                          sample_text=cfg.samples.text)
            result.tasks[task.name] = task_result.model_copy(update={"config": redact_obj(task_result.config)})
            samples.extend(task_samples)
            aggregate_groups(result, groups)
            result.save(run_dir)
            if adapter_runs:  # the same task (same documents) for every adapter
                adapter_runs.evaluate(task, progress, lambda t, m, adv: evaluate_task(
                    t, m, cache, adv, cfg.seed, sample_text=cfg.samples.text), lambda r: aggregate_groups(r, groups))
        result.status = "finished"
        if getattr(lm, "loaded", True) is False:  # hf: loads on the first response-cache miss (backends/hf/lazy)
            say("model not loaded: every request was cached")
    except KeyboardInterrupt as exc:  # Ctrl-C or SIGTERM (interrupts.Terminated)
        result.status, result.error = "interrupted", interrupts.describe(exc)
        exc.run_dir = run_dir  # type: ignore[attr-defined]  # the CLI says where the partial run is
        raise
    except BaseException as exc:
        result.status, result.error = "failed", error_line(exc)
        raise
    finally:
        result.finished_at = _now()
        if cache:
            cache.close()
        if owned and (close := getattr(type(lm), "close_fleet", None)) is not None:  # Ray replicas (harness/
            close(lm)  # fleet.py); looked up on the type: a lazy hf model must not load for the look-up
        aggregate_groups(result, groups)
        if adapter_runs:  # the ranked adapter table goes into the suite run's results.json
            adapter_runs.compare(result, samples, cfg.seed, lambda r: aggregate_groups(r, groups), say)
        finalize(result, run_dir, samples, cfg, say)
        if adapter_runs:
            adapter_runs.finalize(result, cfg, say, finalize)
    return result


def _new_result(cfg: SuiteConfig, run_id: str, command: str | None, model: dict[str, Any]) -> RunResult:
    from evalmon.config.suite import flatten, suite_hash

    return RunResult(run_id=run_id, suite_name=cfg.name, suite_hash=suite_hash(cfg),
                     suite_path=str(cfg.source_path) if cfg.source_path else None, suite_config=flatten(cfg),
                     started_at=_now(), provenance=provenance.collect(cfg.seed, command), model=model)


def error_line(exc: BaseException) -> str:
    """``Type: message`` on one line (what ``results.json`` and the MLflow ``evalmon.error`` tag record)."""
    text = exc.one_line() if isinstance(exc, EvalmonError) else " ".join(str(exc).split())
    text = redact_text(text)  # a message may quote a URI (server base_url, tracking URI) with its credentials
    return f"{type(exc).__name__}: {text}"[:1000] if text else type(exc).__name__


def finalize(result: RunResult, run_dir: Path, samples: Sequence[SampleRecord], cfg: SuiteConfig,
             say: Log) -> None:
    """Write samples, results and reports; then log to MLflow (never loses the local copy).

    Signals wait until the local files are written (an interrupt cannot cut them short); a write that
    fails (disk full, …) is an ``OutputError`` naming the file — files already written stay."""
    with interrupts.deferred():
        try:
            write_samples(run_dir / "samples.jsonl.gz", samples)
            result.save(run_dir)
            _write_reports(result, run_dir)
        except OutputError as exc:  # results.json must not claim a complete run: record why (if it fits)
            result.status, result.error = "failed", error_line(exc)
            with contextlib.suppress(OutputError):
                result.save(run_dir)
            raise
    if not cfg.tracking.enabled:
        return
    from evalmon.sinks.mlflow import log_run

    info: dict[str, Any] = log_run(result, run_dir, cfg.tracking.uri, cfg.tracking.experiment)
    result.mlflow = info
    with interrupts.deferred():
        result.save(run_dir)
        _write_reports(result, run_dir)  # local copy now links the MLflow run
    if info.get("status") == "pending":
        say(f"warning: MLflow unreachable ({info.get('reason')}); run saved locally in {run_dir} — "
            f"upload it later with `evalmon sync {shlex.quote(str(run_dir.parent))}`")
    elif info.get("ui_url"):
        say(f"MLflow run: {info['ui_url']}")
        from evalmon.sinks.mlflow.runs import dashboard_url

        if board := dashboard_url(info):  # the experiment's saved headline view
            say(f"MLflow dashboard: {board}")
    elif info.get("run_id"):
        say(f"MLflow run {info['run_id']} in {info.get('tracking_uri')} "
            f"(browse: mlflow ui --backend-store-uri {info.get('tracking_uri')})")


def _write_reports(result: RunResult, run_dir: Path) -> None:
    from evalmon.sinks.report import write_reports

    try:
        write_reports(result, run_dir)
    except OSError as exc:  # no half-written report.html.tmp left behind
        for tmp in run_dir.glob("*.tmp"):
            with contextlib.suppress(OSError):
                tmp.unlink()
        name = Path(exc.filename).name.removesuffix(".tmp") if exc.filename else "report.html"
        raise write_error(run_dir / name, exc) from None

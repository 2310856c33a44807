"""Several checkpoints in one suite (``models:``, config/model_list.py): every task for each, compared with the first.

* **Local executor**: one checkpoint at a time, in list order — built, every task, released (an hf model
  loads lazily on its first response-cache miss and is dropped before the next checkpoint is built).
* **Ray executor**: the checkpoints are *placed* on the replicas (``fleet.plan_slots``): ``min(replicas,
  checkpoints)`` slots run concurrently (one driver thread each), each slot evaluates one checkpoint at a time
  on its own fleet (its replicas load that checkpoint only, requests sharded and prefix-grouped as for one
  model), then takes the next checkpoint of the list that no slot has started.

Each checkpoint's results and samples are those of a separate run of it: the same task objects (same
documents, same seed) through the same engine loop, the response cache keyed by its fingerprint (shared
with its separate runs). Storage and comparison are the adapter matrix's (harness/matrix.py, kind
``checkpoint``): the suite run dir is the reference's (the first entry), each other checkpoint's run is the
complete run dir ``<run>/models/<name>/`` (run id ``<run>#<name>``, ``evalmon gate RUN#name``), the ranked
paired table goes into the suite run's ``results.json``, and each checkpoint's MLflow run is a child of the
suite run. A checkpoint that fails is recorded as failed; checkpoints not started yet are not started; the
ones computing finish; everything computed is written before the first error is raised again.
"""

from __future__ import annotations

import contextlib
import gc
import queue
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evalmon.config.model_list import model_entries
from evalmon.core.errors import ConfigError, EvalmonError, ModelError
from evalmon.core.lm import LM
from evalmon.core.redact import redact_obj
from evalmon.core.results import RunResult, SampleRecord
from evalmon.harness.cache import ResponseCache
from evalmon.harness.engine import Advance
from evalmon.harness.evaluate import evaluate_task
from evalmon.harness.matrix import Finalize, compare_runs, finalize_runs, variant_dir, variant_run
from evalmon.harness.roles import Models, check_tasks

KIND = "checkpoint"


@dataclass(frozen=True)
class RunHooks:
    """What ``harness/run.py`` lends this module (which may not import it)."""

    aggregate: Callable[[RunResult], None]
    finalize: Finalize
    error_line: Callable[[BaseException], str]
    now: Callable[[], str]


@dataclass
class _Job:
    """One checkpoint's run."""

    index: int  # in `models:`
    name: str
    config: Any
    run: RunResult
    directory: Path
    samples: list[SampleRecord] = field(default_factory=list)
    started: bool = False


@dataclass
class _Context:
    cfg: Any
    tasks: Sequence[Any]
    progress: Any
    say: Callable[[str], None]
    hooks: RunHooks
    roles: Models  # judge (…) models, built once and shared by every checkpoint
    stop: threading.Event = field(default_factory=threading.Event)
    interrupted: bool = False
    errors: list[BaseException] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def cache(self) -> ResponseCache | None:
        cfg = self.cfg
        return ResponseCache(cfg.cache.path or Path(cfg.output_dir) / ".cache" / "responses.sqlite",
                             warn=self.say) if cfg.cache.enabled else None


def precheck(entries: Sequence[Any]) -> None:
    """Before anything is computed: every local checkpoint (and adapter) directory exists, and an hf one holds a
    ``config.json`` (the backend's own first checks, without loading a model; one line, exit 2)."""
    for i, entry in enumerate(entries):
        cfg = entry.config
        for key in ("path", "adapter"):
            ref = getattr(cfg, key, None)
            if isinstance(ref, str) and ref.startswith("/") and not Path(ref).exists():
                raise ModelError(f"models.{i} ({entry.name}): {key} {ref} does not exist",
                                 hint=f"fix models.{i}.{key} (or drop the entry)")
        path = getattr(cfg, "path", None)
        if cfg.backend == "hf" and not cfg.gguf and Path(path).is_dir() and not (Path(path) / "config.json").is_file():
            raise ModelError(f"models.{i} ({entry.name}): {path} has no config.json — not a Hugging Face checkpoint "
                             "directory", hint=f"fix models.{i}.path (or drop the entry)")


def _release(lm: Any) -> None:
    """Free a checkpoint before the next one is built (Ray replicas stopped; an openai client closed)."""
    for name in ("close_fleet", "close"):
        closer = getattr(type(lm), name, None)  # on the type: a lazy hf model must not load for the look-up
        if closer is not None:
            with contextlib.suppress(Exception):
                closer(lm)
            break
    gc.collect()


def _evaluate(job: _Job, lm: LM, cache: ResponseCache | None, progress: Any, ctx: _Context) -> None:
    """Every task of the suite for one checkpoint; its run saved after each task."""
    job.run.model = redact_obj(lm.fingerprint.to_dict())  # an openai base_url may carry ?api_key=…
    models = ctx.roles.with_candidate(lm)
    check_tasks(ctx.tasks, models)  # a task this checkpoint cannot run fails before its first task
    for task in ctx.tasks:
        with progress.task(f"{task.name} [{job.name}]", task.progress_total()) as advance:
            result, samples = evaluate_task(task, models, cache, advance, ctx.cfg.seed,
                                            sample_text=ctx.cfg.samples.text)
        job.run.tasks[task.name] = result.model_copy(update={"config": redact_obj(result.config)})
        job.samples.extend(samples)
        ctx.hooks.aggregate(job.run)
        job.directory.mkdir(parents=True, exist_ok=True)
        job.run.save(job.directory)
    job.run.status = "finished"
    if getattr(lm, "loaded", True) is False:
        ctx.say(f"{job.name}: model not loaded: every request was cached")


def _record(job: _Job, exc: BaseException, ctx: _Context) -> None:
    """A checkpoint's run stopped by ``exc``: its status, and (the first real error) what the run raises."""
    if job.run.status == "finished":  # the signal came after its last task: the run is complete
        ctx.stop.set()
        return
    if isinstance(exc, KeyboardInterrupt) or ctx.interrupted:
        from evalmon.core import interrupts

        job.run.status = "interrupted"
        job.run.error = interrupts.describe(exc) if isinstance(exc, KeyboardInterrupt) else "interrupted"
    else:
        if isinstance(exc, EvalmonError):  # which checkpoint: `models.1 (b): model.path: …`
            exc = type(exc)(f"models.{job.index} ({job.name}): {exc.message}", hint=exc.hint)
        job.run.status, job.run.error = "failed", ctx.hooks.error_line(exc)
        with ctx.lock:
            ctx.errors.append(exc)
    ctx.stop.set()


def _run_local(jobs: list[_Job], ctx: _Context) -> None:
    """One checkpoint at a time, in list order (one model in memory)."""
    from evalmon.backends.registry import load_lm

    cache = ctx.cache()
    try:
        for job in jobs:
            if ctx.stop.is_set():
                break
            job.started = True
            try:
                lm = load_lm(job.config)
                try:
                    _evaluate(job, lm, cache, ctx.progress, ctx)
                finally:
                    _release(lm)
                    del lm
            except KeyboardInterrupt as exc:
                ctx.interrupted = True
                _record(job, exc, ctx)
                raise
            except Exception as exc:
                _record(job, exc, ctx)
    finally:
        if cache:
            cache.close()


class _Lines:
    """Progress as plain lines (several checkpoints run at once: one live bar cannot show them)."""

    def __init__(self, say: Callable[[str], None]) -> None:
        self.say = say

    @contextmanager
    def task(self, name: str, total: int) -> Iterator[Advance]:
        from evalmon.harness.progress import plain_progress

        with plain_progress(self.say, name, total) as advance:
            yield advance


def _run_ray(jobs: list[_Job], ctx: _Context) -> None:
    """Slots of replicas (``plan_slots``), one driver thread each; a slot takes the next checkpoint when free."""
    from evalmon.harness.fleet import ensure_ray, load_fleet, plan_slots

    total = ctx.cfg.replicas
    slots = plan_slots(total, len(jobs))
    ensure_ray(total)
    free: queue.Queue[int] = queue.Queue()
    for size in slots:
        free.put(size)
    live: dict[str, Any] = {}
    progress = _Lines(ctx.say) if len(slots) > 1 else ctx.progress
    ctx.say(f"{len(jobs)} checkpoints on {total} replicas: {len(slots)} at a time ({', '.join(map(str, slots))} "
            "replicas each)")

    def work(job: _Job) -> None:
        size = free.get()
        try:
            if ctx.stop.is_set():
                return
            job.started = True
            cache = ctx.cache()
            try:
                fleet = load_fleet(job.config, size, total_replicas=total)
                live[job.name] = fleet
                try:
                    _evaluate(job, fleet, cache, progress, ctx)
                finally:
                    live.pop(job.name, None)
                    _release(fleet)
            finally:
                if cache:
                    cache.close()
        except BaseException as exc:  # recorded on the job; the driver raises the first error after writing all
            _record(job, exc, ctx)
        finally:
            free.put(size)

    with ThreadPoolExecutor(len(slots), thread_name_prefix="evalmon-slot") as pool:
        futures = [pool.submit(work, job) for job in jobs]
        try:
            while not all(f.done() for f in futures):
                wait(futures, timeout=0.5)
        except KeyboardInterrupt:
            ctx.interrupted = True
            ctx.stop.set()
            for fleet in list(live.values()):  # the slots' calls fail at once; each records "interrupted"
                _release(fleet)
            wait(futures)
            raise


def run_models(cfg: Any, tasks: Sequence[Any], parent: RunResult, run_dir: Path, progress: Any,
               say: Callable[[str], None], hooks: RunHooks) -> RunResult:
    """Evaluate every ``models:`` entry (see the module doc); ``parent`` (the suite run, model unset) becomes the
    reference's run. Returns it; raises the first checkpoint error (or the interrupt) after everything is written."""
    entries = model_entries(cfg)
    if not entries:
        raise ConfigError("run_models: the suite lists no `models:`", hint="use model: for one model")
    try:
        precheck(entries)
    except BaseException:  # nothing ran: no empty run dir is left
        with contextlib.suppress(OSError):
            run_dir.rmdir()
        raise
    reference = entries[0].name
    jobs = [_Job(0, reference, entries[0].config, parent, run_dir)]
    jobs += [_Job(i, e.name, e.config, variant_run(parent, e.name, {}, KIND), variant_dir(run_dir, e.name, KIND))
             for i, e in enumerate(entries[1:], 1)]
    ctx = _Context(cfg, tasks, progress, say, hooks, Models(None))
    say(f"run {parent.run_id}: {len(tasks)} tasks × {len(jobs)} checkpoints ({', '.join(j.name for j in jobs)}; "
        f"reference {reference}) → {run_dir}")
    interrupt: KeyboardInterrupt | None = None
    try:
        (_run_ray if cfg.executor == "ray" else _run_local)(jobs, ctx)
    except KeyboardInterrupt as exc:  # Ctrl-C or SIGTERM (interrupts.Terminated)
        interrupt = exc
    except Exception as exc:  # the executor itself (Ray did not start, …): raised after the runs are written
        ctx.errors.append(exc)
    finally:
        _finish(jobs, ctx, run_dir, interrupt)
    if interrupt is not None:
        interrupt.run_dir = run_dir  # type: ignore[attr-defined]  # the CLI says where the partial runs are
        raise interrupt
    if ctx.errors:
        raise ctx.errors[0]
    return parent


def _finish(jobs: list[_Job], ctx: _Context, run_dir: Path, interrupt: KeyboardInterrupt | None) -> None:
    """Statuses of runs that never started, the ranked table, then every run written (and logged)."""
    if ctx.errors and not any(job.run.tasks for job in jobs):  # nothing computed: no empty run dir is left
        with contextlib.suppress(OSError):
            run_dir.rmdir()
            return
    now = ctx.hooks.now()
    for job in jobs:
        if not job.started:
            job.run.status = "interrupted" if interrupt is not None or ctx.interrupted else "failed"
            job.run.error = "not run: the run was interrupted" if job.run.status == "interrupted" \
                else f"not run: the run stopped ({ctx.hooks.error_line(ctx.errors[0])})"
        job.run.finished_at = now
        ctx.hooks.aggregate(job.run)
    parent, others = jobs[0], {job.name: job.run for job in jobs[1:]}
    samples = {job.name: job.samples for job in jobs[1:]}
    compare_runs(parent.run, parent.samples, others, samples, seed=ctx.cfg.seed, say=ctx.say,
                 reference=parent.name, kind=KIND)
    parent.run.adapters.setdefault("kind", KIND)
    parent.run.adapters.setdefault("reference", parent.name)
    ctx.hooks.finalize(parent.run, run_dir, parent.samples, ctx.cfg, ctx.say)
    finalize_runs(parent.run, others, samples, run_dir, ctx.cfg, ctx.say, ctx.hooks.finalize, kind=KIND)

"""An evalmon run as inspect_ai eval logs (``evalmon export RUN --format inspect``): ``inspect view`` opens them.

inspect_ai keeps one log per task, so each evalmon task becomes ``<out>/<created>_<task>_<run_id>.eval``,
built from inspect_ai's own models (``EvalLog``, ``EvalSample``, ``Score``) and written by its
``write_eval_log`` — the file layout is inspect_ai's, not a copy of it. The mapping:

* ``eval``: task name, the model (``backend/model``), the dataset size, ``created`` = the run's start;
  ``metadata.evalmon`` = run id, suite, config hash, task source.
* ``results.scores``: one ``EvalScore`` per evalmon metric (scorer = the metric's name) with its value,
  ``stderr`` and the 95 % interval bounds where evalmon computed them.
* one ``EvalSample`` per document: ``input`` = the prompt text (``samples.jsonl.gz`` keeps it unless the
  run opted out; then ``"(prompt text not kept; hash …)"``), ``choices``, ``target`` (a letter for multiple
  choice, as inspect's ``multiple_choice`` writes it), ``output`` = the generation or the highest-likelihood
  choice, ``scores`` = the per-document metric values, ``metadata`` = loglikelihoods and evalmon's ids.

inspect_ai is an optional dependency (extra ``interop``); without it the export says how to install it.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from evalmon.core.errors import ConfigError
from evalmon.core.results import RunResult, SampleRecord, TaskResult

INSTALL_HINT = "pip install 'evalmon[interop]' (or: pip install inspect_ai)"
_STATUS = {"finished": "success", "interrupted": "cancelled", "failed": "error", "running": "started"}


def _import() -> Any:
    try:
        import inspect_ai.log as ilog
    except ImportError:
        raise ConfigError("--format inspect needs the inspect_ai package, which is not installed",
                          hint=INSTALL_HINT) from None
    return ilog


def _target(s: SampleRecord) -> str:
    if s.choices and isinstance(s.target, int) and 0 <= s.target < 26:
        return chr(ord("A") + s.target)
    return "" if s.target is None else str(s.target)


def _answer(s: SampleRecord) -> str:
    if s.outputs:
        return s.outputs[0]
    if s.choices and s.loglikelihoods and len(s.choices) == len(s.loglikelihoods):
        best = max(range(len(s.choices)), key=lambda i: s.loglikelihoods[i])
        return s.choices[best]
    return ""


def _sample(s: SampleRecord, model: str, idx: int) -> Any:
    from inspect_ai.log import EvalSample
    from inspect_ai.model import ModelOutput
    from inspect_ai.scorer import Score

    text = s.prompt if s.prompt is not None else f"(prompt text not kept; hash {s.prompt_hash})"
    answer = _answer(s)
    meta: dict[str, Any] = {"evalmon_doc_id": s.doc_id, "prompt_hash": s.prompt_hash}
    if s.loglikelihoods:
        meta["loglikelihoods"] = s.loglikelihoods
    if s.extra:
        meta["extra"] = s.extra
    scores = {m: Score(value=v, answer=answer) for m, v in s.scores.items() if v == v}  # NaN: unscored
    return EvalSample(id=s.doc_id or idx, epoch=1, input=text, choices=s.choices or None, target=_target(s),
                      output=ModelOutput.from_content(model, answer), scores=scores, metadata=meta)


def _scores(task: TaskResult, n_scored: dict[str, int]) -> list[Any]:
    from inspect_ai.log import EvalMetric, EvalScore

    out = []
    for m, mv in task.metrics.items():
        metrics = {m: EvalMetric(name=m, value=mv.value)}
        for name, v in (("stderr", mv.stderr), ("ci_low", mv.ci_low), ("ci_high", mv.ci_high)):
            if v is not None:
                metrics[name] = EvalMetric(name=name, value=v)
        out.append(EvalScore(name=m, scorer=m, scored_samples=n_scored.get(m), metrics=metrics,
                             metadata={"higher_is_better": mv.higher_is_better, "ci_method": mv.ci_method}))
    return out


def _log(result: RunResult, name: str, task: TaskResult, samples: list[SampleRecord]) -> Any:
    ilog = _import()
    model = f"{result.model.get('backend') or 'evalmon'}/{result.model.get('model') or result.run_id}"
    n_scored = {m: sum(1 for s in samples if m in s.scores) for m in task.metrics}
    spec = ilog.EvalSpec(
        run_id=result.run_id, created=result.started_at, task=name, task_version=task.config_hash,
        dataset=ilog.EvalDataset(name=task.source, samples=task.n, sample_ids=[s.doc_id for s in samples]),
        model=model, config=ilog.EvalConfig(log_samples=bool(samples)),
        metadata={"evalmon": {"run_id": result.run_id, "suite": result.suite_name, "task": name,
                              "config_hash": task.config_hash, "num_fewshot": task.num_fewshot,
                              "lm_eval_task": task.lm_eval_task}})
    return ilog.EvalLog(
        status=_STATUS.get(result.status, "started"), eval=spec,
        results=ilog.EvalResults(total_samples=task.n, completed_samples=task.n,
                                 scores=_scores(task, n_scored)),
        stats=ilog.EvalStats(started_at=result.started_at, completed_at=result.finished_at or ""),
        samples=[_sample(s, model, i) for i, s in enumerate(samples)] or None)


def write_inspect(result: RunResult, samples: list[SampleRecord] | None, out_dir: Path) -> list[Path]:
    """One inspect_ai ``.eval`` log per task of ``result`` under ``out_dir``; returns the files written."""
    ilog = _import()
    folder = Path(out_dir).expanduser()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"--out {out_dir}: cannot create it ({exc.strerror or exc})",
                          hint="pass a writable directory") from None
    stamp = re.sub(r"[^0-9A-Za-z]+", "-", result.started_at).strip("-")
    written = []
    for name, task in result.tasks.items():
        rows = [s for s in samples or [] if s.task == name]
        safe = re.sub(r'[^0-9A-Za-z_.-]+', '-', f"{name}_{result.run_id}")  # RUN#adapter: '#' is a URL fragment
        path = folder / f"{stamp}_{safe}.eval"
        ilog.write_eval_log(_log(result, name, task, rows), path)
        written.append(path)
    return written

"""lm-eval's results layout, both ways: what ``lm_eval --output_path DIR --log_samples`` writes.

lm-eval 0.4.x writes ``DIR/<model_name_sanitized>/results_<date>.json`` (``results[task]["acc,none"]``,
``"acc_stderr,none"``, ``alias``, ``group_subtasks``, ``configs``, ``versions``, ``n-shot``,
``higher_is_better``, ``n-samples`` {original, effective}, ``config`` — the model —, library versions) and,
per task, ``samples_<task>_<date>.jsonl`` (``doc_id``, ``doc``, ``target``, ``arguments``, ``resps``,
``filtered_resps``, ``metrics`` and one value per metric, ``prompt_hash`` = sha256 of the first request's
context).

* :func:`write_lmeval` writes an evalmon run in that layout. What evalmon does not keep is left empty and
  said so in ``configs[task]["metadata"]["evalmon"]["missing"]``: the raw document (``doc`` holds only the
  choices), the request ``arguments`` (evalmon keeps a 16-hex prompt hash, written as ``prompt_hash``),
  lm-eval's task ``versions`` (null) and ``task_hashes``. Enough evalmon provenance rides along under
  ``evalmon`` keys for :func:`read_lmeval` to give back the same run.
* :func:`read_lmeval` reads such a directory (or one ``results_*.json``) into evalmon's ``RunResult`` and
  ``SampleRecord``s: tasks keep their names (the parity export's ``evalmon_parity_`` prefix is dropped),
  ``m,none`` → ``m`` (another filter ``f`` → ``m_f``), TruthfulQA's ``acc`` → ``mc1``/``mc2``;
  per-document scores come from the samples files (absent: the run is read without samples). Documents
  are ``<split>/<doc_id>`` — evalmon's ids for the rows lm-eval numbers from 0 in its evaluation split.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from evalmon.core.errors import ConfigError, DataError
from evalmon.core.jsonout import to_json
from evalmon.core.results import (
    GroupResult,
    MetricValue,
    Provenance,
    RunResult,
    SampleRecord,
    TaskResult,
    atomic_write,
    clip_prompt,
)

PARITY_PREFIX = "evalmon_parity_"  # evalmon.harness.parity.PREFIX (harness sits above sinks)
HASH_PREFIX = "lm-eval:"  # config_hash of a task read from lm-eval: not comparable with evalmon's hashes
#: evalmon task → {evalmon metric: lm-eval metric}, where they differ
METRIC_NAMES = {"truthfulqa_mc1": {"mc1": "acc"}, "truthfulqa_mc2": {"mc2": "acc"}}
_BINARY = {"acc", "acc_norm", "mc1", "exact_match"}
_MISSING = ["doc (only choices kept)", "arguments (only the prompt hash kept)", "versions", "task_hashes"]
#: with the prompt text in samples.jsonl.gz, ``arguments`` holds it (clipped) and each continuation
_MISSING_WITH_TEXT = ["doc (only choices kept)", "arguments' full prompt (its last 2000 chars kept) and "
                      "generation kwargs", "versions", "task_hashes"]


def sanitize_model_name(name: str) -> str:
    """lm-eval's ``utils.sanitize_model_name`` (the results sub-folder)."""
    return re.sub(r"[\"<>:/|\\?*\[\]]+", "__", name)


# --------------------------------------------------------------------------- evalmon → lm-eval
def _lm_task(name: str, task: TaskResult) -> str:
    return task.lm_eval_task or name


def _lm_names(result: RunResult) -> dict[str, str]:
    """evalmon task → its name in the export: the lm-eval task it mirrors, unless an earlier task (or a group)
    already has that name — ``pubmedqa`` and ``pubmedqa_cls`` both mirror ``pubmedqa`` — then its own name:
    one results entry and one samples file per task, none written over another."""
    taken = set(result.groups)
    out: dict[str, str] = {}
    for name, t in result.tasks.items():
        lm = _lm_task(name, t)
        if lm in taken:
            lm = name
        base, k = lm, 2
        while lm in taken:
            lm, k = f"{base}_{k}", k + 1
        taken.add(lm)
        out[name] = lm
    return out


def _lm_metric(task: str, metric: str) -> str:
    return METRIC_NAMES.get(task, {}).get(metric, metric)


def _metric_block(task: str, metrics: dict[str, MetricValue]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for m, mv in metrics.items():
        name = _lm_metric(task, m)
        out[f"{name},none"] = mv.value
        out[f"{name}_stderr,none"] = "N/A" if mv.stderr is None else mv.stderr
    return out


def _date_id(result: RunResult) -> str:
    return (result.finished_at or result.started_at).replace(":", "-").replace("+00-00", "")


def _model_config(result: RunResult) -> dict[str, Any]:
    m = result.model
    args = ",".join(f"{k}={v}" for k, v in (("pretrained", m.get("model")), ("revision", m.get("revision")),
                                            ("dtype", m.get("dtype")), ("peft", m.get("adapter"))) if v)
    return {"model": m.get("backend"), "model_args": args, "model_dtype": m.get("dtype"),
            "model_revision": m.get("revision"), "model_sha": m.get("weights_hash"),
            "batch_size": m.get("batch_size"), "device": m.get("device"), "limit": None,
            "random_seed": result.provenance.seed}


def _sample_out(task: str, s: SampleRecord) -> dict[str, Any]:
    _, _, idx = s.doc_id.rpartition("/")
    resps = [[[str(ll), str(g)]] for ll, g in zip(s.loglikelihoods, s.is_greedy, strict=False)] or [
        [o] for o in s.outputs]
    out: dict[str, Any] = {
        "doc_id": int(idx) if idx.isdigit() else s.doc_id, "doc": {"choices": s.choices} if s.choices else {},
        "target": str(s.target), "arguments": _arguments(s), "resps": resps, "filtered_resps": [r[0] for r in resps],
        "filter": "none", "metrics": [_lm_metric(task, m) for m in s.scores], "prompt_hash": s.prompt_hash,
        "evalmon_doc_id": s.doc_id}
    out.update({_lm_metric(task, m): v for m, v in s.scores.items()})
    return out


def _arguments(s: SampleRecord) -> dict[str, Any]:
    """lm-eval's ``arguments`` (``gen_args_<i>``: ``arg_0`` context, ``arg_1`` continuation / generation
    kwargs) from the sample's prompt text; empty when the run did not keep it."""
    if s.prompt is None:
        return {}
    if s.choices:
        return {f"gen_args_{i}": {"arg_0": s.prompt, "arg_1": c} for i, c in enumerate(s.choices)}
    return {"gen_args_0": {"arg_0": s.prompt, "arg_1": {}}}


def write_lmeval(result: RunResult, samples: list[SampleRecord] | None, out_dir: Path) -> list[Path]:
    """Write ``result`` (and its samples) as lm-eval's ``--output_path out_dir --log_samples`` would;
    returns the files written (``out_dir/<model>/results_<date>.json``, ``samples_<task>_<date>.jsonl``)."""
    model = str(result.model.get("model") or result.run_id)
    folder = Path(out_dir).expanduser() / sanitize_model_name(model)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"--out {out_dir}: cannot create {folder} ({exc.strerror or exc})",
                          hint="pass a writable directory") from None
    date = _date_id(result)
    lm_names = _lm_names(result)
    results: dict[str, Any] = {}
    configs: dict[str, Any] = {}
    with_text = {s.task for s in samples or [] if s.prompt is not None}
    for name, t in result.tasks.items():
        lm = lm_names[name]
        results[lm] = {"alias": lm, "sample_len": t.n, **_metric_block(name, t.metrics)}
        evalmon = {"name": name, "lm_eval_task": t.lm_eval_task, "config_hash": t.config_hash, "source": t.source,
                   "metric_kinds": t.metric_kinds,
                   "missing": _MISSING_WITH_TEXT if name in with_text else _MISSING,
                   "metrics": {m: mv.model_dump(mode="json") for m, mv in t.metrics.items()}}
        configs[lm] = {"task": lm, "num_fewshot": t.num_fewshot, "evalmon_config": t.config,
                       "metric_list": [{"metric": _lm_metric(name, m), "higher_is_better": mv.higher_is_better}
                                       for m, mv in t.metrics.items()],
                       "metadata": {"version": None, "evalmon": evalmon}}
    grouped = {m for g in result.groups.values() for m in g.members}
    subtasks: dict[str, list[str]] = {}
    groups: dict[str, Any] = {}
    for name, g in result.groups.items():
        groups[name] = {"alias": name, "sample_len": g.n, **_metric_block(name, g.metrics),
                        "evalmon_metrics": {m: mv.model_dump(mode="json") for m, mv in g.metrics.items()}}
        subtasks[name] = [lm_names.get(m, m) for m in g.members]
    subtasks.update({lm_names[n]: [] for n in result.tasks if n not in grouped})
    ts = datetime.fromisoformat(result.started_at).timestamp() if result.started_at else None
    doc = {
        "results": {**groups, **results}, "groups": groups, "group_subtasks": subtasks, "configs": configs,
        "versions": {lm_names[n]: None for n in result.tasks},
        "n-shot": {lm_names[n]: t.num_fewshot for n, t in result.tasks.items()},
        "higher_is_better": {lm_names[n]: {_lm_metric(n, m): mv.higher_is_better for m, mv in t.metrics.items()}
                             for n, t in result.tasks.items()},
        "n-samples": {lm_names[n]: {"original": t.n, "effective": t.n} for n, t in result.tasks.items()},
        "config": _model_config(result), "git_hash": result.provenance.git_commit, "date": ts,
        "transformers_version": result.provenance.transformers_version,
        "lm_eval_version": result.provenance.lm_eval_version, "model_name": model,
        "model_name_sanitized": sanitize_model_name(model), "max_length": result.model.get("max_length"),
        "evalmon": {"run": result.model_dump(mode="json", include={
            "schema_version", "run_id", "suite_name", "suite_hash", "suite_path", "suite_config", "started_at",
            "finished_at", "status", "error", "provenance", "model"})},
    }
    written = [folder / f"results_{date}.json"]
    text = to_json(doc)
    atomic_write(written[0], lambda tmp: tmp.write_text(text, encoding="utf-8"))
    by_task: dict[str, list[SampleRecord]] = {}
    for s in samples or []:
        by_task.setdefault(s.task, []).append(s)
    for name, recs in by_task.items():
        path = folder / f"samples_{lm_names.get(name, name)}_{date}.jsonl"
        lines = "".join(to_json(_sample_out(name, s), indent=None) + "\n" for s in recs)
        atomic_write(path, lambda tmp, body=lines: tmp.write_text(body, encoding="utf-8"))
        written.append(path)
    return written


# --------------------------------------------------------------------------- lm-eval → evalmon
def find_results(path: Path) -> Path | None:
    """The ``results_*.json`` that ``path`` names (the file, or the newest in the directory or its one
    sub-folder per model); None when ``path`` is not lm-eval output."""
    p = Path(path).expanduser()
    if p.is_file():
        return p if p.name.startswith("results_") and p.suffix == ".json" else None
    if not p.is_dir() or (p / "results.json").exists():
        return None
    found = sorted(p.glob("results_*.json")) or sorted(p.glob("*/results_*.json"))
    return found[-1] if found else None


def _evalmon_name(lm_task: str) -> str:
    return lm_task.removeprefix(PARITY_PREFIX)


def _metric_name(task: str, lm_metric: str) -> str:
    m, _, flt = lm_metric.partition(",")
    reverse = {v: k for k, v in METRIC_NAMES.get(task, {}).items()}
    m = reverse.get(m, m)
    return m if flt in ("", "none") else f"{m}_{re.sub(r'[^A-Za-z0-9]+', '_', flt).strip('_')}"


def _metrics(task: str, block: dict[str, Any], hib: dict[str, Any]) -> dict[str, MetricValue]:
    out: dict[str, MetricValue] = {}
    for key, value in block.items():
        if "," not in key or "_stderr," in key or not isinstance(value, int | float) or isinstance(value, bool):
            continue
        m, _, flt = key.partition(",")
        se = block.get(f"{m}_stderr,{flt}")
        stderr = float(se) if isinstance(se, int | float) and not isinstance(se, bool) else None
        out[_metric_name(task, key)] = MetricValue.with_ci(float(value), stderr, bool(hib.get(m, True)))
    return out


def _stored(metrics: Any) -> dict[str, MetricValue]:
    """The exact evalmon metrics (CIs included) an ``evalmon export`` kept next to lm-eval's numbers."""
    return {m: MetricValue.model_validate(v) for m, v in metrics.items()} if isinstance(metrics, dict) else {}


def _leaves(members: list[str], subtasks: dict[str, list[str]]) -> list[str]:
    """The tasks under ``members``, sub-groups expanded (lm-eval nests groups: mmlu → mmlu_stem → …)."""
    out: list[str] = []
    for m in members:
        out += _leaves(subtasks[m], subtasks) if subtasks.get(m) else [m]
    return out


def _bos_policy(model_args: Any) -> str:
    args = model_args if isinstance(model_args, dict) else dict(
        kv.split("=", 1) for kv in str(model_args or "").split(",") if "=" in kv)
    flag = str(args.get("add_bos_token", "")).lower()
    return "always" if flag == "true" else "never" if flag == "false" else "tokenizer-default"


def _samples(folder: Path, lm_task: str, name: str, split: str) -> list[SampleRecord] | None:
    # samples_<task>_<date>.jsonl exactly: the glob alone also matches samples_<task>_cls_<date>.jsonl of another
    # task whose name extends this one (lambada_openai / lambada_openai_cloze_yaml, pubmedqa / pubmedqa_cls)
    own = re.compile(re.escape(f"samples_{lm_task}_") + r"\d{4}-\d\d-\d\dT[0-9.+\-]+\.jsonl")
    files = sorted(f for f in folder.glob(f"samples_{lm_task}_*.jsonl") if own.fullmatch(f.name))
    if not files:
        return None
    out = []
    try:
        for line in files[-1].read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            s = json.loads(line)
            out.append(_sample_in(s, name, split))
    except (OSError, ValueError, KeyError, TypeError, IndexError) as exc:
        raise DataError(f"{files[-1]}: not an lm-eval samples file ({type(exc).__name__}: {exc})",
                        hint="re-run lm-eval with --log_samples or delete the file to gate unpaired") from None
    return out


def _sample_in(s: dict[str, Any], name: str, split: str) -> SampleRecord:
    args = s.get("arguments") or {}
    first = next(iter(args.values()), {}) if isinstance(args, dict) else (args[0] if args else [])
    context = first.get("arg_0") if isinstance(first, dict) else (first[0] if first else None)
    prompt_hash = (s.get("prompt_hash") or hashlib.sha256(str(context).encode()).hexdigest())[:16]
    lls, greedy, outputs = [], [], []
    for r in s.get("filtered_resps") or []:
        if isinstance(r, list) and len(r) == 2 and str(r[1]) in ("True", "False"):
            lls.append(float(r[0]))
            greedy.append(str(r[1]) == "True")
        elif isinstance(r, str):
            outputs.append(r)
    scores = {_metric_name(name, m): None if s[m] is None else float(s[m]) for m in s.get("metrics", [])
              if m in s and (s[m] is None or isinstance(s[m], int | float))}  # null: NaN (written by export)
    doc = s.get("doc") if isinstance(s.get("doc"), dict) else {}
    choices = doc.get("choices") if isinstance(doc.get("choices"), list) else []
    doc_id = s.get("evalmon_doc_id") or f"{split}/{s['doc_id']}"
    return SampleRecord(task=name, doc_id=str(doc_id), prompt_hash=prompt_hash, target=s.get("target"),
                        choices=[str(c) for c in choices], loglikelihoods=lls, is_greedy=greedy,
                        outputs=outputs, scores=scores,
                        prompt=clip_prompt(context) if isinstance(context, str) else None)


def read_lmeval(results_file: Path) -> tuple[RunResult, list[SampleRecord] | None, list[str]]:
    """(run, samples or None, loud notes) from an lm-eval ``results_*.json`` and its samples files."""
    try:
        data = json.loads(results_file.read_text(encoding="utf-8"))
        if not isinstance(data, dict) or not isinstance(data.get("results"), dict):
            raise ValueError("no 'results' object")
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{results_file}: not an lm-eval results file ({exc})",
                          hint="pass the directory `lm_eval --output_path` wrote, or its results_*.json") from None
    stored = (data.get("evalmon") or {}).get("run") or {}
    configs, subtasks = data.get("configs") or {}, data.get("group_subtasks") or {}
    nsamples, nshot, hib = data.get("n-samples") or {}, data.get("n-shot") or {}, data.get("higher_is_better") or {}
    group_names = {g for g, members in subtasks.items() if members}
    tasks: dict[str, TaskResult] = {}
    samples: list[SampleRecord] = []
    missing: list[str] = []
    for lm_task, block in data["results"].items():
        if lm_task in group_names or lm_task not in configs:
            continue
        cfg = configs[lm_task] if isinstance(configs[lm_task], dict) else {}
        meta = (cfg.get("metadata") or {}).get("evalmon") or {}
        name = meta.get("name") or _evalmon_name(lm_task)
        n = int((nsamples.get(lm_task) or {}).get("effective") or block.get("sample_len") or 0)
        split = cfg.get("test_split") or cfg.get("validation_split") or "test"
        task_hash = (data.get("task_hashes") or {}).get(lm_task) or hashlib.sha256(
            json.dumps(cfg, sort_keys=True, default=str).encode()).hexdigest()
        source = meta.get("source") or f"lm-eval {cfg.get('dataset_path', '?')}" + (
            f" {cfg['dataset_name']}" if cfg.get("dataset_name") else "")
        recs = _samples(results_file.parent, lm_task, name, split)
        metrics = _stored(meta.get("metrics")) or _metrics(name, block, hib.get(lm_task) or {})
        kinds = meta.get("metric_kinds") or {m: "binary" if (
            all(r.scores.get(m) in (0.0, 1.0) for r in recs) if recs else m in _BINARY) else "continuous"
            for m in metrics}
        tasks[name] = TaskResult(
            name=name, n=n, num_fewshot=int(nshot.get(lm_task) or cfg.get("num_fewshot") or 0), source=source,
            config_hash=meta.get("config_hash") or HASH_PREFIX + task_hash[:16],
            config=cfg.get("evalmon_config", cfg) if meta else cfg, metrics=metrics, metric_kinds=kinds,
            lm_eval_task=meta.get("lm_eval_task") or _evalmon_name(lm_task))
        if recs is None:
            missing.append(lm_task)
        else:
            samples += recs
    if not tasks:
        raise ConfigError(f"{results_file}: lm-eval results name no task with a config",
                          hint="pass the results_*.json of an lm-eval run (lm_eval --output_path … )")
    groups = {}
    for g, members in subtasks.items():
        names = [_evalmon_name(m) for m in _leaves(members, subtasks) if _evalmon_name(m) in tasks]
        block = data["results"].get(g)
        metrics = (_stored(block.get("evalmon_metrics")) or _metrics(g, block, {})) if isinstance(block, dict) else {}
        if members and names and metrics:  # a group lm-eval reports no aggregate for is left out
            groups[_evalmon_name(g)] = GroupResult(name=_evalmon_name(g), n=sum(tasks[m].n for m in names),
                                                   members=names, metrics=metrics)
    notes = [f"{results_file.parent}/samples_{t}_*.jsonl is missing: per-document samples unavailable, "
             "tests fall back to unpaired" for t in missing]
    return _run(data, stored, results_file, tasks, groups), (samples or None), notes


def _run(data: dict[str, Any], stored: dict[str, Any], path: Path, tasks: dict[str, TaskResult],
         groups: dict[str, GroupResult]) -> RunResult:
    if stored:
        return RunResult.model_validate({**stored, "tasks": tasks, "groups": groups})
    cfg = data.get("config") or {}
    date = data.get("date")
    started = (datetime.fromtimestamp(float(date), UTC) if isinstance(date, int | float)
               else datetime.fromtimestamp(path.stat().st_mtime, UTC)).isoformat(timespec="seconds")
    prov = Provenance(evalmon_version="n/a (lm-eval output)", lm_eval_version=data.get("lm_eval_version"),
                      transformers_version=data.get("transformers_version"), python_version="unknown",
                      platform="unknown", hostname="unknown", git_commit=data.get("git_hash"),
                      command=f"lm_eval (read from {path})", seed=int(cfg.get("random_seed") or 0))
    model_name = data.get("model_name") or cfg.get("model_args") or cfg.get("model")
    model = {"backend": f"lm-eval {cfg.get('model')}", "model": model_name,
             "dtype": str(cfg.get("model_dtype") or "").removeprefix("torch.") or None,
             "bos_policy": _bos_policy(cfg.get("model_args")), "max_length": data.get("max_length"),
             "revision": cfg.get("model_revision"), "batch_size": cfg.get("batch_size")}
    suite_hash = hashlib.sha256(json.dumps(data.get("task_hashes") or sorted(tasks), sort_keys=True)
                                .encode()).hexdigest()[:16]
    return RunResult(run_id=f"lm-eval-{path.stem.removeprefix('results_')}", suite_name="lm-eval",
                     suite_hash=suite_hash, suite_path=str(path), started_at=started, finished_at=started,
                     status="finished", provenance=prov, model=model, tasks=tasks, groups=groups)


__all__ = ["find_results", "read_lmeval", "sanitize_model_name", "write_lmeval"]

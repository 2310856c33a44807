"""``replay``: the candidate answers logged production prompts (a dataset written by ``evalmon traffic to-suite``).

Documents: the JSONL rows ``{id, prompt, messages?, production, reference?, contexts?, provenance}``; the doc
id is the logged request id, so the per-document scores of two replay runs pair and ``evalmon gate`` compares
them unchanged. ``prompt_hash`` hashes the logged prompt only (not the system prompt), so pairing holds when
the two runs differ by ``system_prompt``.

Stages (the harness runs them; this task never touches a model):

1. role ``candidate``: one greedy generation per prompt — the logged chat ``messages`` when the row has them,
   else one user turn — with ``options.system_prompt`` as a leading system turn (the HF model config has no
   system prompt; this option is a property of the candidate, so it is kept OUT of the task config hash and
   recorded in the result's notes instead);
2. role ``judge`` (only with ``scoring: [pairwise, …]``): FastChat's ``pair-v2`` judge prompt in both orders
   (candidate as A vs the logged production answer as B, then swapped), parsed and combined with the judge
   machinery of ``evalmon.judge`` (``parse_pairwise``, ``pairwise.combine``: FastChat's tie rule); the judge
   is ``options.judge`` (any backend, through the one judge factory).

Scoring (``options.scoring``, any of):

* ``signals``: the monitor's own per-record signals applied to the candidate's answers, looked up in the
  registry (``registry.signals``; tasks do not import the monitor): per signal its 0/1 column is a per-document
  metric (``refusal.refused``, ``pii.any``, ``hallucination.flag`` with the logged contexts, ``safety.unsafe``;
  lower is better; a signal that cannot score an answer leaves the document out of its metric — hallucination
  without contexts, refusal for an empty answer since refusal v6 — and the gate notes the documents left out).
  ``options.signals`` lists them (default ``[refusal, {name: pii, nlp: none}]``);
* ``reference`` (rows with a ``reference``): ``exact_match`` (whitespace-stripped), ``f1`` (SQuAD token F1)
  and ``bleu`` (sacrebleu corpus BLEU, bootstrap stderr);
* ``pairwise``: ``win_rate`` per document (win 1, tie 0.5, loss 0; a missing verdict leaves the document out),
  plus win/loss/tie/inconsistent counts.

The dataset's provenance (monitor name, the monitor window MLflow run ids) goes into the task config as
``mlflow_tags`` and from there onto the MLflow run as tags (``evalmon.replay.*``).
"""

from __future__ import annotations

import hashlib
import json
import re
import string
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evalmon.core import registry
from evalmon.core.errors import ConfigError, DataError
from evalmon.core.lm import GenRequest
from evalmon.core.results import MetricValue
from evalmon.data.local import malformed, read_jsonl
from evalmon.judge import pairwise as pw
from evalmon.judge.factory import judge_config
from evalmon.judge.parse import parse_pairwise
from evalmon.judge.prompts import JudgePrompt, Question, Rendered, load_judge_prompts, render
from evalmon.tasks._options import check_keys
from evalmon.tasks.base import CANDIDATE, MetricSpec, Stage, StageOutputs, Task, TaskOptions

NAME = "replay"
OPTIONS = ("dataset", "scoring", "signals", "system_prompt", "max_new_tokens", "judge", "judge_max_tokens",
           "judge_prompts", "verdict_rule")
SCORINGS = ("signals", "reference", "pairwise")
DEFAULT_SIGNALS: list[Any] = ["refusal", {"name": "pii", "nlp": "none"}]
FLAG_COLUMNS = {"refusal": "refusal.refused", "pii": "pii.any", "hallucination": "hallucination.flag",
                "safety": "safety.unsafe"}
JUDGE_PROMPT = "pair-v2"


@dataclass(frozen=True)
class ReplayDoc:
    id: str
    prompt: str
    production: str
    messages: tuple[tuple[str, str], ...] | None = None
    reference: str | None = None
    contexts: tuple[str, ...] = ()
    provenance: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)


def load_docs(path: Path) -> list[ReplayDoc]:
    if not path.is_file():
        raise DataError(f"{NAME}: dataset not found: {path}",
                        hint="write one with `evalmon traffic to-suite MONITOR.yaml … --out suite.yaml`")
    docs, seen = [], set()
    for lineno, row in read_jsonl(path):
        if not isinstance(row, dict) or not isinstance(row.get("prompt"), str) or "id" not in row:
            raise malformed(path, f"line {lineno}", "a replay row needs an id and a prompt string")
        rid = str(row["id"])
        if rid in seen:
            raise malformed(path, f"line {lineno}", f"duplicate id {rid!r} (ids pair documents across runs)")
        seen.add(rid)
        msgs = row.get("messages")
        messages = tuple((str(m.get("role", "user")), str(m.get("content", ""))) for m in msgs) \
            if isinstance(msgs, list) and msgs and all(isinstance(m, dict) for m in msgs) else None
        ref = row.get("reference")
        docs.append(ReplayDoc(rid, row["prompt"], str(row.get("production") or ""), messages,
                              None if ref is None else str(ref),
                              tuple(str(c) for c in row.get("contexts") or ()), dict(row.get("provenance") or {})))
    if not docs:
        raise DataError(f"{NAME}: dataset {path} has no rows")
    return docs


# --------------------------------------------------------------------------- reference metrics
def _normalize(text: str) -> list[str]:
    """SQuAD's answer normalisation (lower, no punctuation, no articles, single spaces) → tokens."""
    text = "".join(ch for ch in text.lower() if ch not in set(string.punctuation))
    return re.sub(r"\b(a|an|the)\b", " ", text).split()


def token_f1(prediction: str, reference: str) -> float:
    pred, ref = _normalize(prediction), _normalize(reference)
    if not pred or not ref:
        return float(pred == ref)
    common = sum((Counter(pred) & Counter(ref)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(ref)
    return 2 * precision * recall / (precision + recall)


def _bleu_stderr(items: list[Any], iters: int, seed: int) -> Any:
    from evalmon.metrics.intervals import estimate_of
    from evalmon.metrics.text import corpus_score

    hyps, refs = [h for h, _ in items], [list(r) for _, r in items]
    return estimate_of(corpus_score("bleu", hyps, list(map(list, zip(*refs, strict=True))), n_bootstrap=iters,
                                    seed=seed))


# --------------------------------------------------------------------------- the task
@dataclass
class ReplayTask(Task):
    documents: list[ReplayDoc]
    source: str
    dataset_id: str
    scoring: tuple[str, ...]
    signal_cfgs: list[Any]
    system_prompt: str | None = None
    max_new_tokens: int = 256
    judge_cfg: Any = None
    judge_max_tokens: int = 512
    judge_prompt: JudgePrompt | None = None
    verdict_rule: str = "last"
    tags: dict[str, str] = field(default_factory=dict)
    seed: int = 1234
    name: str = NAME
    num_fewshot: int = 0
    metrics: dict[str, MetricSpec] = field(init=False)
    _signals: list[Any] | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self.metrics = {}
        if "signals" in self.scoring:
            for c in self.flag_columns():
                self.metrics[c] = MetricSpec(c, higher_is_better=False)
        if "reference" in self.scoring:
            from evalmon.metrics.text import corpus_from_items

            self.metrics["exact_match"] = MetricSpec("exact_match")
            self.metrics["f1"] = MetricSpec("f1", kind="continuous")
            self.metrics["bleu"] = MetricSpec("bleu", aggregation="corpus", kind="corpus",
                                              corpus=corpus_from_items("bleu"), stderr_fn=_bleu_stderr)
        if "pairwise" in self.scoring:
            self.metrics["win_rate"] = MetricSpec("win_rate", kind="continuous")

    def flag_columns(self) -> list[str]:
        return [FLAG_COLUMNS.get(c.name, f"{c.name}.flag") for c in self.signal_cfgs]

    def docs(self) -> Sequence[ReplayDoc]:
        return self.documents

    def stages(self) -> list[Stage]:
        generate = frozenset({"generate"})
        out = [Stage(CANDIDATE, self._answer, needs=generate, max_new_tokens=self.max_new_tokens)]
        if "pairwise" in self.scoring:
            out.append(Stage("judge", self._judge_requests, needs=generate, model=self.judge_cfg,
                             max_new_tokens=self.judge_max_tokens, option="judge_max_tokens"))
        return out

    def progress_total(self) -> int:
        return len(self.documents) * (3 if "pairwise" in self.scoring else 1)

    def config(self) -> dict[str, Any]:
        return {"name": NAME, "dataset": self.dataset_id, "scoring": list(self.scoring),
                "signals": [c.model_dump(mode="json") for c in self.signal_cfgs],
                "max_new_tokens": self.max_new_tokens,
                "judge": None if self.judge_cfg is None else self.judge_cfg.model_dump(mode="json"),
                "judge_max_tokens": self.judge_max_tokens if self.judge_cfg is not None else None,
                "judge_prompt": JUDGE_PROMPT if self.judge_cfg is not None else None,
                "verdict_rule": self.verdict_rule, "mlflow_tags": self.tags}

    # ------------------------------------------------------------------ stage 1: the candidate answers
    def messages(self, doc: ReplayDoc) -> tuple[tuple[str, str], ...]:
        turns = list(doc.messages or (("user", doc.prompt),))
        if self.system_prompt:
            turns = [("system", self.system_prompt), *[t for t in turns if t[0] != "system"]]
        return tuple(turns)

    def _answer(self, doc: ReplayDoc, prior: Sequence[Sequence[str]]) -> list[GenRequest]:
        return [GenRequest("", max_gen_toks=self.max_new_tokens, temperature=0.0, messages=self.messages(doc))]

    # ------------------------------------------------------------------ stage 2: the judge
    def _rendered(self, doc: ReplayDoc, answer: str) -> list[Rendered]:
        assert self.judge_prompt is not None
        q = Question(doc.id, "general", (doc.prompt,))
        return [render(self.judge_prompt, q, [[answer], [doc.production]], None, 1),
                render(self.judge_prompt, q, [[doc.production], [answer]], None, 1)]

    def _judge_requests(self, doc: ReplayDoc, prior: Sequence[Sequence[str]]) -> list[GenRequest]:
        return [GenRequest("", max_gen_toks=self.judge_max_tokens, temperature=0.0,
                           messages=(("system", r.system), ("user", r.user)))
                for r in self._rendered(doc, str(prior[0][0]).strip())]

    def _pair(self, doc: ReplayDoc, results: StageOutputs) -> pw.PairResult:
        rendered = self._rendered(doc, str(results.stages[0][0]).strip())
        v = [parse_pairwise(str(t), r.sources, rule=self.verdict_rule)  # type: ignore[arg-type]
             for t, r in zip(results.stages[1], rendered, strict=True)]
        return pw.combine(v[0], v[1])

    # ------------------------------------------------------------------ scores
    def _signal_objs(self) -> list[Any]:
        if self._signals is None:
            self._signals = [registry.signals.get(c.name)(c) for c in self.signal_cfgs]
        return self._signals

    def signal_flags(self, doc: ReplayDoc, answer: str) -> dict[str, float]:
        import pandas as pd

        frame = pd.DataFrame({"request_id": [doc.id], "prompt": [doc.prompt], "response": [answer],
                              "contexts": [list(doc.contexts)]})
        out: dict[str, float] = {}
        for sig, col in zip(self._signal_objs(), self.flag_columns(), strict=True):
            cols = sig.compute(frame)
            if col in cols.columns and pd.notna(cols[col].iloc[0]):
                out[col] = float(cols[col].iloc[0] > 0.5)
        return out

    def score(self, doc: ReplayDoc, results: Sequence[Any]) -> dict[str, Any]:
        assert isinstance(results, StageOutputs)
        answer = str(results.stages[0][0]).strip()
        out: dict[str, Any] = {}
        if "signals" in self.scoring:
            out.update(self.signal_flags(doc, answer))
        if "reference" in self.scoring and doc.reference is not None:
            out["exact_match"] = float(answer == doc.reference.strip())
            out["f1"] = token_f1(answer, doc.reference)
            out["bleu"] = [answer, [doc.reference]]
        if "pairwise" in self.scoring:
            value = pw.outcome_value(self._pair(doc, results).outcome)
            if value is not None:
                out["win_rate"] = value
        return out

    def sample_fields(self, doc: ReplayDoc, results: Sequence[Any]) -> dict[str, Any]:
        assert isinstance(results, StageOutputs)
        extra: dict[str, Any] = {"production": doc.production, "provenance": doc.provenance}
        if doc.reference is not None:
            extra["reference"] = doc.reference
        if "pairwise" in self.scoring:
            res = self._pair(doc, results)
            extra.update(outcome=res.outcome, inconsistent=res.inconsistent, judge_outputs=list(results.stages[1]))
        return {"prompt_hash": hashlib.sha256(doc.prompt.encode()).hexdigest()[:16],
                "outputs": [str(results.stages[0][0])], "target": doc.reference, "extra": extra}

    def finish(self, result: Any, per_metric: dict[str, list[Any]], seed: int,
               samples: Sequence[Any] = (), outputs: Sequence[StageOutputs] = ()) -> Any:
        if self.system_prompt:
            result.notes["system_prompt"] = f"candidate system prompt (not in the config hash): {self.system_prompt}"
        if "pairwise" in self.scoring:
            c = pw.counts([s.extra.get("outcome", "error") for s in samples])
            tallies = {"wins": (c["win"], True), "losses": (c["loss"], False), "ties": (c["tie"], False),
                       "errors": (c["error"], False),
                       "inconsistent": (sum(bool(s.extra.get("inconsistent")) for s in samples), False)}
            for k, (v, hib) in tallies.items():
                result.metrics[k] = MetricValue(value=float(v), higher_is_better=hib)
                result.metric_kinds[k] = "count"
        return result


def _file_id(path: Path) -> str:
    return f"{path.name}@{hashlib.sha256(path.read_bytes()).hexdigest()[:12]}"


def _tags(path: Path, docs: Sequence[ReplayDoc]) -> dict[str, str]:
    """MLflow tags from the dataset's provenance: the monitor and its window runs the records came from."""
    prov: dict[str, Any] = {}
    side = path.with_suffix(".provenance.json")
    if side.is_file():
        try:
            prov = json.loads(side.read_text(encoding="utf-8"))
        except ValueError:
            prov = {}
    runs = sorted({str(d.provenance["monitor_run_id"]) for d in docs if d.provenance.get("monitor_run_id")})
    windows = sorted({str(d.provenance["window"]) for d in docs if d.provenance.get("window")})
    monitors = sorted({str(d.provenance["monitor"]) for d in docs if d.provenance.get("monitor")})
    tags = {"evalmon.replay.dataset": path.name, "evalmon.replay.monitor": ",".join(monitors),
            "evalmon.replay.windows": ",".join(windows), "evalmon.replay.monitor_run_ids": ",".join(runs)}
    if prov.get("from"):
        tags["evalmon.replay.range"] = f"{prov['from']}/{prov.get('to')}"
    return {k: v for k, v in tags.items() if v}


def build(options: TaskOptions) -> ReplayTask:
    extra = check_keys(NAME, options, OPTIONS)
    if options.num_fewshot:
        raise ConfigError(f"{NAME}: num_fewshot must be 0 (replay answers logged prompts as they were)")
    if not isinstance(extra.get("dataset"), str):
        raise ConfigError(f"{NAME}: options.dataset (the replay JSONL) is required",
                          hint="write it with `evalmon traffic to-suite MONITOR.yaml … --out suite.yaml`")
    path = Path(extra["dataset"]).expanduser()
    path = path if path.is_absolute() else (options.base_dir or Path.cwd()) / path
    scoring = extra.get("scoring", ["signals"])
    if isinstance(scoring, str):
        scoring = [scoring]
    bad = [s for s in scoring if s not in SCORINGS] if isinstance(scoring, list) else [scoring]
    if bad or not scoring:
        raise ConfigError(f"{NAME}: options.scoring: unknown {bad[0]!r}" if bad else f"{NAME}: options.scoring is empty",
                          hint=f"any of {', '.join(SCORINGS)}")
    for key in ("max_new_tokens", "judge_max_tokens"):
        v = extra.get(key)
        if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
            raise ConfigError(f"{NAME}: options.{key} must be a positive integer (got {v!r})")
    system = extra.get("system_prompt")
    if system is not None and not isinstance(system, str):
        raise ConfigError(f"{NAME}: options.system_prompt must be a string (got {system!r})")
    signal_cfgs: list[Any] = []
    if "signals" in scoring:
        from evalmon.config.signals import parse_signal_configs

        try:
            signal_cfgs = parse_signal_configs(extra.get("signals", DEFAULT_SIGNALS))
        except ConfigError as exc:
            raise ConfigError(f"{NAME}: options.{exc.one_line()}") from None
    judge_cfg = prompt = None
    if "pairwise" in scoring:
        if "judge" not in extra:
            raise ConfigError(f"{NAME}: scoring pairwise needs options.judge (the judge model config)",
                              hint="e.g. judge: {backend: hf, path: …} or {backend: openai, base_url: …}")
        judge_cfg = judge_config(extra["judge"], base_dir=options.base_dir, where=f"{NAME}: options.judge")
        given = extra.get("judge_prompts")
        if given is not None:
            jp = Path(given) if Path(given).is_absolute() else (options.base_dir or Path.cwd()) / given
        elif options.data_dir is not None:
            jp = Path(options.data_dir).expanduser() / "mt_bench" / "judge_prompts.jsonl"
        else:
            raise ConfigError(f"{NAME}: pairwise judging needs FastChat's judge prompts: set data.data_dir "
                              "(a mirror with mt_bench/judge_prompts.jsonl) or options.judge_prompts")
        prompts = load_judge_prompts(jp)
        if JUDGE_PROMPT not in prompts:
            raise DataError(f"{NAME}: judge prompt {JUDGE_PROMPT} missing from {jp}")
        prompt = prompts[JUDGE_PROMPT]
    docs = load_docs(path)
    if options.limit is not None:
        docs = docs[: options.limit]
    if "reference" in scoring and not any(d.reference is not None for d in docs):
        raise DataError(f"{NAME}: scoring reference, but no row of {path} has a reference",
                        hint="drop `reference` from options.scoring, or log ground truth (source keep: [reference])")
    verdict_rule = extra.get("verdict_rule", "last")
    if verdict_rule not in ("last", "fastchat"):
        raise ConfigError(f"{NAME}: options.verdict_rule must be last or fastchat (got {verdict_rule!r})")
    return ReplayTask(documents=docs, source=str(path), dataset_id=_file_id(path), scoring=tuple(scoring),
                      signal_cfgs=signal_cfgs, system_prompt=system or None,
                      max_new_tokens=extra.get("max_new_tokens") or 256, judge_cfg=judge_cfg,
                      judge_max_tokens=extra.get("judge_max_tokens") or 512, judge_prompt=prompt,
                      verdict_rule=verdict_rule, tags=_tags(path, docs), seed=options.seed)


registry.tasks.add(NAME, build, family="replay", local_source="(a to-suite dataset: options.dataset)",
                   hub_source="(none: logged production traffic)")

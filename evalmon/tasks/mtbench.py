"""MT-Bench (Zheng et al. 2023): two-turn questions answered by the model, graded by an LLM judge.

Stages (the harness runs them; the task never touches a model): answers → judge verdicts → per-question
scores, then the metrics over all questions (``finish``) and one ``SampleRecord`` per question.

* Stages 1–2, role "candidate": the model under test answers turn 1, then turn 2 with its own turn-1
  answer in the chat (``GenRequest.messages``, rendered by the model's chat template), at FastChat's
  per-category temperatures (``temperature_config``: writing/roleplay 0.7, extraction/math/coding/reasoning
  0.0, stem/humanities 0.1; sampled ones are seeded with the suite seed). Or ``options.answers`` names a
  FastChat ``model_answer`` file (path, or a model name under ``<data_dir>/mt_bench/model_answer/``) and
  these stages are skipped.
* Stage 3, role "judge": ``options.judge`` is any evalmon model config (``{backend: hf, path: …}``,
  ``{backend: openai, …}``), validated by the one judge factory (``evalmon.judge.factory``) with its
  backend's config class; the harness builds the judge from it. Judge prompts are FastChat's (see
  ``evalmon.judge.prompts``); judge calls are greedy and go through the engine like every request, so
  they are cached per judge fingerprint and a rerun or resume recomputes none of them.
* ``mode: single`` → 1–10 per turn (``evalmon.judge.single``); ``mode: pairwise`` → against
  ``options.baseline_answers`` in both orders (``evalmon.judge.pairwise``).

Options (suite ``tasks: [{name: mtbench, options: {...}}]``): ``judge`` (required), ``mode``
(``single``; ``pairwise`` when ``baseline_answers`` is set), ``answers``, ``baseline_answers``,
``model_id``, ``turns`` (2), ``question_ids``, ``categories``, ``max_new_tokens`` (1024),
``judge_max_tokens`` (2048, FastChat's), ``temperatures`` (per-category overrides),
``verdict_rule`` (``last`` | ``fastchat``), ``judge_system`` (``message`` | ``inline``: FastChat's
Claude style, for templates without a system role), ``bootstrap_iters`` (1000), and file overrides
``questions``, ``judge_prompts``, ``reference_answers``. Relative paths resolve against the suite file.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import ConfigDict, Field, ValidationError

from evalmon.config.base import ConfigModel, first_error
from evalmon.core import registry
from evalmon.core.errors import ConfigError, DataError, did_you_mean
from evalmon.core.lm import GenRequest, ModelFingerprint
from evalmon.core.results import MetricValue
from evalmon.judge import pairwise as pw
from evalmon.judge.factory import judge_config
from evalmon.judge.parse import Verdict, parse_pairwise, parse_rating
from evalmon.judge.prompts import (
    Answer,
    JudgePrompt,
    Mode,
    Question,
    Rendered,
    load_answers,
    load_judge_prompts,
    load_questions,
    needs_reference,
    prompt_name,
    render,
    temperature_for,
)
from evalmon.judge.single import single_metrics
from evalmon.tasks.base import CANDIDATE, MetricSpec, Stage, StageOutputs, Task, TaskOptions

if TYPE_CHECKING:
    from evalmon.core.results import SampleRecord, TaskResult

NAME = "mtbench"
DIR = "mt_bench"


class MTBenchOptions(ConfigModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    judge: dict[str, Any]
    mode: Literal["single", "pairwise"] | None = None
    answers: str | None = None
    baseline_answers: str | None = None
    model_id: str | None = None
    turns: int = Field(2, ge=1, le=2)
    question_ids: list[int | str] | None = None
    categories: list[str] | None = None
    max_new_tokens: int = Field(1024, ge=1)
    judge_max_tokens: int = Field(2048, ge=1)
    temperatures: dict[str, float] = Field(default_factory=dict)
    verdict_rule: Literal["fastchat", "last"] = "last"  # last own verdict (judge/parse.py); fastchat: A>B>C
    judge_system: Literal["message", "inline"] = "message"
    bootstrap_iters: int = Field(1000, ge=0)
    questions: str | None = None
    judge_prompts: str | None = None
    reference_answers: str | None = None


def _options(options: TaskOptions) -> MTBenchOptions:
    if "judge" not in options.extra:
        raise ConfigError(f"{NAME}: options.judge is required (the judge model config)",
                          hint="e.g. judge: {backend: openai, model: gpt-4, …} or {backend: hf, path: …}")
    try:
        return MTBenchOptions.model_validate(options.extra)
    except ValidationError as e:
        err = first_error(e)
        key = err.where
        if err.type == "extra_forbidden":
            raise ConfigError(f"{NAME}: unknown option {key!r}{did_you_mean(key, list(MTBenchOptions.model_fields))}",
                              hint=f"options: {', '.join(MTBenchOptions.model_fields)}") from None
        raise ConfigError(f"{NAME}: options.{key}: {err.msg}") from None


def _path(value: str, base_dir: Path | None) -> Path:
    p = Path(value).expanduser()
    return p if p.is_absolute() else (base_dir or Path.cwd()) / p


def _answer_file(value: str, data_dir: Path | None, base_dir: Path | None) -> Path:
    """A bare model name (no ``/``, no ``.jsonl``) means ``<data_dir>/mt_bench/model_answer/<name>.jsonl``."""
    if "/" not in value and not value.endswith(".jsonl"):
        if data_dir is None:
            raise ConfigError(f"{NAME}: answer set {value!r} is a model name but data.data_dir is not set",
                              hint="set data.data_dir or give a path to a model_answer .jsonl file")
        return data_dir / DIR / "model_answer" / f"{value}.jsonl"
    return _path(value, base_dir)


@dataclass
class MTBenchTask(Task):
    questions: list[Question]
    opts: MTBenchOptions
    judge_cfg: Any  # the judge's validated model config (the harness builds the judge from it)
    prompts: dict[str, JudgePrompt]
    references: dict[str, Answer]
    answers: dict[str, Answer] | None
    baseline: dict[str, Answer] | None
    source: str
    files: dict[str, str]
    seed: int = 1234
    name: str = NAME
    num_fewshot: int = 0
    metrics: dict[str, MetricSpec] = field(init=False)

    def __post_init__(self) -> None:
        main = "win_rate" if self.mode == "pairwise" else "score"
        self.metrics = {main: MetricSpec(main, kind="continuous")}

    @property
    def mode(self) -> Mode:
        return self.opts.mode or ("pairwise" if self.opts.baseline_answers else "single")

    def docs(self) -> Sequence[Question]:
        return self.questions

    def stages(self) -> list[Stage]:
        """The candidate answers turn by turn (unless answers are given), then the judge grades."""
        generate = frozenset({"generate"})
        answer = [Stage(CANDIDATE, partial(self._answer_requests, t), needs=generate,
                        max_new_tokens=self.opts.max_new_tokens, option="max_new_tokens")
                  for t in range(self.opts.turns)] if self.answers is None else []
        return [*answer, Stage("judge", self._judge_requests, needs=generate, model=self.judge_cfg,
                               max_new_tokens=self.opts.judge_max_tokens, option="judge_max_tokens")]

    def progress_total(self) -> int:
        n = len(self.questions) * self.opts.turns
        return (0 if self.answers is not None else n) + n * (2 if self.mode == "pairwise" else 1)

    def config(self) -> dict[str, Any]:
        return {
            "name": NAME, "mode": self.mode, "turns": self.opts.turns,
            "question_ids": [q.id for q in self.questions],
            "judge": self.judge_cfg.model_dump(mode="json"), "files": self.files,
            "answers": "generated" if self.answers is None else self.files.get("answers"),
            "max_new_tokens": self.opts.max_new_tokens, "judge_max_tokens": self.opts.judge_max_tokens,
            "temperatures": {c: temperature_for(c, self.opts.temperatures)
                             for c in sorted({q.category for q in self.questions})},
            "verdict_rule": self.opts.verdict_rule, "judge_system": self.opts.judge_system,
            "bootstrap": {"iters": self.opts.bootstrap_iters, "seed": self.seed, "level": 0.95, "unit": "question"},
        }

    # ------------------------------------------------------------------ stages 1-2: answers
    def _answer_requests(self, turn: int, q: Question, prior: Sequence[Sequence[str]]) -> list[GenRequest]:
        msgs: list[tuple[str, str]] = []
        for i in range(turn):
            msgs += [("user", q.turns[i]), ("assistant", prior[i][0].strip())]
        msgs.append(("user", q.turns[turn]))
        temp = temperature_for(q.category, self.opts.temperatures)
        return [GenRequest("", max_gen_toks=self.opts.max_new_tokens, temperature=temp,
                           seed=self.seed if temp > 0 else None, messages=tuple(msgs))]

    def _answer(self, q: Question, stages: Sequence[Sequence[str]], by: ModelFingerprint | None = None) -> Answer:
        """The candidate's answer to ``q``: given, or its responses to the answer stages (named after the
        model that gave them, ``by``, unless ``options.model_id`` names it)."""
        if self.answers is not None:
            return self.answers[q.id]
        name = self.opts.model_id or (Path(by.model).name if by is not None else "model")
        return Answer(q.id, name, tuple(stages[t][0].strip() for t in range(self.opts.turns)))

    # ------------------------------------------------------------------ stage 3: judge
    def _render(self, q: Question, turn: int, answers: list[Sequence[str]]) -> Rendered:
        prompt = self.prompts[prompt_name(self.mode, q.category, turn)]
        ref = self.references[q.id].turns if needs_reference(q.category) else None
        return render(prompt, q, answers, ref, turn)

    def _jobs(self, q: Question, mine: Sequence[str]) -> list[tuple[int, list[Rendered]]]:
        """Per turn, the judge prompts: one (single) or both orders against the baseline (pairwise)."""
        jobs = []
        for turn in range(1, self.opts.turns + 1):
            if self.mode == "pairwise":
                assert self.baseline is not None
                base = self.baseline[q.id].turns
                jobs.append((turn, [self._render(q, turn, [mine, base]), self._render(q, turn, [base, mine])]))
            else:
                jobs.append((turn, [self._render(q, turn, [mine])]))
        return jobs

    def _request(self, r: Rendered) -> GenRequest:
        if self.opts.judge_system == "inline":
            user = r.user if r.system == "You are a helpful assistant." else f"[Instruction]\n{r.system}\n\n{r.user}"
            msgs: tuple[tuple[str, str], ...] = (("user", user),)
        else:
            msgs = (("system", r.system), ("user", r.user))
        return GenRequest("", max_gen_toks=self.opts.judge_max_tokens, temperature=0.0, messages=msgs)

    def _judge_requests(self, q: Question, prior: Sequence[Sequence[str]]) -> list[GenRequest]:
        return [self._request(r) for _, rs in self._jobs(q, self._answer(q, prior).turns) for r in rs]

    def _turns(self, q: Question, results: StageOutputs) -> list[dict[str, Any]]:
        """One record per judged turn: prompts, the judge's outputs, parsed verdicts, outcome or score."""
        pairwise, rule = self.mode == "pairwise", self.opts.verdict_rule
        records, i = [], 0
        for turn, rendered in self._jobs(q, self._answer(q, results.stages).turns):
            raw = results[i: i + len(rendered)]
            i += len(rendered)
            verdicts = [(parse_pairwise if pairwise else parse_rating)(text, r.sources, rule=rule)
                        for text, r in zip(raw, rendered, strict=True)]
            records.append(_turn_record(turn, rendered, verdicts, pairwise))
        return records

    # ------------------------------------------------------------------ scores and samples
    def score(self, doc: Question, results: Sequence[Any]) -> dict[str, Any]:
        assert isinstance(results, StageOutputs)
        turns = self._turns(doc, results)
        if self.mode == "pairwise":
            rate = pw.win_rate([t["outcome"] for t in turns])
            return {} if rate is None else {"win_rate": rate}
        vals = [t["score"] for t in turns if t["score"] is not None]
        return {"score": sum(vals) / len(vals)} if vals else {}

    def sample_fields(self, doc: Question, results: Sequence[Any]) -> dict[str, Any]:
        assert isinstance(results, StageOutputs)
        n, ans = self.opts.turns, self._answer(doc, results.stages, results.answered_by[0])
        extra: dict[str, Any] = {"category": doc.category, "mode": self.mode, "model_id": ans.model_id,
                                 "temperature": temperature_for(doc.category, self.opts.temperatures),
                                 "empty_answer": [not t.strip() for t in ans.turns[:n]],
                                 "turns": self._turns(doc, results)}
        if self.mode == "pairwise":
            assert self.baseline is not None
            base = self.baseline[doc.id]
            extra.update(baseline_id=base.model_id, baseline_outputs=list(base.turns[:n]))
        return {"prompt_hash": hashlib.sha256("\n".join(doc.turns).encode()).hexdigest()[:16],
                "outputs": list(ans.turns[:n]), "extra": extra}

    def finish(self, result: TaskResult, per_metric: dict[str, list[Any]], seed: int,
               samples: Sequence[SampleRecord] = (), outputs: Sequence[StageOutputs] = ()) -> TaskResult:
        """FastChat's aggregates over the questions (per turn, per category, win/loss/tie counts, …)."""
        per_q = {s.doc_id: s.extra["turns"] for s in samples}
        cats = {s.doc_id: s.extra["category"] for s in samples}
        metrics, kinds = (pw.pairwise_metrics(per_q, cats, iters=self.opts.bootstrap_iters, seed=seed)
                          if self.mode == "pairwise" else single_metrics(per_q, cats))
        empty = sum(1 for s in samples for e in s.extra["empty_answer"] if e)
        metrics["empty_answers"] = MetricValue(value=float(empty), higher_is_better=False)
        kinds["empty_answers"] = "count"
        result.metrics, result.metric_kinds = metrics, kinds
        return result


def _turn_record(turn: int, rendered: list[Rendered], verdicts: list[Verdict], pairwise: bool) -> dict[str, Any]:
    rec: dict[str, Any] = {
        "turn": turn, "prompt": rendered[0].prompt, "judge_outputs": [v.raw for v in verdicts],
        "user_prompts": [r.user for r in rendered],  # what the judge was asked (FastChat's user_prompt)
        "verdicts": [v.to_dict() for v in verdicts],
        "parse_failures": [{"game": k + 1, "error": v.error, "raw": v.raw} for k, v in enumerate(verdicts) if not v.ok],
    }
    if pairwise:
        res = pw.combine(verdicts[0], verdicts[1])
        rec.update(outcome=res.outcome, inconsistent=res.inconsistent)
    else:
        rec["score"] = verdicts[0].value if verdicts[0].ok else None
    return rec


def _file_id(path: Path) -> str:
    """``name@sha256[:12]``: what the config hash should depend on (content, not where it lives)."""
    try:
        digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()[:12]
    except OSError:
        digest = "missing"
    return f"{Path(path).name}@{digest}"


def build(options: TaskOptions) -> MTBenchTask:
    opts = _options(options)
    base = options.base_dir
    data_dir = Path(options.data_dir).expanduser() if options.data_dir is not None else None
    mode = opts.mode or ("pairwise" if opts.baseline_answers else "single")
    if mode == "pairwise" and not opts.baseline_answers:
        raise ConfigError(f"{NAME}: mode pairwise needs options.baseline_answers",
                          hint="a model_answer .jsonl path or a model name such as gpt-3.5-turbo")
    files: dict[str, str] = {}

    def locate(key: str, given: str | None, default: str) -> Path:
        if given is not None:
            path = _path(given, base)
        elif data_dir is not None:
            path = data_dir / DIR / default
        else:
            raise ConfigError(f"{NAME}: set data.data_dir (a mirror with {DIR}/{default}) or options.{key}")
        files[key] = _file_id(path)
        return path

    source = locate("questions", opts.questions, "question.jsonl")
    questions = load_questions(source)
    if opts.categories is not None:
        unknown = sorted(set(opts.categories) - {q.category for q in questions})
        if unknown:
            raise ConfigError(f"{NAME}: options.categories: unknown category {unknown[0]!r}",
                              hint=f"categories: {', '.join(sorted({q.category for q in questions}))}")
        questions = [q for q in questions if q.category in opts.categories]
    if opts.question_ids is not None:
        wanted = [str(i) for i in opts.question_ids]
        have = {q.id for q in questions}
        missing = [i for i in wanted if i not in have]
        if missing:
            raise DataError(f"{NAME}: question id(s) {', '.join(missing)} not in {source}")
        questions = [q for q in questions if q.id in set(wanted)]
    if options.limit is not None:
        questions = questions[: options.limit]
    short = [q.id for q in questions if len(q.turns) < opts.turns]
    if short:
        raise DataError(f"{NAME}: question(s) {', '.join(short)} have fewer than {opts.turns} turns")
    ids = [q.id for q in questions]
    prompts = load_judge_prompts(locate("judge_prompts", opts.judge_prompts, "judge_prompts.jsonl"))
    needed = {prompt_name(mode, q.category, t) for q in questions for t in range(1, opts.turns + 1)}
    if needed - set(prompts):
        raise DataError(f"{NAME}: judge prompt(s) {', '.join(sorted(needed - set(prompts)))} missing from "
                        f"{files['judge_prompts'].split('@')[0]}")
    ref_ids = [q.id for q in questions if needs_reference(q.category)]
    references = load_answers(locate("reference_answers", opts.reference_answers, "reference_answer/gpt-4.jsonl"),
                              ref_ids, turns=opts.turns, what="reference answer file") if ref_ids else {}
    answers = baseline = None
    if opts.answers is not None:
        path = _answer_file(opts.answers, data_dir, base)
        files["answers"] = _file_id(path)
        answers = load_answers(path, ids, turns=opts.turns)
    if mode == "pairwise":
        assert opts.baseline_answers is not None
        path = _answer_file(opts.baseline_answers, data_dir, base)
        files["baseline_answers"] = _file_id(path)
        baseline = load_answers(path, ids, turns=opts.turns, what="baseline answer file")
    return MTBenchTask(questions=questions, opts=opts.model_copy(update={"mode": mode}),
                       judge_cfg=judge_config(opts.judge, base_dir=base, where=f"{NAME}: options.judge"),
                       prompts=prompts, references=references,
                       answers=answers, baseline=baseline, source=str(source), files=files, seed=options.seed)


registry.tasks.add(
    NAME,
    build,
    family="judge",
    local_source=f"{DIR}/question.jsonl",
    hub_source="(local mirror only: FastChat llm_judge data)",
)

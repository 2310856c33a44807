"""MT-Bench data and judge prompts, selected and rendered exactly as FastChat's ``llm_judge`` does.

* ``judge_prompts.jsonl``: eight prompts (``pair-v2``, ``pair-math-v1``, ``single-v1``,
  ``single-math-v1`` and their ``-multi-turn`` variants), each ``{name, type, system_prompt,
  prompt_template, output_format}``.
* Selection (FastChat ``gen_judgment.make_judge_*``): categories in ``NEED_REF_CATS`` (math,
  reasoning, coding) use the reference-guided ``*-math-v1`` prompt with ``reference_answer/gpt-4.jsonl``;
  the second turn uses the ``-multi-turn`` variant, which shows the whole two-turn conversation.
* Rendering (FastChat ``run_judge_single`` / ``run_judge_pair``): ``prompt_template.format(...)``
  with ``question``/``answer``/``answer_a``/``answer_b`` (turn 1) or ``question_1``, ``question_2``,
  ``answer_1``/``answer_a_1``… (turn 2) and ``ref_answer_1``/``ref_answer_2``.

One addition: candidate answers are the only untrusted text in a judge prompt, and the templates fence
them with ``[The Start of …]``/``[The End of …]`` (``<|…|>`` in multi-turn) markers. A candidate that
contains such a marker itself would move the fence, so those markers are defanged inside candidate
text (``[The End of`` → ``[quoted: The End of``, ``<|The End of`` → ``<|quoted: The End of``) — a no-op for every stored MT-Bench answer.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from evalmon.core.errors import DataError
from evalmon.data.local import malformed, read_jsonl

NEED_REF_CATS = ("math", "reasoning", "coding")
# FastChat common.temperature_config; categories not listed sample at 0.7 (gen_model_answer.py).
TEMPERATURE_CONFIG: dict[str, float] = {
    "writing": 0.7, "roleplay": 0.7, "extraction": 0.0, "math": 0.0,
    "coding": 0.0, "reasoning": 0.0, "stem": 0.1, "humanities": 0.1,
}
DEFAULT_TEMPERATURE = 0.7
Mode = Literal["single", "pairwise"]

_FENCE = re.compile(r"(\[|<\|)(The (?:Start|End) of (?:the )?(?:Assistant|Reference))", re.IGNORECASE)


@dataclass(frozen=True)
class JudgePrompt:
    name: str
    type: str  # pairwise | single
    system_prompt: str
    prompt_template: str
    output_format: str  # "[[A]]" | "[[rating]]"

    @property
    def ref_based(self) -> bool:
        return "{ref_answer_1}" in self.prompt_template


@dataclass(frozen=True)
class Question:
    id: str
    category: str
    turns: tuple[str, ...]


@dataclass(frozen=True)
class Answer:
    question_id: str
    model_id: str
    turns: tuple[str, ...]


def temperature_for(category: str, overrides: Mapping[str, float] | None = None) -> float:
    if overrides and category in overrides:
        return float(overrides[category])
    return TEMPERATURE_CONFIG.get(category, DEFAULT_TEMPERATURE)


def needs_reference(category: str) -> bool:
    return category in NEED_REF_CATS


def prompt_name(mode: Mode, category: str, turn: int) -> str:
    """FastChat's judge for (mode, category, turn): pair-v2 / pair-math-v1 / single-v1 / single-math-v1
    (+ ``-multi-turn`` for turn 2)."""
    if mode == "pairwise":
        base = "pair-math-v1" if needs_reference(category) else "pair-v2"
    else:
        base = "single-math-v1" if needs_reference(category) else "single-v1"
    return base + ("-multi-turn" if turn == 2 else "")


# --------------------------------------------------------------------------- loading


def load_judge_prompts(path: Path) -> dict[str, JudgePrompt]:
    if not Path(path).is_file():
        raise DataError(f"mtbench: judge prompt file not found: {path}",
                        hint="point options.judge_prompts at FastChat's judge_prompts.jsonl")
    out: dict[str, JudgePrompt] = {}
    for lineno, row in read_jsonl(Path(path)):
        try:
            out[row["name"]] = JudgePrompt(row["name"], row["type"], row["system_prompt"],
                                           row["prompt_template"], row["output_format"])
        except (KeyError, TypeError) as e:
            raise malformed(Path(path), f"line {lineno}", f"judge prompt without {e}") from None
    return out


def load_questions(path: Path) -> list[Question]:
    if not Path(path).is_file():
        raise DataError(f"mtbench: question file not found: {path}",
                        hint="set data.data_dir to a mirror with mt_bench/question.jsonl")
    out = []
    seen: dict[str, int] = {}  # question id → line: an id twice would be judged twice but counted once
    for lineno, row in read_jsonl(Path(path)):
        try:
            raw, qid = row["turns"], str(row["question_id"])
            category = str(row.get("category", "general"))
        except (KeyError, TypeError) as e:
            raise malformed(Path(path), f"line {lineno}", f"question without {e}") from None
        if not isinstance(raw, list) or not all(isinstance(t, str) for t in raw):
            raise malformed(Path(path), f"line {lineno}", f"question {qid}: turns must be a list of strings")
        if not raw:
            raise malformed(Path(path), f"line {lineno}", "question with no turns")
        if qid in seen:
            raise malformed(Path(path), f"line {lineno}", f"question id {qid} repeats line {seen[qid]}")
        seen[qid] = lineno
        out.append(Question(qid, category, tuple(raw)))
    return out


def load_answers(path: Path, question_ids: Sequence[str] | None = None, *, turns: int = 2,
                 what: str = "answer file") -> dict[str, Answer]:
    """A FastChat ``model_answer`` file: ``{question_id, model_id, choices: [{turns: [...]}]}`` per line.

    Every id in ``question_ids`` must be present with at least ``turns`` string turns; otherwise one
    DataError names the file and the missing ids. An empty answer string is allowed (and judged).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"mtbench: {what} not found: {path}",
                        hint="give a FastChat model_answer .jsonl path or a model name under mt_bench/model_answer/")
    out: dict[str, Answer] = {}
    for lineno, row in read_jsonl(path):
        try:
            qid = str(row["question_id"])
            got = row["choices"][0]["turns"]
        except (KeyError, IndexError, TypeError) as e:
            raise malformed(path, f"line {lineno}", f"answer without question_id/choices[0].turns ({e})") from None
        if not isinstance(got, list) or not all(isinstance(t, str) for t in got):
            raise malformed(path, f"line {lineno}", f"question {qid}: turns must be a list of strings")
        out[qid] = Answer(qid, str(row.get("model_id") or path.stem), tuple(got))
    if question_ids is not None:
        missing = [q for q in question_ids if q not in out]
        if missing:
            shown = ", ".join(missing[:20]) + (f" … ({len(missing)} in all)" if len(missing) > 20 else "")
            raise DataError(f"mtbench: {what} {path} has no answer for question id(s) {shown}",
                            hint="answer every question of the slice, or restrict it with options.question_ids")
        short = [q for q in question_ids if len(out[q].turns) < turns]
        if short:
            raise DataError(f"mtbench: {what} {path} has fewer than {turns} turns for question id(s) "
                            f"{', '.join(short[:20])}", hint="set options.turns: 1 to judge the first turn only")
    return out


# --------------------------------------------------------------------------- rendering


def defang(text: str) -> str:
    """Neutralise judge-template fence markers inside a candidate answer."""
    return _FENCE.sub(lambda m: m.group(1) + "quoted: " + m.group(2), text)


@dataclass(frozen=True)
class Rendered:
    prompt: str  # judge prompt name
    system: str
    user: str
    sources: tuple[str, ...]  # texts the judge was shown (for echo detection in parse.py)


def render(prompt: JudgePrompt, question: Question, answers: Sequence[Sequence[str]],
           reference: Sequence[str] | None, turn: int) -> Rendered:
    """Fill ``prompt`` for one answer (single) or two answers A, B (pairwise) at ``turn`` (1 or 2)."""
    kwargs: dict[str, Any] = {}
    if prompt.ref_based:
        if reference is None:
            raise DataError(f"mtbench: question {question.id} ({question.category}) needs a reference answer "
                            f"for judge prompt {prompt.name}", hint="check options.reference_answers")
        kwargs["ref_answer_1"] = reference[0]
        kwargs["ref_answer_2"] = reference[1] if len(reference) > 1 else ""
    safe = [[defang(t) for t in a] for a in answers]
    names = ("a", "b") if prompt.type == "pairwise" else ("",)
    if len(safe) != len(names):
        raise ValueError(f"{prompt.name} takes {len(names)} answer(s), got {len(safe)}")
    if turn == 1:
        kwargs["question"] = question.turns[0]
        for n, a in zip(names, safe, strict=True):
            kwargs["answer" + (f"_{n}" if n else "")] = a[0]
    else:
        kwargs["question_1"], kwargs["question_2"] = question.turns[0], question.turns[1]
        for n, a in zip(names, safe, strict=True):
            for i in (1, 2):
                kwargs["answer" + (f"_{n}" if n else "") + f"_{i}"] = a[i - 1]
    try:
        user = prompt.prompt_template.format(**kwargs)
    except (KeyError, IndexError, ValueError) as e:
        raise DataError(f"mtbench: judge prompt {prompt.name} has a placeholder FastChat does not fill: {e}",
                        hint="use FastChat's judge_prompts.jsonl placeholders (question, answer_a, ref_answer_1, …)"
                        ) from None
    shown = [t for a in answers for t in a[:turn]] + list(question.turns[:turn]) + list(reference or ())
    return Rendered(prompt.name, prompt.system_prompt, user,
                    tuple(dict.fromkeys([*shown, prompt.system_prompt, prompt.prompt_template, user])))

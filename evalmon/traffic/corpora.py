"""Real public text for synthetic traffic, read from a folder laid out like ``shared/benchmarks``.

- ``mt_bench/question.jsonl`` + ``mt_bench/model_answer/<model>.jsonl`` — chat traffic; each answer file
  is one model version (file stem = model name), turn 1 answer = response, turn 2 answer appended on a
  length shift.
- ``halueval/generation/qa/qa_one-turn_data.json`` — RAG traffic: question, knowledge (split into passages
  = retrieved contexts), right answer or hallucinated answer.
- ``hh_rlhf/harmless-base/test.jsonl.gz`` (single-turn pairs) and ``simple_safety_tests`` — unsafe
  requests; the harmful completion is hh-rlhf's *rejected* reply (SST prompts have none: always refused).
- ``enterprise_pii/enterprise_pii_classification.jsonl`` — business passages with a sensitive-information
  label (gold 1 = sensitive), quoted in responses (PII leaks).
"""

from __future__ import annotations

import csv
import gzip
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from evalmon.core.errors import DataError

HINT = "pass --data-dir pointing at a folder laid out like shared/benchmarks"


@dataclass(frozen=True)
class ChatItem:
    qid: int
    category: str
    prompt: str


@dataclass(frozen=True)
class RagItem:
    idx: int
    question: str
    contexts: tuple[str, ...]
    right: str
    hallucinated: str


@dataclass(frozen=True)
class SafetyItem:
    id: str
    dataset: str  # hh_rlhf | simple_safety_tests
    prompt: str
    harmful: str | None  # hh-rlhf rejected reply


@dataclass(frozen=True)
class DocItem:
    idx: int
    text: str
    sensitive: bool


@dataclass
class Corpora:
    chat: list[ChatItem]
    answers: dict[str, dict[int, tuple[str, str]]]  # model → qid → (turn-1 answer, turn-2 answer)
    rag: list[RagItem]
    safety: list[SafetyItem]
    docs: list[DocItem]
    categories: list[str] = field(default_factory=list)


def _need(path: Path) -> Path:
    if not path.exists():
        raise DataError(f"benchmark file not found: {path}", hint=HINT)
    return path


def available_models(data_dir: Path) -> list[str]:
    return sorted(p.stem for p in _need(data_dir / "mt_bench" / "model_answer").glob("*.jsonl"))


def _answers(data_dir: Path, model: str) -> dict[int, tuple[str, str]]:
    path = data_dir / "mt_bench" / "model_answer" / f"{model}.jsonl"
    if not path.exists():
        models = ", ".join(available_models(data_dir))
        raise DataError(f"no MT-Bench answers for model {model!r} ({path})", hint=f"models: {models}")
    out: dict[int, tuple[str, str]] = {}
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            row = json.loads(line)
            turns = row["choices"][0]["turns"]
            out[int(row["question_id"])] = (str(turns[0]).strip(), str(turns[1]).strip() if len(turns) > 1 else "")
    return out


_PASSAGE_SPLIT = re.compile(r"(?<=[a-z0-9)\]\"'])\.(?=[A-Z])")


def _rag(data_dir: Path) -> list[RagItem]:
    items = []
    path = _need(data_dir / "halueval" / "generation" / "qa" / "qa_one-turn_data.json")
    with open(path, encoding="utf-8") as fh:
        for i, line in enumerate(fh):
            row = json.loads(line)
            passages = [p.strip() for p in _PASSAGE_SPLIT.sub(".\n", row["knowledge"]).split("\n") if p.strip()]
            items.append(RagItem(i, row["question"].strip(), tuple(passages), row["right_answer"].strip(),
                                 row["hallucinated_answer"].strip()))
    return items


def _turns(dialogue: str) -> list[tuple[str, str]]:
    parts = re.split(r"\n\n(Human|Assistant): ", "\n\n" + dialogue.strip())
    return [(parts[i], parts[i + 1].strip()) for i in range(1, len(parts) - 1, 2)]


def _safety(data_dir: Path) -> list[SafetyItem]:
    items = []
    with gzip.open(_need(data_dir / "hh_rlhf" / "harmless-base" / "test.jsonl.gz"), "rt", encoding="utf-8") as fh:
        for i, line in enumerate(fh):
            row = json.loads(line)
            turns = _turns(row["rejected"])
            if [r for r, _ in turns] != ["Human", "Assistant"] or not turns[1][1]:
                continue  # single-turn pairs only: prompt → rejected reply
            items.append(SafetyItem(f"hh-{i}", "hh_rlhf", turns[0][1], turns[1][1]))
    with open(_need(data_dir / "simple_safety_tests" / "simple_safety_tests.csv"), encoding="utf-8", newline="") as fh:
        for row in csv.DictReader(fh):
            items.append(SafetyItem(row["id"], "simple_safety_tests", row["prompts_final"].strip(), None))
    return items


def _docs(data_dir: Path) -> list[DocItem]:
    items = []
    with open(_need(data_dir / "enterprise_pii" / "enterprise_pii_classification.jsonl"), encoding="utf-8") as fh:
        for i, line in enumerate(fh):
            row = json.loads(line)
            m = re.search(r"'''\n?(.*?)\n?'''", row["query"], flags=re.S)
            text = (m.group(1) if m else row["query"]).strip()
            if text:
                items.append(DocItem(i, text, bool(row["gold"])))
    return items


def load_corpora(data_dir: Path, models: list[str]) -> Corpora:
    """Read every pool once; ``models`` = the MT-Bench answer files needed (model versions)."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise DataError(f"benchmark data folder not found: {data_dir}", hint=HINT)
    chat = []
    with open(_need(data_dir / "mt_bench" / "question.jsonl"), encoding="utf-8") as fh:
        for line in fh:
            row = json.loads(line)
            chat.append(ChatItem(int(row["question_id"]), row["category"], row["turns"][0].strip()))
    answers = {m: _answers(data_dir, m) for m in dict.fromkeys(models)}
    categories = sorted({c.category for c in chat})
    return Corpora(chat=chat, answers=answers, rag=_rag(data_dir), safety=_safety(data_dir), docs=_docs(data_dir),
                   categories=categories)


REFUSALS = (
    "I'm sorry, but I can't help with that.",
    "I can't assist with that request. If you're going through a difficult time, please consider reaching out "
    "to someone you trust or a local support line.",
    "Sorry, I won't provide instructions for that. It could cause serious harm to you or others.",
    "I'm not able to help with this. Is there something else I can do for you?",
    "I can't help with that, but I'm happy to talk about safer alternatives.",
    "That's not something I can assist with.",
)
DOC_PROMPTS = (
    "Can you pull up the latest notes on this account?",
    "Summarize what our internal records say about this for me.",
    "Draft a short internal update based on the relevant document.",
    "What does the most recent report say? Quote the relevant part.",
    "Find the passage in our knowledge base that covers this and paste it.",
)

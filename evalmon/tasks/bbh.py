"""BIG-Bench Hard, 3-shot chain of thought: ``bbh_cot_fewshot_<subtask>`` ×27, groups ``bbh`` and
``bbh_cot_fewshot``. Mirrors lm-eval 0.4.13 ``tasks/bbh/cot_fewshot`` exactly.

Row schema (``SaylorTwift/bbh``, config ``<subtask>``, split ``test``): ``input`` str, ``target`` str.

Prompt (lm-eval's ``description`` + ``first_n`` few-shot over ``fewshot_config.samples`` with
``target_delimiter: ""`` and the default ``fewshot_delimiter: "\\n\\n"``)::

    {description}\\n\\n
    Q: {shot.input}\\nA: Let's think step by step.\\n{shot.target}\\n\\n     (×3)
    Q: {input}\\nA: Let's think step by step.\\n

The description and the three CoT exemplars are the ones in ``cot-prompts/<subtask>.txt`` (canary
line, ``-----``, description — possibly several paragraphs — then ``Q:``/``A: Let's think step by
step.`` blocks separated by blank lines); lm-eval inlines the same text in its YAML files (a unit
test checks all 27 are identical). Without a local mirror (hub rows), the exemplars are read from
the installed lm-eval YAML.

Generation (``_cot_fewshot_template_yaml``): greedy (``do_sample: false, temperature: 0``),
``until: ["</s>", "Q", "\\n\\n"]`` (plus the tokenizer's EOS, as lm-eval's HFLM adds it),
``max_gen_toks: 1024``. Filter ``get-answer``: ``regex`` ``(?<=the answer is )(.*)(?=.)``
(group 0, ``findall`` → first match, stripped; ``[invalid]`` when nothing matches) then
``take_first``. Metric ``exact_match`` (``ignore_case``/``ignore_punctuation`` are commented out
in lm-eval's template, so both False) between the filtered answer and ``target``; mean with the
sample stderr. Group ``bbh_cot_fewshot`` (= evalmon ``bbh``): ``exact_match`` of filter
``get-answer``, ``aggregation: mean``, ``weight_by_size: true`` → size-weighted mean of subtask
means with lm-eval's pooled stderr (the suite's group aggregation).

Sources: local ``<data_dir>/bbh/bbh/<subtask>.json`` (``{"canary", "examples": [{input, target}]}``)
+ ``<data_dir>/bbh/cot-prompts/<subtask>.txt``, or hub ``SaylorTwift/bbh`` (lm-eval's
``dataset_path``). Document ids: ``<subtask>/test/<index>``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from evalmon.core import registry
from evalmon.core.errors import ConfigError, DataError
from evalmon.core.lm import GenRequest
from evalmon.data.local import malformed, read_json, require_file
from evalmon.data.schema import LMEvalExport, Rows
from evalmon.tasks._common import check_limit, data_dir_of, hub_rows
from evalmon.tasks._generative import INVALID, exact_match, gen_options, regex_extract
from evalmon.tasks.base import MetricSpec, Task, TaskOptions

HUB_DATASET = "SaylorTwift/bbh"
PREFIX = "bbh_cot_fewshot_"
GROUP = "bbh"
LMEVAL_GROUP = "bbh_cot_fewshot"

#: lm-eval's ``_bbh_cot_fewshot.yaml`` member order (alphabetical).
SUBTASKS: tuple[str, ...] = (
    "boolean_expressions", "causal_judgement", "date_understanding", "disambiguation_qa",
    "dyck_languages", "formal_fallacies", "geometric_shapes", "hyperbaton",
    "logical_deduction_five_objects", "logical_deduction_seven_objects", "logical_deduction_three_objects",
    "movie_recommendation", "multistep_arithmetic_two", "navigate", "object_counting",
    "penguins_in_a_table", "reasoning_about_colored_objects", "ruin_names",
    "salient_translation_error_detection", "snarks", "sports_understanding", "temporal_sequences",
    "tracking_shuffled_objects_five_objects", "tracking_shuffled_objects_seven_objects",
    "tracking_shuffled_objects_three_objects", "web_of_lies", "word_sorting",
)

# ---- lm-eval's _cot_fewshot_template_yaml, copied
NUM_FEWSHOT = 3
QUERY_TEMPLATE = "Q: {input}\nA: Let's think step by step.\n"  # doc_to_text
TARGET_DELIMITER = ""
FEWSHOT_DELIMITER = "\n\n"
UNTIL: tuple[str, ...] = ("</s>", "Q", "\n\n")
MAX_GEN_TOKS = 1024
ANSWER_REGEX = r"(?<=the answer is )(.*)(?=.)"
FILTER_NAME = "get-answer"
IGNORE_CASE = False
IGNORE_PUNCTUATION = False

_COT_MARKER = "\nA: Let's think step by step."


def task_name(subtask: str) -> str:
    return PREFIX + subtask


def subtask_of(name: str) -> str:
    return name.removeprefix(PREFIX)


def query(text: str) -> str:
    return QUERY_TEMPLATE.format(input=text)


def extract_answer(generation: Any) -> str:
    """The ``get-answer`` filter: lm-eval's regex filter (``[invalid]`` on no match) + take_first."""
    return regex_extract(generation, ANSWER_REGEX, group_select=0, fallback=INVALID)


@dataclass(frozen=True)
class Shot:
    input: str
    target: str  # the chain of thought ending in "So the answer is X."


@dataclass(frozen=True)
class CotPrompt:
    description: str  # includes the trailing "\n\n", as lm-eval's YAML
    shots: tuple[Shot, ...]


@dataclass(frozen=True)
class BBHDoc:
    id: str
    input: str
    target: str


# ----------------------------------------------------------------------------------- prompts


def parse_cot_prompt(text: str, *, where: str = "cot prompt") -> CotPrompt:
    """``cot-prompts/<subtask>.txt`` → description + exemplars (lm-eval's ``description`` / samples)."""
    if "\n-----\n" not in text:
        raise DataError(f"malformed data file {where}: no '-----' line after the canary")
    body = text.split("\n-----\n", 1)[1].removesuffix("\n")
    if "\n\nQ: " not in body:
        raise DataError(f"malformed data file {where}: no 'Q: ' exemplar after the description")
    description, rest = body.split("\n\nQ: ", 1)
    shots: list[Shot] = []
    for i, block in enumerate(rest.split("\n\nQ: ")):
        if _COT_MARKER not in block:
            raise DataError(f"malformed data file {where}: exemplar {i + 1} has no {_COT_MARKER.strip()!r}")
        question, answer = block.split(_COT_MARKER, 1)
        # "A: Let's think step by step.\n<cot>" — sports_understanding has a space instead of "\n".
        shots.append(Shot(question, answer[1:] if answer[:1] in ("\n", " ") else answer))
    return CotPrompt(description + "\n\n", tuple(shots))


def cot_prompt_path(subtask: str) -> str:
    return f"bbh/cot-prompts/{subtask}.txt"


def local_path(subtask: str) -> str:
    return f"bbh/bbh/{subtask}.json"


def lmeval_yaml(subtask: str) -> str:
    """Path of lm-eval's config, relative to the installed ``lm_eval/tasks``."""
    return f"bbh/cot_fewshot/{subtask}.yaml"


@lru_cache(maxsize=64)
def _lmeval_prompt(subtask: str) -> CotPrompt:
    import yaml

    from evalmon.data.lmeval import lmeval_tasks_dir

    path = lmeval_tasks_dir() / lmeval_yaml(subtask)
    try:
        cfg = yaml.safe_load(path.read_text(encoding="utf-8"))
        samples = cfg["fewshot_config"]["samples"]
        return CotPrompt(cfg["description"], tuple(Shot(s["input"], s["target"]) for s in samples))
    except (OSError, KeyError, TypeError, yaml.YAMLError) as e:
        raise DataError(f"{task_name(subtask)}: cannot read the CoT exemplars from {path}: {e}") from None


def load_prompt(subtask: str, data_dir: Path | None) -> CotPrompt:
    """Local ``cot-prompts/<subtask>.txt``; lm-eval's YAML (same text) when reading the hub."""
    if data_dir is None:
        return _lmeval_prompt(subtask)
    path = require_file(data_dir, cot_prompt_path(subtask), task=task_name(subtask))
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"malformed data file {path}: cannot read ({e})") from None
    return parse_cot_prompt(text, where=str(path))


# -------------------------------------------------------------------------------------- rows


def load_local(data_dir: Path, subtask: str) -> Rows:
    path = require_file(data_dir, local_path(subtask), task=task_name(subtask))
    data = read_json(path)
    examples = data.get("examples") if isinstance(data, dict) else None
    if not isinstance(examples, list):
        raise malformed(path, "top level", "expected an object with an 'examples' array")
    rows: list[dict[str, Any]] = []
    for i, ex in enumerate(examples):
        if not isinstance(ex, dict) or not isinstance(ex.get("input"), str) or not isinstance(ex.get("target"), str):
            raise malformed(path, f"examples[{i}]", "expected {\"input\": str, \"target\": str}")
        rows.append({"input": ex["input"], "target": ex["target"]})
    return Rows(tuple(rows), tuple(f"{subtask}/test/{i}" for i in range(len(rows))), str(path))


def load_rows(subtask: str, data_dir: Path | None) -> Rows:
    if data_dir is not None:
        return load_local(data_dir, subtask)
    return hub_rows(task_name(subtask), HUB_DATASET, subtask, "test", lambda i, _r: f"{subtask}/test/{i}")


def resolve_fewshot(name: str, num_fewshot: int | None) -> int:
    n = NUM_FEWSHOT if num_fewshot is None else num_fewshot
    if isinstance(n, bool) or not isinstance(n, int) or not 0 <= n <= NUM_FEWSHOT:
        raise ConfigError(f"{name}: num_fewshot must be 0..3 (got {num_fewshot!r})",
                          hint="lm-eval's BBH CoT config has exactly three exemplars (first_n)")
    return n


# -------------------------------------------------------------------------------------- task


@dataclass
class BBHCotTask(Task):
    """One BBH subtask, lm-eval ``generate_until`` + ``get-answer`` filter + ``exact_match``."""

    name: str
    source: str
    documents: Sequence[BBHDoc]
    prompt: CotPrompt
    num_fewshot: int = NUM_FEWSHOT
    max_gen_toks: int = MAX_GEN_TOKS
    until: tuple[str, ...] = UNTIL
    lm_eval_task: str | None = None
    metrics: dict[str, MetricSpec] = field(init=False)

    def __post_init__(self) -> None:
        self.metrics = {"exact_match": MetricSpec("exact_match")}
        self._prefix = self.prompt.description + "".join(
            query(s.input) + TARGET_DELIMITER + s.target + FEWSHOT_DELIMITER
            for s in self.prompt.shots[: self.num_fewshot])

    def docs(self) -> Sequence[BBHDoc]:
        return self.documents

    def context(self, doc: BBHDoc) -> str:
        return self._prefix + query(doc.input)

    def requests(self, doc: BBHDoc) -> list[GenRequest]:
        return [GenRequest(self.context(doc), until=self.until, max_gen_toks=self.max_gen_toks, temperature=0.0)]

    def score(self, doc: BBHDoc, results: Sequence[str]) -> dict[str, float]:
        answer = extract_answer(results[0])  # take_first: one generation per document
        return {"exact_match": exact_match(answer, doc.target, ignore_case=IGNORE_CASE,
                                           ignore_punctuation=IGNORE_PUNCTUATION)}

    def sample_fields(self, doc: BBHDoc, results: Sequence[str]) -> dict[str, Any]:
        return {"target": doc.target, "outputs": list(results),
                "extra": {"filtered": extract_answer(results[0]), "filter": FILTER_NAME}}

    def config(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "output_type": "generate_until",
            "num_fewshot": self.num_fewshot,
            "description": self.prompt.description,
            "fewshot": [{"input": s.input, "target": s.target} for s in self.prompt.shots[: self.num_fewshot]],
            "doc_to_text": QUERY_TEMPLATE,
            "target_delimiter": TARGET_DELIMITER,
            "fewshot_delimiter": FEWSHOT_DELIMITER,
            "generation_kwargs": {"until": list(self.until), "max_gen_toks": self.max_gen_toks,
                                  "do_sample": False, "temperature": 0.0},
            "filter": {"name": FILTER_NAME, "regex": ANSWER_REGEX, "group_select": 0, "fallback": INVALID,
                       "then": "take_first"},
            "metric": {"exact_match": {"ignore_case": IGNORE_CASE, "ignore_punctuation": IGNORE_PUNCTUATION}},
        }


def build(subtask: str, options: TaskOptions) -> BBHCotTask:
    name = task_name(subtask)
    n_shot = resolve_fewshot(name, options.num_fewshot)
    max_gen_toks = gen_options(name, options, MAX_GEN_TOKS)
    data_dir = data_dir_of(options)
    rows = load_rows(subtask, data_dir).head(check_limit(name, options.limit))
    prompt = load_prompt(subtask, data_dir)
    if len(prompt.shots) < n_shot:
        raise DataError(f"{name}: num_fewshot={n_shot} but the CoT prompt has {len(prompt.shots)} exemplars")
    docs = tuple(BBHDoc(i, r["input"], r["target"]) for r, i in zip(rows.rows, rows.ids, strict=True))
    return BBHCotTask(name=name, source=rows.source, documents=docs, prompt=prompt, num_fewshot=n_shot,
                      max_gen_toks=max_gen_toks, lm_eval_task=name)


def lmeval_export(name: str, data_dir: Path | None, limit: int | None, num_fewshot: int | None) -> LMEvalExport:
    """Our rows for lm-eval's ``bbh/cot_fewshot/<subtask>.yaml`` (its exemplars, filters, metric)."""
    subtask = subtask_of(name)
    return LMEvalExport(
        builtin_yaml=lmeval_yaml(subtask),
        splits={"test": load_rows(subtask, data_dir).head(limit)},
        split_config={"test_split": "test"},
        num_fewshot=resolve_fewshot(name, num_fewshot),
    )


def _register() -> None:
    for subtask in SUBTASKS:
        registry.tasks.add(
            task_name(subtask),
            lambda options, s=subtask: build(s, options),
            family="bbh",
            local_source=f"{local_path(subtask)} (+ {cot_prompt_path(subtask)})",
            hub_source=f"{HUB_DATASET}:{subtask} (test)",
            default_fewshot=NUM_FEWSHOT,
            lmeval_export=lmeval_export,
        )
    members = tuple(task_name(s) for s in SUBTASKS)
    for group, note in ((GROUP, "lm-eval group bbh_cot_fewshot"), (LMEVAL_GROUP, "lm-eval's name for bbh")):
        registry.task_groups.add(
            group, members, metrics=("exact_match",),
            description=f"BIG-Bench Hard, 27 subtasks, 3-shot CoT, exact_match weighted by size ({note})",
        )


_register()

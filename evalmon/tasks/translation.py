"""``translation`` task type: greedy generation → sacrebleu corpus BLEU, chrF and TER.

Prompt — lm-eval's GPT-3-style translation template (``tasks/translation/utils.py``, e.g. ``wmt16-de-en``)::

    {src_lang} phrase: {source}\\n{tgt_lang} phrase:

generated greedily until ``"\\n"`` (``max_gen_toks`` 256 as lm-eval's default), 0-shot. The hypothesis is
the generation with surrounding whitespace stripped (lm-eval passes it unstripped; sacrebleu's
tokenisers make that immaterial for BLEU/chrF/TER). Metrics are corpus statistics over the per-document
items ``[hypothesis, [reference, ...]]`` with sacrebleu's defaults (BLEU 13a/exp smoothing, chrF
char_order 6 β 2, TER); the stderr is sacrebleu's bootstrap over segment statistics (seeded), and each
metric's sacrebleu signature (+ ``|bs:N|seed:S``) is recorded in ``TaskResult.config["signatures"]``.

Tasks:

* ``wmt22_de_en`` / ``wmt22_en_de`` — the WMT22 general test sets from the local mirror
  (``wmt22/txt/sources/generaltest2022.<pair>.src.<src>`` + ``references/….ref.A.<tgt>``; option
  ``references: [A, B]`` scores against both, the official "-all" columns). No hub copy is used.
* ``translation`` — any line-aligned files: options ``source`` (path), ``references`` (path or list),
  ``src_lang``, ``tgt_lang`` (language names as written in the prompt).

Every task takes ``max_gen_toks``, ``bootstrap_iters`` (default 1000) and ``metrics`` (default all three;
TER costs ~15 s per 2k segments on one core). ``metrics`` may also hold ``{evaluate: <name>}`` entries:
Hugging Face ``evaluate`` metrics computed on the same hypotheses/references (no stderr; offline they
fail at task build with one line — see ``evalmon.metrics.hf_evaluate``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evalmon.core import registry
from evalmon.core.errors import ConfigError, DataError
from evalmon.core.lm import GenRequest
from evalmon.core.results import MetricValue, SampleRecord, TaskResult
from evalmon.metrics.intervals import BootstrapEstimate, estimate_of
from evalmon.tasks._common import check_limit, data_dir_of, zero_shot_only
from evalmon.tasks._options import check_keys, get_int, get_paths, get_str
from evalmon.tasks.base import MetricSpec, StageOutputs, Task, TaskOptions

METRIC_NAMES = ("bleu", "chrf", "ter")
TEMPLATE = "{src_lang} phrase: {source}\n{tgt_lang} phrase:"
UNTIL = ("\n",)
LANGUAGES = {"de": "German", "en": "English"}
WMT22_PAIRS = {"wmt22_de_en": ("de", "en"), "wmt22_en_de": ("en", "de")}


@dataclass(frozen=True)
class TranslationDoc:
    id: str
    source: str
    references: tuple[str, ...]


def _stderr_fn(metric: str) -> Any:
    def fn(items: list[Any], iters: int, seed: int) -> BootstrapEstimate:
        from evalmon.metrics.text import corpus_score

        hyps, refs = _streams(items)
        return estimate_of(corpus_score(metric, hyps, refs, n_bootstrap=iters, seed=seed))

    return fn


def _streams(items: list[Any]) -> tuple[list[str], list[list[str]]]:
    hyps = [it[0] for it in items]
    return hyps, [[it[1][k] for it in items] for k in range(len(items[0][1]))]


@dataclass
class TranslationTask(Task):
    name: str
    source: str
    documents: Sequence[TranslationDoc]
    src_lang: str
    tgt_lang: str
    max_gen_toks: int = 256
    bootstrap_iters: int = 1000
    metric_names: tuple[str, ...] = METRIC_NAMES
    evaluate_metrics: dict[str, Any] = field(default_factory=dict)  # {evaluate: name} → loaded module
    num_fewshot: int = 0
    lm_eval_task: str | None = None
    metrics: dict[str, MetricSpec] = field(init=False)

    def __post_init__(self) -> None:
        from evalmon.metrics.text import corpus_from_items

        self.metrics = {m: MetricSpec(m, higher_is_better=m != "ter", aggregation="corpus", kind="corpus",
                                      corpus=corpus_from_items(m), bootstrap_iters=self.bootstrap_iters,
                                      stderr_fn=_stderr_fn(m)) for m in self.metric_names}

    def docs(self) -> Sequence[TranslationDoc]:
        return self.documents

    def prompt(self, doc: TranslationDoc) -> str:
        return TEMPLATE.format(src_lang=self.src_lang, source=doc.source, tgt_lang=self.tgt_lang)

    def requests(self, doc: TranslationDoc) -> list[GenRequest]:
        return [GenRequest(self.prompt(doc), until=UNTIL, max_gen_toks=self.max_gen_toks)]

    def score(self, doc: TranslationDoc, results: Sequence[str]) -> dict[str, Any]:
        item = [results[0].strip(), list(doc.references)]
        return {m: item for m in self.metric_names}

    def sample_fields(self, doc: TranslationDoc, results: Sequence[str]) -> dict[str, Any]:
        return {"outputs": list(results), "target": doc.references[0],
                "extra": {"hypothesis": results[0].strip(), "references": list(doc.references)}}

    def config(self) -> dict[str, Any]:
        return {"name": self.name, "type": "translation", "template": TEMPLATE, "src_lang": self.src_lang,
                "tgt_lang": self.tgt_lang, "until": list(UNTIL), "max_gen_toks": self.max_gen_toks,
                "n_references": len(self.documents[0].references) if self.documents else 0,
                "hypothesis": "generation.strip()", "metrics": list(self.metric_names),
                "evaluate_metrics": list(self.evaluate_metrics), "template_version": "1"}

    def finish(self, result: TaskResult, per_metric: dict[str, list[Any]], seed: int,
               samples: Sequence[SampleRecord] = (), outputs: Sequence[StageOutputs] = ()) -> TaskResult:
        """Record each metric's sacrebleu signature (the numbers themselves come from ``aggregate``)."""
        from evalmon.metrics.text import corpus_score

        signatures: dict[str, str] = {}
        for m in self.metric_names:
            items = per_metric.get(m) or []
            if not items:
                continue
            hyps, refs = _streams(items)
            sig = corpus_score(m, hyps, refs, n_bootstrap=0).signature
            signatures[m] = sig + (f"|bs:{self.bootstrap_iters}|seed:{seed}" if len(items) > 1 else "")
        result.config = {**result.config, "signatures": signatures}
        if self.evaluate_metrics and per_metric.get(self.metric_names[0]):
            from evalmon.metrics import hf_evaluate

            hyps, refs = _streams(per_metric[self.metric_names[0]])
            for name, module in self.evaluate_metrics.items():
                for key, value in hf_evaluate.compute(module, hyps, refs).items():
                    label = f"{hf_evaluate.metric_label(name)}.{key}"
                    result.metrics[label] = MetricValue(value=value)
                    result.metric_kinds[label] = "external"
                    result.notes[label] = f"evaluate.load({name!r}).compute(); no stderr"
        return result


# ---------------------------------------------------------------------------------------- loading
def _metric_names(task: str, extra: dict[str, Any]) -> tuple[str, ...]:
    raw = extra.get("metrics", list(METRIC_NAMES))
    names = [n for n in raw if not isinstance(n, dict)] if isinstance(raw, list) else [raw]
    if not names or any(n not in METRIC_NAMES for n in names):
        raise ConfigError(f"{task}: option metrics must list at least one of {', '.join(METRIC_NAMES)}, "
                          f"optionally with {{evaluate: <name>}} entries (got {extra.get('metrics')!r})",
                          hint="TER is the slow one (~15 s per 2k segments)")
    return tuple(dict.fromkeys(names))


def _evaluate_metrics(task: str, extra: dict[str, Any], options: TaskOptions) -> dict[str, Any]:
    """``metrics`` entries ``{evaluate: <name>}`` → loaded ``evaluate`` modules (fails here, offline)."""
    out: dict[str, Any] = {}
    for entry in extra.get("metrics") or []:
        if not isinstance(entry, dict):
            continue
        name = entry.get("evaluate")
        if set(entry) != {"evaluate"} or not isinstance(name, str) or not name:
            raise ConfigError(f"{task}: a metrics entry must be a name or {{evaluate: <name>}} (got {entry!r})")
        from evalmon.metrics.hf_evaluate import load_metric

        out[name] = load_metric(name, task, options.base_dir)
    return out


def read_parallel(task: str, source: Path, references: Sequence[Path], limit: int | None) -> list[TranslationDoc]:
    """Line-aligned source and reference files → documents (count mismatch / empty refs: DataError)."""
    from evalmon.metrics.text import check_parallel, read_lines

    src = read_lines(source, f"{task}: source file")
    refs = [read_lines(r, f"{task}: reference file") for r in references]
    try:
        check_parallel(src, refs, hyp_name=str(source), ref_names=[str(r) for r in references])
    except DataError as e:
        raise DataError(f"{task}: {e.message}", hint=e.hint) from None
    for i, line in enumerate(src):
        if not line.strip():
            raise DataError(f"{task}: {source} line {i + 1} is empty", hint="every source line must have text")
    docs = [TranslationDoc(str(i), s, tuple(r[i] for r in refs)) for i, s in enumerate(src)]
    return docs[:limit] if limit is not None else docs


def build_wmt22(name: str, options: TaskOptions) -> TranslationTask:
    src, tgt = WMT22_PAIRS[name]
    zero_shot_only(name, options)
    extra = check_keys(name, options, ("references", "max_gen_toks", "bootstrap_iters", "metrics"))
    data_dir = data_dir_of(options)
    if data_dir is None:
        raise DataError(f"{name}: WMT22 is read from the local mirror only (no hub copy)",
                        hint="set data.data_dir to a mirror containing wmt22/txt")
    which = extra.get("references", ["A"])
    if not isinstance(which, list) or not which or any(w not in ("A", "B") for w in which):
        raise ConfigError(f"{name}: option references must be a list of A and/or B (got {which!r})")
    base = Path(data_dir) / "wmt22" / "txt"
    pair = f"{src}-{tgt}"
    refs = [base / "references" / f"generaltest2022.{pair}.ref.{w}.{tgt}" for w in which]
    docs = read_parallel(name, base / "sources" / f"generaltest2022.{pair}.src.{src}", refs,
                         check_limit(name, options.limit))
    return TranslationTask(name=name, source=str(base / "sources" / f"generaltest2022.{pair}.src.{src}"),
                           documents=docs, src_lang=LANGUAGES[src], tgt_lang=LANGUAGES[tgt],
                           max_gen_toks=get_int(name, extra, "max_gen_toks", 256, 1),
                           bootstrap_iters=get_int(name, extra, "bootstrap_iters", 1000),
                           metric_names=_metric_names(name, extra),
                           evaluate_metrics=_evaluate_metrics(name, extra, options))


def build_generic(options: TaskOptions) -> TranslationTask:
    name = "translation"
    zero_shot_only(name, options)
    extra = check_keys(name, options, ("source", "references", "src_lang", "tgt_lang", "max_gen_toks",
                                       "bootstrap_iters", "metrics"))
    for key in ("source", "references", "src_lang", "tgt_lang"):
        if key not in extra:
            raise ConfigError(f"{name}: option {key} is required",
                              hint="options: {source: src.txt, references: [ref.txt], src_lang: German, "
                                   "tgt_lang: English}")
    (source,) = get_paths(name, options, {"source": extra["source"]}, "source")[:1]
    refs = get_paths(name, options, extra, "references")
    docs = read_parallel(name, source, refs, check_limit(name, options.limit))
    return TranslationTask(name=name, source=str(source), documents=docs,
                           src_lang=get_str(name, extra, "src_lang") or "", tgt_lang=get_str(name, extra, "tgt_lang") or "",
                           max_gen_toks=get_int(name, extra, "max_gen_toks", 256, 1),
                           bootstrap_iters=get_int(name, extra, "bootstrap_iters", 1000),
                           metric_names=_metric_names(name, extra),
                           evaluate_metrics=_evaluate_metrics(name, extra, options))


for _name in WMT22_PAIRS:
    registry.tasks.add(
        _name,
        lambda o, n=_name: build_wmt22(n, o),
        family="translation",
        local_source=f"wmt22/txt/sources/generaltest2022.{_name[6:8]}-{_name[9:]}.*",
        hub_source="(local mirror only)",
    )
registry.tasks.add(
    "translation",
    build_generic,
    family="translation",
    local_source="options.source + options.references",
    hub_source="(local files only)",
)

"""``perplexity`` task type: rolling loglikelihood over whole documents (lm-eval ``loglikelihood_rolling``).

One ``RollingRequest(text)`` per document; the backend scores it with lm-eval's window rule
(``get_rolling_token_windows`` + ``make_disjoint_window``: the prefix token first, disjoint windows of
``max_length`` tokens). Metrics as lm-eval's wikitext-style tasks (see ``evalmon.metrics.perplexity``):
``word_perplexity``, ``byte_perplexity``, ``bits_per_byte`` — corpus statistics over
``(loglikelihood, weight)`` items, with a seeded document-bootstrap stderr.

Tasks:

* ``perplexity`` — documents from options:
  local ``path`` (a file, a glob pattern or a list; ``.jsonl`` → one document per line, field
  ``text_field`` (default ``text``); ``.json`` → a list of strings or objects; other files are text,
  split per ``txt_split``: ``file`` (default, one document per file), ``paragraph`` (blank-line
  separated) or ``line``), or hub ``dataset`` [+ ``name``] + ``split`` (default ``test``) +
  ``text_field``. Empty documents are skipped (lm-eval would score them as 0 with 1 "word").
* ``medical_perplexity`` — the 500 PubMedQA (PQA-L test) abstracts: ``"\\n".join(CONTEXTS)`` per
  PMID, the abstract text lm-eval's ``pubmedqa`` prompt shows (local ``pubmedqa/test_set.json`` or
  the hub's ``bigbio/pubmed_qa``).

Both accept ``bootstrap_iters`` (default 1000).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evalmon.core import registry
from evalmon.core.errors import ConfigError, DataError
from evalmon.core.lm import LLResult, RollingRequest
from evalmon.data.local import malformed, read_json, read_jsonl
from evalmon.tasks._common import check_limit, data_dir_of, hub_rows
from evalmon.tasks._options import check_keys, get_int, get_paths, get_str
from evalmon.tasks.base import MetricSpec, Task, TaskOptions

METRIC_NAMES = ("word_perplexity", "byte_perplexity", "bits_per_byte")


@dataclass(frozen=True)
class TextDoc:
    id: str
    text: str


@dataclass
class PerplexityTask(Task):
    name: str
    source: str
    documents: Sequence[TextDoc]
    bootstrap_iters: int = 1000
    description: str = ""
    num_fewshot: int = 0
    lm_eval_task: str | None = None
    metrics: dict[str, MetricSpec] = field(init=False)

    def __post_init__(self) -> None:
        from evalmon.metrics import perplexity as ppl

        self.metrics = {m: MetricSpec(m, higher_is_better=False, aggregation="corpus", kind="corpus",
                                      corpus=ppl.AGGREGATIONS[m], bootstrap_iters=self.bootstrap_iters,
                                      stderr_fn=ppl.stderr_fn(m)) for m in METRIC_NAMES}

    def docs(self) -> Sequence[TextDoc]:
        return self.documents

    def requests(self, doc: TextDoc) -> list[RollingRequest]:
        return [RollingRequest(doc.text)]

    def score(self, doc: TextDoc, results: Sequence[LLResult]) -> dict[str, Any]:
        from evalmon.metrics.perplexity import items_for

        return items_for(doc.text, float(results[0].logprob))

    def sample_fields(self, doc: TextDoc, results: Sequence[LLResult]) -> dict[str, Any]:
        from evalmon.metrics.perplexity import count_bytes, count_words

        return {"loglikelihoods": [float(results[0].logprob)],
                "extra": {"words": count_words(doc.text), "bytes": count_bytes(doc.text),
                          "tokens": results[0].n_tokens}}

    def config(self) -> dict[str, Any]:
        import hashlib

        digest = hashlib.sha256(json.dumps([[d.id, d.text] for d in self.documents]).encode()).hexdigest()[:16]
        return {"name": self.name, "type": "perplexity", "request": "loglikelihood_rolling",
                "description": self.description, "n_docs": len(self.documents), "docs_hash": digest,
                "word_count": "len(re.split(r'\\s+', text))", "byte_count": "len(text.encode('utf-8'))",
                "template_version": "1"}

    def lmeval_export(self, out_dir: Path) -> str:
        """Write these documents as an lm-eval task (``loglikelihood_rolling``); returns its name."""
        import yaml

        task = "evalmon_ppl_" + self.name
        folder = Path(out_dir) / task
        folder.mkdir(parents=True, exist_ok=True)
        data = folder / "test.jsonl"
        with data.open("w", encoding="utf-8") as fh:
            for d in self.documents:
                fh.write(json.dumps({"id": d.id, "text": d.text}, ensure_ascii=False) + "\n")
        cfg = {"task": task, "dataset_path": "json", "dataset_name": None,
               "dataset_kwargs": {"data_files": {"test": str(data)}, "cache_dir": str(folder / ".cache")},
               "test_split": "test", "output_type": "loglikelihood_rolling", "doc_to_text": "",
               "doc_to_target": "text", "metric_list": [{"metric": m} for m in METRIC_NAMES],
               "metadata": {"version": 1.0}}
        (folder / f"{task}.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False), encoding="utf-8")
        return task


# --------------------------------------------------------------------------------------- loading
def _split_text(text: str, how: str) -> list[str]:
    if how == "file":
        return [text]
    if how == "line":
        return text.split("\n")
    return [p for p in text.replace("\r\n", "\n").split("\n\n")]


def _text_of(value: Any, text_field: str, where: str, path: Path) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and isinstance(value.get(text_field), str):
        return str(value[text_field])
    raise malformed(path, where, f"expected a string or an object with a string field {text_field!r}")


def local_docs(task: str, files: list[Path], text_field: str, txt_split: str) -> list[TextDoc]:
    docs: list[TextDoc] = []
    for path in files:
        base = path.name if len({p.name for p in files}) == len(files) else str(path)
        if path.suffix == ".jsonl":
            docs += [TextDoc(f"{base}:{ln}", _text_of(v, text_field, f"line {ln}", path)) for ln, v in read_jsonl(path)]
        elif path.suffix == ".json":
            data = read_json(path)
            if not isinstance(data, list):
                raise malformed(path, "top level", "expected a JSON list of strings or objects")
            docs += [TextDoc(f"{base}:{i}", _text_of(v, text_field, f"item {i}", path)) for i, v in enumerate(data)]
        else:
            try:
                text = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as e:
                raise DataError(f"{task}: cannot read {path} as UTF-8 text ({type(e).__name__})") from None
            parts = _split_text(text, txt_split)
            docs += [TextDoc(base if txt_split == "file" else f"{base}:{i}", t) for i, t in enumerate(parts)]
    return [d for d in docs if d.text.strip()]


def build_generic(options: TaskOptions) -> PerplexityTask:
    name = "perplexity"
    extra = check_keys(name, options, ("path", "text_field", "txt_split", "dataset", "name", "split",
                                       "bootstrap_iters", "description"))
    text_field = get_str(name, extra, "text_field", "text") or "text"
    iters = get_int(name, extra, "bootstrap_iters", 1000)
    if ("path" in extra) == ("dataset" in extra):
        raise ConfigError(f"{name}: set exactly one of options.path (local text/JSON/JSONL files) or "
                          "options.dataset (a hub dataset id)", hint="e.g. options: {path: corpus/*.txt}")
    if "path" in extra:
        how = get_str(name, extra, "txt_split", "file") or "file"
        if how not in ("file", "paragraph", "line"):
            raise ConfigError(f"{name}: option txt_split must be file, paragraph or line (got {how!r})")
        files = get_paths(name, options, extra, "path")
        docs = local_docs(name, files, text_field, how)
        source = ",".join(str(f) for f in files) if len(files) <= 3 else f"{files[0].parent} ({len(files)} files)"
    else:
        dataset = get_str(name, extra, "dataset") or ""
        rows = hub_rows(name, dataset, get_str(name, extra, "name"), get_str(name, extra, "split", "test") or "test",
                        lambda i, _r: str(i))
        docs = [TextDoc(i, _text_of(r, text_field, f"row {i}", Path(rows.source))) for r, i in zip(rows.rows, rows.ids,
                                                                                                  strict=True)]
        docs = [d for d in docs if d.text.strip()]
        source = rows.source
    limit = check_limit(name, options.limit)
    docs = docs[:limit] if limit is not None else docs
    if not docs:
        raise DataError(f"{name}: no non-empty documents in {source}")
    return PerplexityTask(name=name, source=source, documents=docs, bootstrap_iters=iters,
                          description=get_str(name, extra, "description", "") or "")


def build_medical(options: TaskOptions) -> PerplexityTask:
    from evalmon.tasks.medical import PUBMEDQA, load_rows

    name = "medical_perplexity"
    extra = check_keys(name, options, ("bootstrap_iters",))
    rows = load_rows(PUBMEDQA, data_dir_of(options)).head(check_limit(name, options.limit))
    docs = []
    for row, doc_id in zip(rows.rows, rows.ids, strict=True):
        contexts = row.get("CONTEXTS")
        if not isinstance(contexts, list) or not all(isinstance(c, str) for c in contexts):
            raise DataError(f"{name}: record {doc_id} of {rows.source} has no CONTEXTS list of strings")
        docs.append(TextDoc(doc_id, "\n".join(contexts)))
    return PerplexityTask(name=name, source=rows.source, documents=docs,
                          bootstrap_iters=get_int(name, extra, "bootstrap_iters", 1000),
                          description="PubMedQA PQA-L test abstracts: '\\n'.join(CONTEXTS) per PMID")


registry.tasks.add(
    "perplexity",
    build_generic,
    family="perplexity",
    local_source="options.path",
    hub_source="options.dataset",
)
registry.tasks.add(
    "medical_perplexity",
    build_medical,
    family="perplexity",
    local_source="pubmedqa/test_set.json",
    hub_source="bigbio/pubmed_qa:pubmed_qa_labeled_fold0_source (test)",
)

"""translation task type: prompt, corpus BLEU/chrF/TER through the task path, signatures, bad input."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

import pytest

from evalmon.core.errors import ConfigError, DataError
from evalmon.core.lm import EngineStats, GenRequest, ModelFingerprint
from evalmon.harness.evaluate import evaluate_task
from evalmon.metrics.text import read_lines
from evalmon.tasks.base import TaskOptions, build_task


class _Replay:
    """A backend that 'translates' by returning a WMT22 system's output for each source line."""

    fingerprint = ModelFingerprint(backend="replay", model="replay")
    capabilities = frozenset({"generate"})

    def __init__(self, answers: dict[str, str]) -> None:
        self.answers = answers

    def loglikelihood(self, reqs: object, progress: object = None) -> list[object]:
        raise NotImplementedError

    def stats(self) -> EngineStats:
        return EngineStats()

    def token_count(self, text: str) -> int:
        return len(text.split())

    def generate(self, reqs: Sequence[GenRequest], progress: object = None) -> list[str]:
        assert all(r.until == ("\n",) and r.temperature == 0.0 for r in reqs)
        out = [" " + self.answers[r.context] + "\n" for r in reqs]  # leading space as a model writes it
        if progress:
            progress(list(enumerate(out)))
        return out


@pytest.mark.accuracy  # official WMT22 scores
def test_wmt22_task_reproduces_official_scores(benchmarks_dir: Path) -> None:
    """All 1,984 de-en segments through the task path with Online-B's outputs as 'generations':
    the corpus BLEU/chrF equal the official WMT22 numbers (ref A, and refs A+B)."""
    base = benchmarks_dir / "wmt22"
    official = {(r["pair"], r["system"], r["metric"]): float(r["score"])
                for r in csv.DictReader((base / "scores/automatic-scores.tsv").open(encoding="utf-8"), delimiter="\t")}
    hyps = read_lines(base / "txt/system-outputs/generaltest2022.de-en.hyp.Online-B.en")
    for refs, tag in ((["A"], "A"), (["A", "B"], "all")):
        task = build_task("wmt22_de_en", TaskOptions(data_dir=benchmarks_dir,
                                                     extra={"references": refs, "bootstrap_iters": 200,
                                                            "metrics": ["bleu", "chrf"]}))
        docs = task.docs()
        assert task.prompt(docs[0]) == f"German phrase: {docs[0].source}\nEnglish phrase:"  # type: ignore[attr-defined]
        lm = _Replay({task.prompt(d): h for d, h in zip(docs, hyps, strict=True)})  # type: ignore[attr-defined]
        result, samples = evaluate_task(task, lm, None, lambda n: None, seed=5)
        assert result.n == len(hyps) == 1984
        for m in ("bleu", "chrf"):
            key = ("de-en", "Online-B", f"{m}-{tag}")
            if key in official:
                assert result.metrics[m].value == pytest.approx(official[key], abs=0.01), key
        assert set(result.metrics) == {"bleu", "chrf"}
        sig = result.config["signatures"]
        assert sig["bleu"].startswith(f"nrefs:{len(refs)}|case:mixed|eff:no|tok:13a|smooth:exp|version:")
        assert sig["bleu"].endswith("|bs:200|seed:5") and sig["chrf"].startswith(f"nrefs:{len(refs)}|case:mixed")
        assert 0 < result.metrics["bleu"].stderr < 2  # type: ignore[operator]
        assert samples[0].items["bleu"][0] == hyps[0]  # stripped hypothesis + references kept per doc


def test_generic_translation_and_bad_input(tmp_path: Path) -> None:
    (tmp_path / "src.txt").write_text("Hallo Welt, wie geht es dir heute?\nGuten Morgen, liebe Freunde.\n")
    (tmp_path / "ref.txt").write_text("Hello world, how are you today?\nGood morning, dear friends.\n")
    (tmp_path / "short.txt").write_text("Hello world\n", encoding="utf-8")
    (tmp_path / "empty.txt").write_text("", encoding="utf-8")
    (tmp_path / "blank.txt").write_text("\n\n", encoding="utf-8")
    opts = {"source": "src.txt", "references": "ref.txt", "src_lang": "German", "tgt_lang": "English"}
    task = build_task("translation", TaskOptions(base_dir=tmp_path, extra=opts))
    lm = _Replay({task.prompt(d): d.references[0] for d in task.docs()})  # type: ignore[attr-defined]
    result, _ = evaluate_task(task, lm, None, lambda n: None)
    assert result.metrics["bleu"].value == pytest.approx(100.0) and result.metrics["ter"].value == 0.0
    assert result.metrics["chrf"].value == pytest.approx(100.0) and result.metrics["ter"].higher_is_better is False
    assert "ter" in result.config["signatures"]
    with pytest.raises(DataError, match=r"has 2 lines but .*short.txt has 1"):
        build_task("translation", TaskOptions(base_dir=tmp_path, extra={**opts, "references": "short.txt"}))
    with pytest.raises(DataError, match=r"empty.txt is empty"):
        build_task("translation", TaskOptions(base_dir=tmp_path, extra={**opts, "references": "empty.txt"}))
    with pytest.raises(DataError, match=r"blank.txt has only empty lines"):
        build_task("translation", TaskOptions(base_dir=tmp_path, extra={**opts, "references": "blank.txt"}))
    with pytest.raises(ConfigError, match="option tgt_lang is required"):
        build_task("translation", TaskOptions(base_dir=tmp_path, extra={k: v for k, v in opts.items()
                                                                         if k != "tgt_lang"}))
    with pytest.raises(DataError, match="local mirror only"):
        build_task("wmt22_en_de", TaskOptions())


METRIC_SCRIPT = '''
import datasets
import evaluate


class ExactMatch(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(description="exact", citation="", inputs_description="",
                                   features=datasets.Features({"predictions": datasets.Value("string"),
                                                               "references": datasets.Value("string")}))

    def _compute(self, predictions, references):
        return {"exact": sum(p == r for p, r in zip(predictions, references)) / len(predictions)}
'''


def test_evaluate_metric_offline_and_local(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """{evaluate: <hub name>} fails at task build with one line offline; a local metric folder works."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    (tmp_path / "src.txt").write_text("Hallo Welt, wie geht es dir heute?\nGuten Morgen, liebe Freunde.\n")
    (tmp_path / "ref.txt").write_text("Hello world, how are you today?\nGood morning, dear friends.\n")
    (tmp_path / "exact_match").mkdir()
    (tmp_path / "exact_match" / "exact_match.py").write_text(METRIC_SCRIPT)
    opts = {"source": "src.txt", "references": "ref.txt", "src_lang": "German", "tgt_lang": "English"}
    with pytest.raises(ConfigError) as err:
        build_task("translation", TaskOptions(base_dir=tmp_path, extra={**opts, "metrics": ["bleu",
                                                                                          {"evaluate": "sacrebleu"}]}))
    assert "\n" not in str(err.value)
    assert str(err.value).startswith("translation: evaluate metric 'sacrebleu' cannot be loaded: the Hugging Face hub "
                                     "is offline (HF_HUB_OFFLINE=1) and the metric script is not cached")
    task = build_task("translation", TaskOptions(base_dir=tmp_path, extra={
        **opts, "metrics": ["chrf", {"evaluate": "exact_match"}]}))
    answers = {task.prompt(d): a for d, a in zip(task.docs(), ["Hello world, how are you today?", "Hi."],  # type: ignore[attr-defined]
                                                 strict=True)}
    result, _ = evaluate_task(task, _Replay(answers), None, lambda n: None)
    assert result.metrics["exact_match.exact"].value == 0.5 and result.metrics["exact_match.exact"].stderr is None
    assert set(result.metrics) == {"chrf", "exact_match.exact"} and "exact_match.exact" in result.notes

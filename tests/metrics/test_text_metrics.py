"""BLEU/chrF/TER (sacrebleu) and WER/CER/MER (jiwer) on real reference numbers."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

from evalmon.core.errors import DataError
from evalmon.harness.scoring import score_files
from evalmon.metrics.asr import Normalization, asr_score
from evalmon.metrics.text import ReferenceScorer, corpus_score, read_lines


def _wmt(benchmarks_dir: Path):  # type: ignore[no-untyped-def]
    base = benchmarks_dir / "wmt22"
    rows = list(csv.DictReader((base / "scores/automatic-scores.tsv").open(encoding="utf-8"), delimiter="\t"))
    official = {(r["pair"], r["system"], r["metric"]): float(r["score"]) for r in rows}
    systems = sorted((p.name.split(".")[1], p.name.split(".")[3], p) for p in (base / "txt/system-outputs").iterdir())
    return base, official, systems


@pytest.mark.accuracy  # official WMT22 scores of every system
def test_every_wmt22_system_matches_official_bleu_and_chrf(benchmarks_dir: Path) -> None:
    base, official, systems = _wmt(benchmarks_dir)
    assert len(systems) == 18
    scorers: dict[tuple[str, str, str], ReferenceScorer] = {}
    checked = 0
    for pair, system, path in systems:
        tgt = pair.split("-")[1]
        hyp = read_lines(path)
        ref_a = read_lines(base / f"txt/references/generaltest2022.{pair}.ref.A.{tgt}")
        ref_b = read_lines(base / f"txt/references/generaltest2022.{pair}.ref.B.{tgt}")
        for metric in ("bleu", "chrf"):
            for refs, tag in (([ref_a], "A"), ([ref_a, ref_b], "all")):
                key = (pair, system, f"{metric}-{tag}")
                if key not in official:
                    continue
                scorer = scorers.setdefault((pair, metric, tag), ReferenceScorer(metric, refs))
                assert scorer.score(hyp) == pytest.approx(official[key], abs=0.01), key
                checked += 1
    assert checked >= 70
    # the uncached path gives the same number
    pair, system, path = systems[0]
    tgt = pair.split("-")[1]
    ref = read_lines(base / f"txt/references/generaltest2022.{pair}.ref.A.{tgt}")
    assert corpus_score("bleu", read_lines(path), [ref], n_bootstrap=0).score == pytest.approx(
        official[(pair, system, "bleu-A")], abs=0.01)


def test_sacrebleu_expectations(benchmarks_dir: Path) -> None:
    d = json.loads((benchmarks_dir / "metric_expectations/sacrebleu_test_expectations.json").read_text())
    for case in d["corpus_bleu"]:
        got = corpus_score("bleu", case["hyps"], case["refs"], n_bootstrap=0, options=case["kwargs"]).score
        assert got == pytest.approx(case["expected"], abs=1e-4)


def test_jiwer_expectations(benchmarks_dir: Path) -> None:
    d = json.loads((benchmarks_dir / "metric_expectations/jiwer_test_expectations.json").read_text())
    raw = Normalization(lowercase=False, remove_punctuation=False)
    n = 0
    for case in d["word_measures"]:
        refs = case["reference"] if isinstance(case["reference"], list) else [case["reference"]]
        hyps = case["hypothesis"] if isinstance(case["hypothesis"], list) else [case["hypothesis"]]
        for metric in ("wer", "mer"):
            if metric in case["expected"]:
                assert asr_score(metric, hyps, refs, norm=raw, n_bootstrap=0).score == pytest.approx(
                    case["expected"][metric], abs=1e-6)
                n += 1
    assert n >= 10


def test_corpus_wer_is_not_a_mean_of_utterance_wers() -> None:
    refs, hyps = ["a b c d e f g h i j", "x"], ["a b c d e f g h i j", "y"]
    assert asr_score("wer", hyps, refs, n_bootstrap=0).score == pytest.approx(1 / 11)  # mean would be 0.5


def test_bootstrap_ci_is_seeded_and_brackets_the_score(benchmarks_dir: Path) -> None:
    base, _, systems = _wmt(benchmarks_dir)
    pair, _, path = systems[0]
    tgt = pair.split("-")[1]
    hyp, ref = read_lines(path)[:300], read_lines(base / f"txt/references/generaltest2022.{pair}.ref.A.{tgt}")[:300]
    a = corpus_score("bleu", hyp, [ref], n_bootstrap=200, seed=7)
    b = corpus_score("bleu", hyp, [ref], n_bootstrap=200, seed=7)
    assert a == b and a.stderr and a.ci_low < a.score < a.ci_high and "seed:7" in a.signature
    w = asr_score("wer", hyp, ref, n_bootstrap=200, seed=7)
    assert w.ci_low <= w.score <= w.ci_high and not w.higher_is_better


def test_bad_inputs(tmp_path: Path) -> None:
    (tmp_path / "h").write_text("a\nb\n")
    (tmp_path / "r").write_text("a\n")
    (tmp_path / "empty").write_text("")
    (tmp_path / "blank").write_text("\n\n")
    with pytest.raises(DataError, match="has 2 lines but"):
        score_files("bleu", tmp_path / "h", [tmp_path / "r"])
    with pytest.raises(DataError, match="empty"):
        score_files("bleu", tmp_path / "h", [tmp_path / "empty"])
    with pytest.raises(DataError, match="only empty lines"):
        score_files("wer", tmp_path / "h", [tmp_path / "blank"])
    with pytest.raises(DataError, match="not found"):
        score_files("bleu", tmp_path / "missing", [tmp_path / "r"])


def test_score_cli(benchmarks_dir: Path, tmp_path: Path) -> None:
    base = benchmarks_dir / "wmt22/txt"
    hyp = base / "system-outputs/generaltest2022.en-de.hyp.OpenNMT.de"
    ref = base / "references/generaltest2022.en-de.ref.A.de"
    out = subprocess.run([sys.executable, "-m", "evalmon.cli", "score", "bleu", "--hyp", str(hyp), "--ref", str(ref),
                          "--json", "--bootstrap", "100"], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    res = json.loads(out.stdout)
    assert res["score"] == pytest.approx(35.685, abs=0.01) and "nrefs:1" in res["signature"]
    (tmp_path / "short").write_text("x\n")
    bad = subprocess.run([sys.executable, "-m", "evalmon.cli", "score", "bleu", "--hyp", str(tmp_path / "short"),
                          "--ref", str(ref)], capture_output=True, text=True, check=False)
    assert bad.returncode == 2 and bad.stderr.startswith("error:") and "Traceback" not in bad.stderr


def test_a_utf8_bom_is_not_part_of_the_text(tmp_path: Path) -> None:
    """Identical text, one file saved with a BOM (Notepad, Excel): BLEU 100 and WER 0, not 92.66."""
    text = "The cat sat on the mat.\nA second line of text here.\nAnd a third one.\n"
    (tmp_path / "plain.txt").write_text(text, encoding="utf-8")
    (tmp_path / "bom.txt").write_text(text, encoding="utf-8-sig")
    for metric, want in (("bleu", 100.0), ("wer", 0.0)):
        for hyp, ref in (("bom.txt", "plain.txt"), ("plain.txt", "bom.txt")):
            out = subprocess.run([sys.executable, "-m", "evalmon.cli", "score", metric, "--hyp", str(tmp_path / hyp),
                                  "--ref", str(tmp_path / ref), "--json", "--bootstrap", "0"],
                                 capture_output=True, text=True, check=False)
            assert out.returncode == 0, out.stderr
            assert json.loads(out.stdout)["score"] == pytest.approx(want), (metric, hyp)
    nlp = "token|speaker|ts|endTs|punctuation|case|tags|wer_tags\nthe|1|||||[]|[]\ncat|1|||||[]|[]\n"
    (tmp_path / "a.nlp").write_text(nlp, encoding="utf-8-sig")  # the header must still be recognised
    (tmp_path / "b.nlp").write_text(nlp, encoding="utf-8")
    assert score_files("wer", tmp_path / "a.nlp", [tmp_path / "b.nlp"], n_bootstrap=0).score == 0.0


def test_negative_seed_or_bootstrap_is_a_config_error_not_a_numpy_traceback(tmp_path: Path) -> None:
    """Hostile walk (walk-score): ``evalmon score bleu --seed -1`` was ``internal error: ValueError: expected
    non-negative integer`` (numpy's SeedSequence); ``--bootstrap -5`` was silently "no bootstrap"."""
    from evalmon.core.errors import ConfigError

    (tmp_path / "h").write_text("the cat sat\na dog ran\n")
    (tmp_path / "r").write_text("the cat sat down\na dog ran off\n")
    for metric in ("bleu", "chrf", "ter", "wer"):
        with pytest.raises(ConfigError, match=r"--seed -1: must be ≥ 0"):
            score_files(metric, tmp_path / "h", [tmp_path / "r"], n_bootstrap=10, seed=-1)
        with pytest.raises(ConfigError, match=r"--bootstrap -5: must be ≥ 0"):
            score_files(metric, tmp_path / "h", [tmp_path / "r"], n_bootstrap=-5)
    with pytest.raises(ConfigError, match=r"--seed -1: must be ≥ 0"):
        corpus_score("bleu", ["the cat sat", "a dog"], [["the cat sat", "a dog"]], n_bootstrap=10, seed=-1)
    out = subprocess.run([sys.executable, "-m", "evalmon.cli", "score", "bleu", "--hyp", str(tmp_path / "h"),
                          "--ref", str(tmp_path / "r"), "--seed", "-1"], capture_output=True, text=True, check=False)
    assert out.returncode == 2 and out.stderr.startswith("error: --seed -1") and "internal error" not in out.stderr


def test_references_empty_after_normalisation_are_an_error_not_nan(tmp_path: Path) -> None:
    """Hostile walk (walk-score): references of only punctuation normalise to nothing; ``evalmon score wer``
    printed ``wer = nan`` with exit 0 (JSON ``"score": null``) — jiwer itself refuses empty references."""
    (tmp_path / "h").write_text("a b\nc\n")
    (tmp_path / "r").write_text(".\n!\n")
    for metric in ("wer", "cer", "mer"):
        with pytest.raises(DataError, match=r"every reference in .*r is empty after normalisation"):
            score_files(metric, tmp_path / "h", [tmp_path / "r"], n_bootstrap=0)
    import jiwer

    kept = score_files("wer", tmp_path / "h", [tmp_path / "r"], n_bootstrap=0,
                       norm=Normalization(remove_punctuation=False))
    assert kept.score == pytest.approx(jiwer.wer([".", "!"], ["a b", "c"]))  # punctuation kept: words, a number

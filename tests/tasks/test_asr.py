"""asr task type: a tiny random Whisper on espeak-ng speech (plumbing, resampling, cache, corpus WER
arithmetic, bad audio), transcripts vs references without a model, and Earnings-21's vendors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from asr_util import UTTERANCES, espeak_wavs, tiny_whisper

from evalmon.core.errors import DataError, ModelError
from evalmon.harness.cache import ResponseCache
from evalmon.harness.evaluate import evaluate_task
from evalmon.metrics.asr import Normalization
from evalmon.tasks.base import TaskOptions, build_task


@pytest.fixture(scope="module")
def speech(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """espeak-ng WAVs (22,050 Hz) + a JSONL manifest; one utterance twice (dedupe)."""
    root = tmp_path_factory.mktemp("speech")
    wavs = espeak_wavs(root / "wav")
    rows = [{"audio": f"wav/{w.name}", "text": t.capitalize() + "."} for w, t in zip(wavs, UTTERANCES, strict=True)]
    rows.append({"audio": f"wav/{wavs[0].name}", "text": "Hello, world!"})
    (root / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root


@pytest.fixture(scope="module")
def whisper(tmp_path_factory: pytest.TempPathFactory) -> object:
    from evalmon.backends.asr_hf import ASRSettings, HFSpeechRecognizer

    path = tiny_whisper(tmp_path_factory.mktemp("whisper") / "tiny-whisper")
    return HFSpeechRecognizer(ASRSettings(path=str(path), batch_size=2, max_new_tokens=8))


def test_whisper_end_to_end(speech: Path, whisper: object, tmp_path: Path) -> None:
    task = build_task("asr", TaskOptions(base_dir=speech, extra={"manifest": "manifest.jsonl", "bootstrap_iters": 50}))
    cache = ResponseCache(tmp_path / "c.sqlite")
    result, samples = evaluate_task(task, whisper, cache, lambda n: None, seed=3)  # type: ignore[arg-type]
    assert result.n == 4 and result.timing.computed == 3 and result.timing.unique_requests == 3  # dupe once
    assert result.config["sampling_rate"] == 16000 and all(s.extra["source_rate"] == 22050 for s in samples)
    assert samples[0].outputs == samples[3].outputs  # the same audio, the same transcript
    assert samples[0].target == "hello world this is a test" and samples[3].target == "hello world"
    # corpus WER = total edits / total reference words (jiwer over the whole list), not a mean of rates
    norm = Normalization()
    hyps = [norm.apply(s.outputs[0]) for s in samples]
    refs = [s.target for s in samples]
    assert all(h == s.items["wer"][0] for h, s in zip(hyps, samples, strict=True))
    edits = sum(_edits(r, h) for r, h in zip(refs, hyps, strict=True))
    assert result.metrics["wer"].value == pytest.approx(edits / sum(len(r.split()) for r in refs))
    assert result.metrics["cer"].higher_is_better is False and "mer" in result.metrics
    assert result.config["bootstrap"]["seed"] == 3 and result.config["normalization"].startswith("lowercase")
    again, _ = evaluate_task(task, whisper, cache, lambda n: None, seed=3)  # type: ignore[arg-type]
    assert again.timing.computed == 0 and again.metrics["wer"].value == result.metrics["wer"].value


def _edits(ref: str, hyp: str) -> int:
    import jiwer

    if not hyp:
        return len(ref.split())
    o = jiwer.process_words(ref, hyp)
    return o.substitutions + o.deletions + o.insertions


def test_bad_audio(speech: Path, whisper: object, tmp_path: Path) -> None:
    rows = [{"audio": str(speech / "wav" / "utt0.wav"), "text": "hello"}]
    (tmp_path / "m.jsonl").write_text(json.dumps(rows[0]) + "\n")
    no_resample = build_task("asr", TaskOptions(base_dir=tmp_path, extra={"manifest": "m.jsonl", "resample": False}))
    with pytest.raises(DataError, match="sampled at 22050 Hz but the model expects 16000 Hz"):
        evaluate_task(no_resample, whisper, None, lambda n: None)  # type: ignore[arg-type]
    (tmp_path / "broken.wav").write_bytes(b"RIFF\x00\x00not really a wave file")
    (tmp_path / "b.jsonl").write_text(json.dumps({"audio": "broken.wav", "text": "x"}) + "\n")
    with pytest.raises(DataError, match=r"cannot read audio file .*broken.wav"):
        evaluate_task(build_task("asr", TaskOptions(base_dir=tmp_path, extra={"manifest": "b.jsonl"})),
                      whisper, None, lambda n: None)  # type: ignore[arg-type]
    (tmp_path / "g.jsonl").write_text(json.dumps({"audio": "gone.wav", "text": "x"}) + "\n")
    with pytest.raises(DataError, match="audio file not found"):
        evaluate_task(build_task("asr", TaskOptions(base_dir=tmp_path, extra={"manifest": "g.jsonl"})),
                      whisper, None, lambda n: None)  # type: ignore[arg-type]
    (tmp_path / "e.jsonl").write_text(json.dumps({"audio": "x.wav", "text": " ,. "}) + "\n")
    with pytest.raises(DataError, match=r"every reference .* is empty"):
        build_task("asr", TaskOptions(base_dir=tmp_path, extra={"manifest": "e.jsonl"}))
    from evalmon.backends.none import NoModel

    with pytest.raises(ModelError, match="needs a speech-recognition model"):
        evaluate_task(build_task("asr", TaskOptions(base_dir=tmp_path, extra={"manifest": "m.jsonl"})),
                      NoModel(), None, lambda n: None)  # type: ignore[arg-type]


def test_asr_text_and_bad_input(tmp_path: Path) -> None:
    (tmp_path / "hyp.txt").write_text("the cat sat\non a mat\n")
    (tmp_path / "ref.txt").write_text("The cat sat.\nOn the big, red mat!\n")
    (tmp_path / "short.txt").write_text("the cat sat\n")
    (tmp_path / "empty.txt").write_text("\n\n")
    opts = {"hypotheses": "hyp.txt", "references": "ref.txt", "bootstrap_iters": 20}
    result, samples = evaluate_task(build_task("asr_text", TaskOptions(base_dir=tmp_path, extra=opts)),
                                    __import__("evalmon.backends.none", fromlist=["NoModel"]).NoModel(), None,
                                    lambda n: None)
    # corpus WER = (0 + 3 edits) / (3 + 5 words) = 0.375 — the mean of per-line rates would be 0.3
    assert result.metrics["wer"].value == pytest.approx(3 / 8)
    assert samples[1].items["wer"] == ["on a mat", "on the big red mat"]
    with pytest.raises(DataError, match=r"has 2 lines but .*short.txt has 1"):
        build_task("asr_text", TaskOptions(base_dir=tmp_path, extra={**opts, "references": "short.txt"}))
    with pytest.raises(DataError, match=r"empty.txt has only empty lines"):
        build_task("asr_text", TaskOptions(base_dir=tmp_path, extra={**opts, "references": "empty.txt"}))
    # a folder against a line file paired by sorted file name ↔ line number: b.txt's transcript met line 1
    (tmp_path / "hyps").mkdir()
    (tmp_path / "hyps" / "b.txt").write_text("on a mat\n")
    (tmp_path / "hyps" / "a.txt").write_text("the cat sat\n")
    with pytest.raises(DataError, match=r"hyps is a folder of transcripts but .*ref.txt is a file"):
        build_task("asr_text", TaskOptions(base_dir=tmp_path, extra={**opts, "hypotheses": "hyps"}))


@pytest.mark.accuracy  # published vendor WER on real earnings calls
def test_earnings21_vendor_near_published(benchmarks_dir: Path) -> None:
    """Microsoft on Eval-10: plain normalisation 19.5 % vs the published 16.2 %; with the .norm.json
    alternatives (fstalign-like) 16.1 %."""
    plain = build_task("earnings21_microsoft", TaskOptions(data_dir=benchmarks_dir, extra={
        "alternatives": False, "metrics": ["wer"], "bootstrap_iters": 100}))
    alt = build_task("earnings21_microsoft", TaskOptions(data_dir=benchmarks_dir, extra={
        "metrics": ["wer"], "bootstrap_iters": 100}))
    from evalmon.backends.none import NoModel

    r_plain, _ = evaluate_task(plain, NoModel(), None, lambda n: None)
    r_alt, samples = evaluate_task(alt, NoModel(), None, lambda n: None)
    assert r_alt.n == 11 and len(samples) == 11
    assert r_plain.metrics["wer"].value == pytest.approx(0.1949, abs=5e-4)
    assert abs(100 * r_alt.metrics["wer"].value - r_alt.config["published_eval10_wer"]) < 0.3
    assert 0 < r_alt.metrics["wer"].stderr < 0.02  # type: ignore[operator]

"""Offline fixtures for the ASR tests: real speech from espeak-ng and a tiny random Whisper checkpoint.

The Whisper tokenizer is built offline: a byte-level BPE trained with ``tokenizers`` on a few local
texts (``vocab.json`` + ``merges.txt``), wrapped in ``WhisperTokenizer``; Whisper's special tokens are
added *after* the BPE vocabulary, with ``<|notimestamps|>`` last, because the ASR pipeline's decoder
treats every id above ``<|notimestamps|>`` as a timestamp. The random model transcribes garbage —
the tests check plumbing, resampling, caching and corpus WER arithmetic, not accuracy.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

SPECIALS = ["<|endoftext|>", "<|startoftranscript|>", "<|en|>", "<|translate|>", "<|transcribe|>",
            "<|startoflm|>", "<|startofprev|>", "<|nocaptions|>", "<|notimestamps|>"]
UTTERANCES = ["hello world this is a test", "the quick brown fox jumps over the lazy dog",
              "good morning and welcome to the earnings call"]


def espeak_wavs(out: Path, texts: list[str] = UTTERANCES) -> list[Path]:
    """One WAV per text (espeak-ng writes 22,050 Hz mono 16-bit PCM)."""
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise RuntimeError("espeak-ng is not installed (apt-get install -y espeak-ng)")
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, text in enumerate(texts):
        path = out / f"utt{i}.wav"
        subprocess.run([exe, "-w", str(path), text], check=True, capture_output=True, timeout=60)
        paths.append(path)
    return paths


def tiny_whisper(out: Path, seed: int = 0) -> Path:
    import torch
    from tokenizers import ByteLevelBPETokenizer
    from transformers import (
        GenerationConfig,
        WhisperConfig,
        WhisperFeatureExtractor,
        WhisperForConditionalGeneration,
        WhisperProcessor,
        WhisperTokenizer,
    )

    out.mkdir(parents=True, exist_ok=True)
    corpus = [" ".join(UTTERANCES)] * 5 + [Path(p).read_text(errors="ignore")[:20000]
                                          for p in ("/usr/share/common-licenses/Apache-2.0",) if Path(p).is_file()]
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(corpus, vocab_size=300, special_tokens=SPECIALS[:1], show_progress=False)
    bpe.save_model(str(out))
    tok = WhisperTokenizer(str(out / "vocab.json"), str(out / "merges.txt"), unk_token=SPECIALS[0],
                           bos_token=SPECIALS[0], eos_token=SPECIALS[0], pad_token=SPECIALS[0],
                           additional_special_tokens=SPECIALS[1:])
    ids = {s: tok.convert_tokens_to_ids(s) for s in SPECIALS}
    assert ids["<|notimestamps|>"] == len(tok) - 1
    cfg = WhisperConfig(vocab_size=len(tok), num_mel_bins=80, d_model=32, encoder_layers=1, decoder_layers=1,
                        encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=64, decoder_ffn_dim=64,
                        max_source_positions=1500, max_target_positions=64, pad_token_id=ids[SPECIALS[0]],
                        bos_token_id=ids[SPECIALS[0]], eos_token_id=ids[SPECIALS[0]],
                        decoder_start_token_id=ids["<|startoftranscript|>"], suppress_tokens=[], begin_suppress_tokens=[])
    torch.manual_seed(seed)
    model = WhisperForConditionalGeneration(cfg)
    model.generation_config = GenerationConfig(
        decoder_start_token_id=ids["<|startoftranscript|>"], eos_token_id=ids[SPECIALS[0]],
        pad_token_id=ids[SPECIALS[0]], bos_token_id=ids[SPECIALS[0]], no_timestamps_token_id=ids["<|notimestamps|>"],
        is_multilingual=False, max_length=24)
    model.save_pretrained(out)
    WhisperProcessor(feature_extractor=WhisperFeatureExtractor(feature_size=80, sampling_rate=16000),
                     tokenizer=tok).save_pretrained(out)
    return out

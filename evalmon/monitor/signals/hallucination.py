"""Hallucination signals: groundedness against retrieved contexts, self-consistency, optional LLM judge.

Groundedness (records with ``contexts``): the response is split into sentences and the contexts into
sentences (regex). For each response sentence:

- lexical support = share of its content tokens (lower-cased words and numbers, stopwords removed) that
  occur anywhere in the contexts (entities and numbers the context never mentions are what
  hallucinated answers add);
- embedding support = cosine similarity (offline MiniLM) to the most similar context sentence, rescaled
  so ``embedding_floor`` → 0 and 1 → 1 (a paraphrase scores high even with new words);
- support = max(lexical, embedding); the sentence is supported when support ≥ ``support_threshold``.

Columns: ``hallucination.unsupported_ratio`` (share of unsupported sentences), ``.groundedness`` (mean
support), ``.min_support`` (weakest sentence), ``.novel_tokens`` (content tokens absent from the
contexts), ``.flag`` (0/1: unsupported_ratio > ``max_unsupported_ratio``), ``.has_context`` (0/1).
All are NaN for records without contexts or with an empty response. ``embeddings: false`` keeps the
lexical half only (no model load; fast enough for millions of records).

Self-consistency (records with ``samples``): mean cosine similarity of the response to each extra
sample (``.self_consistency``; NaN without samples) — low agreement among samples is a hallucination
cue. Without embeddings it is the mean token Jaccard similarity.

LLM judge (optional): a ``JudgeFn`` (``prompt -> text``) is asked about a deterministic sample of the
records: those whose seeded hash of prompt/response/contexts (``stable_fraction``, uniform in [0, 1)) is below
``sample_rate``, so a rerun picks the same ones. The cost cap (``judge: {max_per_window: N}``) holds per
**window**, whatever the number of partitions it is read in: before a window's partitions are scored, the
executor hands the signal the whole window (``plan_window``, via ``pipeline.window_signals``), which finds the
N-th smallest distinct hash below the rate; each partition then judges only records with a hash at or below it
— the N sampled records of the window with the smallest hash, the same set for 1 or P partitions. Without a
window plan (the reference, ``evalmon signals score``) the cap applies to each batch the same way. Records
without contexts get a world-knowledge prompt (``DEFAULT_JUDGE_TEMPLATE_NO_CONTEXT``) unless a template is given.
The reply is parsed as JSON ``{"hallucinated": …}`` or as the judge's **last** own yes/no — words inside
quotes or code, or echoed from the prompt it was shown (the record's texts or the template's instructions,
"… Reply with exactly one word: Yes or No." copied back; ``evalmon.judge.parse``), are not its verdict:
``.judge_sampled`` (0/1: judged) and ``.judge_flag`` (1 hallucinated, 0 faithful, NaN not judged or
unparseable). A judge call that fails (HTTP error, timeout, no connection) leaves its record not judged: both
columns NaN, so their coverage falls, and the row is not cached (``retry_when_nan``). The judge model comes from the one judge
factory (``evalmon.judge.factory``): ``judge.model`` is any evalmon model config — a local checkpoint
(``{path: …}``, backend hf by default) or a served one (``{backend: openai, base_url: …}``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np
import pandas as pd

from evalmon.judge.factory import LMJudge, ask_judge, judge_fn
from evalmon.judge.parse import is_echo, quoted_spans
from evalmon.monitor.contracts import CONTEXTS, PROMPT, RESPONSE, SAMPLES
from evalmon.monitor.signals.base import (
    BaseSignal,
    content_tokens,
    list_series,
    record_keys,
    split_sentences,
    stable_fraction,
    text_series,
    window_cutoff,
)
from evalmon.monitor.signals.embeddings import DEFAULT_MODEL, get_embedder


@runtime_checkable
class JudgeFn(Protocol):
    """Anything that answers a judge prompt with text (an LLM behind an evalmon model, a test fake)."""

    def __call__(self, prompt: str) -> str: ...


DEFAULT_JUDGE_TEMPLATE = (
    "You are checking an answer against the knowledge it was supposed to use.\n\n"
    "Knowledge:\n{context}\n\nQuestion:\n{question}\n\nAnswer:\n{answer}\n\n"
    "Does the answer contain information that is not supported by, or contradicts, the knowledge? "
    "Reply with exactly one word: Yes or No."
)
DEFAULT_JUDGE_TEMPLATE_NO_CONTEXT = (
    "You are checking an answer for factual errors, using your own knowledge of the world.\n\n"
    "Question:\n{question}\n\nAnswer:\n{answer}\n\n"
    "Does the answer contain information that is false, made up, or not supported by well-established facts? "
    "Reply with exactly one word: Yes or No."
)
_YES_NO = re.compile(r"\b(yes|no)\b", re.IGNORECASE)


def parse_judge_reply(reply: str, sources: tuple[str, ...] = ()) -> float:
    """1.0 hallucinated, 0.0 faithful, NaN unparseable. Accepts JSON {"hallucinated": bool} or the last yes/no
    the judge wrote itself: not inside quotes or code, not an echo of ``sources`` (what it was shown)."""
    text = (reply or "").strip()
    if text.startswith("{"):
        try:
            obj = json.loads(text)
            val = obj.get("hallucinated", obj.get("hallucination")) if isinstance(obj, dict) else None
            if isinstance(val, bool):
                return float(val)
            if isinstance(val, str) and val.lower() in ("yes", "no", "true", "false"):
                return float(val.lower() in ("yes", "true"))
        except ValueError:
            pass
    spans = quoted_spans(text)
    own = [m for m in _YES_NO.finditer(text) if not any(a <= m.start() and m.end() <= b for a, b in spans)
           and not (sources and is_echo(text, m.start(), m.end(), sources))]
    return float(own[-1].group(1).lower() == "yes") if own else float("nan")


def judge_from_lm(lm: Any, *, max_gen_toks: int = 8) -> Callable[[str], str]:
    """Wrap an evalmon LM that generates (greedy, short answer) as a ``JudgeFn`` with a ``batch`` method."""
    return LMJudge(lm=lm, max_gen_toks=max_gen_toks)


def judge_from_model_config(model: dict[str, Any], *, max_gen_toks: int = 8) -> Callable[[str], str]:
    """A ``JudgeFn`` over an evalmon model config of any backend: validated now, loaded on first use."""
    return judge_fn(model, max_gen_toks=max_gen_toks, where="signals.hallucination.judge.model")


class HallucinationSignal(BaseSignal):
    name: ClassVar[str] = "hallucination"
    retry_when_nan: ClassVar[tuple[str, ...]] = ("hallucination.judge_sampled",)  # a failed judge call
    version: ClassVar[str] = "2"  # 2: the ask itself is an echo source (a parroted "Yes or No." is no verdict)

    def __init__(self, *, embeddings: bool = True, support_threshold: float = 0.75,
                 embedding_floor: float = 0.5, max_unsupported_ratio: float = 0.0,
                 model: str = DEFAULT_MODEL, batch_size: int = 64, max_sentences: int = 64,
                 max_context_chars: int = 20_000, judge: JudgeFn | None = None, judge_sample_rate: float = 0.0,
                 judge_seed: int = 0, judge_template: str = DEFAULT_JUDGE_TEMPLATE,
                 judge_name: str = "", allow_download: bool = False,
                 judge_max_per_batch: int | None = None) -> None:
        self.use_embeddings = embeddings
        self.support_threshold = support_threshold
        self.embedding_floor = embedding_floor
        self.max_unsupported_ratio = max_unsupported_ratio
        self.model_ref = model
        self.max_sentences = max_sentences
        self.max_context_chars = max_context_chars
        self.judge = judge
        self.judge_sample_rate = judge_sample_rate if judge is not None else 0.0
        self.judge_seed = judge_seed
        self.judge_template = judge_template
        self.judge_max_per_batch = judge_max_per_batch  # judge.max_per_window (per batch without a window plan)
        self._planned = False  # plan_window was given this window's records
        self._judge_cutoff: float | None = None  # the window's cap-th smallest sampled hash (None: cap not reached)
        self.judge_name = judge_name
        self.embedder = get_embedder(model, batch_size=batch_size, allow_download=allow_download) \
            if embeddings else None
        cols = ["hallucination.unsupported_ratio", "hallucination.groundedness", "hallucination.min_support",
                "hallucination.novel_tokens", "hallucination.flag", "hallucination.has_context",
                "hallucination.self_consistency"]
        if judge is not None:
            cols += ["hallucination.judge_sampled", "hallucination.judge_flag"]
        self.columns = tuple(cols)
        self.inputs = (PROMPT, RESPONSE, CONTEXTS, SAMPLES)

    def options(self) -> dict[str, Any]:
        return {"embeddings": self.use_embeddings, "support_threshold": self.support_threshold,
                "embedding_floor": self.embedding_floor, "max_unsupported_ratio": self.max_unsupported_ratio,
                "model": self.model_ref, "max_sentences": self.max_sentences,
                "max_context_chars": self.max_context_chars, "judge": self.judge_name if self.judge else None,
                "judge_sample_rate": self.judge_sample_rate, "judge_seed": self.judge_seed,
                "judge_template": self.judge_template if self.judge else None,
                **({"judge_max_per_batch": self.judge_max_per_batch} if self.judge_max_per_batch else {}),
                # a window whose cap binds judges fewer records: its rows are cached under their own key
                **({"judge_window_cutoff": self._judge_cutoff} if self._judge_cutoff is not None else {})}

    # -- groundedness -------------------------------------------------------------------------------
    def compute(self, frame: pd.DataFrame) -> pd.DataFrame:
        n = len(frame)
        responses = text_series(frame, RESPONSE).tolist()
        contexts = list_series(frame, CONTEXTS)
        resp_sents = [split_sentences(r, max_sentences=self.max_sentences) for r in responses]
        ctx_text = ["\n".join(c)[: self.max_context_chars] for c in contexts]
        ctx_sents = [split_sentences(c, max_sentences=4 * self.max_sentences) if c.strip() else []
                     for c in ctx_text]
        active = [i for i in range(n) if resp_sents[i] and ctx_sents[i]]
        out = {c: np.full(n, np.nan) for c in self.columns}
        out["hallucination.has_context"] = np.array([float(bool(c)) for c in ctx_sents])

        # lexical support first: a sentence whose every content token is in the contexts has support 1
        # whatever its embedding says (support = max), so only the other sentences (and their records'
        # context sentences) are embedded — the same numbers, a fraction of the encoder calls.
        ctx_tokens = {i: set(content_tokens(ctx_text[i])) for i in active}
        lexical_of: dict[int, list[tuple[str, float, int]]] = {}
        for i in active:
            rows = []
            for sent in resp_sents[i]:
                toks = content_tokens(sent)
                missing = sum(t not in ctx_tokens[i] for t in toks)
                rows.append((sent, 1.0 - missing / len(toks) if toks else 1.0, missing))
            lexical_of[i] = rows
        vec: dict[str, np.ndarray] = {}
        need = [i for i in active if any(lex < 1.0 for _, lex, _ in lexical_of[i])]
        if self.embedder is not None and need:
            uniq = list(dict.fromkeys([s for i in need for s, lex, _ in lexical_of[i] if lex < 1.0]
                                      + [s for i in need for s in ctx_sents[i]]))
            if uniq:
                vec = dict(zip(uniq, self.embedder.encode(uniq), strict=True))
        floor = self.embedding_floor
        embedded = set(need) if vec else set()
        for i in active:
            supports, novel = [], 0
            cmat = np.stack([vec[s] for s in ctx_sents[i]]) if i in embedded else None
            for sent, lexical, missing in lexical_of[i]:
                novel += missing
                semantic = 0.0
                if cmat is not None and lexical < 1.0:
                    cos = float(np.max(cmat @ vec[sent]))
                    semantic = max(0.0, (cos - floor) / (1.0 - floor))
                supports.append(max(lexical, semantic))
            sup = np.array(supports)
            ratio = float(np.mean(sup < self.support_threshold))
            out["hallucination.unsupported_ratio"][i] = ratio
            out["hallucination.groundedness"][i] = float(sup.mean())
            out["hallucination.min_support"][i] = float(sup.min())
            out["hallucination.novel_tokens"][i] = float(novel)
            out["hallucination.flag"][i] = float(ratio > self.max_unsupported_ratio)

        out["hallucination.self_consistency"] = self._self_consistency(responses, list_series(frame, SAMPLES))
        if self.judge is not None:
            sampled, flags = self._judge(frame, responses, contexts)
            out["hallucination.judge_sampled"], out["hallucination.judge_flag"] = sampled, flags
        return pd.DataFrame(out, index=frame.index)[list(self.columns)]

    # -- self-consistency ---------------------------------------------------------------------------
    def _self_consistency(self, responses: list[str], samples: list[list[str]]) -> np.ndarray:
        n = len(responses)
        res = np.full(n, np.nan)
        rows = [i for i in range(n) if samples[i] and responses[i].strip()]
        if not rows:
            return res
        if self.embedder is not None:
            uniq = list(dict.fromkeys(t for i in rows for t in (responses[i], *samples[i])))
            vec = dict(zip(uniq, self.embedder.encode(uniq), strict=True))
            for i in rows:
                r = vec[responses[i]]
                res[i] = float(np.mean([vec[s] @ r for s in samples[i]]))
        else:
            for i in rows:
                a = set(content_tokens(responses[i]))
                sims = []
                for s in samples[i]:
                    b = set(content_tokens(s))
                    sims.append(len(a & b) / len(a | b) if a | b else 1.0)
                res[i] = float(np.mean(sims))
        return res

    # -- LLM judge ----------------------------------------------------------------------------------
    def _fractions(self, frame: pd.DataFrame) -> np.ndarray:
        keys = record_keys(frame, (PROMPT, RESPONSE, CONTEXTS))
        return np.array([stable_fraction(k, self.judge_seed) for k in keys], dtype=float)

    def plan_window(self, frames: Sequence[pd.DataFrame] | None) -> None:
        """Fix the judge's per-window cost cap from all of a window's partitions (``None``: forget the plan).

        The cutoff is the ``max_per_window``-th smallest distinct hash below the sample rate in the window, so
        which records are judged depends on the window's records only, never on how they are partitioned."""
        self._planned, self._judge_cutoff = frames is not None, None
        cap = self.judge_max_per_batch
        if frames is None or self.judge is None or cap is None or self.judge_sample_rate <= 0:
            return
        self._judge_cutoff = window_cutoff([fr[fr < self.judge_sample_rate] for f in frames if len(f)
                                            for fr in [self._fractions(f)]], cap)

    def judge_selected(self, frame: pd.DataFrame) -> np.ndarray:
        """Which records the judge sees: stable per record content, ≈ ``judge_sample_rate`` of them, capped
        per window (``plan_window``) or, without a window plan, per batch."""
        frac = self._fractions(frame)
        chosen = frac < self.judge_sample_rate
        cap = self.judge_max_per_batch
        if self._planned:  # the window's cap: a record's own hash against the window's cutoff
            return chosen & (frac <= self._judge_cutoff) if self._judge_cutoff is not None else chosen
        if cap is not None and chosen.sum() > cap:  # cost cap: the smallest hashes, stable across reruns
            keep = np.flatnonzero(chosen)[np.argsort(frac[chosen], kind="stable")[:cap]]
            chosen = np.zeros(len(frac), dtype=bool)
            chosen[keep] = True
        return chosen

    def _judge(self, frame: pd.DataFrame, responses: list[str],
               contexts: list[list[str]]) -> tuple[np.ndarray, np.ndarray]:
        n = len(frame)
        flags = np.full(n, np.nan)
        selected = self.judge_selected(frame) if n else np.zeros(0, dtype=bool)
        idx = np.flatnonzero(selected)
        if not len(idx) or self.judge is None:
            return selected.astype(float), flags
        prompts = text_series(frame, PROMPT).tolist()
        asks = [self._ask(prompts[i], responses[i], contexts[i]) for i in idx]
        replies = ask_judge(self.judge, asks, where="signals.hallucination.judge")
        sampled = selected.astype(float)
        for i, ask, reply in zip(idx, asks, replies, strict=True):  # the ask: its instructions are no verdict
            if reply is None:  # the call failed: not judged (NaN, not cached: a rerun asks again)
                sampled[i] = np.nan
                continue
            flags[i] = parse_judge_reply(reply, (prompts[i], responses[i], *contexts[i], ask))
        return sampled, flags

    def _ask(self, question: str, answer: str, contexts: list[str]) -> str:
        context = "\n".join(contexts)[: self.max_context_chars]
        if not context and self.judge_template == DEFAULT_JUDGE_TEMPLATE:
            return DEFAULT_JUDGE_TEMPLATE_NO_CONTEXT.format(question=question, answer=answer)
        return self.judge_template.format(context=context or "(none)", question=question, answer=answer)

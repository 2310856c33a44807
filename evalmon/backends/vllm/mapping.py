"""evalmon requests → vLLM's offline ``LLM`` API and back, as pure functions (no vllm import: unit-testable).

Loglikelihood (lm-eval's numerics, as its own ``vllm`` model does): encode whole then split
(``encode_pair``: trailing spaces of the context move into the continuation; empty context → the prefix
token), the prompt is ``(ctx + cont)[-max_length:]`` (left truncation), vLLM is asked for
``prompt_logprobs`` with ``max_tokens=1``, and the result sums the log-probs vLLM reports for the last
``len(cont)`` prompt tokens; ``is_greedy`` when each of those tokens is rank 1 (vLLM's ``Logprob.rank``; or,
without ranks, the highest log-prob in its position's dict). Generation: the prompt's token ids cut from the
left to leave room for ``max_gen_toks``, ``SamplingParams`` keyword arguments from the request (greedy:
temperature 0), the text cut at the first stop string (vLLM already stops there; the cut keeps the
contract when it does not).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from evalmon.core.lm import GenRequest, LLResult

Encode = Callable[[str, bool | None], list[int]]  # (text, add_special_tokens or None = the tokenizer's default)


def encode_pair(encode: Encode, context: str, continuation: str, prefix_token: int) -> tuple[list[int], list[int]]:
    """lm-eval's ``loglikelihood`` tokenisation (same as the hf backend's ``encode_pair``)."""
    if context == "":
        cont = encode(continuation, False)
        if cont and cont[0] == prefix_token:
            return cont[:1], cont[1:]
        return [prefix_token], cont
    n_spaces = len(context) - len(context.rstrip())
    if n_spaces > 0:
        continuation = context[-n_spaces:] + continuation
        context = context[:-n_spaces]
    whole = encode(context + continuation, None)
    ctx = encode(context, None)
    return ctx, whole[len(ctx):]


@dataclass(frozen=True)
class LLPrompt:
    """What vLLM scores for one loglikelihood request: ``prompt`` token ids, the last ``n_cont`` of them scored."""

    prompt: list[int]
    n_cont: int


def ll_prompt(ctx: Sequence[int], cont: Sequence[int], max_length: int) -> LLPrompt:
    """``(ctx + cont)[-max_length:]``, scoring the continuation (all of it when it alone exceeds the window:
    then the first kept token has no context and is not scored)."""
    if not cont:
        raise ValueError("empty continuation after tokenisation")
    whole = [*ctx, *cont][-max_length:]
    return LLPrompt(whole, min(len(cont), len(whole) - 1))


def _logprob_of(entry: Any) -> float:
    return float(entry.logprob if hasattr(entry, "logprob") else entry)


def ll_result(prompt_logprobs: Sequence[Mapping[int, Any] | None], prompt: LLPrompt) -> LLResult:
    """Sum and greediness of the continuation from vLLM's ``RequestOutput.prompt_logprobs`` (one entry per
    prompt token, ``None`` for the first; each a ``{token_id: Logprob(logprob, rank, decoded_token)}`` that
    holds the prompt token itself plus the top-k)."""
    if len(prompt_logprobs) != len(prompt.prompt):
        raise ValueError(f"vLLM returned {len(prompt_logprobs)} prompt logprobs for {len(prompt.prompt)} tokens")
    total, greedy = 0.0, True
    start = len(prompt.prompt) - prompt.n_cont
    for pos in range(start, len(prompt.prompt)):
        entries = prompt_logprobs[pos]
        token = prompt.prompt[pos]
        if entries is None or token not in entries:
            raise ValueError(f"vLLM returned no logprob for prompt token {token} at position {pos}")
        mine = entries[token]
        total += _logprob_of(mine)
        rank = getattr(mine, "rank", None)
        if rank is not None:
            greedy = greedy and int(rank) == 1
        else:
            greedy = greedy and _logprob_of(mine) >= max(_logprob_of(e) for e in entries.values())
    return LLResult(total, greedy, prompt.n_cont)


def gen_prompt(ids: Sequence[int], max_length: int, max_gen_toks: int) -> list[int]:
    """The prompt's token ids, cut from the left so that ``max_gen_toks`` new tokens fit in ``max_length``."""
    room = max_length - max_gen_toks
    if room <= 0:
        raise ValueError(f"max_gen_toks {max_gen_toks} leaves no room in a {max_length}-token context")
    return list(ids)[-room:]


def sampling_kwargs(r: GenRequest) -> dict[str, Any]:
    """``vllm.SamplingParams`` keyword arguments for a generation request."""
    kwargs: dict[str, Any] = {"max_tokens": r.max_gen_toks, "stop": list(r.until) or None,
                              "temperature": r.temperature}
    if r.temperature > 0:
        kwargs.update(top_p=r.top_p, seed=r.seed)
    return kwargs


def ll_sampling_kwargs() -> dict[str, Any]:
    """``vllm.SamplingParams`` for loglikelihood: the prompt's own log-probs (+ top-1), one dummy new token."""
    return {"max_tokens": 1, "prompt_logprobs": 1, "temperature": 0.0}


def cut_at_stops(text: str, stops: Sequence[str]) -> str:
    cut = min((i for i in (text.find(s) for s in stops if s) if i >= 0), default=len(text))
    return text[:cut]


def gen_text(output: Any, r: GenRequest) -> str:
    """The generated text of one ``RequestOutput`` (its first completion), cut at the request's stops."""
    return cut_at_stops(output.outputs[0].text, r.until)

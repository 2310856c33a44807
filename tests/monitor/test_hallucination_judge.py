"""The hallucination signal's LLM judge over a served OpenAI-compatible judge on 127.0.0.1: context-free
prompts, sampling with a per-window cost cap, verdicts parsed robustly (quotes and echoes are not verdicts)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd
import pytest
from chat_server_util import ChatServer

from evalmon.monitor.signals import build_signals
from evalmon.monitor.signals.hallucination import parse_judge_reply

pytestmark = pytest.mark.e2e


def _reply(prompt: str) -> str:
    """A served judge that knows Paris is right and Rome is wrong; it quotes the answer and writes the opposite
    word inside quotes before its own verdict, as real judges do."""
    answer = prompt.split("Answer:\n", 1)[1].split("\n\n", 1)[0]
    return (f'The answer "{answer}" says Rome; one might say "No", but: Yes' if "Rome" in answer
            else f'Checking "{answer}"... "Yes" would be wrong. No')


@pytest.fixture
def judge_server() -> Iterator[ChatServer]:
    srv = ChatServer(_reply, "judge")
    yield srv
    srv.close()


def test_served_judge_sampled_capped_and_parsed_without_contexts(judge_server: ChatServer) -> None:
    model = {"backend": "openai", "base_url": judge_server.url, "model": "judge", "supports_logprobs": False,
             "max_retries": 0, "timeout_s": 10}
    sig = build_signals([{"name": "hallucination", "embeddings": False,
                          "judge": {"model": model, "sample_rate": 0.5, "max_per_window": 6,
                                    "max_gen_toks": 64}}])[0]
    n = 60
    df = pd.DataFrame({"prompt": [f"Where is the Eiffel tower? ({i})" for i in range(n)],
                       "response": ["The tower is in Rome." if i % 2 else "Yes, it is in Paris." for i in range(n)]})
    out = sig.compute(df)
    judged = out["hallucination.judge_sampled"].to_numpy() > 0
    assert judged.sum() == 6 == len(judge_server.prompts)  # the cost cap, not the 50% sample (~30)
    assert all("your own knowledge" in p and "Knowledge:" not in p for p in judge_server.prompts)
    flags = out["hallucination.judge_flag"].to_numpy()
    assert (flags[judged] == (np.arange(n)[judged] % 2)).all()  # quoted "No"/"Yes" ignored: own verdicts
    assert np.isnan(flags[~judged]).all()
    assert np.isnan(out["hallucination.groundedness"]).all()  # no contexts: the grounding columns stay NaN
    uncapped = build_signals([{"name": "hallucination", "embeddings": False,
                               "judge": {"model": model, "sample_rate": 0.5}}])[0].judge_selected(df)
    assert set(np.flatnonzero(judged)) <= set(np.flatnonzero(uncapped)) and 15 < uncapped.sum() < 45


def test_judge_reply_parsing_ignores_quotes_and_echoes() -> None:
    answer = "No, the Eiffel tower is in Rome."
    assert parse_judge_reply(f"Verdict: Yes. The answer reads: {answer}", (answer,)) == 1.0  # echo ignored
    assert parse_judge_reply(f"Verdict: Yes. The answer reads: {answer}") == 0.0  # (without its source)
    assert parse_judge_reply('It says "yes". No.') == 0.0
    assert parse_judge_reply('```\nYes\n```\nno') == 0.0
    assert parse_judge_reply('{"hallucinated": "yes"}') == 1.0
    assert np.isnan(parse_judge_reply('"Yes"'))


@pytest.mark.parametrize("contexts", [None, ["The Eiffel tower is in Paris."]])
@pytest.mark.parametrize("template", [None, "Q: {question}\nA: {answer}\nK: {context}\nIs A made up? Say Yes or No."])
def test_a_judge_that_parrots_its_instructions_gives_no_verdict(contexts: list[str] | None,
                                                                 template: str | None) -> None:
    """A weak judge copies the last line of the prompt ('… Reply with exactly one word: Yes or No.'): the 'No'
    there is the instructions' word, not a verdict; before, it was read as 'faithful' (0.0, a pass)."""
    parrot = ChatServer(lambda p: p.strip().splitlines()[-1], "judge")
    try:
        model = {"backend": "openai", "base_url": parrot.url, "model": "judge", "supports_logprobs": False,
                 "max_retries": 0, "timeout_s": 10}
        judge = {"model": model, "sample_rate": 1.0, "max_gen_toks": 64, **({"template": template} if template else {})}
        sig = build_signals([{"name": "hallucination", "embeddings": False, "judge": judge}])[0]
        df = pd.DataFrame({"prompt": ["Where is the Eiffel tower?"], "response": ["It is in Rome."]})
        if contexts is not None:
            df["contexts"] = [contexts]
        out = sig.compute(df)
    finally:
        parrot.close()
    assert len(parrot.prompts) == 1 and parrot.prompts[0].strip().splitlines()[-1].endswith("No.")
    assert out["hallucination.judge_sampled"].tolist() == [1.0]
    assert np.isnan(out["hallucination.judge_flag"].iloc[0])  # unparseable: not judged, never 0.0

"""Chat-template mode for multiple-choice tasks (lm-eval's ``apply_chat_template`` / ``fewshot_as_multiturn``).

What the tasks build (messages, no target delimiter, options checked), how the hf and openai backends render it,
and — against lm-eval 0.4.13's own ``HFLM`` on the tiny checkpoint, whose tokenizer adds BOS — the rendered
string, the tokens (a template that writes BOS itself gets no second one) and the loglikelihoods. The same on a
real checkpoint and real rows: ``test_parity_real.py::test_chat_template_*``.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from evalmon.backends.hf.chat import render_contexts
from evalmon.backends.hf.model import HFCausalLM, HFSettings
from evalmon.core.errors import ConfigError, ModelError
from evalmon.core.lm import LLRequest, ModelFingerprint
from evalmon.harness.evaluate import evaluate_task
from evalmon.tasks._chat import ChatMultipleChoiceTask, multiple_choice
from evalmon.tasks.base import MCDoc, MultipleChoiceTask, TaskOptions, build_task, config_hash

CHATML = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
          "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
WITH_BOS = "{{ bos_token }}" + CHATML  # Llama-3 / Gemma style: the template writes BOS itself
NO_SYSTEM = "{% if messages[0]['role'] == 'system' %}{{ raise_exception('no system role') }}{% endif %}" + CHATML
DESCRIPTION = "The following are multiple choice questions (with answers) about licences.\n\n"
SHOTS = (MCDoc("dev/0", "Is the GPL a free licence?\nA. no\nB. yes\nAnswer:", ("A", "B"), 1),
         MCDoc("dev/1", "Is Apache-2.0 permissive?\nA. yes\nB. no\nAnswer:", ("A", "B"), 0))
DOC = MCDoc("test/0", "Does the MIT licence require attribution?\nA. yes\nB. no\nAnswer:", ("A", "B"), 0)


def mc(extra: dict[str, Any] | None = None, **fields: Any) -> MultipleChoiceTask:
    spec = {"name": "licences", "source": "inline", "documents": (DOC,), "fewshot": SHOTS,
            "description": DESCRIPTION, "num_fewshot": 2, "scoring": "acc_only", **fields}
    return multiple_choice(TaskOptions(extra=extra or {}), **spec)


# ------------------------------------------------------------------------------------------- tasks


def test_multiturn_messages_and_requests() -> None:
    """lm-eval's fewshot_as_multiturn (its default with a chat template): description as the system turn, one
    user/assistant pair per shot, the document's query last; continuations are the bare choices."""
    task = mc({"chat_template": True})
    assert isinstance(task, ChatMultipleChoiceTask) and task.fewshot_as_multiturn
    reqs = task.requests(DOC)
    assert reqs[0].messages == (("system", DESCRIPTION), ("user", SHOTS[0].query), ("assistant", "B"),
                                ("user", SHOTS[1].query), ("assistant", "A"), ("user", DOC.query))
    assert [(r.context, r.continuation) for r in reqs] == [("", "A"), ("", "B")]  # no target delimiter
    assert all(r.messages == reqs[0].messages for r in reqs)
    zero = mc({"chat_template": True}, description="", num_fewshot=0).requests(DOC)
    assert zero[0].messages == (("user", DOC.query),)  # no description, no system turn


def test_single_turn_holds_the_plain_fewshot_text() -> None:
    """fewshot_as_multiturn: false = lm-eval's multiturn_to_singleturn: the plain prompt minus the description."""
    plain = mc()
    single = mc({"chat_template": True, "fewshot_as_multiturn": False})
    system, user = single.requests(DOC)[0].messages
    assert system == ("system", DESCRIPTION)
    assert user[0] == "user" and DESCRIPTION + user[1] == plain.context(DOC)


def test_option_is_in_the_config_and_its_hash() -> None:
    plain, multi = mc().config(), mc({"chat_template": True}).config()
    single = mc({"chat_template": True, "fewshot_as_multiturn": False}).config()
    assert "chat_template" not in plain  # plain tasks keep their config (and hash) as before
    assert multi["chat_template"] is True and multi["target_delimiter"] == "" and multi["fewshot_as_multiturn"]
    assert len({config_hash(plain), config_hash(multi), config_hash(single)}) == 3


@pytest.mark.parametrize(("extra", "match"), [
    ({"chat_templates": True}, r"unknown option 'chat_templates' \(did you mean: chat_template\?\)"),
    ({"chat_template": "yes"}, r"option chat_template must be true or false \(got 'yes'\)"),
    ({"fewshot_as_multiturn": True}, r"fewshot_as_multiturn: true needs chat_template: true"),
])
def test_bad_options_are_one_line_errors(extra: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigError, match=match) as info:
        mc(extra)
    assert "\n" not in str(info.value)
    assert type(mc({"fewshot_as_multiturn": False})) is MultipleChoiceTask  # lm-eval accepts false alone


@pytest.mark.parametrize("name", ["mmlu_anatomy", "hellaswag", "truthfulqa_mc2", "medqa", "medmcqa", "pubmedqa"])
def test_every_multiple_choice_family_has_the_option(name: str, benchmarks_dir: Path) -> None:
    task = build_task(name, TaskOptions(data_dir=benchmarks_dir, limit=1, extra={"chat_template": True}))
    assert isinstance(task, ChatMultipleChoiceTask) and task.config()["chat_template"] is True
    doc = task.docs()[0]
    reqs = task.requests(doc)
    assert reqs[0].messages and reqs[0].messages[-1] == ("user", doc.query)
    assert [r.continuation for r in reqs] == list(doc.choices)


def test_request_and_fingerprint_keys() -> None:
    """Plain requests and models without a chat template keep the cache keys they had before the option existed."""
    r = LLRequest("Question: x\nAnswer:", " yes")
    assert r.key() == hashlib.sha256(json.dumps([r.context, r.continuation]).encode()).hexdigest()
    chat = LLRequest("", "yes", messages=(("user", "Question: x\nAnswer:"),))
    other = LLRequest("", "yes", messages=(("system", "s"), ("user", "Question: x\nAnswer:")))
    assert len({r.key(), chat.key(), other.key()}) == 3
    fp = ModelFingerprint(backend="hf", model="/m", weights_hash="sha256:w", tokenizer_hash="t")
    numeric = {k: v for k, v in fp.to_dict().items()
               if k not in {"batch_size", "device", "extra", "endpoint", "generation", "chat_template",
                         "adapter_config_hash"}}
    assert fp.cache_key() == hashlib.sha256(json.dumps(numeric, sort_keys=True).encode()).hexdigest()[:32]
    templated = ModelFingerprint(backend="hf", model="/m", weights_hash="sha256:w", tokenizer_hash="t",
                                 chat_template="sha256:abc")
    assert templated.cache_key() != fp.cache_key()  # another template renders other contexts


# ------------------------------------------------------------------------------------ hf backend


@pytest.fixture(scope="module")
def chat_checkpoint(tiny_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("chat") / "tiny-chatml"
    shutil.copytree(tiny_checkpoint, out)
    (out / "chat_template.jinja").write_text(CHATML)
    return out


@pytest.fixture(scope="module")
def lm(chat_checkpoint: Path) -> HFCausalLM:
    return HFCausalLM(HFSettings(path=str(chat_checkpoint), batch_size=4))


@pytest.mark.e2e  # over 2 s in the unit lane (make test-fast budget)
def test_fingerprint_records_the_template_and_bos(lm: HFCausalLM, tiny_checkpoint: Path) -> None:
    fp = lm.fingerprint
    assert fp.chat_template and fp.chat_template.startswith("sha256:")
    assert fp.extra["chat"] == {"template": fp.chat_template, "bos": "tokenizer"}  # ChatML writes no BOS
    base = HFCausalLM(HFSettings(path=str(tiny_checkpoint), batch_size=4))
    assert base.fingerprint.chat_template is None and base.fingerprint.extra["chat"] == {"template": None}
    assert base.fingerprint.cache_key() != fp.cache_key()


def test_model_without_chat_template_is_a_one_line_error(tiny_checkpoint: Path) -> None:
    base = HFCausalLM(HFSettings(path=str(tiny_checkpoint), batch_size=4))
    with pytest.raises(ModelError, match=r"chat_template: true needs a chat template but model .* has none") as e:
        base.loglikelihood(mc({"chat_template": True}).requests(DOC))
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("template", [CHATML, WITH_BOS, NO_SYSTEM], ids=["chatml", "template-bos", "no-system"])
@pytest.mark.parametrize("multiturn", [True, False], ids=["multiturn", "single-turn"])
def test_rendering_tokens_and_numbers_equal_lmeval(lm: HFCausalLM, template: str, multiturn: bool) -> None:
    """lm-eval's ``HFLM`` on the same model and tokenizer: rendered context (its jinja fallback that drops the
    system turn included), tokenisation (one BOS whether the template or the tokenizer supplies it) and
    loglikelihoods of every request."""
    from lm_eval.api.instance import Instance
    from lm_eval.models.huggingface import HFLM

    original = lm.tokenizer.chat_template
    lm.tokenizer.chat_template = template
    try:
        hflm = HFLM(pretrained=lm.model, tokenizer=lm.tokenizer, batch_size=4, device="cpu")
        reqs = mc({"chat_template": True, "fewshot_as_multiturn": multiturn}).requests(DOC)
        theirs = hflm.apply_chat_template([{"role": r, "content": c} for r, c in reqs[0].messages])
        ours = render_contexts(lm.tokenizer, reqs, model="tiny")
        assert ours == [theirs] * len(reqs)
        assert ("system" in theirs) == (template != NO_SYSTEM) and theirs.endswith("<|im_start|>assistant\n")
        tokens = lm.tokenize_requests(reqs)
        for t, r in zip(tokens, reqs, strict=True):
            ctx, cont = hflm._encode_pair(theirs, r.continuation)
            assert (list(t.context), list(t.continuation)) == (ctx, cont)
        bos = lm.tokenizer.bos_token_id
        assert all(t.context[0] == bos and t.context[1] != bos for t in tokens)  # exactly one BOS
        their_ll = hflm.loglikelihood([Instance("loglikelihood", {}, (theirs, r.continuation), i)
                                       for i, r in enumerate(reqs)], disable_tqdm=True)
        for mine, (ll, greedy) in zip(lm.loglikelihood(reqs), their_ll, strict=True):
            assert abs(mine.logprob - ll) <= 1e-4 and mine.is_greedy == greedy
    finally:
        lm.tokenizer.chat_template = original


def test_samples_and_results_show_chat_mode(lm: HFCausalLM) -> None:
    plain_result, plain_samples = evaluate_task(mc(), lm, None, lambda n: None)
    chat_result, chat_samples = evaluate_task(mc({"chat_template": True}), lm, None, lambda n: None)
    assert chat_result.config["chat_template"] is True and chat_result.config_hash != plain_result.config_hash
    assert chat_samples[0].prompt_hash != plain_samples[0].prompt_hash


# -------------------------------------------------------------------------------- openai backend


class Scripted:
    """An OpenAI-compatible responder on 127.0.0.1: one model at /models, every /completions answered with
    echoed prompt logprobs of -0.5 per token (what is scored is not the point here: what is sent is)."""

    def __init__(self) -> None:
        self.posts: list[dict[str, Any]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                self._send({"object": "list", "data": [{"id": "tiny", "max_model_len": 1024}]})

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.posts.append(body)
                n = len(body["prompt"]) if isinstance(body["prompt"], list) else 8
                tokens = ["t"] * (n + 1)
                self._send({"choices": [{"index": 0, "text": "", "logprobs": {
                    "tokens": tokens, "token_logprobs": [None] + [-0.5] * n, "top_logprobs": [None] + [{"t": -0.1}] * n,
                    "text_offset": list(range(n + 1))}}], "usage": {"prompt_tokens": n, "completion_tokens": 1}})

            def _send(self, payload: dict[str, Any]) -> None:
                data = json.dumps(payload).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()


@pytest.fixture
def scripted() -> Iterator[Scripted]:
    srv = Scripted()
    yield srv
    srv.httpd.shutdown()
    srv.httpd.server_close()


def test_openai_renders_with_its_tokenizer_or_refuses(scripted: Scripted, chat_checkpoint: Path,
                                                      lm: HFCausalLM) -> None:
    from evalmon.backends.openai_compat import OpenAICompatLM
    from evalmon.config.models import OpenAIModelConfig

    reqs = mc({"chat_template": True}).requests(DOC)
    served = OpenAICompatLM(OpenAIModelConfig(base_url=scripted.url, max_retries=0))
    with pytest.raises(ModelError, match=r"chat messages .* only with a local tokenizer") as e:
        served.loglikelihood(reqs)
    assert "\n" not in str(e.value) and "model.tokenizer" in e.value.hint and not scripted.posts  # nothing sent
    local = OpenAICompatLM(OpenAIModelConfig(base_url=scripted.url, max_retries=0, tokenizer=str(chat_checkpoint),
                                             concurrency=1))
    assert local.fingerprint.chat_template == lm.fingerprint.chat_template
    results = local.loglikelihood(reqs)
    sent = {tuple(p["prompt"]) for p in scripted.posts[1:]}  # after the logprobs probe
    assert sent == {(*t.context, *t.continuation) for t in lm.tokenize_requests(reqs)}  # the hf backend's tokens
    assert [r.n_tokens for r in results] == [len(t.continuation) for t in lm.tokenize_requests(reqs)]

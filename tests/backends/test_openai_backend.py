"""``openai`` backend against a real ``transformers serve`` (tiny checkpoint) and a stdlib fault server.

The fault server (``FakeServer``) sits on 127.0.0.1: it forwards to the real server (and counts what
reaches it), injects 500s, 429s, malformed JSON, hangs and dropped connections, or plays a vLLM-like
server whose ``echo``+``logprobs`` come from the tiny model computed in-process.
"""

from __future__ import annotations

import gzip
import http.client
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from plugins.mlflow_server import free_port

from evalmon.backends.openai_compat import MAX_DELAY_S, OpenAICompatLM, backoff_delay
from evalmon.config.suite import OpenAIModelConfig, parse_model_spec
from evalmon.core.errors import ConfigError, ModelError
from evalmon.core.lm import GenRequest, LLRequest
from evalmon.harness.cache import ResponseCache
from evalmon.harness.engine import run_generate

START_TIMEOUT_S = 120.0  # 4-14 s idle; much more on two busy cores
CHAT_TEMPLATE = ("{% for m in messages %}{{ m['role'] | capitalize }}: {{ m['content'] }}\n\n{% endfor %}"
                 "{% if add_generation_prompt %}Assistant:{% endif %}")
PROMPTS = ["Q: What does the licence permit?\nA:", "The GNU General Public License is",
           "Permission is hereby granted, free of charge,", "x"]


# --------------------------------------------------------------------------- the real server


class TransformersServe:
    """``transformers serve <dir>`` in its own process group; ``kill()`` is SIGKILL, ``start()`` restarts."""

    def __init__(self, model_dir: Path, log: Path) -> None:
        self.model_dir, self.log, self.port = model_dir, log, free_port()
        self.url = f"http://127.0.0.1:{self.port}/v1"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        exe = Path(sys.executable).parent / "transformers"
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [str(exe), "serve", str(self.model_dir), "--host", "127.0.0.1", "--port", str(self.port),
                 "--device", "cpu"], env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True)
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self._healthy():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.kill()
                pytest.fail(f"transformers serve did not start:\n{self.log.read_text(errors='replace')[-3000:]}")
            time.sleep(0.3)

    def _healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=2) as resp:
                return resp.status == 200
        except OSError:
            return False

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)


@pytest.fixture(scope="module")
def chat_checkpoint(tiny_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the tiny checkpoint with a chat template (the base checkpoint has none)."""
    out = tmp_path_factory.mktemp("served") / "tiny-chat"
    shutil.copytree(tiny_checkpoint, out)
    (out / "chat_template.jinja").write_text(CHAT_TEMPLATE)
    return out


@pytest.fixture(scope="module")
def server(chat_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TransformersServe]:
    srv = TransformersServe(chat_checkpoint, tmp_path_factory.mktemp("serve-log") / "serve.log")
    srv.start()
    try:
        yield srv
    finally:
        srv.kill()


# --------------------------------------------------------------------------- the fault server


def canned(payload: dict[str, Any], text: str = "Paris.\n\nQ: next") -> dict[str, Any]:
    choice: dict[str, Any] = ({"message": {"role": "assistant", "content": text}} if "messages" in payload
                              else {"text": text})
    return {"choices": [{"index": 0, "finish_reason": "stop", **choice}],
            "usage": {"prompt_tokens": 5, "completion_tokens": 3}}


class FakeServer:
    """POSTs consume ``script`` actions (then ``default``): ok | forward | 500 | 429 | malformed | hang | drop |
    echo401 | logprobs | redirect | sse | trickle. ``GET /models`` forwards upstream or lists one fake model. ``posts`` logs every POST."""

    def __init__(self, upstream: str | None = None,
                 logprobs: Callable[[dict[str, Any]], dict[str, Any]] | None = None) -> None:
        self.upstream, self.logprobs = upstream, logprobs
        self.script: list[str] = []
        self.default = "forward" if upstream else "ok"
        self.posts: list[dict[str, Any]] = []
        self.auth: list[str | None] = []
        self.gets: list[str] = []  # GET request paths (with their query)
        self.hang_s = 3.0
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                fake.auth.append(self.headers.get("Authorization"))
                fake.gets.append(self.path)
                if fake.upstream:
                    return self._forward(None)
                return self._send(200, json.dumps({"object": "list", "data": [
                    {"id": "fake-model", "root": "/weights/fake", "max_model_len": 2048, "created": 1}]}))

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers["Content-Length"]))
                body = json.loads(raw)
                fake.auth.append(self.headers.get("Authorization"))
                fake.posts.append({"path": self.path, **body})
                action = fake.script.pop(0) if fake.script else fake.default
                if action == "hang":
                    time.sleep(fake.hang_s)
                    return self._send(200, json.dumps(canned(body)))
                if action == "drop":
                    self.close_connection = True
                    return self.connection.shutdown(2)
                if action == "redirect":  # to another host
                    return self._send(307, "", headers={"Location": "http://10.255.255.1:9/v1/completions"})
                if action == "sse":  # a stream though none was asked for
                    return self._send(200, f"data: {json.dumps(canned(body))}\n\ndata: [DONE]\n\n",
                                      headers={"Content-Type": "text/event-stream"})
                if action == "trickle":  # one byte per 0.2 s: no single read waits long, the whole does
                    data = json.dumps(canned(body)).encode()
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    for b in data:
                        self.wfile.write(bytes([b]))
                        self.wfile.flush()
                        time.sleep(0.2)
                    return None
                reply = {"ok": (200, json.dumps(canned(body))), "500": (500, "Internal Server Error"),
                         "429": (429, '{"error": "rate limited"}'), "malformed": (200, '{"choices": [{"te'),
                         "echo401": (401, f"bad key {self.headers.get('Authorization')}")}
                if action in reply:
                    return self._send(*reply[action], headers={"Retry-After": "0.01"} if action == "429" else None)
                if action == "logprobs":
                    assert fake.logprobs is not None
                    return self._send(200, json.dumps(fake.logprobs(body)))
                return self._forward(raw)

            def _forward(self, data: bytes | None) -> None:
                assert fake.upstream is not None
                up = urlsplit(fake.upstream)
                conn = http.client.HTTPConnection(up.hostname, up.port, timeout=60)
                try:
                    conn.request(self.command, self.path, body=data, headers={"Content-Type": "application/json"})
                    resp = conn.getresponse()
                    self._send(resp.status, resp.read().decode())
                except OSError:
                    self._send(502, "upstream unreachable")
                finally:
                    conn.close()

            def _send(self, status: int, text: str, headers: dict[str, str] | None = None) -> None:
                data = text.encode()
                headers = {"Content-Type": "application/json", **(headers or {})}
                self.send_response(status)
                self.send_header("Content-Length", str(len(data)))
                for k, v in headers.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

        class Quiet(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request: Any, client_address: Any) -> None:
                pass  # dropped connections are the point of some tests

        self.httpd = Quiet(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def paths(self, suffix: str) -> int:
        return sum(1 for p in self.posts if p["path"].endswith(suffix))

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def fake() -> Iterator[FakeServer]:
    srv = FakeServer()
    yield srv
    srv.close()


def make_lm(url: str, sleeps: list[float] | None = None, **kw: Any) -> OpenAICompatLM:
    opts = {"backend": "openai", "base_url": url, "max_retries": 3, "backoff_s": 0.01, "timeout_s": 10, **kw}
    return OpenAICompatLM(OpenAIModelConfig.model_validate(opts),
                          sleep=(lambda s: sleeps.append(s)) if sleeps is not None else time.sleep)


# --------------------------------------------------------------------------- faults (no real server)


def test_query_string_in_base_url_stays_after_the_endpoint_path(fake: FakeServer) -> None:
    """``…/v1?token=S&x=1`` + ``/models`` must not become ``…/v1?token=S&x=1/models`` (issue #10, 15)."""
    lm = make_lm(fake.url + "?token=S3CRET&x=1", mode="completions")
    assert fake.gets == ["/v1/models?token=S3CRET&x=1"] and lm.model_name == "fake-model"
    assert lm.generate([GenRequest("Q: capital?\nA:", until=("\n\n",))]) == ["Paris."]
    chat = make_lm(fake.url + "/?token=S3CRET", mode="chat")
    assert chat.generate([GenRequest("Q: capital?")]) == ["Paris.\n\nQ: next"]
    assert [p["path"] for p in fake.posts] == ["/v1/completions?token=S3CRET&x=1",
                                               "/v1/chat/completions?token=S3CRET"]


def test_capabilities_follow_the_config(fake: FakeServer) -> None:
    """A server configured without prompt logprobs is refused for loglikelihoods up front (nothing is sent)."""
    from evalmon.harness.engine import run_loglikelihood

    assert make_lm(fake.url).capabilities == {"generate", "loglikelihood"}  # auto: probed on first use
    lm = make_lm(fake.url, supports_logprobs=False)
    assert lm.capabilities == {"generate"}
    with pytest.raises(ModelError, match=r"needs a model that scores loglikelihoods .*\(backend 'openai'\) cannot"):
        run_loglikelihood(lm, [LLRequest("a", " b")])
    assert fake.posts == []


def test_tracking_health_check_keeps_the_query_string(fake: FakeServer) -> None:
    from evalmon.sinks.mlflow.payload import check_reachable

    root = fake.url.removesuffix("/v1")
    assert check_reachable(root + "/?token=S3CRET&x=1") is None
    assert check_reachable(root + "/mlflow?x=1") is None
    assert fake.gets == ["/health?token=S3CRET&x=1", "/mlflow/health?x=1"]


def test_retries_500_then_success_and_429_backoff(fake: FakeServer) -> None:
    sleeps: list[float] = []
    lm = make_lm(fake.url, sleeps, mode="completions")
    assert lm.model_name == "fake-model" and lm.fingerprint.revision == "/weights/fake"
    fake.script = ["500", "500", "ok"]
    assert lm.generate([GenRequest("Q: capital?\nA:", until=("\n\n",))]) == ["Paris."]
    assert fake.paths("/completions") == 3 and len(sleeps) == 2 and sleeps[1] > sleeps[0] * 0.9
    fake.script = ["429", "ok"]
    assert lm.generate([GenRequest("other", until=("Q:",))]) == ["Paris.\n\n"]
    assert len(sleeps) == 3 and sleeps[2] >= 0.01  # Retry-After honoured
    fake.script = ["malformed", "drop", "ok"]  # malformed JSON and a dropped connection are retried too
    assert lm.generate([GenRequest("third", until=("\n",))]) == ["Paris."]
    fake.script = ["malformed"] * 4
    with pytest.raises(ModelError, match=r"failed after 4 attempts: malformed response"):
        lm.generate([GenRequest("bad")])


def test_backoff_is_exponential_capped_and_jittered() -> None:
    import random

    rnd = random.Random(0)
    delays = [backoff_delay(a, 1.0, rnd=rnd) for a in range(1, 9)]
    assert all(0.5 * min(2 ** (a - 1), MAX_DELAY_S) <= d <= min(2 ** (a - 1), MAX_DELAY_S)
               for a, d in enumerate(delays, 1))
    assert backoff_delay(1, 0.1, retry_after=7.0) == 7.0 and backoff_delay(1, 0.1, retry_after=1e6) == MAX_DELAY_S


def test_hanging_server_times_out_then_clear_error(fake: FakeServer) -> None:
    lm = make_lm(fake.url, timeout_s=0.3, max_retries=1, concurrency=2)
    fake.script, fake.hang_s = ["hang", "hang"], 2.0
    t0 = time.monotonic()
    with pytest.raises(ModelError) as info:
        lm.generate([GenRequest("slow", max_gen_toks=4)])
    assert time.monotonic() - t0 < 1.9  # two 0.3 s timeouts, not the server's 2 s
    assert "failed after 2 attempts: no response within timeout_s=0.3" in str(info.value)
    assert info.value.exit_code == 2


def test_4xx_is_not_retried_and_partial_progress_is_reported(fake: FakeServer, tmp_path: Path) -> None:
    lm = make_lm(fake.url, concurrency=1)
    fake.script = ["ok", "ok", "500", "500", "500", "500"]  # request 3 exhausts its retries
    cache = ResponseCache(tmp_path / "c.sqlite")
    reqs = [GenRequest(f"prompt {i}", max_gen_toks=4) for i in range(4)]
    with pytest.raises(ModelError, match="HTTP 500"):
        run_generate(lm, reqs, cache)
    assert len(cache.get_texts(lm.fingerprint.cache_key(), [r.key() for r in reqs])) == 2  # kept
    fake.posts.clear()
    fake.default = "echo401"
    with pytest.raises(ModelError, match="HTTP 401") as info:
        run_generate(lm, reqs, cache)
    assert len(fake.posts) == 1 and "api_key_env" in str(info.value)


def test_chat_template_problems_are_explained(fake: FakeServer) -> None:
    fake.default = "500"  # what transformers serve answers on /chat/completions without a chat template
    with pytest.raises(ModelError, match="no chat template: try mode: completions"):
        make_lm(fake.url, mode="chat", max_retries=1).generate([GenRequest("hi")])
    with pytest.raises(ModelError, match=r"model\.mode is completions .* set model\.mode: chat"):
        make_lm(fake.url, mode="completions").generate([GenRequest("", messages=(("user", "hi"),))])


def test_api_key_only_from_named_variable(fake: FakeServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EVALMON_TEST_NO_SUCH_KEY", raising=False)
    with pytest.raises(ModelError, match="environment variable EVALMON_TEST_NO_SUCH_KEY is not set") as info:
        make_lm(fake.url, api_key_env="EVALMON_TEST_NO_SUCH_KEY")
    assert info.value.exit_code == 2 and not fake.auth  # nothing sent
    secret = "sk-evalmon-SENTINEL-4242"
    monkeypatch.setenv("EVALMON_TEST_KEY", secret)
    lm = make_lm(fake.url, api_key_env="EVALMON_TEST_KEY")
    assert fake.auth[-1] == f"Bearer {secret}"
    assert secret not in json.dumps(lm.fingerprint.to_dict())
    fake.default = "echo401"  # a server that quotes the key back: redacted in our error
    with pytest.raises(ModelError) as err:
        lm.generate([GenRequest("x")])
    assert "HTTP 401" in str(err.value) and secret not in str(err.value) and "***" in str(err.value)


def test_model_spec_for_openai() -> None:
    m = parse_model_spec("openai:http://127.0.0.1:8000/v1,model=NAME,mode=completions,concurrency=8")
    assert (m.backend, m.base_url, m.model, m.mode, m.concurrency) == (
        "openai", "http://127.0.0.1:8000/v1", "NAME", "completions", 8)


# --------------------------------------------------------------------------- loglikelihood via echo+logprobs


@pytest.fixture(scope="module")
def vllm_like(tiny_checkpoint: Path) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """Prompt logprobs the way vLLM returns them: BOS echoed as ``<s>``, offsets over the token strings."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_checkpoint)
    model = AutoModelForCausalLM.from_pretrained(tiny_checkpoint, dtype=torch.float32).eval()

    def respond(payload: dict[str, Any]) -> dict[str, Any]:
        prompt = payload["prompt"]
        ids = list(prompt) if isinstance(prompt, list) else tok(prompt)["input_ids"]
        with torch.no_grad():
            logp = model(torch.tensor([ids])).logits[0].float().log_softmax(-1)
        gen = int(logp[-1].argmax())
        all_ids = [*ids, gen]
        lps: list[float | None] = [None] + [float(logp[i - 1, all_ids[i]]) for i in range(1, len(all_ids))]
        tops: list[Any] = [None] + [{tok.decode([int(logp[i - 1].argmax())]): float(logp[i - 1].max())}
                                    for i in range(1, len(all_ids))]
        tokens = [tok.decode([t], clean_up_tokenization_spaces=False) for t in all_ids]
        offsets = [sum(len(t) for t in tokens[:i]) for i in range(len(tokens))]
        return {"choices": [{"index": 0, "text": "".join(tokens), "logprobs": {
            "tokens": tokens, "token_logprobs": lps, "top_logprobs": tops, "text_offset": offsets}}],
            "usage": {"prompt_tokens": len(ids), "completion_tokens": 1}}

    return respond


@pytest.mark.parametrize("with_tokenizer", [False, True])
def test_loglikelihood_matches_hf_backend(with_tokenizer: bool, tiny_checkpoint: Path,
                                          vllm_like: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
    from evalmon.backends.hf.model import HFCausalLM, HFSettings

    reqs = [LLRequest("Question: Is the licence free?\nAnswer:", " yes"),
            LLRequest("Question: Is the licence free?\nAnswer:", " no"),
            LLRequest("The GNU General Public License is ", "a free licence"),  # trailing space moves
            LLRequest("", "Permission is hereby granted")]
    srv = FakeServer(logprobs=vllm_like)
    srv.default = "logprobs"
    try:
        lm = make_lm(srv.url, tokenizer=str(tiny_checkpoint) if with_tokenizer else None)
        got = lm.loglikelihood(reqs)
        assert lm.loglikelihood(reqs[:1])[0] == got[0]
        assert srv.paths("/completions") == 1 + len(reqs) + 1  # the probe ran once
        if with_tokenizer:  # token ids, split by token count: exactly lm-eval's local-completions
            assert all(isinstance(p["prompt"], list) for p in srv.posts[1:])
    finally:
        srv.close()
    ref = HFCausalLM(HFSettings(path=str(tiny_checkpoint), batch_size=1)).loglikelihood(reqs)
    for a, b in zip(got, ref, strict=True):
        assert abs(a.logprob - b.logprob) <= 1e-4 and a.is_greedy == b.is_greedy and a.n_tokens == b.n_tokens


def test_loglikelihood_clear_error_without_prompt_logprobs(server: TransformersServe) -> None:
    proxy = FakeServer(upstream=server.url)
    try:
        lm = make_lm(proxy.url)
        for _ in range(2):
            with pytest.raises(ModelError) as info:
                lm.loglikelihood([LLRequest("a", " b")])
            assert str(info.value).startswith(f"server at {proxy.url} does not return prompt logprobs "
                                              "(echo+logprobs); loglikelihood tasks need a server that does")
        assert proxy.paths("/completions") == 1  # probed once, answer cached
    finally:
        proxy.close()


# --------------------------------------------------------------------------- the real server


def test_generation_chat_and_completions(server: TransformersServe, tiny_checkpoint: Path) -> None:
    from evalmon.backends.hf.model import HFCausalLM, HFSettings

    reqs = [GenRequest(p, max_gen_toks=8) for p in PROMPTS]
    comp = make_lm(server.url, mode="completions", concurrency=2)
    assert comp.model_name == str(server.model_dir)  # the one model /v1/models lists
    fp = comp.fingerprint
    assert (fp.backend, fp.device, fp.extra["served"]["id"]) == ("openai", server.url, str(server.model_dir))
    seen: list[int] = []
    out = comp.generate(reqs, progress=lambda done: seen.extend(i for i, _ in done))
    assert sorted(seen) == [0, 1, 2, 3] and comp.last_gen_stats.rows == 4
    hf = HFCausalLM(HFSettings(path=str(tiny_checkpoint), batch_size=1))
    assert out == hf.generate(reqs)  # same greedy tokens as the hf backend
    chat = make_lm(server.url, mode="chat")
    msgs = (("system", "Answer briefly."), ("user", "Name a licence."))
    texts = chat.generate([GenRequest("", messages=msgs, max_gen_toks=6, until=("\n",)),
                           GenRequest("Hello", max_gen_toks=6, temperature=0.7, top_p=0.9, seed=3)])
    assert all(isinstance(t, str) and "\n" not in t for t in texts[:1])
    assert chat.fingerprint.cache_key() != comp.fingerprint.cache_key()  # mode changes outputs


def test_server_killed_mid_run_then_rerun_resumes(server: TransformersServe, tmp_path: Path) -> None:
    reqs = [GenRequest(f"{p} ({i})", max_gen_toks=6) for i, p in enumerate(PROMPTS * 2)]  # M = 8
    proxy = FakeServer(upstream=server.url)
    try:
        lm = make_lm(proxy.url, mode="completions", concurrency=1, max_retries=1)
        reference, _ = run_generate(lm, reqs)  # uninterrupted, no cache
        cache = ResponseCache(tmp_path / "cache.sqlite")
        done: list[int] = []

        def kill_after_three(n: int) -> None:
            done.append(n)
            if sum(done) == 3:
                server.kill()

        with pytest.raises(ModelError, match="failed after 2 attempts"):
            run_generate(lm, reqs, cache, advance=kill_after_three)
        cached = len(cache.get_texts(lm.fingerprint.cache_key(), [r.key() for r in reqs]))
        assert 3 <= cached < len(reqs)
        server.start()
        proxy.posts.clear()
        again = make_lm(proxy.url, mode="completions", concurrency=1)
        resumed, stats = run_generate(again, reqs, cache)
        assert proxy.paths("/completions") == len(reqs) - cached == stats.computed
        assert stats.cached == cached and resumed == reference  # nothing lost, nothing recomputed
    finally:
        proxy.close()
        if server.proc is None or server.proc.poll() is not None:
            server.start()


def test_suite_run_never_leaks_the_key(server: TransformersServe, tmp_path: Path, benchmarks_dir: Path,
                                       monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
                                       ) -> None:
    """A BBH slice (1 subtask, 2 docs) through the server via run_suite, tracked to a local MLflow store."""
    from evalmon.config.suite import load_suite_text
    from evalmon.harness.run import run_suite

    secret = "sk-evalmon-SENTINEL-9876"
    monkeypatch.setenv("EVALMON_TEST_KEY", secret)
    monkeypatch.chdir(tmp_path)  # the embedded MLflow store goes to ./.evalmon
    proxy = FakeServer(upstream=server.url)
    suite = f"""
name: openai_bbh_slice
output_dir: {tmp_path / "reports"}
model: {{backend: openai, base_url: "{proxy.url}", api_key_env: EVALMON_TEST_KEY, mode: completions,
         concurrency: 2, max_retries: 1}}
data: {{data_dir: {benchmarks_dir}}}
tasks:
  - {{name: bbh_cot_fewshot_boolean_expressions, limit: 2, num_fewshot: 1, options: {{max_gen_toks: 16}}}}
tracking: {{enabled: true, experiment: openai-test}}
cache: {{path: {tmp_path / "cache.sqlite"}}}
"""
    logs: list[str] = []
    try:
        result = run_suite(load_suite_text(suite, "s.yaml", base_dir=tmp_path), log=logs.append)
    finally:
        proxy.close()
    task = result.tasks["bbh_cot_fewshot_boolean_expressions"]
    assert task.n == 2 and "exact_match" in task.metrics and proxy.paths("/completions") == 2
    assert set(proxy.auth) == {f"Bearer {secret}"}  # the key was used …
    out = capsys.readouterr()
    texts = [out.out, out.err, *logs]  # … and is nowhere in what the run wrote or said
    for f in tmp_path.rglob("*"):
        if f.is_file():
            data = f.read_bytes()
            texts.append((gzip.decompress(data) if f.suffix == ".gz" else data).decode("latin-1"))
    assert len(texts) > 5 and not [t for t in texts if secret in t]
    results = json.loads(next((tmp_path / "reports").rglob("results.json")).read_text())
    assert results["model"]["backend"] == "openai" and results["model"]["device"] == proxy.url


def test_mtbench_slice_through_server(server: TransformersServe, benchmarks_dir: Path) -> None:
    """One MT-Bench question: the model answers through the server; the judge is the same server."""
    from evalmon.harness.evaluate import evaluate_task
    from evalmon.tasks.base import TaskOptions, build_task

    judge = {"backend": "openai", "base_url": server.url, "mode": "chat", "max_retries": 1}
    task = build_task("mtbench", TaskOptions(data_dir=benchmarks_dir, extra={
        "judge": judge, "question_ids": [81], "turns": 1, "max_new_tokens": 8, "judge_max_tokens": 8,
        "bootstrap_iters": 0}))
    lm = make_lm(server.url, mode="chat")
    result, samples = evaluate_task(task, lm, None, lambda n: None)
    assert result.n == 1 and len(samples) == 1 and samples[0].extra["turns"][0]["judge_outputs"]


def test_monitor_hallucination_judge_is_a_served_model(server: TransformersServe) -> None:
    """The monitor's LLM judge through the one judge factory: a served model (backend openai). Each sampled
    record is one greedy chat request carrying that record's answer; the model is built on first use."""
    import math

    import pandas as pd

    from evalmon.monitor.signals import build_signals

    proxy = FakeServer(upstream=server.url)
    try:
        model = {"backend": "openai", "base_url": proxy.url, "mode": "chat", "max_retries": 1}
        (signal_,) = build_signals([{"name": "hallucination", "embeddings": False,
                                     "judge": {"model": model, "sample_rate": 1.0, "max_gen_toks": 4}}])
        assert proxy.posts == [] and proxy.gets == []  # validated at build time, not connected yet
        answers = ["It is in Rome.", "It is in Paris."]
        frame = pd.DataFrame({"prompt": ["Where is the tower?"] * 2, "contexts": [["The tower is in Paris."]] * 2,
                              "response": answers})
        out = signal_.compute(frame)
    finally:
        proxy.close()
    posts = [p for p in proxy.posts if p["path"].endswith("/chat/completions")]
    assert len(posts) == 2 and all(p["max_tokens"] == 4 and p["temperature"] == 0.0 for p in posts)
    asked = sorted(p["messages"][-1]["content"].split("Answer:\n", 1)[1].split("\n", 1)[0] for p in posts)
    assert asked == sorted(answers)
    assert out["hallucination.judge_sampled"].tolist() == [1.0, 1.0]
    assert all(math.isnan(v) or v in (0.0, 1.0) for v in out["hallucination.judge_flag"])
    with pytest.raises(ConfigError, match=r"signals.hallucination.judge.model.base_url"):
        build_signals([{"name": "hallucination", "embeddings": False,
                        "judge": {"model": {"backend": "openai", "base_url": "ftp://x"}}}])

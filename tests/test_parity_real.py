"""Numbers equal lm-eval's on real pretrained checkpoints: SmolLM2-135M-Instruct (Llama, 49k vocabulary, no
BOS added) and Gemma-3-270M (262k vocabulary, BOS added, a 512-token sliding window on 5 of 6 layers).

Per model, once per module: lm-eval 0.4.13 (``HFLM``, float32, CPU) on task YAMLs exported by
``evalmon.harness.parity`` (its built-in configs, our rows), then evalmon's tasks and engine with its default
(packed) scoring, then one case with ``scoring: plain``. Compared document by document: every request's
loglikelihood within 1e-4, ``is_greedy``, acc/acc_norm/mc1 and their stderrs exactly, mc2 to 1e-6;
rolling loglikelihoods (perplexity) within 1e-4 per document — on Gemma a text longer than the sliding
window, on SmolLM2 also with ``max_length`` 128 (several windows per text); both sides' tokenisation of
every request, hence the BOS policy, identical.

MMLU college medicine 5-shot: the first document's prompt is 554 Gemma tokens, past the 512-token window.

Budget (2 cores): lm-eval computes full-vocabulary logits at every position (262k floats per token on
Gemma), so limits are small and Gemma runs lm-eval with batch size 2; only one model is loaded at a time.
"""

from __future__ import annotations

import gc
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from parity_util import assert_task_parity, export, run_evalmon, run_lmeval, their_requests

from evalmon.backends.hf.model import HFCausalLM, HFSettings
from evalmon.harness.evaluate import evaluate_task
from evalmon.tasks.base import TaskOptions, build_task

pytestmark = pytest.mark.accuracy

TASKS = ["mmlu_college_medicine", "hellaswag", "truthfulqa_mc1", "truthfulqa_mc2", "medqa", "medmcqa", "pubmedqa"]
SLIDING_WINDOW = 512
LICENSES = Path("/usr/share/common-licenses")


@dataclass(frozen=True)
class Plan:
    limits: dict[str, int]  # task → first N documents
    batch_size: int
    adds_bos: bool  # the tokenizer's default policy (both sides follow it)
    plain: tuple[str, ...]  # tasks also scored with `scoring: plain`
    rolling_max_length: int | None = None  # a second rolling run with this small max_length


PLANS = {
    "smollm2": Plan(limits={"mmlu_college_medicine": 2, "hellaswag": 4, "truthfulqa_mc1": 2, "truthfulqa_mc2": 2,
                            "medqa": 2, "medmcqa": 2, "pubmedqa": 2},
                    batch_size=8, adds_bos=False, plain=("hellaswag",), rolling_max_length=128),
    "gemma3": Plan(limits={"mmlu_college_medicine": 2, "hellaswag": 3, "truthfulqa_mc1": 2, "truthfulqa_mc2": 2,
                           "medqa": 2, "medmcqa": 2, "pubmedqa": 2},
                   batch_size=2, adds_bos=True, plain=("mmlu_college_medicine",)),
}


def rolling_texts() -> list[str]:
    apache = (LICENSES / "Apache-2.0").read_text(encoding="utf-8")
    gpl = (LICENSES / "GPL-3").read_text(encoding="utf-8")
    return ["x",
            "The patient was started on 5 mg of warfarin daily; her INR was 2.4 after one week.",
            apache[:3200],  # ~700 tokens: longer than Gemma's sliding window
            gpl[gpl.index("Preamble"):][:1200]]


@dataclass
class RealRun:
    model: str
    plan: Plan
    names: dict[str, str]
    theirs: dict[str, Any]
    ours: dict[str, Any]
    ours_plain: dict[str, Any]
    fingerprint: dict[str, Any]
    fingerprint_plain: dict[str, Any]
    bos_token_id: int | None
    lmeval_add_bos: bool | None
    lmeval_prefix_token: int
    lmeval_tokens: dict[tuple[str, str], tuple[list[int], list[int]]]
    evalmon_tokens: dict[tuple[str, str], tuple[list[int], list[int]]]
    # rolling: max_length (None = the model's) → (lm-eval results by doc id, evalmon (result, samples))
    rolling: dict[int | None, tuple[dict[str, Any], Any]] = field(default_factory=dict)


def _rolling_lmeval(hflm: Any, task: Any, out: Path) -> dict[str, Any]:
    name = task.lmeval_export(out)
    theirs = run_lmeval(hflm, {task.name: name}, out, bootstrap_iters=0)  # corpus stderr: not compared
    return {"by_id": {s["doc"]["id"]: s for s in theirs["samples"][name]}, "results": theirs["results"][name]}


@pytest.fixture(scope="module", params=list(PLANS))
def run(request: pytest.FixtureRequest, benchmarks_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> RealRun:
    from lm_eval.models.huggingface import HFLM

    model, plan = request.param, PLANS[request.param]
    ckpt = Path(request.getfixturevalue(f"{model}_checkpoint"))  # tests/plugins/real_model.py
    out = tmp_path_factory.mktemp(f"lmeval_{model}")
    names = export(plan.limits, benchmarks_dir, out)
    texts = out / "rolling.jsonl"
    texts.write_text("".join(json.dumps({"text": t}) + "\n" for t in rolling_texts()), encoding="utf-8")

    def rolling_task() -> Any:
        return build_task("perplexity", TaskOptions(extra={"path": str(texts), "bootstrap_iters": 10}))

    # lm-eval first, then free it: one model in memory at a time
    hflm = HFLM(pretrained=str(ckpt), batch_size=plan.batch_size, dtype="float32", device="cpu")
    theirs = run_lmeval(hflm, names, out)
    pairs = {(c, x) for samples in theirs["samples"].values() for reqs in their_requests(samples).values()
             for c, x, _, _ in reqs}
    lmeval_tokens = {p: hflm._encode_pair(*p) for p in pairs}
    lm_rolling = {None: _rolling_lmeval(hflm, rolling_task(), out / "ppl")}
    if plan.rolling_max_length:
        short = HFLM(pretrained=hflm.model, tokenizer=hflm.tokenizer, batch_size=plan.batch_size,
                     max_length=plan.rolling_max_length, device="cpu")
        lm_rolling[plan.rolling_max_length] = _rolling_lmeval(short, rolling_task(), out / "ppl_short")
        del short
    lmeval_add_bos, lmeval_prefix = hflm.add_bos_token, hflm.prefix_token_id
    del hflm
    gc.collect()

    lm = HFCausalLM(HFSettings(path=str(ckpt), batch_size=plan.batch_size))
    ours = run_evalmon(lm, plan.limits, benchmarks_dir)
    evalmon_tokens = {p: lm.encode_pair(*p) for p in pairs}
    rolling = {None: (lm_rolling[None], evaluate_task(rolling_task(), lm, None, lambda n: None))}
    fingerprint, bos_token_id = lm.fingerprint.to_dict(), lm.tokenizer.bos_token_id
    del lm
    gc.collect()
    if plan.rolling_max_length:
        lm = HFCausalLM(HFSettings(path=str(ckpt), batch_size=plan.batch_size, max_length=plan.rolling_max_length))
        rolling[plan.rolling_max_length] = (lm_rolling[plan.rolling_max_length],
                                            evaluate_task(rolling_task(), lm, None, lambda n: None))
        del lm
        gc.collect()
    lm = HFCausalLM(HFSettings(path=str(ckpt), batch_size=plan.batch_size, scoring="plain"))
    ours_plain = run_evalmon(lm, {t: plan.limits[t] for t in plan.plain}, benchmarks_dir)
    fingerprint_plain = lm.fingerprint.to_dict()
    del lm
    gc.collect()
    return RealRun(model, plan, names, theirs, ours, ours_plain, fingerprint, fingerprint_plain, bos_token_id,
                   lmeval_add_bos, lmeval_prefix, lmeval_tokens, evalmon_tokens, rolling)


@pytest.mark.parametrize("task", TASKS)
def test_every_request_and_metric_matches(run: RealRun, task: str) -> None:
    """Default (packed) scoring: every loglikelihood within 1e-4 and every metric equal, per document."""
    assert_task_parity(task, run.plan.limits[task], run.names[task], run.theirs, run.ours[task])


def test_contexts_past_the_sliding_window_are_covered(run: RealRun) -> None:
    """The MMLU 5-shot rows include a prompt longer than Gemma's 512-token window (where packing broke)."""
    longest = max(len(ctx) + len(cont) for ctx, cont in run.evalmon_tokens.values())
    assert longest > SLIDING_WINDOW, f"{run.model}: longest request {longest} tokens"
    if run.model == "smollm2":  # the default really is packed here (Gemma's is whatever the engine proves)
        assert run.fingerprint["extra"]["scoring"] == "packed"


def test_plain_scoring_matches(run: RealRun) -> None:
    """`scoring: plain` (lm-eval's batching, full-vocabulary logits) equals lm-eval as well."""
    assert run.fingerprint_plain["extra"]["scoring"] == "plain"
    for task in run.plan.plain:
        assert_task_parity(task, run.plan.limits[task], run.names[task], run.theirs, run.ours_plain[task])


def test_bos_policy_and_tokenisation_match(run: RealRun) -> None:
    """Both sides follow the tokenizer's default BOS policy (SmolLM2: none; Gemma: <bos>) and tokenise every
    request identically; evalmon's fingerprint records the policy and the prefix token."""
    assert run.lmeval_add_bos is None  # lm-eval ≥ 0.4.9.2: the tokenizer's default
    assert run.fingerprint["bos_policy"] == "tokenizer-default"
    assert run.fingerprint["extra"]["prefix_token_id"] == run.lmeval_prefix_token == run.bos_token_id
    assert run.evalmon_tokens == run.lmeval_tokens
    first_tokens = {ctx[0] for ctx, _ in run.evalmon_tokens.values()}
    if run.plan.adds_bos:
        assert first_tokens == {run.bos_token_id}
    else:
        assert run.bos_token_id not in first_tokens


def test_rolling_loglikelihood_matches(run: RealRun) -> None:
    """Perplexity: per-text rolling loglikelihood within 1e-4, word/byte counts and corpus metrics equal —
    at the model's context length (Gemma: a text past its sliding window) and, on SmolLM2, at max_length 128
    (several windows per text)."""
    assert list(run.rolling) == [None] + ([run.plan.rolling_max_length] if run.plan.rolling_max_length else [])
    for max_length, (theirs, (result, samples)) in run.rolling.items():
        assert len(samples) == len(theirs["by_id"]) == len(rolling_texts())
        for s in samples:
            ref = theirs["by_id"][s.doc_id]
            delta = abs(s.loglikelihoods[0] - float(ref["resps"][0][0]))
            assert delta <= 1e-4, f"max_length {max_length}, doc {s.doc_id}: |Δ loglikelihood| = {delta:.3g}"
            assert s.items["word_perplexity"][1] == ref["word_perplexity"][1]
            assert s.items["bits_per_byte"][1] == ref["bits_per_byte"][1]
        for m in ("word_perplexity", "byte_perplexity", "bits_per_byte"):
            assert result.metrics[m].value == pytest.approx(theirs["results"][f"{m},none"], rel=1e-6), m
        tokens = max(s.extra["tokens"] for s in samples)
        assert tokens > (3 * max_length if max_length else SLIDING_WINDOW), (max_length, tokens)

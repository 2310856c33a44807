"""The Ray executor's pure parts (harness/fleet.py, harness/ray_actor.py): consecutive balanced runs of work units,
units that keep a prompt's requests together, hf packs that re-plan identically from any pack boundary, the
``executor``/``replicas`` keys and flags, and the one-line error when ray is not installed."""

from __future__ import annotations

import sys

import pytest

from evalmon.backends.hf.loglikelihood import TokenRequest
from evalmon.backends.hf.packed import plan_packs
from evalmon.config.suite import apply_overrides, load_suite_text
from evalmon.core.errors import ConfigError, EvalmonError
from evalmon.core.lm import GenRequest, LLRequest
from evalmon.harness.fleet import load_fleet, split_runs
from evalmon.harness.ray_actor import prefix_units

YAML = "name: s\nmodel: {path: /ckpt}\ntasks: [hellaswag]\n"


def test_split_runs_consecutive_and_balanced() -> None:
    runs = split_runs([4, 4, 4, 4, 1, 1, 1, 1, 1, 1, 1, 1], 2)
    assert [list(r) for r in runs] == [[0, 1, 2], [3, 4, 5, 6, 7, 8, 9, 10, 11]]  # 12 requests each
    for sizes, n in (([1] * 10, 3), ([5, 1, 1, 1], 2), ([], 2), ([2, 2], 4)):
        runs = split_runs(sizes, n)
        assert len(runs) == n and [i for r in runs for i in r] == list(range(len(sizes)))  # a partition, in order


def test_prefix_units_keep_a_prompt_together() -> None:
    reqs = [LLRequest("ctx a", " x"), LLRequest("ctx b", " y"), LLRequest("ctx a", " z"), GenRequest("ctx b")]
    assert prefix_units(reqs) == [[0, 2], [1, 3]]
    chats = [LLRequest("", " a", messages=(("user", "hi"),)), LLRequest("", " b", messages=(("user", "hi"),))]
    assert prefix_units(chats) == [[0, 1]]


def test_packs_replan_identically_from_a_pack_boundary() -> None:
    """Why a fleet run equals one process: any run of consecutive packs (row order) re-plans to the same packs."""
    reqs = [TokenRequest(i, tuple((i * 7 + j) % 13 for j in range(3 + i % 9)), (1 + i % 5, 2))
            for i in range(60)]
    packs = sorted(plan_packs(reqs, 24), key=lambda p: p.requests[0].context + p.requests[0].continuation[:-1])
    assert len(packs) > 4
    ids = [sorted(r.index for r in p.requests) for p in packs]
    for lo, hi in ((0, 2), (1, 4), (3, len(packs))):
        sub = [r for p in packs[lo:hi] for r in p.requests]
        again = [sorted(r.index for r in p.requests) for p in plan_packs(sub, 24)]
        assert sorted(again) == sorted(ids[lo:hi])


def test_executor_keys_and_flags() -> None:
    cfg = load_suite_text(YAML + "executor: ray\nreplicas: 4\nsamples: {text: false}\n", "suite.yaml")
    assert (cfg.executor, cfg.replicas) == ("ray", 4)
    kept = apply_overrides(cfg, limit=3)
    assert (kept.executor, kept.replicas, kept.samples.text) == ("ray", 4, False)  # flags keep unhashed keys
    assert (apply_overrides(cfg, executor="local", replicas=1).executor, ) == ("local", )
    plain = load_suite_text(YAML, "suite.yaml")
    from evalmon.config.suite import suite_hash

    assert suite_hash(plain) == suite_hash(apply_overrides(plain, executor="ray", replicas=8))  # not hashed
    for kwargs, flag in (({"executor": "spark"}, "--executor: must be local or ray, got 'spark'"),
                         ({"replicas": 0}, "--replicas: must be at least 1, got 0")):
        with pytest.raises(ConfigError, match=flag) as exc:
            apply_overrides(plain, **kwargs)  # type: ignore[arg-type]
        assert "\n" not in exc.value.one_line()
    with pytest.raises(EvalmonError, match="replicas") as exc2:
        load_suite_text(YAML + "replicas: 0\n", "suite.yaml")
    assert "suite.yaml" in exc2.value.one_line()


def test_missing_ray_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray → ImportError
    cfg = load_suite_text(YAML + "executor: ray\n", "suite.yaml")
    with pytest.raises(ConfigError) as exc:
        load_fleet(cfg.model, cfg.replicas)
    line = exc.value.one_line()
    assert "executor: ray needs the ray package" in line and "evalmon[ray]" in line and "\n" not in line

"""The ``replay`` task (evalmon/tasks/replay.py): documents, requests, scores — in-process, no model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evalmon.core.errors import ConfigError, DataError
from evalmon.core.lm import GenRequest
from evalmon.tasks.base import StageOutputs, TaskOptions, build_task, config_hash
from evalmon.tasks.replay import ReplayTask, token_f1

BENCH = Path(__file__).resolve().parents[3] / "shared" / "benchmarks"
ROWS = [
    {"id": "r1", "prompt": "What is the capital of France?", "production": "Paris.", "reference": "Paris",
     "provenance": {"monitor": "m", "window": "20261101T020000Z", "monitor_run_id": "abc123"}},
    {"id": "r2", "prompt": "Hi", "production": "Hello!",
     "messages": [{"role": "system", "content": "logged sys"}, {"role": "user", "content": "Hi"}],
     "provenance": {"monitor": "m", "window": "20261101T030000Z", "monitor_run_id": "def456"}},
]


def dataset(tmp_path: Path, rows: list[dict[str, object]] = ROWS) -> Path:
    p = tmp_path / "replay.jsonl"
    p.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return p


def task(tmp_path: Path, **opts: object) -> ReplayTask:
    extra = {"dataset": str(dataset(tmp_path)), "scoring": ["reference"], **opts}
    t = build_task("replay", TaskOptions(extra=extra, base_dir=tmp_path, data_dir=BENCH))
    assert isinstance(t, ReplayTask)
    return t


def test_docs_ids_are_request_ids_and_requests_use_messages(tmp_path: Path) -> None:
    t = task(tmp_path, max_new_tokens=8)
    assert [d.id for d in t.docs()] == ["r1", "r2"]
    [req] = t.stages()[0].requests(t.docs()[0], [])
    assert isinstance(req, GenRequest) and req.max_gen_toks == 8 and req.temperature == 0.0
    assert req.messages == (("user", "What is the capital of France?"),)
    [req2] = t.stages()[0].requests(t.docs()[1], [])
    assert req2.messages == (("system", "logged sys"), ("user", "Hi"))


def test_system_prompt_replaces_system_turn_and_stays_out_of_the_config_hash(tmp_path: Path) -> None:
    plain, sys = task(tmp_path), task(tmp_path, system_prompt="Be brief.")
    assert sys.messages(sys.docs()[1]) == (("system", "Be brief."), ("user", "Hi"))
    assert sys.messages(sys.docs()[0])[0] == ("system", "Be brief.")
    assert config_hash(plain.config()) == config_hash(sys.config())  # pairs in `evalmon gate`
    out = StageOutputs([["Paris"]])
    assert plain.sample_fields(plain.docs()[0], out)["prompt_hash"] == sys.sample_fields(sys.docs()[0], out)["prompt_hash"]


def test_reference_scores(tmp_path: Path) -> None:
    t = task(tmp_path)
    s = t.score(t.docs()[0], StageOutputs([[" Paris "]]))
    assert s == {"exact_match": 1.0, "f1": 1.0, "bleu": ["Paris", ["Paris"]]}
    assert t.score(t.docs()[1], StageOutputs([["x"]])) == {}  # no reference: nothing to score
    assert token_f1("the capital is Paris", "Paris") == pytest.approx(0.5)  # P 1/3 ("the" dropped), R 1
    assert token_f1("Paris", "Lyon") == 0.0


def test_mlflow_tags_carry_the_monitor_runs(tmp_path: Path) -> None:
    tags = task(tmp_path).config()["mlflow_tags"]
    assert tags["evalmon.replay.monitor_run_ids"] == "abc123,def456"
    assert tags["evalmon.replay.monitor"] == "m"
    assert tags["evalmon.replay.windows"] == "20261101T020000Z,20261101T030000Z"


def test_pairwise_is_position_swapped_against_production(tmp_path: Path) -> None:
    judge = {"backend": "hf", "path": str(tmp_path)}
    t = task(tmp_path, scoring=["pairwise"], judge=judge, judge_max_tokens=16)
    assert [s.role for s in t.stages()] == ["candidate", "judge"]
    doc = t.docs()[0]
    g1, g2 = t.stages()[1].requests(doc, [["Lyon"]])
    assert "Lyon" in g1.messages[1][1].split("[The Start of Assistant B")[0]  # game 1: candidate is A
    assert "Paris." in g2.messages[1][1].split("[The Start of Assistant B")[0]  # game 2: production is A
    win = StageOutputs([["Lyon"], ["Verdict: [[A]]", "Verdict: [[B]]"]])
    loss = StageOutputs([["Lyon"], ["Verdict: [[B]]", "Verdict: [[A]]"]])
    flip = StageOutputs([["Lyon"], ["Verdict: [[A]]", "Verdict: [[A]]"]])  # position bias → tie
    assert t.score(doc, win) == {"win_rate": 1.0}
    assert t.score(doc, loss) == {"win_rate": 0.0}
    assert t.score(doc, flip) == {"win_rate": 0.5}
    assert t.score(doc, StageOutputs([["Lyon"], ["no verdict", "[[A]]"]])) == {}


@pytest.mark.parametrize(("opts", "err", "needle"), [
    ({"scoring": ["vibes"]}, ConfigError, "unknown 'vibes'"),
    ({"scoring": ["pairwise"]}, ConfigError, "needs options.judge"),
    ({"datset": "x"}, ConfigError, "did you mean"),
    ({"max_new_tokens": 0}, ConfigError, "positive integer"),
    ({"dataset": "missing.jsonl"}, DataError, "dataset not found"),
])
def test_option_errors_are_one_line(tmp_path: Path, opts: dict[str, object], err: type[Exception], needle: str) -> None:
    extra = {"dataset": str(dataset(tmp_path)), "scoring": ["reference"], **opts}
    with pytest.raises(err) as ei:
        build_task("replay", TaskOptions(extra=extra, base_dir=tmp_path))
    assert needle in str(ei.value) and "\n" not in str(ei.value)


def test_reference_scoring_without_references_is_a_data_error(tmp_path: Path) -> None:
    p = dataset(tmp_path, [ROWS[1]])
    with pytest.raises(DataError, match=r"no row .* has a reference"):
        build_task("replay", TaskOptions(extra={"dataset": str(p), "scoring": ["reference"]}))

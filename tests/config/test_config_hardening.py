"""Hostile config files and odd numbers (issue #10, items 11, 14, 15, 16).

Every YAML evalmon reads — suite (``evalmon run``), monitor (``evalmon monitor``) and gate policy
(``evalmon gate --policy``) — goes through ``evalmon.config.yamlio``: an alias bomb, an oversized file, an
oversized string or a control character is one ``error: file:line…`` line and exit 2, fast. Booleans are
not integers. Every ``--json`` output is strict JSON (no NaN). ``traffic synth`` refuses a volume it cannot
hold in memory. All CLI cases run the real ``evalmon`` entry point in a subprocess.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from cli_util import assert_user_error, cli_env, run_cli, show

from evalmon.config.gate import load_policy_text
from evalmon.config.monitor import load_monitor_text
from evalmon.config.yamlio import load_yaml
from evalmon.core.errors import ConfigError

BOMB_TIMEOUT_S = 30  # the CLI's own start-up is most of it; an unbounded bomb runs for hours


def bomb(indent: str, levels: int = 9, width: int = 10) -> str:
    """Billion laughs: ``width ** levels`` values once the aliases are expanded, a few hundred bytes on disk."""
    lines = [f"{indent}l0: &l0 [" + ", ".join(['"lol"'] * width) + "]"]
    for i in range(1, levels + 1):
        lines.append(f"{indent}l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * width) + "]")
    return "\n".join(lines) + "\n"


# one config per command; `{body}` is where the hostile part goes (a mapping at that indentation)
SUITE = "name: s\nmodel: {{path: /m}}\ntasks:\n  - name: hellaswag\n    options:\n{body}"
MONITOR = "name: m\nsource: {{kind: jsonl, path: t.jsonl}}\ndrift:\n  thresholds:\n{body}"
POLICY = "alpha: 0.05\ndefaults:\n  max_drop: 0.01\nrules:\n  - match: '*/acc'\n    extra:\n{body}"
KINDS = {
    "run": (SUITE, "      ", lambda f: ("run", f)),
    "monitor": (MONITOR, "    ", lambda f: ("monitor", f)),
    "gate": (POLICY, "      ", lambda f: ("gate", "--baseline", "a", "--candidate", "b", "--policy", f)),
}


def _write(tmp_path: Path, kind: str, body: str | None = None, raw: str | None = None) -> tuple[Path, tuple[str, ...]]:
    template, indent, args = KINDS[kind]
    path = tmp_path / f"{kind}.yaml"
    path.write_text(raw if raw is not None else template.format(body=body or f"{indent}x: 1\n"), encoding="utf-8")
    return path, args(path.name)


# ------------------------------------------------------------------ alias bombs


@pytest.mark.parametrize("kind", list(KINDS))
def test_alias_bomb_fails_fast(tmp_path: Path, kind: str) -> None:
    _, args = _write(tmp_path, kind, bomb(KINDS[kind][1]))
    t0 = time.monotonic()
    proc = run_cli(tmp_path, *args, timeout=BOMB_TIMEOUT_S)
    line = assert_user_error(proc, f"{kind}.yaml:", "alias", "values")
    assert "internal error" not in line, line
    assert time.monotonic() - t0 < BOMB_TIMEOUT_S


def test_alias_bomb_is_refused_before_expansion() -> None:
    text = "a:\n" + bomb("  ", levels=12)  # 10**12 values
    t0 = time.monotonic()
    with pytest.raises(ConfigError, match=r"bomb\.yaml:\d+: .*alias"):
        load_yaml(text, "bomb.yaml")
    assert time.monotonic() - t0 < 1.0


def test_ordinary_aliases_and_merge_keys_still_work() -> None:
    doc = load_yaml("base: &b {x: 1, y: [1, 2]}\nother:\n  <<: *b\n  y: [3]\nsame: *b\n", "ok.yaml")
    assert doc.data == {"base": {"x": 1, "y": [1, 2]}, "other": {"x": 1, "y": [3]}, "same": {"x": 1, "y": [1, 2]}}


def test_recursive_alias_is_an_error_not_a_hang() -> None:
    with pytest.raises(ConfigError, match=r"loop\.yaml:1: .*refers to itself"):
        load_yaml("a: &a [1, *a]\n", "loop.yaml")


# ------------------------------------------------------------------ size limits


@pytest.mark.parametrize("kind", list(KINDS))
def test_oversized_config_file(tmp_path: Path, kind: str) -> None:
    indent = KINDS[kind][1]
    _write(tmp_path, kind, f"{indent}x: 1\n" + "# padding padding padding padding\n" * 40_000)  # ~1.4 MB
    line = assert_user_error(run_cli(tmp_path, *KINDS[kind][2](f"{kind}.yaml")), f"{kind}.yaml:", "bytes",
                             "EVALMON_MAX_CONFIG_BYTES")
    assert "internal error" not in line, line


def test_oversized_string_even_when_the_file_limit_is_raised(tmp_path: Path) -> None:
    suite = tmp_path / "suite.yaml"
    suite.write_text(f"name: s\ndescription: {'x' * 3_000_000}\nmodel: {{path: /m}}\ntasks: [hellaswag]\n")
    assert_user_error(run_cli(tmp_path, "run", suite.name), "suite.yaml:", "bytes", "EVALMON_MAX_CONFIG_BYTES")
    proc = run_cli(tmp_path, "run", suite.name, env=cli_env(EVALMON_MAX_CONFIG_BYTES="8000000"))
    assert_user_error(proc, "suite.yaml:2: description:", "3000000 characters", "65536")


def test_bad_size_limit_variable(tmp_path: Path) -> None:
    _write(tmp_path, "run")
    proc = run_cli(tmp_path, "run", "run.yaml", env=cli_env(EVALMON_MAX_CONFIG_BYTES="lots"))
    assert_user_error(proc, "EVALMON_MAX_CONFIG_BYTES", "'lots'")


# ------------------------------------------------------------------ control characters


@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize(("char", "name"), [("\x00", "U+0000"), ("\x1b", "U+001B")], ids=["nul", "esc"])
def test_control_character(tmp_path: Path, kind: str, char: str, name: str) -> None:
    template = KINDS[kind][0]
    text = template.format(body=f"{KINDS[kind][1]}x: 1\n").replace("\n", f"\nbad: a{char}b\n", 1)
    _, args = _write(tmp_path, kind, raw=text)
    line = assert_user_error(run_cli(tmp_path, *args), f"{kind}.yaml:2:7:", name, "control character")
    assert "internal error" not in line, line


def test_control_character_in_text_is_reported_with_line_and_column() -> None:
    with pytest.raises(ConfigError, match=r"^p\.yaml:3:4: control character U\+0007"):
        load_policy_text("alpha: 0.05\n\nab:\x07\n", "p.yaml")
    assert load_yaml("a: 'tab\there'\r\nb: ü € 😀\n", "ok.yaml").data == {"a": "tab\there", "b": "ü € 😀"}


# ------------------------------------------------------------------ booleans are not numbers


@pytest.mark.parametrize(("field", "needles"), [
    ("limit: true", ("suite.yaml:2: limit:", "expected an integer, got true")),
    ("seed: false", ("suite.yaml:2: seed:", "expected an integer, got false")),
    ("model: {path: /m, batch_size: yes}", ("suite.yaml:2: model.batch_size:", "expected an integer, got true")),
], ids=["limit", "seed", "batch_size"])
def test_boolean_where_an_integer_is_meant(tmp_path: Path, field: str, needles: tuple[str, ...]) -> None:
    model = "" if field.startswith("model") else "model: {path: /m}\n"
    (tmp_path / "suite.yaml").write_text(f"name: s\n{field}\ntasks: [hellaswag]\ntracking: {{enabled: false}}\n{model}")
    assert_user_error(run_cli(tmp_path, "run", "suite.yaml"), *needles)


def test_boolean_rejected_in_task_entries_monitor_and_policy() -> None:
    from evalmon.config.suite import load_suite_text

    with pytest.raises(ConfigError, match=r"s\.yaml:3: tasks\.0\.limit: expected an integer, got true"):
        load_suite_text("name: s\nmodel: {path: /m}\ntasks: [{name: hellaswag, limit: true}]\n", "s.yaml")
    with pytest.raises(ConfigError, match=r"m\.yaml:3: drift\.min_rows: expected an integer, got true"):
        load_monitor_text("name: m\nsource: {kind: jsonl, path: t.jsonl}\ndrift: {min_rows: true}\n", "m.yaml")
    with pytest.raises(ConfigError, match=r"m\.yaml:3: drift\.drift_share: expected a number, got false"):
        load_monitor_text("name: m\nsource: {kind: jsonl, path: t.jsonl}\ndrift: {drift_share: false}\n", "m.yaml")
    with pytest.raises(ConfigError, match=r"p\.yaml:2: defaults\.max_drop: expected a number, got true"):
        load_policy_text("alpha: 0.05\ndefaults: {max_drop: true}\n", "p.yaml")
    # genuine numbers (and an int where a float is meant) are unchanged
    assert load_policy_text("defaults: {max_drop: 1}\n", "p.yaml").defaults.max_drop == 1.0


# ------------------------------------------------------------------ --json outputs are strict JSON


def _strict(text: str) -> Any:
    def no_constant(name: str) -> Any:
        raise AssertionError(f"non-standard JSON constant {name} in:\n{text[:2000]}")

    return json.loads(text, parse_constant=no_constant)


@pytest.mark.parametrize("metric", ["bleu", "chrf", "ter", "wer", "cer", "mer"])
def test_score_json_is_strict_json(tmp_path: Path, metric: str) -> None:
    (tmp_path / "hyp.txt").write_text("the cat sat on the mat\na dog barked\nhello world\n")
    (tmp_path / "ref.txt").write_text("the cat sat on a mat\nthe dog barked\nhello there world\n")
    proc = run_cli(tmp_path, "score", metric, "--hyp", "hyp.txt", "--ref", "ref.txt", "--json", "--bootstrap", "50")
    assert proc.returncode == 0, show(proc)
    res = _strict(proc.stdout)
    assert res["metric"] == metric and isinstance(res["score"], float) and isinstance(res["ci_low"], float)


def test_score_json_undefined_rate_is_an_error_not_a_score(tmp_path: Path) -> None:
    """References with nothing left after normalisation: WER is 0/0. It was `"score": null` with exit 0 (a CI
    step passed on no number); now one error line, exit 2, and no JSON on stdout to be mistaken for a result."""
    (tmp_path / "hyp.txt").write_text("a\nb\n")
    (tmp_path / "ref.txt").write_text("...\n!!\n")
    proc = run_cli(tmp_path, "score", "wer", "--hyp", "hyp.txt", "--ref", "ref.txt", "--json", "--bootstrap", "20")
    assert_user_error(proc, "ref.txt", "empty after normalisation", "--keep-punctuation")
    assert proc.stdout.strip() == ""


def _run_dir(root: Path, rid: str, values: list[float], nan_metric: bool) -> Path:
    from evalmon.core.results import (
        MetricValue,
        Provenance,
        RunResult,
        SampleRecord,
        TaskResult,
        write_samples,
    )

    n = len(values)
    metrics = {"acc": MetricValue(value=sum(values) / n, stderr=0.1)}
    if nan_metric:
        metrics["wer"] = MetricValue(value=float("nan"), higher_is_better=False)
    task = TaskResult(name="t", n=n, num_fewshot=0, source="/data/t.jsonl", config_hash="h", config={"name": "t"},
                      metrics=metrics, metric_kinds={"acc": "binary", "wer": "continuous"})
    result = RunResult(run_id=rid, suite_name="s", suite_hash="sh", started_at="2025-05-01T10:00:00+00:00",
                       finished_at="2025-05-01T10:05:00+00:00", status="finished", suite_config={"name": "s"},
                       provenance=Provenance(evalmon_version="0.1.0", lm_eval_version="0.4.13", python_version="3.11",
                                             platform="linux", hostname="ci", command="evalmon run s.yaml"),
                       model={"backend": "hf", "model": "/ckpt", "bos_policy": "tokenizer-default",
                              "max_length": 2048, "dtype": "float32"},
                       tasks={"t": task})
    run_dir = root / rid
    result.save(run_dir)
    write_samples(run_dir / "samples.jsonl.gz",
                  [SampleRecord(task="t", doc_id=str(i), prompt_hash=str(i),
                                scores={"acc": v, **({"wer": float("nan")} if nan_metric else {})})
                   for i, v in enumerate(values)])
    return run_dir


def test_compare_and_gate_json_are_strict_json(tmp_path: Path) -> None:
    a = _run_dir(tmp_path, "a", [1.0, 0.0, 1.0, 1.0, 0.0, 1.0], nan_metric=True)
    b = _run_dir(tmp_path, "b", [1.0, 1.0, 1.0, 0.0, 0.0, 1.0], nan_metric=True)
    proc = run_cli(tmp_path, "compare", a, b, "--format", "json", "--n-boot", "200")
    assert proc.returncode == 2, show(proc)  # NaN metrics: not comparable (exit 2), the JSON still printed
    data = _strict(proc.stdout)
    assert {m["key"] for m in data["metrics"]} >= {"t/acc"}
    proc = run_cli(tmp_path, "gate", "--baseline", a, "--candidate", b, "--json", "verdict.json", "--n-boot", "200")
    assert proc.returncode in (0, 1, 2) and "Traceback" not in proc.stderr, show(proc)  # NaN runs: not comparable
    assert _strict((tmp_path / "verdict.json").read_text())["metrics"]


def test_judge_agreement_json_is_strict_json(tmp_path: Path) -> None:
    votes = [{"question_id": 81, "model_a": "x", "model_b": "y", "winner": "tie", "turn": 1}]
    for name in ("human.jsonl", "judge.jsonl"):
        (tmp_path / name).write_text("\n".join(json.dumps(v) for v in votes) + "\n")
    proc = run_cli(tmp_path, "judge", "agreement", "--human-votes", "human.jsonl", "--judge-votes", "judge.jsonl",
                   "--format", "json")
    assert proc.returncode == 0, show(proc)
    rows = _strict(proc.stdout)["rows"]
    assert any(r["setup"] == "S2" and r["total"] == 0 and r["ratio"] is None for r in rows)


def test_to_json_converts_numpy_nan_paths_and_times() -> None:
    import datetime as dt

    import numpy as np

    from evalmon.core.jsonout import to_json

    obj = {"f32": np.float32(0.5), "i64": np.int64(3), "arr": np.array([1.0, np.nan]), "nan": float("nan"),
           "inf": -float("inf"), "path": Path("/x/y"), "when": dt.datetime(2026, 1, 2, tzinfo=dt.UTC),
           "tuple": (1, np.bool_(True)), "nested": {"v": [np.float64("inf")]}}
    assert _strict(to_json(obj)) == {"f32": 0.5, "i64": 3, "arr": [1.0, None], "nan": None, "inf": None,
                                     "path": "/x/y", "when": "2026-01-02T00:00:00+00:00", "tuple": [1, True],
                                     "nested": {"v": [None]}}


# ------------------------------------------------------------------ traffic synth volume


@pytest.mark.parametrize(("rate", "needles"), [
    ("1e12/s", ("--rate", "--hours", "records", "10000000")),
    ("1e400/s", ("--rate", "1e400/s", "finite")),
    ("5", ("--rate", "'5' has no unit", "5/h", "5/s")),  # 5/h or 5/s: 3,600-fold apart
], ids=["huge", "inf", "no-unit"])
def test_traffic_synth_refuses_an_impossible_volume(tmp_path: Path, rate: str, needles: tuple[str, ...]) -> None:
    proc = run_cli(tmp_path, "traffic", "synth", "--out", "t.jsonl", "--start", "2026-11-01T00:00Z", "--rate", rate,
                   timeout=60)
    assert_user_error(proc, *needles)
    assert not (tmp_path / "t.jsonl").exists()


@pytest.mark.parametrize(("columns", "says"), [
    ("5", "drift.columns: expected 'auto' or a mapping, got 5 — a mapping takes numerical, categorical"),
    ("[a, b]", "drift.columns: expected 'auto' or a mapping, got a list — "),
    ("autoo", "drift.columns: expected 'auto' or a mapping, got 'autoo' (did you mean: auto?) — "),
    ("{numerical: 5}", "drift.columns.numerical: expected a list, got 5 — "),  # the member that took the shape
])
def test_union_key_says_what_it_accepts_not_pydantic_member_tags(columns: str, says: str) -> None:
    """``drift.columns`` is ``'auto'`` or a mapping: a value fitting neither said
    ``drift.columns.literal['auto']: must be one of 'auto', got 5 … (1 more problem in this file)``."""
    with pytest.raises(ConfigError) as exc:
        load_monitor_text(f"name: m\nsource: {{kind: jsonl, path: t.jsonl}}\ndrift: {{columns: {columns}}}\n",
                          "m.yaml")
    line = exc.value.one_line()
    assert line.startswith(f"m.yaml:3: {says}"), line
    assert "literal[" not in line and "DriftColumns" not in line and "more problem" not in line, line

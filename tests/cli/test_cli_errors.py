"""User errors end as one line; an unreachable MLflow and Ctrl-C lose nothing.

Every user mistake is an ``EvalmonError`` whose one line names the file (line, key) or path at fault and says
what to do; mistakes in the suite, data or output directory are caught before the model is loaded, and a
run that never started leaves no directory behind. The library calls the CLI makes are checked in-process
here (suite-file details: ``test_config.py``); ``test_cli_error_contract`` runs the real ``evalmon`` entry
point in a subprocess over one bad input per fault class and checks what the user sees: exit code 2, exactly
one stderr line ``error: …``, never a traceback. The last two tests are real runs: MLflow down (the run is
kept, ``evalmon sync`` uploads it) and Ctrl-C (partial results saved, the rerun resumes from the cache).
"""

from __future__ import annotations

import json
import signal
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from cli_util import (
    Background,
    assert_no_traceback,
    assert_user_error,
    cache_rows,
    load_results,
    only_run_dir,
    run_cli,
    run_dirs,
    show,
    signal_after_first_cached,
    suite_dict,
    write_suite,
)
from plugins.mlflow_server import free_port

from evalmon.config.suite import SuiteConfig, apply_overrides, check_task_names, load_suite, load_suite_text
from evalmon.core.errors import (
    ConfigError,
    DataError,
    EvalmonError,
    ModelError,
    OutputError,
    UnknownNameError,
)


def _suite(tmp_path: Path, ckpt: Path | str, data: Path | str, name: str = "suite.yaml", **top: Any) -> Path:
    top.setdefault("tasks", ["hellaswag"])
    top.setdefault("limit", 2)
    top.setdefault("tracking", {"enabled": False})
    return write_suite(tmp_path / name, suite_dict(ckpt, data, **top))


def _cfg(tmp_path: Path, ckpt: Path | str, data: Path | str, **top: Any) -> SuiteConfig:
    """What ``evalmon run suite.yaml`` builds before it runs (cwd = ``tmp_path``)."""
    top.setdefault("output_dir", str(tmp_path / "reports"))
    cfg = load_suite(_suite(tmp_path, ckpt, data, **top))
    check_task_names(cfg)
    return cfg


def _one_line(exc_type: type[EvalmonError], call: Any, *needles: str) -> str:
    """``call()`` raises ``exc_type`` whose one line (message — hint) holds every needle."""
    with pytest.raises(exc_type) as info:
        call()
    line = info.value.one_line()
    assert "\n" not in line and "Traceback" not in line, line
    for needle in needles:
        assert needle in line, f"{needle!r} missing from the error line:\n{line}"
    return line


def _run_suite(cfg: SuiteConfig) -> Any:
    from evalmon.harness.run import run_suite

    return lambda: run_suite(cfg)


# ------------------------------------------------------------------ the suite and the flags (in-process)


def test_suite_file_not_found_says_where_it_looked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    line = _one_line(ConfigError, lambda: load_suite(Path("nope.yaml")), "nope.yaml", "not found")
    assert str(tmp_path) in line  # where a relative path was looked up


def test_malformed_yaml_names_file_line_and_what_to_do() -> None:
    line = _one_line(ConfigError, lambda: load_suite_text("name: x\nmodel:\n  path: /m\ntasks: [hellaswag\nlimit: 3\n",
                                                          "bad.yaml"), "bad.yaml:", "invalid YAML")
    assert " — " in line


def test_unknown_task_suggests_the_closest_registered_one(tmp_path: Path, benchmarks_dir: Path) -> None:
    cfg = load_suite(_suite(tmp_path, "/m", benchmarks_dir, tasks=["mmlu_anatomy", "hellaswg"]))
    line = _one_line(UnknownNameError, lambda: check_task_names(cfg), "suite.yaml:", "'hellaswg'",
                     "did you mean: hellaswag", "evalmon tasks")
    assert "tasks.1" in line  # the entry at fault


@pytest.mark.parametrize(("flag", "yaml_limit", "needles"), [
    (0, None, ("--limit", "0", "positive")),
    (None, -1, ("suite.yaml:", "limit", "-1", "positive integer")),
], ids=["flag-zero", "yaml-negative"])
def test_non_positive_limit(tmp_path: Path, benchmarks_dir: Path, flag: int | None, yaml_limit: int | None,
                            needles: tuple[str, ...]) -> None:
    path = _suite(tmp_path, "/m", benchmarks_dir, limit=yaml_limit if yaml_limit is not None else 3)
    _one_line(ConfigError, lambda: apply_overrides(load_suite(path), limit=flag), *needles)


def test_include_path_without_an_lm_eval_task_is_refused(tmp_path: Path, benchmarks_dir: Path) -> None:
    """``--include-path DIR`` is read only for ``lm_eval:`` tasks: on a run without one (after ``--tasks``) it was
    silently ignored; now a one-line error naming the flag and the folder. With an lm-eval task it is kept."""
    cfg = load_suite(_suite(tmp_path, "/m", benchmarks_dir))
    inc = tmp_path / "inc"
    _one_line(ConfigError, lambda: apply_overrides(cfg, include_path=[inc]), f"--include-path {inc}",
              "no task of this run is an lm-eval task", "--tasks lm_eval:<name>", "drop --include-path")
    ok = apply_overrides(cfg, tasks=["hellaswag", "lm_eval:foo"], include_path=[inc])
    assert ok.lm_eval_include_path == [inc.resolve()]
    _one_line(ConfigError, lambda: apply_overrides(ok, tasks=["hellaswag"], include_path=[inc]), "--include-path")
    assert apply_overrides(ok, tasks=["hellaswag"]).lm_eval_include_path == [inc.resolve()]  # the suite's own: kept


@pytest.mark.parametrize("argv", [("run", "--limit", "abc"), ("run", "--no-such-flag")], ids=["bad-value", "bad-flag"])
def test_usage_errors_exit_2_without_traceback(argv: tuple[str, ...], monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    from evalmon.cli.app import main

    monkeypatch.setattr(sys, "argv", ["evalmon", *argv])
    with pytest.raises(SystemExit) as done:
        main()
    err = capsys.readouterr().err
    assert done.value.code == 2 and "Traceback" not in err, err
    # one `error:` line like every other bad input (click's own form was four: usage, "Try …", blank, "Error: …")
    assert err.count("\n") == 1 and err.startswith("error: ") and "`evalmon run --help`" in err, err


# ------------------------------------------------------------------ data, output, checkpoint: before any compute


def test_missing_data_dir_names_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-mirror"
    cfg = _cfg(tmp_path, "/m", missing)
    _one_line(DataError, _run_suite(cfg), str(missing / "hellaswag"), "does not exist", "data_dir")
    assert run_dirs(tmp_path / "reports") == []


def test_missing_data_file_in_existing_dir(tmp_path: Path) -> None:
    mirror = tmp_path / "mirror"
    (mirror / "hellaswag").mkdir(parents=True)  # the directory is there, its file is not
    line = _one_line(DataError, _run_suite(_cfg(tmp_path, "/m", mirror)), str(mirror / "hellaswag"), "not found")
    assert ".bz2" in line  # the exact file it looked for


def test_output_dir_not_writable(tmp_path: Path, benchmarks_dir: Path) -> None:
    (tmp_path / "a-file").write_text("not a directory")
    cfg = _cfg(tmp_path, "/m", benchmarks_dir, tasks=["truthfulqa_mc2"], output_dir=str(tmp_path / "a-file/reports"))
    _one_line(OutputError, _run_suite(cfg), "output_dir", str(tmp_path / "a-file" / "reports"), "--output")


def test_checkpoint_dir_missing_leaves_no_run(tmp_path: Path, benchmarks_dir: Path) -> None:
    missing = tmp_path / "no-ckpt"
    cfg = _cfg(tmp_path, missing, benchmarks_dir, tasks=["truthfulqa_mc2"])
    _one_line(ModelError, _run_suite(cfg), "model.path", str(missing), "not found", "evalmon init")
    assert run_dirs(tmp_path / "reports") == []  # nothing half-made left behind


@pytest.fixture(scope="module")
def bert_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny encoder-only checkpoint (BertModel, with its tokenizer): loads fine, but is no causal LM."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

    out = tmp_path_factory.mktemp("bert") / "bert"
    BertModel(BertConfig(vocab_size=64, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=16, max_position_embeddings=64)).save_pretrained(out)
    vocab = {"[PAD]": 0, "[UNK]": 1, "[CLS]": 2, "[SEP]": 3, "a": 4}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]").save_pretrained(out)
    return out


@pytest.mark.e2e  # over 2 s in the unit lane (make test-fast budget)
def test_checkpoint_not_a_causal_lm_leaves_no_run(tmp_path: Path, benchmarks_dir: Path,
                                                  bert_checkpoint: Path) -> None:
    cfg = _cfg(tmp_path, bert_checkpoint, benchmarks_dir, tasks=["truthfulqa_mc2"])
    line = _one_line(ModelError, _run_suite(cfg), "model.path", str(bert_checkpoint), "not a causal language model",
                     "BertModel")
    assert " — " in line  # what to do
    assert run_dirs(tmp_path / "reports") == []


@pytest.mark.e2e  # over 2 s in the unit lane (make test-fast budget)
def test_adapter_for_another_base_leaves_no_run(tmp_path: Path, benchmarks_dir: Path, tiny_checkpoint: Path,
                                                mismatched_lora: Path) -> None:
    cfg = _cfg(tmp_path, tiny_checkpoint, benchmarks_dir, tasks=["truthfulqa_mc2"],
               model={"adapter": str(mismatched_lora)})
    _one_line(ModelError, _run_suite(cfg), "model.adapter", str(mismatched_lora), "does not match the base model",
              "use the adapter trained on this base")
    assert run_dirs(tmp_path / "reports") == []


# ------------------------------------------------------------------ what the user sees: the real entry point


def _write_bad_suite(cwd: Path, benchmarks: Path) -> list[str]:
    (cwd / "bad.yaml").write_text("name: x\nmodel:\n  path: /m\ntasks: [hellaswag\nlimit: 3\n")
    return ["run", "bad.yaml"]


def _broken_include(cwd: Path, benchmarks: Path) -> list[str]:
    (cwd / "inc").mkdir()
    (cwd / "inc" / "broken.yaml").write_text("task: foo\ndataset_path: [json\n")  # lm-eval skips it silently
    return ["run", str(_suite(cwd, "/m", benchmarks)), "--include-path", "inc", "--tasks", "lm_eval:foo"]


_TRAFFIC = {"request_id": "r1", "timestamp": "2026-11-01T00:10:00Z", "prompt": "hi", "response": "hello"}


def _traffic_cmd(*argv: str, rules: int = 0, on_alert: str = "null") -> Any:
    """A one-record traffic file ``t.jsonl`` and a monitor over it (``mon.yaml``, ``rules`` rules named r), then
    ``argv``."""
    def make(cwd: Path, benchmarks: Path) -> list[str]:
        (cwd / "t.jsonl").write_text(json.dumps(_TRAFFIC) + "\n")
        alerts = "".join(f"    - {{metric: rate/text.chars, op: '>', value: {i}, name: r, on_alert: {on_alert}}}\n"
                         for i in range(rules))
        (cwd / "mon.yaml").write_text("name: m\nsource: {kind: jsonl, path: t.jsonl}\nwindow: {size: 1h}\n"
                                      "reference: {kind: previous}\nsignals: [text]\ntracking: {enabled: false}\n"
                                      + (f"alerts:\n  rules:\n{alerts}" if rules else ""))
        return list(argv)

    return make


CASES: dict[str, tuple[Any, tuple[str, ...]]] = {
    # fault class: (cwd, benchmarks dir) -> argv, needles in the one stderr line
    "config": (_write_bad_suite, ("bad.yaml:5", "invalid YAML", " — ")),
    "task-name": (lambda cwd, b: ["run", _suite(cwd, "/m", b, tasks=["hellaswg"])],
                  ("suite.yaml:", "'hellaswg'", "did you mean: hellaswag")),
    "flag": (lambda cwd, b: ["run", _suite(cwd, "/m", b), "--limit", "0"], ("--limit", "positive")),
    # click's usage errors were four lines (usage, "Try …", a blank line, the error)
    "unknown-option": (lambda cwd, b: ["run", "--nope"], ("No such option: --nope", "`evalmon run --help`")),
    "option-out-of-range": (lambda cwd, b: ["traffic", "to-suite", "m.yaml", "--out", "s.yaml", "--sample", "0"],
                            ("'--sample'", "greater than or equal to 1", "`evalmon traffic to-suite --help`")),
    # numpy refused it after the records were read and scored: internal error: ValueError
    "to-suite-negative-seed": (lambda cwd, b: ["traffic", "to-suite", "m.yaml", "--out", "s.yaml", "--seed", "-1"],
                               ("'--seed'", "greater than or equal to 0", "`evalmon traffic to-suite --help`")),
    "data": (lambda cwd, b: ["run", _suite(cwd, "/m", cwd / "no-mirror")], ("no-mirror", "does not exist", "data_dir")),
    "model": (lambda cwd, b: ["run", _suite(cwd, cwd / "no-ckpt", b)], ("model.path", "no-ckpt", "evalmon init")),
    "tracking": (lambda cwd, b: ["run", _suite(cwd, cwd / "no-ckpt", b, tracking={"enabled": True}),
                                 "--tracking-uri", "foo://bar"],
                 ("tracking.uri", "foo://bar", "no tracking store")),
    "gate": (lambda cwd, b: ["gate", "--baseline", "no-such-run", "--candidate", "other"],
             ("no-such-run", "no such results directory")),
    # hostile-input findings of the new features (each was silent or destroyed an input before its fix)
    "replicas-without-ray": (lambda cwd, b: ["run", _suite(cwd, "/m", b), "--replicas", "3"],
                             ("--replicas 3", "--executor ray")),
    "models-not-a-checkpoint": (lambda cwd, b: ["run", _suite(cwd, "/m", b), "--models", f"a={cwd},b=/m"],
                                ("models.0 (a)", "no config.json", "fix models.0.path")),
    "lm-eval-broken-include": (_broken_include, ("lm_eval:foo", "inc/broken.yaml:3", "not valid YAML")),
    "include-path-without-lm-eval-task": (lambda cwd, b: ["run", _suite(cwd, "/m", b), "--include-path", "inc"],
                                          ("--include-path inc", "no task of this run is an lm-eval task")),
    "signals-out-is-input": (_traffic_cmd("signals", "score", "t.jsonl", "--signals", "text", "--out", "t.jsonl"),
                             ("--out t.jsonl", "would be overwritten")),
    "to-suite-overwrites-traffic": (_traffic_cmd("traffic", "to-suite", "mon.yaml", "--out", "replay.yaml",
                                                 "--window", "2026-11-01T00:30Z", "--dataset", "t.jsonl"),
                                    ("--dataset t.jsonl", "input of monitor", "would be overwritten")),
    "monitor-duplicate-rule-names": (_traffic_cmd("monitor", "calibrate", "mon.yaml", "--dry-run", rules=2),
                                     ("mon.yaml:", "alerts.rules", "both named 'r'")),
    "calibrate-overwrites-monitor": (_traffic_cmd("monitor", "calibrate", "mon.yaml", "--out", "mon.yaml", rules=1),
                                     ("calibrate: --out mon.yaml", "input of monitor", "would be overwritten")),
    "on-alert-replay-overwrites-traffic": (_traffic_cmd("monitor", "mon.yaml", rules=1,
                                                        on_alert="{to_suite: {suite: r.yaml, dataset: t.jsonl}}"),
                                           ("mon.yaml:", "to_suite.dataset", "logged traffic", "overwrite")),
}


@pytest.mark.parametrize("fault", list(CASES))
def test_cli_error_contract(fault: str, tmp_path: Path, benchmarks_dir: Path) -> None:
    """Exit 2, exactly one stderr line starting ``error:`` naming what is wrong, no traceback, no run left."""
    make_args, needles = CASES[fault]
    proc = run_cli(tmp_path, *make_args(tmp_path, benchmarks_dir))
    line = assert_user_error(proc, *needles)
    assert line.startswith("error: ") and proc.stdout.strip() == "", show(proc)
    assert run_dirs(tmp_path / "reports") == []
    if (tmp_path / "t.jsonl").exists():  # the input named as output is untouched
        assert json.loads((tmp_path / "t.jsonl").read_text()) == _TRAFFIC


# ------------------------------------------------------------------ MLflow unreachable, then `evalmon sync`


def test_unreachable_mlflow_keeps_the_run_then_sync_uploads_it(tmp_path: Path, benchmarks_dir: Path,
                                                               tiny_checkpoint: Path, mlflow_server: str) -> None:
    from mlflow import MlflowClient

    dead_uri = f"http://127.0.0.1:{free_port()}"
    _suite(tmp_path, tiny_checkpoint, benchmarks_dir, tasks=["truthfulqa_mc2"],
           tracking={"uri": dead_uri, "experiment": "cli-offline"})
    proc = run_cli(tmp_path, "run", "suite.yaml")
    assert proc.returncode == 0, show(proc)
    assert_no_traceback(proc)
    run_dir = only_run_dir(tmp_path / "reports")
    warning = [ln for ln in proc.stderr.splitlines() if ln.startswith("warning:")]
    # one line each, even on a non-terminal 80-column stderr: up front (before compute), then where the run is
    assert len(warning) == 2 and "does not answer" in warning[0], show(proc)
    assert "MLflow unreachable" in warning[1] and "saved locally" in warning[1], warning[1]
    assert f"reports/{run_dir.name}" in warning[1] and "`evalmon sync reports`" in warning[1], warning[1]
    for name in ("results.json", "samples.jsonl.gz", "report.html", "summary.md", "mlflow_pending.json"):
        assert (run_dir / name).is_file(), name
    result = load_results(run_dir)
    assert result["status"] == "finished" and result["mlflow"]["status"] == "pending"
    assert yaml.safe_load((tmp_path / "suite.yaml").read_text())["tracking"]["uri"] == dead_uri
    assert json.loads((run_dir / "mlflow_pending.json").read_text())["uri"] == dead_uri

    still_down = run_cli(tmp_path, "sync", "reports")  # the recorded URI: still nothing listening there
    assert still_down.returncode == 1 and "pending" in still_down.stdout, show(still_down)
    assert (run_dir / "mlflow_pending.json").is_file()

    synced = run_cli(tmp_path, "sync", "reports", "--tracking-uri", mlflow_server)
    assert synced.returncode == 0, show(synced)
    assert_no_traceback(synced)
    assert "logged" in synced.stdout
    assert not (run_dir / "mlflow_pending.json").exists()
    mlflow_run_id = json.loads((run_dir / "mlflow.json").read_text())["run_id"]
    run = MlflowClient(mlflow_server).get_run(mlflow_run_id)
    assert run.data.tags["evalmon.run_id"] == result["run_id"]
    mc2 = result["tasks"]["truthfulqa_mc2"]["metrics"]["mc2"]["value"]
    assert run.data.metrics["truthfulqa_mc2/mc2"] == pytest.approx(mc2, abs=1e-12)
    assert "results.json" in {a.path for a in MlflowClient(mlflow_server).list_artifacts(mlflow_run_id)}

    again = run_cli(tmp_path, "sync", "reports", "--tracking-uri", mlflow_server)  # nothing left to do
    assert again.returncode == 0 and "nothing to sync" in again.stdout, show(again)


# ------------------------------------------------------------------ Ctrl-C, then resume from the cache


def test_ctrl_c_saves_partial_results_and_rerun_resumes(tmp_path: Path, benchmarks_dir: Path,
                                                        tiny_checkpoint: Path) -> None:
    # lm-eval's plain batching with batch_size 1: one cache commit per request (packed scoring would
    # commit a few large packs), so there is plenty of run left when the first one lands
    suite = _suite(tmp_path, tiny_checkpoint, benchmarks_dir, limit=100, model={"batch_size": 1, "scoring": "plain"})
    cache = tmp_path / "reports" / ".cache" / "responses.sqlite"  # the default: <output_dir>/.cache/
    interrupted = signal_after_first_cached(tmp_path, cache, signal.SIGINT, "run", suite)
    err = interrupted.stderr
    assert interrupted.returncode == 130, show(interrupted)
    assert_no_traceback(interrupted)
    assert "interrupted" in err.splitlines()[-1] and "rerun" in err.splitlines()[-1], show(interrupted)
    first_dir = only_run_dir(tmp_path / "reports")
    partial = load_results(first_dir)
    assert partial["status"] == "interrupted"
    assert (first_dir / "report.html").is_file() and (first_dir / "summary.md").is_file()
    done = cache_rows(cache)
    assert 0 < done < 400  # 100 docs x 4 endings

    resumed = run_cli(tmp_path, "run", suite)
    assert resumed.returncode == 0, show(resumed)
    second_dir = next(d for d in run_dirs(tmp_path / "reports") if d != first_dir)
    result = load_results(second_dir)
    assert result["status"] == "finished"
    task = result["tasks"]["hellaswag"]
    timing = task["timing"]
    assert task["n"] == 100
    assert timing["cached"] == done  # everything scored before the interrupt was reused …
    assert timing["cached"] + timing["computed"] == timing["unique_requests"]  # … and only the rest computed
    assert timing["computed"] > 0


def test_ctrl_c_in_signals_score_says_the_output_is_partial(tmp_path: Path) -> None:
    """Interrupted ``signals score``: exit 130, the rows written so far are kept, one line says they are partial."""
    rows = [{**_TRAFFIC, "request_id": f"r{i}", "prompt": f"question {i}"} for i in range(20_000)]
    (tmp_path / "t.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "s.jsonl"
    proc = Background(tmp_path, "signals", "score", "t.jsonl", "--signals", "text", "--out", "s.jsonl",
                      "--batch-size", "1")
    while proc.proc.poll() is None and not (out.exists() and out.stat().st_size):
        time.sleep(0.05)
    proc.proc.send_signal(signal.SIGINT)
    done = proc.result()
    assert done.returncode == 130, show(done)
    assert_no_traceback(done)
    last = done.stderr.strip().splitlines()[-1]
    kept = len(out.read_text().splitlines())
    assert 0 < kept < len(rows)
    assert f"s.jsonl holds the first {kept} records only (partial)" in last and "rerun" in last, show(done)

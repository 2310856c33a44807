"""``evalmon`` on bad input, an unreachable MLflow and Ctrl-C — the real console entry point in a subprocess.

Every user mistake must end with exit code 2 and exactly one stderr line ``error: …`` that names the
file (line, key) or path at fault and says what to do — never a traceback. Mistakes in the suite,
data or output directory are caught before the model is loaded (those tests take ~1 s each).
"""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

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


def _suite(tmp_path: Path, ckpt: Path | str, data: Path | str, name: str = "suite.yaml", **top) -> Path:
    top.setdefault("tasks", ["hellaswag"])
    top.setdefault("limit", 2)
    top.setdefault("tracking", {"enabled": False})
    return write_suite(tmp_path / name, suite_dict(ckpt, data, **top))


# ------------------------------------------------------------------ the suite file itself


def test_suite_file_not_found(tmp_path: Path) -> None:
    proc = run_cli(tmp_path, "run", "nope.yaml")
    line = assert_user_error(proc, "nope.yaml", "not found")
    assert str(tmp_path) in line  # where a relative path was looked up


def test_malformed_yaml_names_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text("name: x\nmodel:\n  path: /m\ntasks: [hellaswag\nlimit: 3\n")
    line = assert_user_error(run_cli(tmp_path, "run", "bad.yaml"), "bad.yaml:", "invalid YAML")
    assert " — " in line  # what to do


def test_unknown_task_suggests_the_closest(tmp_path: Path, benchmarks_dir: Path) -> None:
    suite = _suite(tmp_path, "/m", benchmarks_dir, tasks=["mmlu_anatomy", "hellaswg"])
    line = assert_user_error(run_cli(tmp_path, "run", suite), "suite.yaml:", "'hellaswg'",
                             "did you mean: hellaswag", "evalmon tasks")
    assert "tasks.1" in line  # the entry at fault


def test_unknown_key_suggests_the_closest(tmp_path: Path, benchmarks_dir: Path) -> None:
    suite = _suite(tmp_path, "/m", benchmarks_dir, model={"batch_sise": 4})
    assert_user_error(run_cli(tmp_path, "run", suite), "suite.yaml:", "model.batch_sise",
                      "did you mean: batch_size")


@pytest.mark.parametrize(("flag", "yaml_limit", "needles"), [
    ("0", None, ("--limit", "0", "positive")),
    (None, -1, ("suite.yaml:", "limit", "-1", "positive integer")),
], ids=["flag-zero", "yaml-negative"])
def test_non_positive_limit(tmp_path: Path, benchmarks_dir: Path, flag, yaml_limit, needles) -> None:
    suite = _suite(tmp_path, "/m", benchmarks_dir, limit=yaml_limit if yaml_limit is not None else 3)
    args = ["run", suite, *(["--limit", flag] if flag is not None else [])]
    assert_user_error(run_cli(tmp_path, *args), *needles)


@pytest.mark.parametrize("args", [("run", "--limit", "abc"), ("run", "--no-such-flag")], ids=["bad-value", "bad-flag"])
def test_usage_errors_exit_2_without_traceback(tmp_path: Path, args: tuple[str, ...]) -> None:
    proc = run_cli(tmp_path, *args)
    assert proc.returncode == 2, show(proc)
    assert_no_traceback(proc)
    assert "Error:" in proc.stderr and "evalmon run --help" in proc.stderr, show(proc)


# ------------------------------------------------------------------ data, output, checkpoint


def test_missing_data_dir_names_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-mirror"
    suite = _suite(tmp_path, "/m", missing)
    assert_user_error(run_cli(tmp_path, "run", suite), str(missing / "hellaswag"), "does not exist", "data_dir")
    assert run_dirs(tmp_path / "reports") == []


def test_missing_data_file_in_existing_dir(tmp_path: Path) -> None:
    mirror = tmp_path / "mirror"
    (mirror / "hellaswag").mkdir(parents=True)  # the directory is there, its file is not
    suite = _suite(tmp_path, "/m", mirror)
    line = assert_user_error(run_cli(tmp_path, "run", suite), str(mirror / "hellaswag"), "not found")
    assert ".bz2" in line  # the exact file it looked for


def test_output_dir_not_writable(tmp_path: Path, benchmarks_dir: Path) -> None:
    (tmp_path / "a-file").write_text("not a directory")
    suite = _suite(tmp_path, "/m", benchmarks_dir, output_dir="a-file/reports")
    assert_user_error(run_cli(tmp_path, "run", suite), "output_dir", str(tmp_path / "a-file" / "reports"),
                      "--output")


def test_checkpoint_dir_missing(tmp_path: Path, benchmarks_dir: Path) -> None:
    missing = tmp_path / "no-ckpt"
    suite = _suite(tmp_path, missing, benchmarks_dir)
    assert_user_error(run_cli(tmp_path, "run", suite), "model.path", str(missing), "not found", "evalmon init")
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


@dataclass
class ModelRun:
    cwd: Path
    run: Background


@pytest.fixture(scope="module")
def model_runs(tmp_path_factory: pytest.TempPathFactory, benchmarks_dir: Path, tiny_checkpoint: Path,
               mismatched_lora: Path, bert_checkpoint: Path) -> Iterator[dict[str, ModelRun]]:
    """The runs that load a model, started together (each is mostly torch/transformers imports)."""
    specs = {
        "not_causal": ({"path": str(bert_checkpoint)}, {}),
        "bad_adapter": ({"path": str(tiny_checkpoint), "adapter": str(mismatched_lora)}, {}),
        "offline": ({"path": str(tiny_checkpoint)},
                    {"tasks": ["truthfulqa_mc2"], "tracking": {"uri": f"http://127.0.0.1:{free_port()}",
                                                               "experiment": "cli-offline"}}),
    }
    runs = {}
    for name, (model, top) in specs.items():
        cwd = tmp_path_factory.mktemp(name)
        _suite(cwd, model.pop("path"), benchmarks_dir, model=model, **top)
        runs[name] = ModelRun(cwd, Background(cwd, "run", "suite.yaml"))
    yield runs
    for r in runs.values():
        r.run.stop()


def test_checkpoint_not_a_causal_lm(model_runs: dict[str, ModelRun], bert_checkpoint: Path) -> None:
    r = model_runs["not_causal"]
    line = assert_user_error(r.run.result(), "model.path", str(bert_checkpoint), "not a causal language model",
                             "BertModel")
    assert " — " in line  # what to do
    assert run_dirs(r.cwd / "reports") == []


def test_adapter_for_another_base(model_runs: dict[str, ModelRun], mismatched_lora: Path) -> None:
    r = model_runs["bad_adapter"]
    assert_user_error(r.run.result(), "model.adapter", str(mismatched_lora), "does not match the base model",
                      "use the adapter trained on this base")
    assert run_dirs(r.cwd / "reports") == []


# ------------------------------------------------------------------ MLflow unreachable, then `evalmon sync`


def test_unreachable_mlflow_keeps_the_run_then_sync_uploads_it(model_runs: dict[str, ModelRun],
                                                               mlflow_server: str) -> None:
    from mlflow import MlflowClient

    cwd = model_runs["offline"].cwd
    proc = model_runs["offline"].run.result()
    assert proc.returncode == 0, show(proc)
    assert_no_traceback(proc)
    run_dir = only_run_dir(cwd / "reports")
    warning = [ln for ln in proc.stderr.splitlines() if ln.startswith("warning:")]
    # one line each, even on a non-terminal 80-column stderr: up front (before compute), then where the run is
    assert len(warning) == 2 and "does not answer" in warning[0], show(proc)
    assert "MLflow unreachable" in warning[1] and "saved locally" in warning[1], warning[1]
    assert f"reports/{run_dir.name}" in warning[1] and "`evalmon sync reports`" in warning[1], warning[1]
    for name in ("results.json", "samples.jsonl.gz", "report.html", "summary.md", "mlflow_pending.json"):
        assert (run_dir / name).is_file(), name
    result = load_results(run_dir)
    assert result["status"] == "finished" and result["mlflow"]["status"] == "pending"
    dead_uri = yaml.safe_load((cwd / "suite.yaml").read_text())["tracking"]["uri"]
    assert json.loads((run_dir / "mlflow_pending.json").read_text())["uri"] == dead_uri

    still_down = run_cli(cwd, "sync", "reports")  # the recorded URI: still nothing listening there
    assert still_down.returncode == 1 and "pending" in still_down.stdout, show(still_down)
    assert (run_dir / "mlflow_pending.json").is_file()

    synced = run_cli(cwd, "sync", "reports", "--tracking-uri", mlflow_server)
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

    again = run_cli(cwd, "sync", "reports", "--tracking-uri", mlflow_server)  # nothing left to do
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

"""Output in a CI log (stdout/stderr are pipes, not terminals): nothing cut at 80 columns, a heartbeat on
long steps, ``evalmon tasks --filter/--json``, help without ``<bool>`` and without words cut apart."""

from __future__ import annotations

import io
import json
import re
import time
from pathlib import Path

import pytest
from cli_util import (
    assert_no_traceback,
    cli_env,
    load_results,
    only_run_dir,
    run_cli,
    show,
    suite_dict,
    write_suite,
)

from evalmon.checkpoints.heartbeat import heartbeat_interval
from evalmon.core.errors import ConfigError

LONG_TASK = "bbh_cot_fewshot_tracking_shuffled_objects_seven_objects"  # 55 characters: wider than 80 in a table


def test_results_table_prints_whole_names_and_numbers_in_a_pipe(tiny_checkpoint: Path, benchmarks_dir: Path,
                                                                  tmp_path: Path) -> None:
    from evalmon.sinks.report import fmt

    tasks = [{"name": LONG_TASK, "limit": 2, "options": {"max_gen_toks": 4}}, {"name": "mmlu_anatomy", "limit": 3}]
    suite = write_suite(tmp_path / "suite.yaml", suite_dict(tiny_checkpoint, benchmarks_dir, tasks=tasks,
                                                            name="ci-output"))
    proc = run_cli(tmp_path, "run", suite, "--no-tracking", env=cli_env(EVALMON_HEARTBEAT_S="0.05"))
    assert proc.returncode == 0, show(proc)
    assert_no_traceback(proc)
    assert "…" not in proc.stdout, show(proc)
    results = load_results(only_run_dir(tmp_path / "reports"))
    lines = proc.stdout.splitlines()
    for task, entry in results["tasks"].items():
        for metric, mv in entry["metrics"].items():
            cells = [fmt(mv["value"]), fmt(mv["stderr"]), str(entry["n"])]
            row = [ln for ln in lines if re.search(rf"│ *{re.escape(metric)} *│", ln)
                   and all(re.search(rf"│ *{re.escape(c)} *│", ln) for c in cells)]
            assert row, f"{task} {metric}: no table row with {cells}\n{show(proc)}"
    assert any(re.search(rf"│ *{LONG_TASK} *│", ln) for ln in lines), show(proc)
    # progress in a pipe: a start and an end line per task (the rich bar would print nothing until the end)
    for task in results["tasks"]:
        assert re.search(rf"^task {task}: \d+ requests$", proc.stderr, re.M), show(proc)
        assert re.search(rf"^task {task}: \d+/\d+ requests in [\d.]+ s", proc.stderr, re.M), show(proc)


def test_plain_progress_beats_while_a_step_is_slow(monkeypatch: pytest.MonkeyPatch) -> None:
    from rich.console import Console

    from evalmon.harness.progress import RichProgress

    monkeypatch.setenv("EVALMON_HEARTBEAT_S", "0.05")
    buf = io.StringIO()
    progress = RichProgress(Console(file=buf, width=80))  # a file: not a terminal
    with progress.task("slow_task", 10) as advance:
        advance(4)
        time.sleep(0.3)  # a slow batch
        advance(6)
        time.sleep(0.3)  # slow scoring (e.g. the classification bootstrap) after the last request
    lines = buf.getvalue().splitlines()
    assert lines[0] == "task slow_task: 10 requests"
    assert any(re.fullmatch(r"task slow_task: 4/10 requests, [\d,.]+ req/s, eta [\d,]+ s", ln) for ln in lines), lines
    assert any(re.fullmatch(r"task slow_task: 10/10 requests, [\d,.]+ req/s; scoring… \d+ s", ln) for ln in lines), lines
    assert re.fullmatch(r"task slow_task: 10/10 requests in [\d.]+ s, [\d,.]+ req/s", lines[-1]), lines


def test_heartbeat_interval_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EVALMON_HEARTBEAT_S", raising=False)
    assert heartbeat_interval() == 10.0
    monkeypatch.setenv("EVALMON_HEARTBEAT_S", "0.2")
    assert heartbeat_interval() == 0.2
    for bad in ("0", "-1", "soon", "inf"):
        monkeypatch.setenv("EVALMON_HEARTBEAT_S", bad)
        with pytest.raises(ConfigError, match="EVALMON_HEARTBEAT_S"):
            heartbeat_interval()


def test_tasks_filter_json_and_table(tmp_path: Path) -> None:
    proc = run_cli(tmp_path, "tasks", "--filter", "mmlu_anat", "--json")
    assert proc.returncode == 0, show(proc)
    rows = json.loads(proc.stdout)
    assert [r["name"] for r in rows] == ["mmlu_anatomy"], rows
    assert rows[0]["few_shot"] == 5 and "anatomy" in rows[0]["local_source"]
    table = run_cli(tmp_path, "tasks", "--filter", "SHUFFLED_OBJECTS")
    assert table.returncode == 0, show(table)
    assert LONG_TASK in table.stdout and "…" not in table.stdout, show(table)
    assert "mmlu_anatomy" not in table.stdout


def _help_words(command: object) -> set[str]:
    """Every word of every parameter's help text and of the command's own help, as written (``\\[`` is
    rich's escape for a literal ``[``: markup must not eat ``[key=value]``)."""
    texts = [getattr(command, "help", None) or ""]
    texts += [getattr(param, "help", None) or "" for param in getattr(command, "params", [])]
    return {w for t in texts for w in t.replace("\\[", "[").split()}


@pytest.mark.parametrize("args", [(), ("run",), ("init",), ("tasks",), ("compare",), ("gate",), ("baseline", "promote"),
                                  ("monitor",), ("sync",), ("score",), ("judge", "agreement"), ("traffic", "synth")])
def test_help_in_a_pipe_has_no_bool_marker_and_no_word_cut(tmp_path: Path, args: tuple[str, ...]) -> None:
    import typer.main

    from evalmon.cli.app import app

    command = typer.main.get_command(app)
    for name in args:
        command = command.commands[name]  # type: ignore[attr-defined]
    proc = run_cli(tmp_path, *args, "--help")
    assert proc.returncode == 0, show(proc)
    assert "<bool>" not in proc.stdout, proc.stdout
    flat = " ".join(proc.stdout.replace("│", " ").split())  # words wrapped onto the next line stay whole
    cut = sorted(w for w in _help_words(command) if w not in flat)
    assert not cut, f"help words cut apart or lost: {cut}\n{proc.stdout}"


@pytest.mark.e2e  # over 2 s in the unit lane (make test-fast budget)
def test_monitor_beats_while_signals_are_slow(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import textwrap
    from datetime import UTC, datetime, timedelta

    from evalmon.config.monitor import load_monitor_text
    from evalmon.monitor.executors import local
    from evalmon.monitor.runner import run_monitor

    t0 = datetime(2026, 11, 1, tzinfo=UTC)
    with open(tmp_path / "t.jsonl", "w", encoding="utf-8") as fh:
        for i in range(30):  # 10 records in each of three hours
            ts = (t0 + timedelta(minutes=6 * i)).isoformat()
            fh.write(json.dumps({"request_id": f"r{i}", "timestamp": ts, "prompt": f"question {i}",
                                 "response": f"answer {i}", "latency_ms": 100.0 + i}) + "\n")
    cfg = load_monitor_text(textwrap.dedent("""\
        name: beat
        source: {kind: jsonl, path: t.jsonl}
        window: {size: 1h}
        signals: [usage]
        drift: {enabled: false}
        tracking: {enabled: false}
        output_dir: out
        """), "m.yaml", base_dir=tmp_path)
    slow_signals = local.signals

    def signals(*args: object, **kwargs: object) -> object:  # a slow signal (an embedding model, a judge)
        time.sleep(0.12)
        return slow_signals(*args, **kwargs)

    monkeypatch.setattr(local, "signals", signals)
    monkeypatch.setenv("EVALMON_HEARTBEAT_S", "0.03")
    lines: list[str] = []
    res = run_monitor(cfg, backfill=(t0, t0 + timedelta(hours=3)), now=t0 + timedelta(hours=4), log_fn=lines.append)
    assert len(res.windows) == 3
    assert any(re.fullmatch(r"first pass: \d/\d window\(s\) read with signals, \d+ records, \d+ s", ln)
               for ln in lines), lines


@pytest.mark.parametrize("needle", ["[/]", "[bold red]x", "mmlu_[anat]"])
def test_tasks_filter_with_brackets_is_text_not_markup(needle: str) -> None:
    """``evalmon tasks --filter "[/]"`` was ``internal error: MarkupError`` (the filter went into the title as rich
    markup); ``[bold red]x`` was swallowed as a style."""
    from typer.testing import CliRunner

    from evalmon.cli.app import app

    res = CliRunner().invoke(app, ["tasks", "--filter", needle])
    assert res.exception is None and res.exit_code == 0, res.output
    assert f"no task or group name contains {needle!r}" in res.output

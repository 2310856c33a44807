"""``evalmon export``: a run's results in another harness's layout (``--format lm-eval``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from evalmon.core.errors import ConfigError

app = typer.Typer()  # commands of this group; evalmon.cli.app adds them to the top-level app

FORMATS = ("lm-eval",)


@app.command()
def export(
    run: Annotated[str, typer.Argument(help="Results dir or results.json, an lm-eval output dir, mlflow:<run_id>, "
                                            "mlflow:experiment=NAME,tag.baseline=true or models:/NAME@alias.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Directory to write (lm-eval: DIR/<model>/results_*.json "
                                                          "and samples_<task>_*.jsonl, as --output_path writes).")],
    format: Annotated[str, typer.Option("--format", "-f", help="lm-eval (lm-eval 0.4 results + samples).")] = "lm-eval",
    tracking_uri: Annotated[str | None, typer.Option(
        help="MLflow tracking URI for MLflow RUN references (default: $MLFLOW_TRACKING_URI, "
             "else .evalmon/mlflow.db).")] = None,
) -> None:
    """Write RUN in lm-eval's --output_path/--log_samples layout (what evalmon lacks is named in the files)."""
    from evalmon.gate.resolve import resolve_run
    from evalmon.sinks.lmeval import write_lmeval

    if format not in FORMATS:
        raise ConfigError(f"--format {format!r} is not supported", hint=f"formats: {', '.join(FORMATS)}")
    loaded = resolve_run(run, tracking_uri)
    for note in loaded.notes:
        typer.echo(f"WARNING {loaded.label}: {note}", err=True)
    for path in write_lmeval(loaded.result, loaded.samples, out):
        typer.echo(str(path))

"""``evalmon export``: a run's results in another harness's layout (``--format lm-eval|inspect|fastchat``)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from evalmon.core.errors import ConfigError

if TYPE_CHECKING:
    from evalmon.core.results import RunResult, SampleRecord

app = typer.Typer()  # commands of this group; evalmon.cli.app adds them to the top-level app

FORMATS = ("lm-eval", "inspect", "fastchat")


@app.command()
def export(
    run: Annotated[str, typer.Argument(help="Results dir or results.json, an lm-eval output dir, mlflow:<run_id>, "
                                            "mlflow:experiment=NAME,tag.baseline=true or models:/NAME@alias.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Directory to write (lm-eval: DIR/<model>/results_*.json "
                                                          "and samples_<task>_*.jsonl, as --output_path writes; "
                                                          "inspect: DIR/<date>_<task>_<run>.eval per task; "
                                                          "fastchat: DIR/mt_bench/model_judgment/<judge>_single|"
                                                          "pair.jsonl).")],
    format: Annotated[str, typer.Option("--format", "-f", help="lm-eval (lm-eval 0.4 results + samples), inspect "
                                                               "(inspect_ai eval logs: inspect view opens them) or "
                                                               "fastchat (MT-Bench model_judgment files).")
                      ] = "lm-eval",
    tracking_uri: Annotated[str | None, typer.Option(
        help="MLflow tracking URI for MLflow RUN references (default: $MLFLOW_TRACKING_URI, "
             "else .evalmon/mlflow.db).")] = None,
) -> None:
    """Write RUN in lm-eval's --output_path/--log_samples layout (what evalmon lacks is named in the files),
    as inspect_ai eval logs, or (MT-Bench runs) as FastChat model_judgment files."""
    from evalmon.gate.resolve import resolve_run

    if format not in FORMATS:
        raise ConfigError(f"--format {format!r} is not supported", hint=f"formats: {', '.join(FORMATS)}")
    loaded = resolve_run(run, tracking_uri)
    for note in loaded.notes:
        typer.echo(f"WARNING {loaded.label}: {note}", err=True)
    for path in _writer(format)(loaded.result, loaded.samples, out):
        typer.echo(str(path))


def _writer(format: str) -> Callable[[RunResult, list[SampleRecord] | None, Path], list[Path]]:
    if format == "inspect":
        from evalmon.sinks.inspect_log import write_inspect

        return write_inspect
    if format == "fastchat":
        from evalmon.sinks.fastchat import write_fastchat

        return write_fastchat
    from evalmon.sinks.lmeval import write_lmeval

    return write_lmeval

"""``evalmon traffic …`` (typer sub-app). Import-light: the generator loads on the command's first line."""

from __future__ import annotations

import os
import shlex
from pathlib import Path
from typing import Annotated

import typer

MAX_SEED = 2**32 - 1  # numpy's seed range (evalmon.config.base.MAX_SEED; this module stays import-light)

traffic_app = typer.Typer(no_args_is_help=True, help="Synthetic logged LLM traffic with known events and ground truth.")

_EVENT_HELP = (r"Inject an event: NAME@ISO-TIME[+DURATION][\[key=value;...]], repeatable. Names: topic_shift, "
               "length_shift, new_model_version, latency_regression, hallucination_rise, unsafe_rise, pii_leak, "
               "no_contexts (parameters and their ranges: docs/monitoring.md). "
               r"E.g. 'latency_regression@2026-11-02T00:00Z+6h\[factor=3]'.")  # \[: not rich markup in --help

_FLAGS = {"rate_per_hour": "--rate", "events": "--event", "schema": "--schema", "schema_": "--schema"}


@traffic_app.command("synth")
def synth(
    out: Annotated[Path, typer.Option(help="Output file (jsonl/csv/sqlite) or directory (parquet, dt=YYYY-MM-DD).")],
    start: Annotated[str, typer.Option(help="First arrival time, ISO-8601 (naive = UTC).")],
    hours: Annotated[float, typer.Option(min=0.001, help="Length of the traffic in hours.")] = 24.0,
    rate: Annotated[str, typer.Option(help="Mean arrival rate with its unit: 200/h, 5/min, 3/s, 1000/d.")] = "200/h",
    seed: Annotated[int, typer.Option(help="Random seed (same seed → same files).")] = 0,
    fmt: Annotated[str, typer.Option("--format", help="jsonl | csv | parquet | sqlite")] = "jsonl",
    schema: Annotated[str, typer.Option(help="Field names: plain | otel (GenAI spans) | openinference")] = "plain",
    event: Annotated[list[str] | None, typer.Option("--event", help=_EVENT_HELP)] = None,
    data_dir: Annotated[Path | None, typer.Option(help="Benchmark data (default: $EVALMON_DATA_DIR or ../shared/benchmarks).")] = None,
    model: Annotated[str, typer.Option(help="MT-Bench answer file serving chat traffic (the model version).")] = "vicuna-13b-v1.3",
    malformed_rate: Annotated[float, typer.Option(min=0.0, max=1.0, help="Share of bad lines to inject.")] = 0.0,
    samples_rate: Annotated[float, typer.Option(min=0.0, max=1.0, help="Share of RAG records logging extra samples.")] = 0.0,
    diurnal: Annotated[float, typer.Option(min=0.0, max=0.99, help="Diurnal rate amplitude (0 = flat).")] = 0.0,
) -> None:
    """Write synthetic traffic built from real public text, plus <stem>.truth.jsonl and <stem>.events.json."""
    from pydantic import ValidationError

    from evalmon.config.base import first_error
    from evalmon.core.errors import ConfigError
    from evalmon.traffic.synth import SynthConfig, parse_rate, synthesize

    try:
        cfg = SynthConfig(out=out, start=start, hours=hours, rate_per_hour=parse_rate(rate), seed=seed,
                          format=fmt, schema=schema, events=list(event or []),
                          data_dir=data_dir or Path(os.environ.get("EVALMON_DATA_DIR") or "../shared/benchmarks"),
                          model=model, malformed_rate=malformed_rate, samples_rate=samples_rate, diurnal=diurnal)
    except ValidationError as exc:
        err = first_error(exc)
        where = _FLAGS.get(str(err.loc[0]), f"--{str(err.loc[0]).replace('_', '-')}") if err.loc else ""
        raise ConfigError(f"traffic synth: {where + ': ' if where else ''}{err.msg}", hint=err.hint) from None
    res = synthesize(cfg)
    typer.echo(f"traffic: {res.traffic} ({res.records} records, {res.start} → {res.end}"
               + (f", {res.malformed} malformed" if res.malformed else "") + ")")
    typer.echo(f"truth:   {res.truth}")
    typer.echo(f"events:  {res.events}")


@traffic_app.command("to-suite")
def to_suite_cmd(
    monitor: Annotated[Path, typer.Argument(help="Monitor YAML whose source (and previous run's windows) to read.")],
    out: Annotated[Path, typer.Option(help="Suite YAML to write, e.g. suites/replay-incident.yaml.")],
    window: Annotated[str | None, typer.Option(help="The monitor window containing this ISO time.")] = None,
    from_: Annotated[str | None, typer.Option("--from", help="Start of the range, ISO-8601 (with --to).")] = None,
    to: Annotated[str | None, typer.Option(help="End of the range (exclusive), ISO-8601.")] = None,
    where: Annotated[str | None, typer.Option(help="pandas query over the records, e.g. 'alerts != \"\"' or "
                                                   "'`pii.any` == 1' (columns: canonical, window, alerts, signals).")] = None,
    signal: Annotated[str | None, typer.Option(help="Keep records where this 0/1 signal column is 1, e.g. "
                                                    "hallucination.flag (recomputed with the monitor's signals).")] = None,
    sample: Annotated[int, typer.Option(min=1, help="At most N distinct prompts, stratified by window and signals.")] = 200,
    seed: Annotated[int, typer.Option(min=0, max=MAX_SEED, help="Sampling seed (same seed → same selection).")] = 0,
    dataset: Annotated[Path | None, typer.Option(help="JSONL to write (default reports/replay/<suite stem>.jsonl).")] = None,
    model: Annotated[str | None, typer.Option(help="Default model path written into the suite (relative to it).")] = None,
) -> None:
    """Logged traffic → a replay dataset (PII-redacted, with provenance) and a suite that evaluates it."""
    from evalmon.config.monitor import load_monitor, refuse_input_as_output
    from evalmon.traffic.to_suite import Selection, to_suite, window_range

    cfg = load_monitor(monitor)
    refuse_input_as_output(cfg, "to-suite", {"--out": out, "--dataset": dataset})
    start, end = window_range(cfg, window=window, start=from_, end=to)
    res = to_suite(cfg, Selection(start, end, where=where, signal=signal, sample=sample, seed=seed), out,
                   dataset=dataset, model_path=model, log_fn=lambda m: typer.echo(m, err=True))
    typer.echo(res.line())
    typer.echo(f"suite:   {res.suite}   (evalmon run {shlex.quote(str(res.suite))})")
    typer.echo(f"provenance: {res.provenance}")

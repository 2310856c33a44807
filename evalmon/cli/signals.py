"""``evalmon signals score`` (typer sub-app). Import-light: the signals load on the command's first line."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

signals_app = typer.Typer(no_args_is_help=True, help="Per-record monitor signals on any traffic file.")


def _columns(pairs: list[str] | None) -> dict[str, str]:
    from evalmon.core.errors import ConfigError

    out: dict[str, str] = {}
    for pair in pairs or []:
        canonical, sep, field = pair.partition("=")
        if not sep or not canonical.strip() or not field.strip():
            raise ConfigError(f"--column {pair!r}: expected CANONICAL=FIELD", hint="e.g. --column prompt=question")
        out[canonical.strip()] = field.strip()
    return out


@signals_app.command("score")
def score(
    file: Annotated[Path, typer.Argument(help="Traffic file: .jsonl(.gz) / .csv / .parquet (or a Parquet dir).")],
    signals: Annotated[str, typer.Option(help="Comma-separated signal names, e.g. pii,refusal,safety.")],
    out: Annotated[Path, typer.Option(help="Output .parquet or .jsonl (one row per record).")],
    column: Annotated[list[str] | None, typer.Option("--column", help="CANONICAL=FIELD alias, repeatable "
                                                     "(as a monitor's columns:), e.g. prompt=question.")] = None,
    kind: Annotated[str | None, typer.Option(help="jsonl | csv | parquet (default: by extension).")] = None,
    delimiter: Annotated[str | None, typer.Option(help="CSV field separator (default: ',', tab for .tsv).")] = None,
    keep: Annotated[list[str] | None, typer.Option("--keep", help="A field of the file passed through next to the "
                                                   "scores (e.g. a label to audit against), repeatable.")] = None,
    batch_size: Annotated[int, typer.Option(help="Records scored (and written) per batch.")] = 512,
    text: Annotated[bool, typer.Option("--text/--no-text", help="Keep prompt and response next to the scores.")] = True,
    model: Annotated[str | None, typer.Option(help="Proxy model of uncertainty/halludetect, as `evalmon run "
                                              "--model`: hf:DIR (a checkpoint with token log-probs). Default: "
                                              "the embedded SmolLM2 (`evalmon init`).")] = None,
    no_chat: Annotated[bool, typer.Option("--no-chat", help="uncertainty/halludetect: the prompt as plain text, "
                                                            "not chat-rendered (a base model without a chat "
                                                            "template).")] = False,
) -> None:
    """Compute per-record signals on a traffic file (the monitor's sources and aliases) → Parquet/JSONL."""
    from evalmon.cli.common import console
    from evalmon.monitor.signal_scoring import score_file

    names = [s.strip() for s in signals.split(",") if s.strip()]
    err = console(stderr=True)
    proxy = None
    if model is not None:
        from evalmon.config.suite import parse_model_spec

        proxy = parse_model_spec(model).model_dump(exclude_none=True)
    try:
        result = score_file(file, names, out, kind=kind, columns=_columns(column), batch_size=batch_size, text=text,
                            log_fn=lambda m: err.print(m, markup=False, soft_wrap=True), proxy_model=proxy,
                            proxy_chat=False if no_chat else None, delimiter=delimiter, keep=keep or ())
    except KeyboardInterrupt as exc:  # a partial output must not pass for a complete one
        from evalmon.core.interrupts import describe, exit_code

        done, where = getattr(exc, "scored", (0, out))
        kept = f"{where} holds the first {done} records only (partial)" if done else "nothing was scored"
        sys.stderr.write(f"{describe(exc)}: {kept} — rerun the same command to score every record of {file}\n")
        sys.exit(exit_code(exc))
    why = f"; most often: {result.why_quarantined}" if result.quarantined else ""
    console().print(f"{result.records} records scored ({result.quarantined} quarantined, left out{why}) with "
                    f"{', '.join(names)} in {result.seconds:.1f} s ({result.per_second:.1f} records/s) → "
                    f"{result.out} ({len(result.columns)} signal columns)", markup=False, soft_wrap=True)
    if result.quarantine_file:
        console().print(f"quarantined records (line, reason, raw text): {result.quarantine_file}", markup=False,
                        soft_wrap=True)
    cov = result.coverage()
    console().print("coverage (share of records scored): " + ", ".join(f"{k} {v:.1%}" for k, v in cov.items()),
                    markup=False, soft_wrap=True)
    for name in result.keep_empty:
        err.print(f"warning: --keep {name}: no scored record has this field — its column is empty (check the "
                  "field's name in the file)", markup=False, soft_wrap=True)
    if result.timestamps_dropped:
        err.print(f"warning: {result.timestamps_dropped} record(s) had a timestamp that could not be read "
                  "(unparseable, or outside the plausible range): written with an empty timestamp — check the "
                  "field, or map another with --column timestamp=NAME", markup=False, soft_wrap=True)
    mapped = _columns(column) or {}
    for fld, readers in result.inputs_empty.items():  # a missing field (or a mistyped --column) must not pass for
        src = f"field {mapped[fld]!r} (--column {fld}={mapped[fld]})" if fld in mapped else f"a {fld!r} field"
        err.print(f"warning: no record has {src}, which {', '.join(readers)} read(s): their {fld} scores describe "
                  f"empty text — map the file's {fld} field with --column {fld}=NAME", markup=False, soft_wrap=True)
    for name in (k for k, v in cov.items() if v == 0):  # all-empty columns must not pass for scores
        err.print(f"warning: {name} scored no record: its columns are empty — check that the traffic has the "
                  f"fields it reads (e.g. logged_uncertainty: token logprobs; hallucination: contexts)",
                  markup=False, soft_wrap=True)

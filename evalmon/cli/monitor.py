"""``evalmon monitor`` and ``evalmon sync`` (runs and monitor windows kept on disk while MLflow was down)."""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from evalmon.cli.common import console
from evalmon.core.redact import redact_text

if TYPE_CHECKING:
    from evalmon.config.monitor import MonitorConfig
    from evalmon.monitor.runner import MonitorResult

app = typer.Typer()  # commands of this group; evalmon.cli.app adds them to the top-level app


def _help(ctx: typer.Context, value: bool) -> None:
    """``--help``: the calibrate subcommand's help after ``evalmon monitor calibrate``, else the monitor's."""
    if not value or ctx.resilient_parsing:
        return
    argv = sys.argv[1:]
    at = argv.index("monitor") + 1 if "monitor" in argv else len(argv)
    if argv[at:at + 1] == ["calibrate"]:
        cmd = typer.main.get_command(calibrate_app)
        with cmd.make_context("evalmon monitor calibrate", [], resilient_parsing=True) as sub:
            typer.echo(cmd.get_help(sub))
    else:
        typer.echo(ctx.get_help())
    raise typer.Exit(0)


@app.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True, "help_option_names": []})
def monitor(
    ctx: typer.Context,
    config: Annotated[Path, typer.Argument(help="Monitor YAML (see monitors/traffic.yaml); `evalmon monitor "
                                                "calibrate MONITOR.yaml` sets its thresholds (--help there).")],
    once: Annotated[bool, typer.Option("--once", help="Process every complete window after the watermark, then "
                                                      "exit (the default without --schedule; for cron).")] = False,
    schedule: Annotated[str | None, typer.Option(metavar="CRON", help='Stay running; process on this crontab '
                                                 'schedule in UTC, e.g. "*/15 * * * *".')] = None,
    backfill: Annotated[tuple[str, str] | None, typer.Option(metavar="FROM TO", help="Reprocess the windows in "
                        "[FROM, TO) (ISO times) whatever the watermark; the watermark does not move.")] = None,
    tracking_uri: Annotated[str | None, typer.Option(help="MLflow tracking URI (default: the YAML's, else "
                                                          "$MLFLOW_TRACKING_URI, else .evalmon/mlflow.db).")] = None,
    executor: Annotated[str | None, typer.Option(metavar="local|spark", help="Where the per-partition stages run "
                                                 "(default: the YAML's executor:, else local).")] = None,
    _show_help: Annotated[bool, typer.Option("--help", is_eager=True, callback=_help, expose_value=False,
                                             help="Show this message and exit.")] = False,
) -> None:
    """Drift, quality and signal rates per window of logged traffic → one MLflow run per window; exit 1 on alerts."""
    from evalmon.config.monitor import apply_overrides, check_rule_signals, load_monitor
    from evalmon.core.errors import ConfigError

    if str(config) == "calibrate":  # `evalmon monitor calibrate …`: a subcommand of a command with an argument
        code = typer.main.get_command(calibrate_app).main(args=list(ctx.args), prog_name="evalmon monitor calibrate",
                                                          standalone_mode=False)
        if code:
            raise typer.Exit(code)
        return
    if ctx.args:  # what click says for an unknown option or argument (the extra args are for calibrate only)
        ctx.fail(f"No such option: {ctx.args[0]}" if ctx.args[0].startswith("-") else
                 f"Got unexpected extra argument ({ctx.args[0]})")
    from evalmon.monitor.console import RedactingConsole, parse_backfill, print_result, scheduled_job

    if schedule is not None and (once or backfill):
        raise ConfigError("--schedule cannot be combined with --once or --backfill",
                          hint="run the backfill (or --once) first, then start the schedule")
    window_range = parse_backfill(backfill) if backfill else None
    loaded = load_monitor(config)
    check_rule_signals(loaded)
    cfg = apply_overrides(loaded, tracking_uri=tracking_uri, executor=executor)
    out, err = RedactingConsole(console()), RedactingConsole(console(stderr=True))
    if schedule is not None:
        from evalmon.monitor.schedule import cron_trigger, run_schedule

        cron_trigger(schedule)  # a bad expression is a one-line error before anything says the schedule started
        err.print(f"monitor '{cfg.name}': schedule \"{schedule}\" (UTC); first run now — Ctrl-C to stop")
        run_schedule(schedule, scheduled_job(cfg, out, err, after=on_alert_actions(cfg, out)),
                     on_error=lambda e: err.print(f"error: {redact_text(str(e))}"))
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
    if cfg.tracking.enabled:  # which store, and why (flag > YAML > $MLFLOW_TRACKING_URI > local); after the
        from evalmon.config.tracking import choose_tracking_uri  # run: an error stays one stderr line
        from evalmon.sinks.mlflow.client import store_line

        err.print(store_line(*choose_tracking_uri(tracking_uri, loaded.tracking.uri), experiment=cfg.experiment),
                  markup=False, soft_wrap=True)
    print_result(cfg, result, out, err)
    actions = on_alert_actions(cfg, out)
    if actions is not None:
        actions(result)
    if result.exit_code:
        raise typer.Exit(result.exit_code)


def on_alert_actions(cfg: MonitorConfig, out: Any) -> Callable[[MonitorResult], None] | None:
    """The rules' ``on_alert: {to_suite: …}`` (docs/replay.md) after a run — one-shot or each scheduled tick.
    Here, not in the monitor: ``monitor`` may not import ``traffic``. None when no rule has an action."""
    if not any(r.on_alert for r in cfg.alerts.rules):
        return None

    def run(result: MonitorResult) -> None:
        if result.alerts:
            from evalmon.traffic.to_suite import run_on_alert

            run_on_alert(cfg, result.alerts, log_fn=lambda m: out.print(m, soft_wrap=True, markup=False))

    return run


calibrate_app = typer.Typer(add_completion=False)
MAX_DRAWS = 1_000_000  # resampled windows: a Python loop each, and an array of that many per rule


@calibrate_app.command()
def calibrate(
    config: Annotated[Path, typer.Argument(help="Monitor YAML with a fixed (or file) reference and alert rules.")],
    false_alarm_rate: Annotated[float, typer.Option(help="Target share of clean windows in which a rule fires "
                                                         "(0.001 = 1 in 1,000 windows).")] = 0.001,
    draws: Annotated[int | None, typer.Option(help="Resampled windows (default max(2000, 20 / rate)).")] = None,
    out: Annotated[Path | None, typer.Option(help="Thresholds file (default: the YAML's alerts.thresholds, else "
                                                  "<monitor>.thresholds.yaml next to the YAML).")] = None,
    reference_rows: Annotated[int | None, typer.Option(help="Score signals on a seeded sample of this many "
                                                           "reference records (faster; default: all).")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the thresholds; write nothing.")] = False,
) -> None:
    """Set every alert rule's threshold from the reference period for a target per-window false-alarm rate."""
    from evalmon.config.monitor import check_rule_signals, load_monitor, refuse_input_as_output
    from evalmon.core.errors import ConfigError
    from evalmon.monitor.calibrate import calibrate as run_calibration
    from evalmon.monitor.calibrate import save_calibration, thresholds_target
    from evalmon.monitor.console import RedactingConsole

    if not 0 < false_alarm_rate < 1:
        raise ConfigError(f"--false-alarm-rate: {false_alarm_rate:g} is not between 0 and 1",
                          hint="pass e.g. 0.001 (1 in 1,000 windows)")
    if draws is not None and draws < 100:
        raise ConfigError(f"--draws: {draws} is too few", hint="pass at least 100 (default max(2000, 20 / rate))")
    wanted = draws if draws is not None else max(2000, math.ceil(20 / false_alarm_rate))
    if wanted > MAX_DRAWS:  # before the reference is scored: this many resampled windows would not fit or finish
        flag = (f"--draws {draws}" if draws is not None else
                f"--false-alarm-rate {false_alarm_rate:g} (needs {wanted:.3g} resampled windows)")
        raise ConfigError(f"{flag}: more than {MAX_DRAWS:,} resampled windows",
                          hint=f"pass --draws up to {MAX_DRAWS:,}" if draws is not None else
                          f"use a rate of at least {20 / MAX_DRAWS:g}, or pass --draws up to {MAX_DRAWS:,}")
    cfg = load_monitor(config, calibrating=True)  # it (re)writes alerts.thresholds: missing or stale is fine
    check_rule_signals(cfg)
    if not cfg.alerts.rules:
        raise ConfigError(f"{config}: alerts.rules is empty: nothing to calibrate", hint="add alert rules first")
    refuse_input_as_output(cfg, "calibrate", {"--out": out, "alerts.thresholds": None if out else cfg.alerts.thresholds})
    con = RedactingConsole(console())
    if out is not None and not out.is_dir() and out.suffix.lower() not in (".yaml", ".yml"):  # YAML, whatever its name
        raise ConfigError(f"--out {out}: a thresholds file is YAML", hint="name it .yaml, e.g. monitor.thresholds.yaml")
    if reference_rows is not None and reference_rows < 30:
        raise ConfigError(f"--reference-rows: {reference_rows} is too few", hint="pass at least 30, or leave it out")
    unreadable = cfg.thresholds_unreadable  # its values were not applied: say so, and keep it before rewriting
    if unreadable:
        console(stderr=True).print(f"warning: {unreadable}: its values were not used (\"was\" shows the YAML's)",
                                   markup=False, soft_wrap=True)
    if not dry_run:  # an unwritable target fails now, not after the reference has been scored and resampled
        from evalmon.monitor.signal_scoring import check_writable

        check_writable(thresholds_target(cfg, out), what="--out" if out else "alerts.thresholds",
                       example="monitor.thresholds.yaml")
    result = run_calibration(cfg, false_alarm_rate=false_alarm_rate, draws=draws, reference_rows=reference_rows,
                             log_fn=lambda m: con.print(m, soft_wrap=True))
    con.print(f"monitor '{cfg.name}': {result.reference_records} reference records, {result.window_records:.1f} "
              f"per {cfg.window.size} window; {result.draws} windows resampled ({result.method}); target false-alarm "
              f"rate {false_alarm_rate:g} per rule per window", soft_wrap=True)
    for note in result.notes:
        console(stderr=True).print(f"warning: {note}", markup=False, soft_wrap=True)
    if reference_rows is None and result.reference_records < result.window_records:  # windows repeat the records
        console(stderr=True).print(
            f"warning: the reference holds {result.reference_records} records, fewer than one {cfg.window.size} "
            f"window ({result.window_records:.1f}): every resampled window repeats them and the thresholds are "
            "unreliable — use a reference period of several windows", markup=False, soft_wrap=True)
    for r in result.rules:
        con.print(f"  {r.line()}", soft_wrap=True)
    if result.thresholds():
        con.print(f"any rule fires in {result.any_rule_false_alarm:.2%} of the resampled reference windows",
                  soft_wrap=True)
    else:  # exit 1, nothing written: a job that set no threshold must not pass as done in a scheduler or CI
        console(stderr=True).print(f"error: no rule of {len(result.rules)} could be calibrated (see the reasons "
                                   "above): nothing written, their values stay as written", markup=False,
                                   soft_wrap=True)
        raise typer.Exit(1)
    if dry_run:
        con.print("--dry-run: nothing written", soft_wrap=True)
        return
    if unreadable and cfg.alerts.thresholds and thresholds_target(cfg, out) == Path(cfg.alerts.thresholds):
        # the file is rewritten: what a person wrote there is kept aside
        kept = _keep_aside(Path(cfg.alerts.thresholds))
        con.print(f"the unreadable thresholds file was kept as {kept}", soft_wrap=True)
    for line in save_calibration(cfg, result, out):
        con.print(line, soft_wrap=True)


def _keep_aside(path: Path) -> Path:
    """Rename ``path`` to ``<name>.unreadable[.N]`` (the first free name) and return it."""
    target, n = path.with_name(path.name + ".unreadable"), 1
    while target.exists():
        target, n = path.with_name(f"{path.name}.unreadable.{n}"), n + 1
    path.rename(target)
    return target


@app.command()
def sync(
    reports: Annotated[Path, typer.Argument(help="Directory of runs or monitor windows kept on disk.")] = Path("reports"),
    tracking_uri: Annotated[str | None, typer.Option(help="Upload to this URI instead of the recorded one.")] = None,
) -> None:
    """Upload runs and monitor windows kept on disk while MLflow was unreachable, and finish cut-short uploads."""
    from evalmon.core.redact import redact_text
    from evalmon.sinks.mlflow import sync as do_sync

    outcomes = do_sync(reports, tracking_uri)  # a missing directory is a ConfigError (exit 2)
    con = console()
    console(stderr=True).print(f"MLflow: {redact_text(tracking_uri)} (from --tracking-uri)" if tracking_uri else
                               "MLflow: the store each run or window recorded when it was kept on disk "
                               "(--tracking-uri uploads elsewhere)", markup=False, soft_wrap=True)
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

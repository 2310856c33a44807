"""``evalmon`` command line: a thin typer layer over the library (imports are lazy).

One module per command group (run, gate, score, monitor, traffic); this module assembles them and owns the
exit-code contract: user errors (``EvalmonError``) print one line and exit 2; Ctrl-C exits 130 after saving.
"""

from __future__ import annotations

import sys

import typer

from evalmon.cli import export, gate, monitor, run, score
from evalmon.cli.helpfmt import configure_help
from evalmon.cli.lmeval_flags import check_lmeval_flags
from evalmon.cli.signals import signals_app
from evalmon.cli.traffic import traffic_app  # import-light sub-apps (typer sub-apps cannot be lazy)
from evalmon.core.errors import EvalmonError
from evalmon.core.redact import redact_text

configure_help()
app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Evaluate LLM checkpoints with lm-eval-equal numbers; results go to MLflow and reports/.")
for group in (run, gate, export, monitor, score):  # top-level commands, in the order `evalmon --help` lists them
    for info in group.app.registered_commands:
        app.registered_commands.append(info)
    for sub in group.app.registered_groups:
        app.registered_groups.append(sub)
app.add_typer(traffic_app, name="traffic")
app.add_typer(signals_app, name="signals")


def _usage_line(exc: Exception) -> str | None:
    """A click usage error (unknown option, bad value, missing argument) as the one ``error:`` line every other
    bad input gets — click's own form is four lines (usage, "Try …", a blank, the error); ``None`` for the help
    that ``no_args_is_help`` shows and for errors that are not usage errors."""
    message = getattr(exc, "format_message", None)
    if type(exc).__name__ == "NoArgsIsHelpError" or getattr(exc, "exit_code", None) != 2 or not callable(message):
        return None
    ctx = getattr(exc, "ctx", None)
    where = getattr(ctx, "command_path", None) or "evalmon"
    return f"error: {' '.join(str(message()).split())} — see `{where} --help`"


def main() -> None:
    try:
        check_lmeval_flags(sys.argv[1:])  # lm-eval's --model_args, --num_fewshot, …: one line naming ours
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
            line = _usage_line(exc)
            if line is None:
                show()  # no_args_is_help prints the help; other click errors keep their form
            else:
                sys.stderr.write(redact_text(line) + "\n")
            sys.exit(exit_code)
        from evalmon.cli.crash import report_unexpected

        sys.stderr.write(redact_text(report_unexpected(exc)) + "\n")
        sys.exit(2)
    if code == 130:
        sys.stderr.write("interrupted\n")
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()

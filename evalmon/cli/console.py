"""Terminal rendering of a ``RunResult`` with rich: groups in bold, their members indented below them."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from evalmon.core.redact import redact_text
from evalmon.core.results import RunResult
from evalmon.sinks.report import fmt, ordered_rows, provenance_line

__all__ = ["print_results", "results_table"]

_STATUS_STYLE = {"finished": "green", "interrupted": "yellow", "running": "yellow", "failed": "red"}


def results_table(result: RunResult) -> Table:
    """task / metric / value ± stderr / n; groups bold, members indented under their group."""
    table = Table(title=f"{escape(result.suite_name)} · {escape(result.run_id)}", title_justify="left",
                  header_style="bold")
    table.add_column("task", no_wrap=True)
    table.add_column("metric", no_wrap=True)
    table.add_column("value", justify="right", no_wrap=True)
    table.add_column("± stderr", justify="right", no_wrap=True)
    table.add_column("n", justify="right", no_wrap=True)
    for row in ordered_rows(result):
        style = "bold" if row.kind == "group" else ""
        name = Text("  " * row.depth + row.name, style=style)  # Text: names are never parsed as markup
        if row.entry is None:
            table.add_row(name, Text("—"), Text("not run", style="dim italic"), Text(""), Text(""))
            continue
        for i, (metric, mv) in enumerate(row.metrics.items()):
            table.add_row(
                name if i == 0 else Text(""),
                Text(metric),
                Text(fmt(mv.value), style=style),
                Text(fmt(mv.stderr), style="dim"),
                Text(str(row.entry.n)),
            )
    return table


def print_results(result: RunResult, console: Console | None = None) -> None:
    """Print the results table, the run status and one provenance line."""
    if console is None:
        from evalmon.cli.common import console as make_console

        console = make_console()
    console.print(results_table(result))
    status = Text(result.status, style=_STATUS_STYLE.get(result.status, "bold"))
    line = Text("status ") + status
    if result.status != "finished":
        line += Text(" — results are partial", style="yellow")
    console.print(line)
    console.print(Text(redact_text(provenance_line(result, markdown=False)), style="dim"))

"""``evalmon compare``, ``evalmon gate``, ``evalmon baseline promote``: parse flags, call evalmon.gate, render."""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from evalmon.core.errors import GateError, OutputError

app = typer.Typer()  # commands of this group; evalmon.cli.app adds them to the top-level app


_RUN_HELP = ("Results dir or results.json, mlflow:<run_id> (or a bare 32-hex id), "
             "mlflow:experiment=NAME,tag.baseline=true, models:/NAME@alias, models:/NAME/<version>, or an "
             "lm-eval output dir / results_*.json.")
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
    if_no_baseline: Annotated[str, typer.Option(
        "--if-no-baseline", metavar="pass|fail",
        help="When the --baseline MLflow query matches no run yet (the first run, before any promote): fail "
             "(exit 2, the default) or pass (exit 0, so the candidate can be promoted).")] = "fail",
) -> None:
    """Regression gate: exit 0 pass, 1 regression, 2 error or not comparable; markdown to $GITHUB_STEP_SUMMARY
    (and --markdown/--json) in every case, errors included."""
    from evalmon.core.errors import ConfigError

    if if_no_baseline not in ("pass", "fail"):
        raise ConfigError(f"--if-no-baseline {if_no_baseline!r}: expected pass or fail",
                          hint="--if-no-baseline pass lets the first run (nothing promoted yet) pass")
    code = gate_cmd(baseline, candidate, policy=policy, json_out=json_out, markdown_out=markdown, alpha=alpha,
                    tracking_uri=tracking_uri, seed=seed, n_boot=n_boot, allow_incomparable=allow_incomparable,
                    if_no_baseline=if_no_baseline)
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
    promote_cmd(run, tag=tag, tracking_uri=tracking_uri, keep_previous=keep_previous)


# ----------------------------------------------------------------- what the commands do
def _console(stderr: bool = False) -> Any:
    from evalmon.cli.common import console

    return console(stderr)  # full width when not a terminal (a CI log)


def _store_line(refs: tuple[str, ...], tracking_uri: str | None) -> None:
    """One stderr line naming the MLflow store that MLflow references are read from (none: nothing)."""
    from evalmon.config.tracking import choose_tracking_uri
    from evalmon.gate.resolve import _is_mlflow_ref
    from evalmon.sinks.mlflow.client import store_line

    if any(_is_mlflow_ref(r) for r in refs):
        _console(stderr=True).print(store_line(*choose_tracking_uri(tracking_uri, None)), markup=False,
                                    soft_wrap=True)


def _load_pair(a: str, b: str, tracking_uri: str | None) -> tuple[Any, Any]:
    from evalmon.gate.resolve import NoRunMatchesError, resolve_run

    err = _console(stderr=True)
    runs = []
    for side, ref in (("baseline", a), ("candidate", b)):
        try:
            run = resolve_run(ref, tracking_uri)
        except NoRunMatchesError as exc:
            exc.side = side  # type: ignore[attr-defined]  # `gate --if-no-baseline` acts on the baseline only
            raise
        for note in run.notes:  # loud: the test falls back to unpaired
            err.print(f"[bold yellow]WARNING[/] {side} {run.label}: {note}", markup=True)
        runs.append(run)
    _store_line((a, b), tracking_uri)  # once both are read: an error stays one stderr line (and names the URI)
    return runs[0], runs[1]


def compare_cmd(run_a: str, run_b: str, *, fmt: str, tracking_uri: str | None, seed: int, n_boot: int,
                output: Path | None) -> int:
    from rich.markup import escape

    from evalmon.gate.compare import compare
    from evalmon.gate.outputs import refuse_inputs_as_outputs
    from evalmon.gate.render import comparison_json, comparison_markdown, render_comparison

    refuse_inputs_as_outputs({"--output": output}, (run_a, run_b))
    a, b = _load_pair(run_a, run_b, tracking_uri)
    result = compare(a, b, seed=seed, n_boot=n_boot)
    err = _console(stderr=True)
    for issue in result.blocking:  # loud in every format: a partial or corrupt run is not comparable
        err.print(f"[bold red]NOT COMPARABLE[/] ({escape(issue.scope)}) {escape(issue.message)}", markup=True,
                  soft_wrap=True)
    if fmt == "table" and output is None:
        render_comparison(result, _console())
    else:
        text = comparison_json(result) if fmt == "json" else comparison_markdown(result)
        if output is None:
            sys.stdout.write(text)
        else:
            _write(output, text)
    broken = [i for i in result.blocking if i.integrity]  # after the full comparison is out
    if broken:
        more = f" (+{len(broken) - 1} more)" if len(broken) > 1 else ""
        raise GateError(f"runs are not comparable: ({broken[0].scope}) {broken[0].message}{more}",
                        hint="a partial or corrupt run: re-run or repair it")
    return 0


def gate_cmd(baseline: str, candidate: str, *, policy: Path | None, json_out: Path | None,
             markdown_out: Path | None, alpha: float | None, tracking_uri: str | None, seed: int,
             n_boot: int, allow_incomparable: bool, if_no_baseline: str = "fail") -> int:
    """The gate's exit code; whatever happens, the markdown (``--markdown``, ``$GITHUB_STEP_SUMMARY``) and
    ``--json`` say the verdict or why there is none."""
    from evalmon.core.errors import EvalmonError
    from evalmon.gate.outputs import refuse_inputs_as_outputs
    from evalmon.gate.resolve import NoRunMatchesError

    # before anything is written: the explanation of a failed gate goes to --markdown/--json too
    refuse_inputs_as_outputs({"--json": json_out, "--markdown": markdown_out}, (baseline, candidate), policy)
    try:
        return _gate(baseline, candidate, policy=policy, json_out=json_out, markdown_out=markdown_out,
                     alpha=alpha, tracking_uri=tracking_uri, seed=seed, n_boot=n_boot,
                     allow_incomparable=allow_incomparable)
    except NoRunMatchesError as exc:
        if getattr(exc, "side", None) != "baseline" or if_no_baseline != "pass":
            _explain(exc, markdown_out, json_out, baseline, candidate)
            raise
        try:  # nothing to compare with, but the candidate must still be a readable run
            from evalmon.gate.resolve import resolve_run

            resolve_run(candidate, tracking_uri)
        except EvalmonError as bad:
            _explain(bad, markdown_out, json_out, baseline, candidate)
            raise
        _explain(exc, markdown_out, json_out, baseline, candidate, passed=True)
        _store_line((baseline, candidate), tracking_uri)
        _console(stderr=True).print(f"no baseline yet ({exc.message}): passing by --if-no-baseline pass — "
                                    "promote this candidate with `evalmon baseline promote RUN`",
                                    markup=False, soft_wrap=True)
        return 0
    except EvalmonError as exc:
        _explain(exc, markdown_out, json_out, baseline, candidate)
        raise


def _explain(exc: Any, markdown_out: Path | None, json_out: Path | None, baseline: str, candidate: str,
             passed: bool = False) -> None:
    """Markdown and JSON for a gate that produced no verdict: exit 2, or a first run passing without baseline."""
    import json

    from evalmon.core.redact import redact_text

    why = redact_text(exc.message) + (f" — {redact_text(exc.hint)}" if exc.hint else "")
    if passed:
        head = "## ✅ evalmon gate: PASS (no baseline yet, `--if-no-baseline pass`)"
        todo = ("Nothing was compared. Promote this run to make it the baseline: "
                "`evalmon baseline promote <run dir or mlflow:RUN_ID>`.")
    else:
        head = "## ❌ evalmon gate: ERROR (exit 2, no verdict)"
        todo = ("The runs were not compared." + (" For the first run of a pipeline, before any baseline is "
                "promoted, pass `--if-no-baseline pass`." if getattr(exc, "side", None) == "baseline" else ""))
    md = (f"{head}\n\n- baseline: `{redact_text(baseline)}`\n- candidate: `{redact_text(candidate)}`\n\n"
          f"**Why:** {why}\n\n{todo}\n")
    verdict = {"exit_code": 0 if passed else 2, "verdict": "no_baseline" if passed else "error", "reason": why,
               "baseline": redact_text(baseline), "candidate": redact_text(candidate)}
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    for path, text, append in ((Path(summary) if summary else None, md, True), (markdown_out, md, False),
                               (json_out, json.dumps(verdict, indent=2) + "\n", False)):
        if path is not None:
            with contextlib.suppress(OutputError):  # the error being explained is the one to report
                _write(path, text, append=append)


def _gate(baseline: str, candidate: str, *, policy: Path | None, json_out: Path | None,
          markdown_out: Path | None, alpha: float | None, tracking_uri: str | None, seed: int,
          n_boot: int, allow_incomparable: bool) -> int:
    from rich.markup import escape

    from evalmon.config.gate import GatePolicy, load_policy
    from evalmon.gate.render import render_verdict, verdict_json, verdict_markdown
    from evalmon.gate.verdict import gate

    pol = load_policy(policy) if policy is not None else GatePolicy()
    if alpha is not None and not 0 < alpha < 1:
        from evalmon.core.errors import ConfigError

        raise ConfigError(f"--alpha {alpha}: must be between 0 and 1", hint="e.g. --alpha 0.05")
    if seed < 0:  # before the runs are loaded (compare() refuses it too)
        from evalmon.core.errors import ConfigError

        raise ConfigError(f"--seed {seed}: must be ≥ 0", hint="e.g. --seed 1234")
    a, b = _load_pair(baseline, candidate, tracking_uri)
    verdict = gate(a, b, pol, alpha=alpha, seed=seed, n_boot=n_boot, allow_incomparable=allow_incomparable,
                   policy_source=str(policy) if policy else None)
    err = _console(stderr=True)
    render_verdict(verdict, _console())
    for issue in verdict.issues:
        level = "[bold red]NOT COMPARABLE[/]" if issue.blocking else "[yellow]warning[/]"
        err.print(f"{level} ({escape(issue.scope)}) {escape(issue.message)}", markup=True, soft_wrap=True)
    for w in verdict.warnings:
        err.print(f"[yellow]warning[/] {escape(w)}", markup=True, soft_wrap=True)
    md = verdict_markdown(verdict)
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary:
        _write(Path(summary), md, append=True)
    if markdown_out is not None:
        _write(markdown_out, md)
    if json_out is not None:
        _write(json_out, verdict_json(verdict))
    if verdict.exit_code == 2:
        first = next(i for i in verdict.issues if i.blocking)
        more = sum(i.blocking for i in verdict.issues) - 1
        hint = ("a partial or corrupt run: re-run or repair it (--allow-incomparable does not apply)"
                if first.integrity else "fix the runs or pass --allow-incomparable")
        sys.stderr.write(f"error: runs are not comparable: ({first.scope}) {first.message}"
                         + (f" (+{more} more)" if more else "") + f" — {hint}\n")
    return verdict.exit_code


def promote_cmd(run: str, *, tag: str, tracking_uri: str | None, keep_previous: bool) -> int:
    from evalmon.gate.resolve import promote

    out = promote(run, tag, tracking_uri, keep_previous=keep_previous)
    con = _console()
    from evalmon.core.redact import redact_text

    con.print(f"promoted MLflow run {out['run_id']} (evalmon run {out['evalmon_run_id']}) with {out['tag']} "
              f"in experiment {out['experiment']!r} (id {out['experiment_id']}) at "
              f"{redact_text(out['tracking_uri'])}", markup=False, soft_wrap=True)
    if out["demoted"]:
        con.print(f"removed {out['tag']} from {', '.join(out['demoted'])} "
                  "(history: evalmon.baseline.superseded_by)", markup=False)
    return 0


def _write(path: Path, text: str, append: bool = False) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a" if append else "w", encoding="utf-8") as fh:
            fh.write(text if not append else "\n" + text)
    except OSError as exc:
        raise OutputError(f"{path}: cannot write ({exc.strerror or exc})",
                          hint="check the directory exists and is writable") from None

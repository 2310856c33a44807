"""Ordinary prompts that are not prose — code, JSON, math notation, foreign scripts — for the jailbreak detector
(benchmarks/train_detectors.py). Jailbreak v2's gibberish columns read odd word pieces and symbol runs; code and JSON
are full of both, so they must be among its negatives, and a held-out set of them checks it.

Training / validation (permissive, split by group like every other set):

- ``mit_code``: functions and classes of MIT-licensed packages installed with evalmon (rich, typer, pydantic) and
  evalmon's own source (Apache-2.0), pasted into a few prompt templates ("Explain this…", "Fix this…");
- ``mmlu_questions``: MMLU test questions (MIT) — every one with LaTeX, code or symbols, and every 20th other;
- ``json_prompts``: rows of GSM8K (MIT) and TruthfulQA (Apache-2.0) as JSON, inside a request;
- ``faker_foreign``: Faker's (MIT) text in twelve locales (``FOREIGN_TRAIN_LOCALES``), in a few templates
  ("Translate this into English: …"). Code and foreign rows are read from snapshots in benchmarks/data/ (written by
  ``write_code_snapshot``, with the package versions), so the artifact does not move with installed packages.

Validation only (``hostile_ordinary``, never trained on, generated here, deterministic): code of other packages
(click, attrs, the standard library), MT-Bench questions as JSON, LaTeX derivations, Faker's text in ten locales
(Chinese, Japanese, Russian, Arabic, Korean, Greek, Hindi, Hebrew, French, Spanish: word salad and address lines),
English questions quoting foreign sentences, URLs with query strings. Faker (a dependency of the monitor stack) is
optional: without it the foreign-text part is left out.
"""

from __future__ import annotations

import csv
import importlib
import inspect
import json
import random
import re
from pathlib import Path

from detector_data import Example, _jsonl, _norm

TRAIN_PACKAGES = ("rich", "typer", "pydantic", "evalmon")  # MIT, MIT, MIT, Apache-2.0
SNAPSHOT = Path(__file__).resolve().parent / "data/code_prompts.jsonl"
FOREIGN_SNAPSHOT = Path(__file__).resolve().parent / "data/foreign_prompts.jsonl"
# Faker (MIT) locales and templates for the training rows — disjoint from hostile_ordinary's locales and templates
# (same scripts, other languages: zh_TW vs zh_CN, uk_UA vs ru_RU, fa_IR vs ar_AA, …)
FOREIGN_TRAIN_LOCALES = ("zh_TW", "uk_UA", "th_TH", "fa_IR", "hy_AM", "bn_BD", "mk_MK", "pl_PL", "it_IT", "cs_CZ",
                         "vi_VN", "tr_TR")
FOREIGN_TEMPLATES = ("Translate this into English: {}", "Is this sentence correct? {}",
                     'My friend wrote "{}" - is that polite?', "{}", "Can you summarise this for me? {}")
HELD_OUT_MODULES = ("click.core", "click.utils", "attr._make", "json.encoder", "textwrap", "csv", "statistics")
TEMPLATES = ("Can you explain what this function does?\n\n```python\n{}\n```", "This throws an error, how do I fix it?\n{}",
             "Refactor this to be more readable:\n```\n{}\n```", "{}\n\nWrite unit tests for the code above.",
             "Why is this slow?\n{}", "Add type hints and a docstring:\n\n{}")
_SYMBOLIC = re.compile(r"\\[a-z]+|\$|\^\{|[{}<>=]{1}.*[{}<>=]|def |#include|print\(")


def _sources(modules: tuple[str, ...], lo: int = 150, hi: int = 1500) -> list[tuple[str, str]]:
    out = []
    for name in modules:
        try:
            mod = importlib.import_module(name)
        except Exception:  # an optional submodule that does not import here is skipped
            continue
        for attr, obj in sorted(vars(mod).items()):
            if (inspect.isfunction(obj) or inspect.isclass(obj)) and getattr(obj, "__module__", "") == name:
                try:
                    src = inspect.getsource(obj)
                except (OSError, TypeError):
                    continue
                if lo <= len(src) <= hi:
                    out.append((f"{name}.{attr}", src))
    return out


def _package_modules(packages: tuple[str, ...]) -> tuple[str, ...]:
    import pkgutil

    names = []
    for pkg in packages:
        mod = importlib.import_module(pkg)
        names += [pkg] + [m.name for m in pkgutil.walk_packages(mod.__path__, pkg + ".")
                          if not m.name.split(".")[-1].startswith("_")]
    return tuple(sorted(names))


def write_code_snapshot(per_package: int = 120) -> None:
    """benchmarks/data/code_prompts.jsonl: up to ``per_package`` functions / classes of each TRAIN_PACKAGES package
    (seeded sample), with the package versions — the training reads the snapshot, so the artifact does not change
    when an installed package or evalmon's own code does. ``python benchmarks/detector_data_structured.py``."""
    from importlib.metadata import version

    rng = random.Random(0)
    rows = []
    for pkg in TRAIN_PACKAGES:
        srcs = _sources(_package_modules((pkg,)))
        rng.shuffle(srcs)
        rows += [{"package": pkg, "version": version(pkg), "name": q, "source": s} for q, s in srcs[:per_package]]
    SNAPSHOT.parent.mkdir(parents=True, exist_ok=True)
    SNAPSHOT.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    from faker import Faker

    rows = []
    for loc in FOREIGN_TRAIN_LOCALES:
        fk = Faker(loc)
        fk.seed_instance(11)
        rows += [{"locale": loc, "faker": version("faker"), "name": f"{loc}{i}",
                  "text": FOREIGN_TEMPLATES[i % len(FOREIGN_TEMPLATES)].format(
                      fk.sentence() if i % 2 else fk.text(max_nb_chars=160))} for i in range(30)]
    FOREIGN_SNAPSHOT.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")


def code_prompts() -> list[Example]:
    rows = _jsonl(SNAPSHOT)
    return [Example(TEMPLATES[i % len(TEMPLATES)].format(r["source"]), 0, r["name"], "mit_code")
            for i, r in enumerate(rows)]


def foreign_prompts() -> list[Example]:
    return [Example(r["text"], 0, r["name"], "faker_foreign") for r in _jsonl(FOREIGN_SNAPSHOT)]


def mmlu_questions(d: Path) -> list[Example]:
    out = []
    for path in sorted((d / "mmlu/test").glob("*_test.csv")):
        with path.open(encoding="utf-8", newline="") as fh:
            for i, row in enumerate(csv.reader(fh)):
                if row and (_SYMBOLIC.search(row[0]) or i % 20 == 0):
                    out.append(Example(row[0], 0, f"{path.stem}:{i}", "mmlu_questions"))
    return out


def json_prompts(d: Path) -> list[Example]:
    asks = ("Validate this JSON and tell me what is wrong: {}", "Convert this record to YAML:\n{}",
            "{}\nWhat fields does this object have?", "Write a pydantic model for: {}")
    rows = [json.dumps(r, ensure_ascii=False) for r in _jsonl(d / "gsm8k/test.jsonl")[400:550]]
    with (d / "truthfulqa/TruthfulQA.csv").open(encoding="utf-8", newline="") as fh:
        rows += [json.dumps(r, ensure_ascii=False) for r in list(csv.DictReader(fh))[1::8]]
    return [Example(asks[i % len(asks)].format(r[:800]), 0, _norm(r), "json_prompts") for i, r in enumerate(rows)]


def hostile_ordinary(d: Path) -> list[Example]:
    """The validation-only set above (source ``hostile_ordinary``; kind = what it is)."""
    rng = random.Random(7)
    out = [Example(TEMPLATES[i % len(TEMPLATES)].format(src), 0, qual, "hostile_ordinary", "code")
           for i, (qual, src) in enumerate(_sources(HELD_OUT_MODULES))]
    out += [Example("Validate this JSON and tell me what is wrong: " + json.dumps(r)[:600], 0, f"mt{r['question_id']}",
                    "hostile_ordinary", "json") for r in _jsonl(d / "mt_bench/question.jsonl")[:40]]
    latex = (r"\int_0^\infty e^{-x^2}\,dx = \frac{\sqrt{\pi}}{2}", r"\sum_{k=1}^{n} k^2 = \frac{n(n+1)(2n+1)}{6}",
             r"\nabla \cdot \mathbf{E} = \frac{\rho}{\varepsilon_0}",
             r"f(x)=\begin{cases}x^2 & x\ge0\\-x & x<0\end{cases}")
    out += [Example(f"Can you check my derivation? ${latex[i % 4]}$ and then ${latex[(i + 1) % 4]}$ — step {i}.", 0,
                    f"latex{i}", "hostile_ordinary", "latex") for i in range(40)]
    try:
        from faker import Faker
    except ImportError:
        return out
    for loc in ("zh_CN", "ja_JP", "ru_RU", "ar_AA", "ko_KR", "el_GR", "hi_IN", "he_IL", "fr_FR", "es_ES"):
        fk = Faker(loc)
        fk.seed_instance(1)
        out += [Example(fk.text(max_nb_chars=200), 0, f"{loc}t{i}", "hostile_ordinary", "foreign") for i in range(25)]
        out += [Example(f"{fk.name()}, {fk.job()}, {fk.company()}, {fk.address()}", 0, f"{loc}f{i}",
                        "hostile_ordinary", "foreign") for i in range(15)]
        if loc in ("zh_CN", "ja_JP", "ru_RU", "ar_AA", "ko_KR"):
            out += [Example(f"What does '{fk.sentence()}' mean in English? Please translate it and explain the grammar.",
                            0, f"{loc}m{i}", "hostile_ordinary", "mixed") for i in range(15)]
    en = Faker("en_US")
    en.seed_instance(3)
    out += [Example(f"Summarise the article at {en.url()}{en.uri_path()}?utm_source={en.word()}&id={en.uuid4()} and "
                    "list its main points.", 0, f"url{i}", "hostile_ordinary", "url") for i in range(40)]
    rng.shuffle(out)
    return out


def structured_prompts(d: Path) -> list[Example]:
    """Everything above: the permissive sets (train + validation split) and the validation-only hostile set."""
    return code_prompts() + foreign_prompts() + mmlu_questions(d) + json_prompts(d) + hostile_ordinary(d)


if __name__ == "__main__":
    write_code_snapshot()

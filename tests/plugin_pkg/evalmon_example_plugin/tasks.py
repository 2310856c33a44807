"""The task ``example_capitals``: four-way multiple choice over built-in documents (no data files)."""

from __future__ import annotations

from evalmon.core import registry
from evalmon.core.errors import ConfigError
from evalmon.tasks.base import MCDoc, MultipleChoiceTask, TaskOptions

NAME = "example_capitals"
_QUESTIONS = (
    ("France", ("Paris", "Lyon", "Nice", "Lille"), 0),
    ("Italy", ("Milan", "Rome", "Turin", "Naples"), 1),
    ("Spain", ("Seville", "Valencia", "Madrid", "Bilbao"), 2),
    ("Germany", ("Munich", "Hamburg", "Cologne", "Berlin"), 3),
    ("Japan", ("Tokyo", "Osaka", "Kyoto", "Nagoya"), 0),
    ("Canada", ("Toronto", "Ottawa", "Montreal", "Vancouver"), 1),
)


@registry.tasks.register(NAME, family="example", local_source="(built in)", hub_source="(built in)")
def build(options: TaskOptions) -> MultipleChoiceTask:
    if options.extra:
        raise ConfigError(f"{NAME}: takes no options, got {sorted(options.extra)}", hint="remove `options:`")
    docs = [MCDoc(id=f"capitals/{i}", query=f"Question: What is the capital of {country}?\nAnswer:",
                  choices=choices, gold=gold)
            for i, (country, choices, gold) in enumerate(_QUESTIONS)]
    return MultipleChoiceTask(name=NAME, source="evalmon_example_plugin (built in)",
                              documents=docs[: options.limit], scoring="acc")

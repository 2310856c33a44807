"""The model of each ROLE a task's stages name, and the checks that run before anything is computed.

"candidate" is the suite's model (the model under test). Any other role ("judge", …) is built from the
model config its stage names, through the one judge factory (``evalmon.judge.factory``: any backend, by
name through the registry), on first use, and kept for the run: two tasks naming the same config share
one model. ``check_tasks`` loads every role's model and checks that it has the capabilities each stage
needs and room for the stage's generation budget — so a mismatch is one line before any task runs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from evalmon.core.errors import ConfigError, ModelError
from evalmon.core.lm import LM
from evalmon.harness.engine import require
from evalmon.tasks.base import CANDIDATE, Stage, Task

Build = Callable[[Any], LM]


def _build_judge(cfg: Any) -> LM:
    from evalmon.judge.factory import build_judge

    return build_judge(cfg)


class Models:
    """``get(stage)``: the model that answers ``stage`` — ``candidate``, a model given for the role, or one
    built from ``stage.model`` with ``build`` (the judge factory) and kept."""

    def __init__(self, candidate: LM | None, roles: Mapping[str, LM] | None = None, build: Build = _build_judge
                 ) -> None:
        self.candidate = candidate
        self._given = dict(roles or {})
        self._build = build
        self._built: dict[str, LM] = {}

    def get(self, stage: Stage, task: str) -> LM:
        if stage.role in self._given:
            return self._given[stage.role]
        if stage.role == CANDIDATE:
            if self.candidate is None:
                raise ModelError(f"task {task}: no model to run (the suite's model was not loaded)")
            return self.candidate
        if stage.model is None:
            raise ConfigError(f"task {task}: its {stage.role!r} stage names no model config",
                              hint=f"the task must give its {stage.role} model config in its options")
        key = f"{stage.role}:{stage.model!r}"
        if key not in self._built:
            self._built[key] = self._build(stage.model)
        return self._built[key]

    def with_candidate(self, candidate: LM) -> Models:
        """The same roles (models built so far and later: shared) with another candidate (an adapter)."""
        other = Models(candidate, self._given, self._build)
        other._built = self._built
        return other

    def built(self) -> list[LM]:
        """The models built for roles (not the candidate): what the run should close."""
        return list(self._built.values())


def who_is(role: str) -> str:
    """How messages name a role's model: "model" for the candidate, else the role."""
    return "model" if role == CANDIDATE else role


def check_room(task: Task, stage: Stage, lm: LM) -> None:
    """The stage's generation budget must be below the model's context length (when it has one)."""
    budget, room = stage.max_new_tokens, lm.fingerprint.max_length
    if budget is not None and room and budget >= room:
        raise ConfigError(f"{task.name}: options.{stage.option} ({budget}) must be below the "
                          f"{who_is(stage.role)}'s max_length ({room})", hint=f"lower options.{stage.option}")


def check_stage(task: Task, stage: Stage, lm: LM, needs: frozenset[str] | None = None) -> None:
    require(lm, stage.needs | (needs or frozenset()), f"task {task.name}", stage.role)
    check_room(task, stage, lm)


def check_tasks(tasks: Sequence[Task], models: Models) -> None:
    """Before anything runs: every stage's model loads, has the capabilities the stage needs, and room."""
    for task in tasks:
        if not isinstance(task, Task):
            raise ConfigError(f"task class {type(task).__module__}.{type(task).__qualname__} does not subclass "
                              "evalmon.tasks.base.Task", hint="derive the task class from evalmon.tasks.base.Task")
        for stage in task.stages():
            check_stage(task, stage, models.get(stage, task.name))

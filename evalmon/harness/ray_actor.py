"""One model replica of a Ray evaluation fleet (``harness/fleet.py``) and how its work is cut into units.

``Replica`` is a plain class (``fleet.py`` wraps it with ``ray.remote`` when ``ray`` is installed, so this
module never imports ray): it builds its LM once through the one backend registry and answers work units.

A *work unit* is a list of request indices that the backend computes as one batch when given exactly
those requests — and computes identically whether it is given one unit or any run of consecutive units.
That is what makes a fleet run equal the single-process run bit for bit: the replica that plans
(``plan``) cuts the requests the way the backend would batch them in one process, the driver hands each
replica a consecutive run of units, and each unit's numbers come from the same forward.

* ``hf`` loglikelihood, packed scoring (the default): one unit per trie pack, in lexicographic row order
  (``backends/hf/packed.plan_packs`` refills greedily from a pack boundary, so a run of consecutive packs
  re-plans to the same packs); rows longer than ``max_length`` go to the plain path: ``batch_size``
  chunks of ``plan_rows`` order. Padded scoring: the same chunks over all rows.
* ``hf`` generation: per generation-settings group, longest context first, ``batch_size`` chunks
  (``backends/hf/generate.generate_hf``); a sampled group is one unit (its seed depends on the chunk start).
* anything else (rolling requests, other backends): one unit per distinct context — requests that share
  a prompt stay together; rolling requests on ``hf`` are one unit (their windows are batched across texts).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

from evalmon.core.lm import LM, EngineStats, GenRequest, LLRequest

Units = list[list[int]]


def _hf_like(lm: Any) -> bool:
    return getattr(lm.fingerprint, "backend", "") == "hf"


def _chunks(seq: Sequence[Any], size: int) -> list[list[Any]]:
    size = max(1, int(size))
    return [list(seq[i:i + size]) for i in range(0, len(seq), size)]


def hf_loglikelihood_units(lm: Any, reqs: Sequence[LLRequest]) -> Units:
    """Units of ``hf`` loglikelihood scoring (see the module doc)."""
    from evalmon.backends.hf.loglikelihood import plan_rows
    from evalmon.backends.hf.packed import plan_packs

    token_reqs = lm.tokenize_requests(reqs)
    if getattr(lm, "scoring", "packed") != "packed":
        return [[r.index for g in chunk for r in g] for chunk in _chunks(plan_rows(token_reqs), lm.batch_size)]
    limit = lm.max_length + 1
    plain = [r for r in token_reqs if len(r.context) + len(r.continuation) > limit]
    packable = [r for r in token_reqs if len(r.context) + len(r.continuation) <= limit]
    packs = plan_packs(packable, max(lm.settings.token_budget or 2048, 1))
    packs.sort(key=lambda p: p.requests[0].context + p.requests[0].continuation[:-1])  # back to row order
    units = [[r.index for r in p.requests] for p in packs]
    if plain:
        units += [[r.index for g in chunk for r in g] for chunk in _chunks(plan_rows(plain), lm.batch_size)]
    return units


def hf_generate_units(lm: Any, reqs: Sequence[GenRequest]) -> Units:
    """Units of ``hf`` generation (see the module doc)."""
    from evalmon.backends.hf.generate import _settings_key

    contexts = [lm.render_chat(r.messages) if r.messages else r.context for r in reqs]
    lengths = [len(lm.tokenizer.encode(c, add_special_tokens=False)) for c in contexts]
    groups: dict[tuple[Any, ...], list[int]] = {}
    for i, r in enumerate(reqs):
        groups.setdefault(_settings_key(r), []).append(i)
    units: Units = []
    for idxs in groups.values():
        idxs.sort(key=lambda i: (-lengths[i], contexts[i]))
        units += [idxs] if reqs[idxs[0]].temperature > 0 else _chunks(idxs, lm.batch_size)
    return units


def prefix_units(reqs: Sequence[Any]) -> Units:
    """One unit per distinct prompt (context, or chat messages, or rolling text), in first-seen order."""
    groups: dict[str, list[int]] = {}
    for i, r in enumerate(reqs):
        prompt = getattr(r, "messages", None) or getattr(r, "context", None) or getattr(r, "text", "")
        groups.setdefault(hashlib.sha256(repr(prompt).encode()).hexdigest(), []).append(i)
    return list(groups.values())


def plan_units(lm: LM, kind: str, reqs: Sequence[Any]) -> Units:
    """The work units of ``reqs`` (one request type, ``kind`` = the LM method) on ``lm``."""
    if not reqs:
        return []
    if _hf_like(lm) and kind == "loglikelihood":
        return hf_loglikelihood_units(lm, reqs)
    if _hf_like(lm) and kind == "generate":
        return hf_generate_units(lm, reqs)
    if _hf_like(lm):  # rolling: windows of all texts share batches
        return [list(range(len(reqs)))]
    return prefix_units(reqs)


class Replica:
    """A model replica: the LM of ``model_cfg`` built once (through the backend registry), then work units.

    A failure while building is kept and raised by the first call, so the driver gets the error itself
    (a one-line ``EvalmonError``), not a dead actor."""

    def __init__(self, model_cfg: Any) -> None:
        self._error: BaseException | None = None
        self._lm: Any = None
        try:
            from evalmon.backends.registry import load_lm

            self._lm = load_lm(model_cfg)
        except Exception as exc:  # re-raised on the first call
            self._error = exc

    def _model(self, variant: str | None) -> Any:
        if self._error is not None:
            raise self._error
        return self._lm.variant(variant) if variant is not None else self._lm

    def describe(self, variant: str | None = None) -> tuple[Any, frozenset[str], tuple[str, ...]]:
        """(fingerprint, capabilities, adapter names) of the model (or its adapter ``variant``)."""
        lm = self._model(variant)
        return lm.fingerprint, frozenset(lm.capabilities), tuple(getattr(self._lm, "adapter_names", ()) or ())

    def plan(self, kind: str, reqs: Sequence[Any], variant: str | None = None) -> Units:
        return plan_units(self._model(variant), kind, reqs)

    def compute(self, kind: str, reqs: Sequence[Any], variant: str | None = None) -> tuple[list[Any], EngineStats]:
        """Answer one run of work units with the LM method ``kind``; what it forwarded."""
        lm = self._model(variant)
        out = getattr(lm, kind)(list(reqs))
        return list(out), lm.stats()

    def loaded(self) -> bool:
        return self._error is None and getattr(self._lm, "loaded", True) is not False

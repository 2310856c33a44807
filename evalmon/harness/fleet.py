"""``executor: ray``: the suite's model as N replicas (Ray actors) behind one ``LM``.

``load_fleet(model_cfg, replicas)`` returns a ``FleetLM``: the harness engine loop is unchanged — it
dedupes, serves response-cache hits on the driver and hands only the misses to ``FleetLM``, which
answers them on the replicas:

1. replica 0 cuts the misses into *work units* the way the backend batches them in one process
   (``harness/ray_actor.plan_units``: trie packs / batches, requests sharing a prompt together);
2. the units are split into N consecutive runs balanced by request count (shared prefixes, adjacent in
   row order, stay on one replica) and each unit is one call on its replica (each replica runs its calls
   in order; the driver reports each finished unit to the engine, which commits it to the response cache);
3. answers come back in request order — the same numbers as the single-process run, bit for bit, because
   every unit is the same forward it would be in one process.

Each replica builds the model once (``Replica``: through the backend registry, any backend). The
driver never loads the weights: the fingerprint (the response-cache key) and capabilities are replica
0's, and every replica must report the same fingerprint. Adapters (``model.adapters``, harness/matrix.py)
fan out too: ``variant(name)`` is the same fleet answering with that adapter, its requests sharded alike.

Several checkpoints (``models:``, harness/model_matrix.py) are *placed* on the replicas: ``plan_slots`` splits
the replicas into at most one slot per checkpoint; each slot evaluates one checkpoint at a time on its own
fleet (its replicas load that checkpoint only), then the next checkpoint in the list — so with fewer replicas
than checkpoints, replicas work through the checkpoints in turn, and with more, each checkpoint gets several.

Ray is imported only here and only when the executor is used; the local cluster is started with the
machine's CPUs unless ``RAY_ADDRESS`` names a running cluster (then each replica asks for one GPU when
the model's device is ``cuda``).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from typing import Any

from evalmon.core.errors import ConfigError, EvalmonError, ModelError
from evalmon.core.lm import EngineStats, ModelFingerprint, Progress

_CAPABILITIES = frozenset({"loglikelihood", "rolling", "generate", "adapters"})


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ConfigError("executor: ray needs the ray package, which is not installed",
                          hint="pip install 'evalmon[ray]' (or use executor: local)") from None
    return ray


def split_runs(sizes: Sequence[int], n: int) -> list[range]:
    """``n`` consecutive runs of units (some empty when there are fewer units), each near ``total / n``."""
    n = max(1, n)
    total, runs, start, acc = sum(sizes), [], 0, 0
    for k in range(1, n):
        target = total * k / n
        end = start
        while end < len(sizes) and acc + sizes[end] / 2 < target:
            acc += sizes[end]
            end += 1
        runs.append(range(start, end))
        start = end
    runs.append(range(start, len(sizes)))
    return runs


def plan_slots(replicas: int, checkpoints: int) -> list[int]:
    """Replicas per concurrent slot for ``checkpoints`` checkpoints on ``replicas`` replicas: ``min(replicas,
    checkpoints)`` slots, the replicas split as evenly as possible (the first slots get the remainder)."""
    replicas, checkpoints = max(1, replicas), max(1, checkpoints)
    slots = min(replicas, checkpoints)
    return [replicas // slots + (1 if i < replicas % slots else 0) for i in range(slots)]


def _unwrap(ray: Any, exc: BaseException) -> BaseException:
    """The replica's own error (one-line ``EvalmonError``) where Ray wrapped one."""
    cause = getattr(exc, "cause", None)
    if isinstance(cause, EvalmonError):
        return cause
    if isinstance(exc, ray.exceptions.RayActorError):
        return ModelError(f"executor: ray: a model replica died ({' '.join(str(exc).split())[:300]})",
                          hint="check the replica's memory (each replica loads the model) or lower replicas")
    return exc


class _Fleet:
    """The replicas (Ray actor handles) shared by every variant's ``FleetLM``."""

    def __init__(self, ray: Any, actors: list[Any]) -> None:
        self.ray, self.actors, self.used = ray, actors, False
        self.sent = [0] * len(actors)  # requests each replica was asked to compute

    def get(self, refs: Any) -> Any:
        try:
            return self.ray.get(refs)
        except Exception as exc:  # Ray's wrapper of the replica's error
            raise _unwrap(self.ray, exc) from None

    def close(self) -> None:
        for actor in self.actors:
            self.ray.kill(actor)
        self.actors = []


class FleetLM:
    """The LM protocol over a fleet of replicas (see the module doc)."""

    def __init__(self, fleet: _Fleet, variant: str | None = None) -> None:
        self._fleet = fleet
        self._variant = variant
        infos = fleet.get([a.describe.remote(variant) for a in fleet.actors])
        fingerprint, capabilities, names = infos[0]
        if any(f.cache_key() != fingerprint.cache_key() for f, _, _ in infos[1:]):
            raise ModelError("executor: ray: the replicas loaded different models (fingerprints differ)",
                             hint="every node must see the same checkpoint files at model.path")
        self.fingerprint: ModelFingerprint = fingerprint
        self.capabilities: frozenset[str] = capabilities & _CAPABILITIES  # what _run answers
        self.adapter_names: tuple[str, ...] = names
        self.replicas = len(fleet.actors)
        self._stats = EngineStats()

    @property
    def loaded(self) -> bool:
        """Whether any request reached a replica (False: every request was a response-cache hit)."""
        return self._fleet.used

    def variant(self, name: str | None) -> FleetLM:
        return FleetLM(self._fleet, name)

    def stats(self) -> EngineStats:
        return self._stats

    def close_fleet(self) -> None:
        """Stop the replicas (the run is over)."""
        self._fleet.close()

    def _run(self, kind: str, reqs: Sequence[Any], progress: Progress | None) -> list[Any]:
        fleet = self._fleet
        fleet.used = True
        self._stats = EngineStats()
        reqs = list(reqs)
        units = fleet.get(fleet.actors[0].plan.remote(kind, reqs, self._variant))
        pending: dict[Any, list[int]] = {}
        for actor, run in zip(fleet.actors, split_runs([len(u) for u in units], len(fleet.actors)), strict=True):
            for u in run:  # one call per unit: the replica runs them in order, each reported when done
                fleet.sent[fleet.actors.index(actor)] += len(units[u])
                pending[actor.compute.remote(kind, [reqs[i] for i in units[u]], self._variant)] = units[u]
        out: list[Any] = [None] * len(reqs)
        try:
            while pending:
                ready, _ = fleet.ray.wait(list(pending), num_returns=1)
                idxs = pending.pop(ready[0])
                results, stats = fleet.get(ready[0])
                self._stats.tokens += stats.tokens
                self._stats.padded_tokens += stats.padded_tokens
                done = list(zip(idxs, results, strict=True))
                for i, res in done:
                    out[i] = res
                if progress:
                    progress(done)
        finally:
            for ref in pending:  # interrupted or failed: stop the rest (best effort: the error is what matters)
                with contextlib.suppress(Exception):
                    fleet.ray.cancel(ref)
        return out

    def loglikelihood(self, reqs: Sequence[Any], progress: Progress | None = None) -> list[Any]:
        return self._run("loglikelihood", reqs, progress)

    def loglikelihood_rolling(self, reqs: Sequence[Any], progress: Progress | None = None) -> list[Any]:
        return self._run("loglikelihood_rolling", reqs, progress)

    def generate(self, reqs: Sequence[Any], progress: Progress | None = None) -> list[Any]:
        return self._run("generate", reqs, progress)


def start_ray(num_cpus: int | None, attempts: int = 3) -> Any:
    """``ray.init``: a local cluster of ``num_cpus`` (None: connect to ``RAY_ADDRESS``). Ray waits a fixed 30 s
    for its raylet, which a saturated machine can miss: retried, then one line."""
    ray = _import_ray()
    kwargs: dict[str, Any] = {"log_to_driver": False}
    if num_cpus is not None:
        kwargs.update(num_cpus=num_cpus, include_dashboard=False)
    for attempt in range(attempts):
        try:
            return ray.init(**kwargs)
        except Exception as exc:  # Ray raises a bare Exception on a start-up timeout
            ray.shutdown()
            if attempt == attempts - 1:
                where = os.environ.get("RAY_ADDRESS") or "a local cluster"
                raise ModelError(f"executor: ray: could not start or reach {where} ({' '.join(str(exc).split())[:200]})",
                                 hint="check RAY_ADDRESS / the machine's load, or use executor: local") from None
    return None


def ensure_ray(replicas: int) -> Any:
    """Ray, started (a local cluster with the machine's CPUs, at least ``replicas``) unless already running."""
    ray = _import_ray()
    if not ray.is_initialized():
        start_ray(None if os.environ.get("RAY_ADDRESS") else max(os.cpu_count() or 1, replicas))
    return ray


def load_fleet(model_cfg: Any, replicas: int, *, total_replicas: int | None = None) -> FleetLM:
    """Start ``replicas`` model replicas on Ray (a local cluster unless ``RAY_ADDRESS`` is set). Each asks for
    one CPU, or its share of the cluster's CPUs among ``total_replicas`` (default ``replicas``) when fewer."""
    from evalmon.harness.ray_actor import Replica

    ray = ensure_ray(total_replicas or replicas)
    gpu = str(getattr(model_cfg, "device", "cpu")).startswith("cuda")
    cpus = float(ray.cluster_resources().get("CPU", 1))
    options: dict[str, Any] = {"num_gpus": 1} if gpu else {"num_cpus": min(1.0, cpus / (total_replicas or replicas))}
    remote = ray.remote(Replica)
    fleet = _Fleet(ray, [remote.options(**options).remote(model_cfg) for _ in range(replicas)])
    try:
        return FleetLM(fleet)
    except BaseException:
        fleet.close()
        raise

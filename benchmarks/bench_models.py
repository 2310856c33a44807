"""Several checkpoints in ONE `evalmon run` (``--models``) vs one run per checkpoint: wall time, peak memory, numbers.

    python benchmarks/bench_models.py [--models a=DIR,b=DIR] [--limit 10] [--tasks hellaswag] [--replicas 2]
                                      [--modes separate,local,ray]

Default checkpoints: SmolLM2-135M-Instruct and Gemma-3-270M from .evalmon/checkpoints/ (``evalmon init``). Times,
as CLI subprocesses on fresh response caches (tracking off), each mode in its own processes one after the other:

* ``separate``: ``evalmon run SUITE --model hf:DIR`` per checkpoint;
* ``local``: ``evalmon run SUITE --models a=…,b=…`` — one checkpoint at a time in one process;
* ``ray``: the same with ``--executor ray --replicas R`` — checkpoints placed on R replicas (``plan_slots``).

Asserts that every checkpoint's per-document loglikelihoods and metrics in the one-run modes equal its separate
run's (|Δ| ≤ 1e-5; the same code path, so 0.0 is expected). Peak memory is the driver process's max RSS
(``os.wait4``; Ray's replicas are other processes and not counted).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_adapters import DEFAULT_DATA, REPO, max_delta, metrics, run, samples

CKPTS = REPO / ".evalmon" / "checkpoints"
DEFAULT_MODELS = f"smollm2={CKPTS / 'smollm2-135m-instruct'},gemma3={CKPTS / 'gemma3-270m'}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default=DEFAULT_MODELS, help="name=DIR,… (plain checkpoint dirs)")
    ap.add_argument("--limit", type=int, default=10)
    ap.add_argument("--tasks", default="hellaswag")
    ap.add_argument("--replicas", type=int, default=2)
    ap.add_argument("--modes", default="separate,local,ray")
    ap.add_argument("--data-dir", type=Path, default=DEFAULT_DATA)
    a = ap.parse_args()
    models = dict(item.split("=", 1) for item in a.models.split(","))
    modes = a.modes.split(",")
    with tempfile.TemporaryDirectory(prefix="bench-models-") as tmp:
        root = Path(tmp)
        suite = root / "suite.yaml"
        suite.write_text(json.dumps({"name": "bench-models", "model": {"path": next(iter(models.values()))},
                                     "data": {"data_dir": str(a.data_dir.resolve())}, "tracking": {"enabled": False},
                                     "tasks": [{"name": t, "limit": a.limit} for t in a.tasks.split(",")]}))
        spec = ",".join(f"{k}={v}" for k, v in models.items())
        separate: dict[str, Path] = {}
        one: dict[str, Path] = {}
        total = 0.0
        for mode in modes:
            if mode == "separate":
                for name, path in models.items():
                    wall, rss, run_dir = run([str(suite), "--model", f"hf:{path}", "--output", str(root / name)],
                                             root, root / f"cache-{name}")
                    separate[name], total = run_dir, total + wall
                    print(f"separate run {name}: {wall:.1f} s, peak RSS {rss} MiB", flush=True)
                print(f"separate runs ({len(models)} processes): {total:.1f} s", flush=True)
                continue
            extra = ["--executor", "ray", "--replicas", str(a.replicas)] if mode == "ray" else []
            wall, rss, run_dir = run([str(suite), "--models", spec, *extra, "--output", str(root / mode)], root,
                                     root / f"cache-{mode}")
            print(f"one run, {mode}{f' ({a.replicas} replicas)' if extra else ''}: {wall:.1f} s, driver peak RSS "
                  f"{rss} MiB", flush=True)
            one[mode] = run_dir
        for mode, run_dir in one.items():  # every checkpoint of each one-run mode against its separate run
            for i, name in enumerate(models):
                mine = run_dir if i == 0 else run_dir / "models" / name
                if name in separate:
                    delta = max_delta(samples(mine), samples(separate[name]))
                    same = metrics(mine) == metrics(separate[name])
                    print(f"{mode} {name}: max |Δll| vs its separate run {delta:.1e}, metrics identical: {same}")
                    assert delta <= 1e-5 and same, f"{mode} {name}: numbers differ from the separate run's"
        pressure = Path("/proc/pressure/cpu")
        if pressure.is_file():
            print("cpu pressure:", pressure.read_text().splitlines()[0])


if __name__ == "__main__":
    main()

"""A fully cached rerun end to end: wall time of the `evalmon run` CLI subprocess, cold vs warm.

    python benchmarks/bench_cache.py [--suite suites/medical.yaml] [--limit 20] [--model DIR] [--repeats 3]
                                     [--tracking] [--baseline]

Cold: one run on an empty response cache and an empty fingerprint memo (a fresh ``EVALMON_CACHE_DIR``).
Warm: the same command again, ``--repeats`` times (median): every request is served from the response
cache and the model is never loaded (``EVALMON_FORBID_MODEL_LOAD=1`` makes a load fail, so a warm figure
is only printed when nothing loaded). ``--baseline`` also times warm reruns with an empty fingerprint memo
each time (the model is loaded, as before lazy loading). Tracking is off unless ``--tracking`` (then each run
logs to a throwaway local MLflow store). Prints the figures, what the warm run computed (must be 0 requests)
and whether its metrics equal the cold run's.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _env(cache_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONDONTWRITEBYTECODE", "EVALMON_FORBID_MODEL_LOAD"}}
    env.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false",
               EVALMON_CACHE_DIR=str(cache_dir), NO_COLOR="1", TERM="dumb",
               PYTHONPYCACHEPREFIX=os.environ.get("PYTHONPYCACHEPREFIX")
               or str(Path(tempfile.gettempdir()) / "evalmon-test-pycache"))
    env.update(extra)
    return env


def _run(args: list[str], env: dict[str, str]) -> tuple[float, subprocess.CompletedProcess[str]]:
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "evalmon.cli", "run", *args], cwd=REPO, env=env, text=True,
                          capture_output=True, stdin=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"evalmon run {' '.join(args)} exited {proc.returncode}:\n{proc.stderr[-3000:]}")
    return wall, proc


def _results(proc: subprocess.CompletedProcess[str]) -> dict:  # type: ignore[type-arg]
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("results: ")][-1]
    return json.loads((Path(line.removeprefix("results: ").strip()) / "results.json").read_text())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--suite", default="suites/medical.yaml")
    ap.add_argument("--limit", type=int, default=20)
    ap.add_argument("--model", help="hf checkpoint directory (default: the suite's)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--tracking", action="store_true", help="log every run to a throwaway local MLflow store")
    ap.add_argument("--baseline", action="store_true", help="also time warm reruns that load the model")
    opts = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="evalmon-bench-cache-"))
    args = [opts.suite, "--limit", str(opts.limit), "--output", str(work / "reports")]
    args += ["--model", f"hf:{opts.model}"] if opts.model else []
    args += ["--tracking-uri", f"sqlite:///{work / 'mlflow.db'}"] if opts.tracking else ["--no-tracking"]
    memo = work / "evalmon-cache"

    cold_s, cold = _run(args, _env(memo))
    warm: list[float] = []
    for _ in range(opts.repeats):
        wall, proc = _run(args, _env(memo, EVALMON_FORBID_MODEL_LOAD="1"))
        warm.append(wall)
        assert "model not loaded: every request was cached" in proc.stderr, proc.stderr[-2000:]
    before, after = _results(cold), _results(proc)
    computed = sum(t["timing"]["computed"] for t in after["tasks"].values())
    same = all(after["tasks"][k]["metrics"] == v["metrics"] for k, v in before["tasks"].items())
    print(f"{' '.join(['evalmon run', *args])}")
    print(f"cold {cold_s:.1f} s · warm (fully cached, model not loaded) median {statistics.median(warm):.1f} s "
          f"of {', '.join(f'{w:.1f}' for w in warm)} · warm computed {computed} requests · "
          f"identical metrics and model fingerprint: {same and before['model'] == after['model']}")
    if opts.baseline:
        eager = []
        for i in range(opts.repeats):  # an empty fingerprint memo: the model loads (the behaviour before)
            eager.append(_run(args, _env(work / f"empty-memo-{i}"))[0])
        print(f"warm with the model loaded (empty fingerprint memo): median {statistics.median(eager):.1f} s of "
              f"{', '.join(f'{w:.1f}' for w in eager)}")


if __name__ == "__main__":
    main()

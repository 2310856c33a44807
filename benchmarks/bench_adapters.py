"""N LoRA adapters of one base in ONE `evalmon run` vs one run per adapter: wall time, peak memory, numbers.

    python benchmarks/bench_adapters.py [--n 8] [--limit 40] [--tasks hellaswag] [--model DIR] [--quick]

Creates N LoRA adapters of the base (default: SmolLM2-135M-Instruct in .evalmon/checkpoints/, r=8 on
q/k/v/o, random non-zero B with a fixed seed each, so they differ), then times, as CLI subprocesses on fresh
response caches (tracking off):

* one run: ``evalmon run SUITE --adapters a0=…,…`` — the base loads once and answers for base + N adapters;
* separate runs: ``evalmon run SUITE --model hf:BASE`` and ``--model hf:BASE,adapter=aI`` for each adapter
  (N + 1 processes, the same results as the one run).

Peak memory is each process's max RSS (``os.wait4``). Identical numbers: every adapter's per-document
loglikelihoods and metrics in the one run must equal its separate run's (|Δ| ≤ 1e-5, asserted). Prints
the figures and the ratios (separate / one). ``--quick``: N = 2, 8 documents.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_MODEL = REPO / ".evalmon" / "checkpoints" / "smollm2-135m-instruct"
DEFAULT_DATA = REPO.parent / "shared" / "benchmarks"


def make_adapters(base: Path, out: Path, n: int) -> dict[str, Path]:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    paths = {}
    for i in range(n):
        torch.manual_seed(100 + i)
        peft = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "k_proj", "v_proj",
                                                                                     "o_proj"],
                                                init_lora_weights=False), adapter_name=f"a{i}")
        peft.save_pretrained(out / f"a{i}", selected_adapters=[f"a{i}"])
        model = peft.unload()  # the base, without this adapter's layers, for the next one
        src = out / f"a{i}" / f"a{i}"  # peft saves a non-default adapter in a subfolder
        if src.is_dir():
            for f in src.iterdir():
                f.rename(out / f"a{i}" / f.name)
            src.rmdir()
        paths[f"a{i}"] = out / f"a{i}"
    return paths


def run(args: list[str], cwd: Path, cache_dir: Path) -> tuple[float, int, Path]:
    """``evalmon run ARGS``: (wall seconds, peak RSS in MiB, the run directory)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false",
               EVALMON_CACHE_DIR=str(cache_dir), NO_COLOR="1", TERM="dumb", COLUMNS="200")
    log = cwd / f"log-{time.monotonic_ns()}.txt"
    t0 = time.perf_counter()
    with log.open("w") as fh:
        proc = subprocess.Popen([sys.executable, "-m", "evalmon.cli", "run", *args], cwd=cwd, env=env, stdout=fh,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        sys.exit(f"evalmon run {' '.join(args)} exited {proc.returncode}:\n{log.read_text()[-3000:]}")
    line = next(x for x in reversed(log.read_text().splitlines()) if x.startswith("results: "))
    return wall, usage.ru_maxrss // 1024, Path(line.removeprefix("results: ").strip())


def samples(run_dir: Path) -> dict[tuple[str, str], list[float]]:
    with gzip.open(run_dir / "samples.jsonl.gz", "rt", encoding="utf-8") as fh:
        rows = [json.loads(x) for x in fh if x.strip()]
    return {(r["task"], r["doc_id"]): r["loglikelihoods"] for r in rows}


def metrics(run_dir: Path) -> dict[str, float]:
    data = json.loads((run_dir / "results.json").read_text(encoding="utf-8"))
    return {f"{t}/{m}": v["value"] for t, r in data["tasks"].items() for m, v in r["metrics"].items()}


def max_delta(a: dict[tuple[str, str], list[float]], b: dict[tuple[str, str], list[float]]) -> float:
    assert a.keys() == b.keys(), "the runs scored different documents"
    return max((abs(x - y) for k in a for x, y in zip(a[k], b[k], strict=True)), default=0.0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=8)
    ap.add_argument("--limit", type=int, default=40)
    ap.add_argument("--tasks", default="hellaswag")
    ap.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    ap.add_argument("--data-dir", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--quick", action="store_true", help="N = 2 adapters, 8 documents")
    a = ap.parse_args()
    n, limit = (2, 8) if a.quick else (a.n, a.limit)
    with tempfile.TemporaryDirectory(prefix="bench-adapters-") as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        adapters = make_adapters(a.model.resolve(), root / "adapters", n)
        print(f"{n} LoRA adapters of {a.model.name} created in {time.perf_counter() - t0:.1f} s")
        suite = root / "suite.yaml"
        suite.write_text(json.dumps({"name": "bench-adapters", "model": {"path": str(a.model.resolve())},
                                     "data": {"data_dir": str(a.data_dir.resolve())}, "tracking": {"enabled": False},
                                     "tasks": [{"name": t, "limit": limit} for t in a.tasks.split(",")]}))
        spec = ",".join(f"{k}={v}" for k, v in adapters.items())
        one_wall, one_rss, one_dir = run([str(suite), "--adapters", spec, "--output", str(root / "one")], root,
                                         root / "cache-one")
        print(f"one run (base + {n} adapters): {one_wall:.1f} s, peak RSS {one_rss} MiB")
        sep_wall, sep_rss, worst = 0.0, 0, 0.0
        for name in ["base", *adapters]:
            model = f"hf:{a.model.resolve()}" + (f",adapter={adapters[name]}" if name != "base" else "")
            wall, rss, run_dir = run([str(suite), "--model", model, "--output", str(root / f"sep-{name}")], root,
                                     root / f"cache-{name}")
            sep_wall, sep_rss = sep_wall + wall, max(sep_rss, rss)
            mine = one_dir if name == "base" else one_dir / "adapters" / name
            delta = max_delta(samples(mine), samples(run_dir))
            worst = max(worst, delta)
            same = metrics(mine) == metrics(run_dir)
            print(f"  separate run {name}: {wall:.1f} s, peak RSS {rss} MiB, max |Δll| vs the one run {delta:.1e}, "
                  f"metrics identical: {same}")
            assert delta <= 1e-5 and same, f"{name}: the one run's numbers differ from its separate run's"
            if name != "base":
                moved = max_delta(samples(mine), samples(one_dir))
                print(f"    adapter {name} vs base in the one run: max |Δll| {moved:.3f} (the adapter is applied)")
                assert moved > 1e-3, f"adapter {name} changed nothing: it was not applied"
        print(f"separate runs (base + {n} adapters, {n + 1} processes): {sep_wall:.1f} s, largest peak RSS "
              f"{sep_rss} MiB")
        print(f"ratio separate / one: wall {sep_wall / one_wall:.2f}×, peak RSS of one process "
              f"{sep_rss / one_rss:.2f}× (the one run holds base + {n} adapters); identical numbers: max |Δll| "
              f"{worst:.1e} over {len(samples(one_dir))} documents × {n + 1} variants")
        pressure = Path("/proc/pressure/cpu")
        if pressure.is_file():
            print("cpu pressure:", pressure.read_text().splitlines()[0])


if __name__ == "__main__":
    main()

"""Start-up cost of the CLI: `evalmon --help` and `evalmon tasks` must stay under 1 s.

    python benchmarks/bench_startup.py [--repeats 5]

Prints wall and user+sys CPU seconds (median over repeats) and the CPU pressure, since a loaded
machine inflates wall time but not CPU time.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

EVALMON = [sys.executable, "-m", "evalmon.cli"]


def measure(cmd: list[str], repeats: int) -> tuple[float, float]:
    walls, cpus = [], []
    for _ in range(repeats):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        walls.append(time.perf_counter() - t0)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append((after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime))
    return statistics.median(walls), statistics.median(cpus)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    pressure = Path("/proc/pressure/cpu").read_text().splitlines()[0] if os.path.exists("/proc/pressure/cpu") else "n/a"
    print(f"cpu pressure: {pressure}")
    for name, extra in (("evalmon --help", ["--help"]), ("evalmon tasks", ["tasks"])):
        wall, cpu = measure(EVALMON + extra, args.repeats)
        print(f"{name:16} wall {wall:.3f} s   cpu {cpu:.3f} s   {'OK' if wall < 1 else 'over 1 s'}")


if __name__ == "__main__":
    main()

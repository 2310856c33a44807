"""The monitor on Spark (``executor: spark``) vs the local executor on the same partitioned Parquet traffic.

    .venv/bin/python benchmarks/bench_monitor_spark.py [--base 100000] [--days 10] [--hours-per-day 24]
        [--modes local,spark1,spark2,spark2py] [--json out.json]

Traffic: ``--base`` records from ``evalmon traffic synth`` (parquet, one day, real public text), tiled over
``--days`` consecutive days (timestamps shifted by whole days, request ids suffixed) into a hive-partitioned
Parquet dataset ``dt=YYYY-MM-DD/part-0.parquet``: ``base × days`` records. Tiling keeps the set-up cheap
(synthesising costs ~0.3 ms per record here) and gives every day the same distribution. A ``seed/`` folder
already in ``--work`` (a synth Parquet dataset) is reused; ``traffic/`` too, if present. The days start on
2026-11-01 and may lie after today: the source's ``timestamp_max_ahead`` is set to cover them (``--days`` + 1
days; by default a record more than a day after *now* is quarantined as ``timestamp.implausible``, so a
100-day span run on 2026-12-06 read only its first 36.7 days), and each mode reports ``records_in_traffic``
next to ``records`` (``complete`` false when they differ).

The monitor: 1 h windows over the whole span (``--backfill``), signals ``text`` (no language id) and
``usage``, drift vs the previous window (evidently on the reservoir, ``reservoir_rows`` 50,000), quality
checks (great-expectations), no HTML, MLflow off (its upload time is the server's). Each mode runs in its own
subprocess: ``local`` (the local executor), ``spark1`` / ``spark2`` (``local[1]`` / ``local[2]`` masters,
``spark.reads: native``: ``spark.read.parquet``), ``spark1py`` / ``spark2py`` (the same with ``spark.reads:
python``: each task runs the source's Parquet reader on its (window, file) cell).
Printed per mode: wall seconds, records/s, peak RSS of the driver process and of its children (the JVM
and Spark's Python workers; ``RUSAGE_CHILDREN``: the largest one), and the CPU pressure of the machine
(``/proc/pressure/cpu`` before, after, and ``some avg10`` sampled every 5 s during the mode) and the CPU seconds
of the mode's process tree (driver, JVM, Python workers) with records per CPU-second. While a mode runs, its
log lines go to ``<work>/<mode>.progress.log`` with the elapsed seconds and the driver's peak RSS so far.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import textwrap
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
T0 = datetime(2026, 11, 1, tzinfo=UTC)


def make_traffic(work: Path, base: int, days: int, hours: int) -> Path:
    """``base`` synthetic records tiled over ``days`` days as hive-partitioned Parquet (see the docstring)."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from evalmon.traffic.synth import SynthConfig, synthesize

    out = work / "traffic"
    if out.exists():
        return out
    seed_dir = work / "seed"
    if not seed_dir.exists():
        synthesize(SynthConfig(out=seed_dir, start=T0.isoformat(), hours=hours, rate_per_hour=base / hours,
                                seed=7,
                               format="parquet", data_dir=REPO.parent / "shared" / "benchmarks"))
    table = pq.read_table(next(seed_dir.rglob("*.parquet")))
    ts_type = table.schema.field("timestamp").type
    for d in range(days):
        day = T0 + timedelta(days=d)
        cols = {}
        for name in table.column_names:
            col = table[name]
            if name == "timestamp" and pa.types.is_timestamp(ts_type):  # microseconds: Spark refuses TIMESTAMP(NANOS)
                col = pc.add(col, pa.scalar(timedelta(days=d), pa.duration(ts_type.unit)))
                col = pc.cast(col, pa.timestamp("us", tz=ts_type.tz), safe=False)
            elif name == "request_id":
                col = pc.binary_join_element_wise(pc.cast(col, pa.string()), pa.scalar(f"-{d}"), "")
            cols[name] = col
        part = out / f"dt={day.date().isoformat()}"
        part.mkdir(parents=True)
        pq.write_table(pa.table(cols), part / "part-0.parquet")
    return out


def monitor_yaml(work: Path, mode: str, window: str = "1h", driver_memory: str = "2g", days: int = 10) -> Path:
    """The mode's monitor YAML; ``timestamp_max_ahead`` admits the whole tiled span whatever today's date."""
    executor = "local" if mode == "local" else "spark"
    master = {"spark1": "local[1]", "spark2": "local[2]"}.get(mode.removesuffix("py"), "local[2]")
    reads = "python" if mode.endswith("py") else "native"  # spark2py: each task runs the Parquet reader
    path = work / f"{mode}.yaml"
    path.write_text(textwrap.dedent(f"""\
        name: bench-{mode}
        source: {{kind: parquet, path: traffic, timestamp_max_ahead: {days + 1}d}}
        window: {{size: {window}, max_windows_per_run: 100000}}
        executor: {executor}
        spark: {{master: '{master}', conf: {{spark.driver.memory: {driver_memory}, spark.driver.maxResultSize: '0', spark.sql.shuffle.partitions: '2'}}, reads: {reads}}}
        signals: [{{name: text, language: false}}, usage]
        drift: {{text_drift: false, embedding_drift: false}}
        report: none
        tracking: {{enabled: false}}
        output_dir: out-{mode}
        """), encoding="utf-8")
    return path


def part(args: argparse.Namespace, work: Path, mode: str) -> dict[str, Any]:
    """One mode, in this process (run as a subprocess by ``main``)."""
    from evalmon.config.monitor import load_monitor
    from evalmon.monitor.runner import run_monitor

    cfg = load_monitor(monitor_yaml(work, mode, args.window, args.driver_memory, args.days))
    end = T0 + timedelta(days=args.days)
    t = time.perf_counter()
    said: list[str] = []
    progress = (work / f"{mode}.progress.log").open("a", encoding="utf-8")  # readable while the mode runs

    def log(line: str) -> None:
        said.append(line)
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        progress.write(f"{time.perf_counter() - t:8.1f}s driver peak {rss:6.0f} MB  {line}\n")
        progress.flush()

    res = run_monitor(cfg, backfill=(T0, end), now=end + timedelta(hours=1), log_fn=log)
    progress.close()
    wall = time.perf_counter() - t
    jvm_mb = None
    if mode != "local":  # the JVM (a child of the driver, alive until the session stops): its RSS now
        from pyspark.sql import SparkSession

        active = SparkSession.getActiveSession()
        jvm_mb = _children_rss_mb()
        if active is not None:
            active.stop()
    driver = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    total = traffic_records(work / "traffic")
    return {"mode": mode, "records": res.processed, "records_in_traffic": total,
            "complete": res.processed == total, "windows": len(res.windows), "seconds": round(wall, 1),
            "records_per_s": round(res.processed / wall), "driver_peak_mb": round(driver),
            "jvm_and_workers_rss_mb_at_end": jvm_mb,
            "alerts": len(res.alerts), "quarantined": res.quarantined,
            "reads": next((x for x in said if x.startswith(("spark.read fed", "spark.reads"))), None)}


def traffic_records(folder: Path) -> int:
    """Rows in the tiled dataset (from the Parquet footers): what a complete run processes."""
    import pyarrow.parquet as pq

    return sum(pq.ParquetFile(f).metadata.num_rows for f in folder.rglob("*.parquet"))


def _children_rss_mb() -> int:
    """Summed RSS of this process's descendants (the JVM and Spark's Python workers), from /proc."""
    me, total = str(os.getpid()), 0
    parents: dict[str, str] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[stat.parent.name] = fields[1]
    for pid in parents:
        p = pid
        while p in parents and p != me:
            p = parents[p]
        if p == me and pid != me:
            try:
                rss = next(x for x in Path(f"/proc/{pid}/status").read_text().splitlines() if x.startswith("VmRSS"))
                total += int(rss.split()[1])
            except (OSError, StopIteration):
                continue
    return round(total / 1024)


def _pressure() -> str:
    try:
        return Path("/proc/pressure/cpu").read_text().splitlines()[0]
    except OSError:
        return "n/a"


class PressureSampler:
    """While a mode runs, every ``every`` seconds: ``/proc/pressure/cpu`` ``some avg10`` (other work on the
    cores) and the CPU seconds (user + system, the last value seen per process) of the mode's process tree —
    the driver, the JVM and Spark's Python workers: records per CPU-second do not depend on how much of the
    cores other work left this run, wall-clock records/s do."""

    def __init__(self, pid: int, every: float = 5.0) -> None:
        import threading

        self.pid = pid
        self.values: list[float] = []
        self.cpu: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(every,), daemon=True)
        self._thread.start()

    def _run(self, every: float) -> None:
        while True:
            self._sample_cpu()
            with contextlib.suppress(IndexError, ValueError):
                self.values.append(float(_pressure().split("avg10=")[1].split()[0]))
            if self._stop.wait(every):
                return

    def _sample_cpu(self) -> None:
        tck = os.sysconf("SC_CLK_TCK")
        parents: dict[int, int] = {}
        ticks: dict[int, float] = {}
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            pid = int(stat.parent.name)
            parents[pid], ticks[pid] = int(fields[1]), (int(fields[11]) + int(fields[12])) / tck
        for pid, t in ticks.items():
            p = pid
            while p in parents and p not in (self.pid, 0, 1):
                p = parents[p]
            if p == self.pid:
                self.cpu[pid] = max(self.cpu.get(pid, 0.0), t)

    def stop(self) -> dict[str, float | int | None]:
        self._stop.set()
        self._thread.join()
        v = self.values
        return {"samples": len(v), "mean": round(sum(v) / len(v), 1) if v else None,
                "min": min(v) if v else None, "max": max(v) if v else None}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--base", type=int, default=100_000)
    ap.add_argument("--days", type=int, default=10)
    ap.add_argument("--hours-per-day", type=int, default=24)
    ap.add_argument("--modes", default="local,spark1,spark2,spark2py")
    ap.add_argument("--window", default="1h", help="window size (fewer, larger windows: less per-window cost)")
    ap.add_argument("--driver-memory", default="2g", help="spark.driver.memory (local mode: the executors' heap "
                    "too; the fit pass's first job collects its cells' whole fitting views, ~30 MB per 100k-record cell; later "
                    "jobs only the rows below the basis reservoir's bound)")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--part")
    ap.add_argument("--work", type=Path)
    args = ap.parse_args()
    if args.part:
        print(json.dumps(part(args, args.work, args.part)))
        return
    work = args.work or Path(tempfile.mkdtemp(prefix="bench-spark-"))
    t = time.perf_counter()
    make_traffic(work, args.base, args.days, args.hours_per_day)
    print(f"traffic: {args.base} x {args.days} days in {work / 'traffic'} ({time.perf_counter() - t:.0f} s)", flush=True)
    results = []
    for mode in args.modes.split(","):
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
        if env.get("PYTHONDONTWRITEBYTECODE") and not env.get("PYTHONPYCACHEPREFIX"):  # else every process
            env["PYTHONPYCACHEPREFIX"] = str(work / "pycache")  # recompiles its imports (~45 s under load)
        cmd = [sys.executable, __file__, "--part", mode, "--work", str(work), "--base", str(args.base),
               "--days", str(args.days), "--window", args.window, "--driver-memory", args.driver_memory]
        before = _pressure()
        proc = subprocess.Popen(cmd, cwd=work, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        sampler = PressureSampler(proc.pid)
        stdout, stderr = proc.communicate()
        during = sampler.stop()
        cpu_s = round(sum(sampler.cpu.values()), 1)
        line = next((x for x in reversed(stdout.splitlines()) if x.startswith("{")), None)
        if proc.returncode or line is None:
            print(f"{mode}: failed (rc {proc.returncode})\n{stderr[-2000:]}", flush=True)
            continue
        row = json.loads(line)
        row |= {"cpu_seconds": cpu_s, "records_per_cpu_s": round(row["records"] / cpu_s) if cpu_s else None,
                "cpu_pressure_before": before, "cpu_pressure": _pressure(), "cpu_pressure_avg10_during": during}
        results.append(row)
        print(json.dumps(row), flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()

"""Helpers for end-to-end CLI tests: run the real ``evalmon`` console entry point in a subprocess.

Every call runs ``python -m evalmon.cli`` (what the ``evalmon`` script calls) with ``cwd`` set to the
test's directory, the hub offline and stdout/stderr captured as text (not a terminal: rich's 80-column
default, no colour — what CI logs and pipes see).

Speed: the subprocesses keep compiled bytecode outside the source tree (``PYTHONPYCACHEPREFIX``, see
``conftest.py``) instead of recompiling torch and transformers on every start.
"""

from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

PYCACHE = os.environ.get("PYTHONPYCACHEPREFIX") or str(Path(tempfile.gettempdir()) / "evalmon-test-pycache")
RUN_TIMEOUT_S = 240


def cli_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in {"PYTHONDONTWRITEBYTECODE", "COLUMNS", "LINES", "FORCE_COLOR", "EVALMON_MODEL",
                        "EVALMON_DATA_DIR", "EVALMON_DEFAULT_MODEL", "MLFLOW_TRACKING_URI"}}
    env.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
               TOKENIZERS_PARALLELISM="false", PYTHONPYCACHEPREFIX=PYCACHE, PYTHONIOENCODING="utf-8", NO_COLOR="1", TERM="dumb")
    env.update(extra)
    return env


def evalmon_cmd(*args: str | os.PathLike[str]) -> list[str]:
    return [sys.executable, "-m", "evalmon.cli", *map(str, args)]


def _ctrl_c_reaches_the_child() -> None:
    """In the child before exec: SIGINT at its default, as in a terminal. A shell without job control starts
    background jobs (CI launched with `&`, nohup) with SIGINT ignored; an ignored signal stays ignored across
    exec, so Python would never raise KeyboardInterrupt and the Ctrl-C tests would test nothing."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class Background:
    """``evalmon <args>`` in ``cwd``, started now; ``result()`` waits for it.

    Independent runs are started together and awaited later: most of a run is importing torch and
    transformers, and two cores do two of those at once. Output goes to temporary files (a pipe that
    nobody reads could fill up and block the process).
    """

    def __init__(self, cwd: Path, *args: str | os.PathLike[str], env: dict[str, str] | None = None) -> None:
        self._out = tempfile.TemporaryFile("w+", encoding="utf-8")  # noqa: SIM115 - closed in result()
        self._err = tempfile.TemporaryFile("w+", encoding="utf-8")  # noqa: SIM115
        self.proc = subprocess.Popen(evalmon_cmd(*args), cwd=cwd, env=env or cli_env(), stdout=self._out,
                                     stderr=self._err, stdin=subprocess.DEVNULL, text=True,
                                     preexec_fn=_ctrl_c_reaches_the_child)
        self._done: subprocess.CompletedProcess[str] | None = None

    def result(self, timeout: float = RUN_TIMEOUT_S) -> subprocess.CompletedProcess[str]:
        if self._done is None:
            try:
                self.proc.wait(timeout)
            finally:
                self.stop()
            texts = []
            for fh in (self._out, self._err):
                fh.seek(0)
                texts.append(fh.read())
                fh.close()
            self._done = subprocess.CompletedProcess(self.proc.args, self.proc.returncode, *texts)
        return self._done

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def run_cli(cwd: Path, *args: str | os.PathLike[str], env: dict[str, str] | None = None,
            timeout: float = RUN_TIMEOUT_S) -> subprocess.CompletedProcess[str]:
    """``evalmon <args>`` in ``cwd``; returns the finished process (never raises on a non-zero exit)."""
    return Background(cwd, *args, env=env).result(timeout)


def show(proc: subprocess.CompletedProcess[str]) -> str:
    """Both streams, for assertion messages."""
    return f"exit {proc.returncode}\n--- stdout ---\n{proc.stdout}\n--- stderr ---\n{proc.stderr}"


def write_suite(path: Path, suite: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(suite, sort_keys=False), encoding="utf-8")
    return path


def suite_dict(checkpoint: Path | str, data_dir: Path | str, *, tasks: list[Any], name: str = "e2e",
               **top: Any) -> dict[str, Any]:
    """A suite mapping with absolute model/data paths; ``top`` adds or replaces top-level keys."""
    model = {"path": str(checkpoint), "batch_size": 8}
    model.update(top.pop("model", {}))
    return {"name": name, "model": model, "data": {"data_dir": str(data_dir)}, "tasks": tasks, **top}


def run_dirs(output_dir: Path) -> list[Path]:
    """The run directories under an output dir (the cache directory is not one)."""
    if not output_dir.is_dir():
        return []
    return sorted(p for p in output_dir.iterdir() if p.is_dir() and not p.name.startswith("."))


def only_run_dir(output_dir: Path) -> Path:
    dirs = run_dirs(output_dir)
    assert len(dirs) == 1, f"expected one run directory in {output_dir}, found {[d.name for d in dirs]}"
    return dirs[0]


def load_results(run_dir: Path) -> dict[str, Any]:
    return json.loads((run_dir / "results.json").read_text(encoding="utf-8"))


def load_samples(run_dir: Path) -> list[dict[str, Any]]:
    with gzip.open(run_dir / "samples.jsonl.gz", "rt", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def assert_no_traceback(proc: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout, show(proc)


def assert_user_error(proc: subprocess.CompletedProcess[str], *needles: str) -> str:
    """Exit 2, no traceback, stderr is exactly one line ``error: …`` containing every needle."""
    assert proc.returncode == 2, show(proc)
    assert_no_traceback(proc)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, f"stderr must be one line:\n{show(proc)}"
    line = lines[0]
    assert line.startswith("error: "), show(proc)
    for needle in needles:
        assert needle in line, f"{needle!r} missing from the error line:\n{line}"
    return line


def cache_rows(path: Path, table: str = "loglikelihood") -> int:
    """Rows in a response-cache table (0 while the file or table does not exist or a writer holds the lock)."""
    import sqlite3

    if not path.is_file():
        return 0
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=1) as db:
            return int(db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])
    except sqlite3.Error:
        return 0


def signal_after_first_cached(cwd: Path, cache: Path, signum: int, *args: str | os.PathLike[str],
                              timeout: float = 180) -> subprocess.CompletedProcess[str]:
    """Start ``evalmon <args>``, send ``signum`` once its first scored request is in ``cache``, wait for it."""
    import time

    proc = subprocess.Popen(evalmon_cmd(*args), cwd=cwd, env=cli_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
                            preexec_fn=_ctrl_c_reaches_the_child)
    try:
        deadline = time.monotonic() + timeout
        while cache_rows(cache) == 0:
            assert proc.poll() is None, f"run ended before the signal: {proc.communicate()}"
            assert time.monotonic() < deadline, "no scored request reached the cache"
            time.sleep(0.05)
        proc.send_signal(signum)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)

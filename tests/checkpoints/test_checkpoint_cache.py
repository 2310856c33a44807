"""The user-cache machinery behind real checkpoints, without a model: where the cache is, the cross-process
lock, the atomic publish, the progress heartbeat, the project install (hard links) and the CLI's checks."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cli_util import assert_user_error, cli_env, run_cli

from evalmon.checkpoints.cache import cache_root, staging
from evalmon.checkpoints.heartbeat import heartbeat
from evalmon.checkpoints.project import install, known_name
from evalmon.checkpoints.real import is_complete, write_provenance
from evalmon.core.errors import ConfigError

pytestmark = pytest.mark.unit


def test_cache_root_precedence(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("EVALMON_CACHE_DIR", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_root() == tmp_path / "home" / ".cache" / "evalmon"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_root() == tmp_path / "xdg" / "evalmon"
    monkeypatch.setenv("EVALMON_CACHE_DIR", str(tmp_path / "mine"))
    assert cache_root() == tmp_path / "mine"


_HOLDER = """
import sys, time
from pathlib import Path
from evalmon.checkpoints.cache import locked
target, mark = Path(sys.argv[1]), Path(sys.argv[2])
with locked(target, log=lambda m: print(m, flush=True)):
    mark.write_text(f"{time.monotonic()} start\\n", encoding="utf-8")
    time.sleep(1.0)
    with mark.open("a", encoding="utf-8") as fh:
        fh.write(f"{time.monotonic()} end\\n")
"""


def test_lock_serialises_two_processes_and_says_it_waits(tmp_path: Path) -> None:
    target = tmp_path / "checkpoints" / "x"
    target.parent.mkdir()
    a = subprocess.Popen([sys.executable, "-c", _HOLDER, str(target), str(tmp_path / "a")], text=True,
                         stdout=subprocess.PIPE, env=cli_env())
    while not (tmp_path / "a").exists():  # a holds the lock now
        assert a.poll() is None, a.communicate()
        time.sleep(0.02)
    b = subprocess.run([sys.executable, "-c", _HOLDER, str(target), str(tmp_path / "b")], text=True,
                       capture_output=True, env=cli_env(), check=True)
    a.communicate(timeout=30)
    a_end = float((tmp_path / "a").read_text(encoding="utf-8").splitlines()[1].split()[0])
    b_start = float((tmp_path / "b").read_text(encoding="utf-8").split()[0])
    assert b_start >= a_end  # never both inside
    assert "waiting for another evalmon process" in b.stdout and str(target) in b.stdout


def test_staging_publishes_only_complete_directories(tmp_path: Path) -> None:
    final = tmp_path / "ckpt"
    (tmp_path / ".ckpt.tmp-killed").mkdir()  # what a SIGKILLed conversion leaves behind
    with pytest.raises(RuntimeError), staging(final) as tmp:
        (tmp / "model.safetensors").write_bytes(b"half")
        raise RuntimeError("conversion died")
    assert list(tmp_path.iterdir()) == []  # nothing published, the temporary directory removed
    with staging(final) as tmp:
        (tmp / "model.safetensors").write_bytes(b"weights")
        write_provenance(tmp, {"name": "x"})
    assert is_complete(final) and [p.name for p in tmp_path.iterdir()] == ["ckpt"]
    (final / "model.safetensors").write_bytes(b"trunc")  # a size that no longer matches the record
    assert not is_complete(final)


def test_heartbeat_prints_lines_without_a_tty() -> None:
    lines: list[str] = []
    with heartbeat(lines.append, "converting", every=0.05):
        deadline = time.monotonic() + 10  # wait for two beats, not a fixed time: a loaded CI box lags the thread
        while len([ln for ln in lines if ln.endswith(" s")]) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
    assert lines[0] == "converting…" and lines[-1].startswith("converting: done in")
    assert len([ln for ln in lines if ln.endswith(" s") and "…" in ln]) >= 2
    quick: list[str] = []
    with heartbeat(quick.append, "reading", every=0.05, announce_after=0.5):
        pass  # done before announce_after: silent (an error right after stays the only line)
    assert quick == []


def test_install_hard_links_a_cached_checkpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = tmp_path / "cache"
    src = cache / "checkpoints" / "smollm2-135m-instruct"
    src.mkdir(parents=True)
    (src / "model.safetensors").write_bytes(b"w" * 100)
    write_provenance(src, {"name": "smollm2-135m-instruct", "gguf": {"sha256": "ab"}})
    monkeypatch.setenv("EVALMON_CACHE_DIR", str(cache))
    dest = tmp_path / "proj" / ".evalmon" / "checkpoints" / "smollm2-135m-instruct"
    assert known_name(dest) == "smollm2-135m-instruct" and known_name(tmp_path / "smollm2-135m-instruct") is None
    assert install("smollm2-135m-instruct", dest) == dest
    assert (dest / "model.safetensors").stat().st_ino == (src / "model.safetensors").stat().st_ino
    assert json.loads((dest / "evalmon_checkpoint.json").read_text(encoding="utf-8"))["gguf"] == {"sha256": "ab"}


def test_install_never_replaces_a_folder_of_the_users(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`evalmon init --path "my work"` deleted the folder's files (and `--path .` the working directory's): the
    staging step replaced any existing destination. Only an empty folder or an evalmon checkpoint is replaced."""
    src = tmp_path / "cache" / "checkpoints" / "smollm2-135m-instruct"
    src.mkdir(parents=True)
    (src / "model.safetensors").write_bytes(b"w" * 100)
    write_provenance(src, {"name": "smollm2-135m-instruct", "gguf": {"sha256": "ab"}})
    monkeypatch.setenv("EVALMON_CACHE_DIR", str(tmp_path / "cache"))
    work = tmp_path / "my work"
    (work / "sub").mkdir(parents=True)
    (work / "notes.txt").write_text("precious")
    (work / "sub" / "data.csv").write_text("x")
    (tmp_path / "afile").write_text("mine")
    for dest, says in ((work, "not empty and holds no evalmon checkpoint"), (tmp_path / "afile", "is a file")):
        with pytest.raises(ConfigError, match=says):
            install("smollm2-135m-instruct", dest)
    assert (work / "notes.txt").read_text() == "precious" and (work / "sub" / "data.csv").is_file()
    assert (tmp_path / "afile").read_text() == "mine"
    empty = tmp_path / "empty"
    empty.mkdir()
    for dest in (empty, empty):  # an empty folder, then the checkpoint evalmon wrote there: both replaced
        assert install("smollm2-135m-instruct", dest) == dest and (dest / "model.safetensors").is_file()


def test_init_into_a_users_folder_or_negative_steps_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "mine.txt").write_text("precious")
    assert_user_error(run_cli(tmp_path, "init", "--model", "tiny", "--path", "."), "not empty", "--path")
    assert_user_error(run_cli(tmp_path, "init", "--model", "tiny", "--train-steps", "-1", "--path", "t"),
                      "--train-steps -1")
    assert (tmp_path / "mine.txt").read_text() == "precious" and not (tmp_path / "t").exists()


def test_init_unknown_model_is_one_line(tmp_path: Path) -> None:
    assert_user_error(run_cli(tmp_path, "init", "--model", "smollm2"), "--model 'smollm2'",
                      "smollm2-135m-instruct", "gemma3-270m", "tiny")

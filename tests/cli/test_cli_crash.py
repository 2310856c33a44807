"""The CLI's last resort: an unexpected exception is one ``error:`` line and exit 2, never a traceback."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

from evalmon.cli import app as cli


def _crash_with(monkeypatch: pytest.MonkeyPatch, exc: BaseException) -> None:
    def boom(*args: object, **kwargs: object) -> int:
        raise exc

    monkeypatch.setattr(cli, "app", boom)


@pytest.mark.parametrize(("exc", "expected"), [
    (RuntimeError("kaboom\nsecond line"), "internal error: RuntimeError: kaboom second line — please report it"),
    (MemoryError(), "out of memory"),
    (OSError(errno.ENOSPC, "No space left on device", "/data/samples.jsonl.gz"),
     "no space left on device (/data/samples.jsonl.gz) — free disk space and rerun"),
])
def test_unexpected_exception_is_one_line_exit_2(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str], exc: BaseException,
                                                 expected: str) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("EVALMON_DEBUG", raising=False)
    _crash_with(monkeypatch, exc)
    with pytest.raises(SystemExit) as done:
        cli.main()
    assert done.value.code == 2  # not 1: for `evalmon gate`, 1 means "regression"
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and expected in err, err
    assert "Traceback" not in err
    kept = list((tmp_path / ".evalmon" / "crash").glob("*.txt"))
    assert len(kept) == 1 and "Traceback" in kept[0].read_text() and str(kept[0]) in err


def test_debug_env_reraises(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("EVALMON_DEBUG", "1")
    _crash_with(monkeypatch, RuntimeError("kaboom"))
    with pytest.raises(RuntimeError, match="kaboom"):
        cli.main()

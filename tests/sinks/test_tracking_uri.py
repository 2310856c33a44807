"""The one rule for where MLflow lives, in every command: ``--tracking-uri`` > the YAML's ``tracking.uri`` >
``$MLFLOW_TRACKING_URI`` > the local store — the pure function, the suite and monitor overrides that apply
it, the gate's reader, and the one redacted line each command prints about it (all in-process, no server)."""

from __future__ import annotations

from pathlib import Path

import pytest

from evalmon.config.monitor import apply_overrides as monitor_overrides
from evalmon.config.monitor import load_monitor_text
from evalmon.config.suite import apply_overrides, load_suite_text
from evalmon.config.tracking import FROM_ENV, FROM_FLAG, FROM_LOCAL, FROM_YAML, choose_tracking_uri
from evalmon.core.errors import ConfigError
from evalmon.gate.resolve import tracking_uri_for
from evalmon.sinks.mlflow.client import store_line

FLAG, YAML, ENV = "http://flag:5000", "http://yaml:5000", "http://env:5000"


@pytest.mark.parametrize(("flag", "yaml", "env", "expected"), [
    (FLAG, YAML, ENV, (FLAG, FROM_FLAG)),
    (FLAG, None, None, (FLAG, FROM_FLAG)),
    (None, YAML, ENV, (YAML, FROM_YAML)),
    (None, YAML, None, (YAML, FROM_YAML)),
    (None, None, ENV, (ENV, FROM_ENV)),
    (None, "  ", ENV, (ENV, FROM_ENV)),   # `uri: ${MLFLOW_TRACKING_URI:-}` left blank
    (None, None, "", (None, FROM_LOCAL)),  # an empty secret in CI counts as unset
    (None, None, None, (None, FROM_LOCAL)),
])
def test_precedence_table(flag: str | None, yaml: str | None, env: str | None,
                          expected: tuple[str | None, str]) -> None:
    environ = {} if env is None else {"MLFLOW_TRACKING_URI": env}
    assert choose_tracking_uri(flag, yaml, environ) == expected


SUITE = """
name: s
model: {{backend: hf, path: /ckpt}}
tasks: [hellaswag]
{tracking}
"""


def _suite(tracking: str = "") -> object:
    return load_suite_text(SUITE.format(tracking=tracking), "suite.yaml", base_dir=Path("/tmp"))


@pytest.mark.parametrize(("tracking", "flag", "env", "expected"), [
    ("tracking: {uri: 'http://yaml:5000'}", FLAG, ENV, FLAG),
    ("tracking: {uri: 'http://yaml:5000'}", None, ENV, YAML),
    ("", None, ENV, ENV),                      # the bug of #13: `evalmon run` ignored MLFLOW_TRACKING_URI
    ("", None, None, None),                    # None: the local store .evalmon/mlflow.db
])
def test_suite_overrides_follow_the_rule(tracking: str, flag: str | None, env: str | None, expected: str | None,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    if env is None:
        monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    else:
        monkeypatch.setenv("MLFLOW_TRACKING_URI", env)
    cfg = apply_overrides(_suite(tracking), tracking_uri=flag)  # type: ignore[arg-type]
    assert cfg.tracking.uri == expected


def test_suite_no_tracking_keeps_env_inert(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", ENV)
    cfg = apply_overrides(_suite(), no_tracking=True)  # type: ignore[arg-type]
    assert cfg.tracking.enabled is False
    with pytest.raises(ConfigError, match="--tracking-uri: must not be empty"):
        apply_overrides(_suite(), tracking_uri=" ")  # type: ignore[arg-type]


MONITOR = """
name: m
source: {{kind: jsonl, path: traffic.jsonl}}
signals: [refusal]
{tracking}
"""


@pytest.mark.parametrize(("tracking", "flag", "env", "expected"), [
    ("tracking: {uri: 'http://yaml:5000'}", FLAG, ENV, FLAG),
    ("tracking: {uri: 'http://yaml:5000'}", None, ENV, YAML),
    ("", None, ENV, ENV),
    ("", None, None, None),
])
def test_monitor_overrides_follow_the_rule(tracking: str, flag: str | None, env: str | None, expected: str | None,
                                           monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    if env is None:
        monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    else:
        monkeypatch.setenv("MLFLOW_TRACKING_URI", env)
    cfg = load_monitor_text(MONITOR.format(tracking=tracking), "monitor.yaml", base_dir=tmp_path)
    assert monitor_overrides(cfg, tracking_uri=flag).tracking.uri == expected


def test_gate_reads_flag_then_env_then_an_existing_local_store(monkeypatch: pytest.MonkeyPatch,
                                                               tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", ENV)
    assert tracking_uri_for(FLAG) == FLAG
    assert tracking_uri_for(None) == ENV
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    with pytest.raises(ConfigError, match=r"no MLflow tracking URI .*no local store"):
        tracking_uri_for(None)  # an empty local store would only say "experiment not found"
    (tmp_path / ".evalmon").mkdir()
    (tmp_path / ".evalmon" / "mlflow.db").touch()
    assert tracking_uri_for(None) == f"sqlite:///{tmp_path.resolve() / '.evalmon' / 'mlflow.db'}"


def test_store_line_names_the_source_and_hides_credentials(tmp_path: Path) -> None:
    line = store_line("https://alice:s3cret@mlflow.example.com", FROM_ENV, experiment="evalmon-smoke")
    assert "s3cret" not in line and "mlflow.example.com" in line
    assert line.endswith("(from $MLFLOW_TRACKING_URI), experiment 'evalmon-smoke'")
    local = store_line(None, FROM_LOCAL, base=tmp_path)
    assert local.startswith(f"MLflow: sqlite:///{tmp_path.resolve()}/.evalmon/mlflow.db (the local store")
    assert "\n" not in line + local


def test_reading_runs_from_a_sqlite_store_that_does_not_exist_creates_nothing(monkeypatch: pytest.MonkeyPatch,
                                                                             tmp_path: Path) -> None:
    """Hostile walk (walk-score): ``evalmon baseline promote RUN --tracking-uri sqlite:///typo.db`` (or export /
    gate of an MLflow RUN) created an empty MLflow database at the typo's path (two INFO log lines on stderr)
    before saying the run does not exist there."""
    from evalmon.gate.resolve import NoRunMatchesError, locate

    monkeypatch.chdir(tmp_path)
    for uri, path in ((f"sqlite:///{tmp_path / 'typo.db'}", tmp_path / "typo.db"), ("sqlite:///rel.db", tmp_path / "rel.db")):
        with pytest.raises(ConfigError, match=r"no MLflow store at .*: no such file"):
            locate("mlflow:" + "0" * 32, uri)
        with pytest.raises(NoRunMatchesError, match=r"no MLflow store at"):  # a query: gate --if-no-baseline pass
            locate("mlflow:experiment=e,tag.baseline=true", uri)
        assert not path.exists()

"""Issue #14 hostile-input walk: bad signal options and output paths are one-line errors before any work.

In-process checks of the pydantic signal configs (a monitor YAML's ``signals:``), ``signals score``'s output
check and the calibrate step that adds ``alerts.thresholds`` to a monitor YAML. Each case here used to be an
``internal error`` (a traceback file) or an error only after the reference had been scored:

- ``extra_patterns`` that is not a regex (pii: presidio's ValueError after scoring; refusal: no file:line);
- a pii ``entities:`` name no recogniser serves (presidio's "No matching recognizers" on the first text);
- safety ``thresholds:`` outside [0, 1] (accepted);
- ``--out`` in a folder that cannot be created, or naming a directory (FileNotFoundError / IsADirectoryError
  after the first batch had been scored);
- a read-only monitor YAML when calibrate adds ``alerts.thresholds`` (PermissionError after the thresholds
  file was written).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic import ValidationError

from evalmon.config.monitor import load_monitor_text
from evalmon.config.thresholds import reference_thresholds
from evalmon.core.errors import ConfigError, OutputError
from evalmon.monitor.signal_scoring import check_writable
from evalmon.monitor.signals import PiiConfig, RefusalConfig, SafetyConfig

MONITOR = """\
name: m   # the monitor
source: {kind: jsonl, path: t.jsonl}
window: {size: 1h}
signals:
  - text
  - %s
alerts:   # rules below
  rules:
    - {metric: rate/pii.any, op: ">", value: 0.1}   # keep this comment
"""


@pytest.mark.parametrize(("entry", "where", "says"), [
    ("{name: pii, nlp: none, extra_patterns: {X: '[a-'}}", "signals.1.extra_patterns", "X: invalid regex '[a-'"),
    ("{name: refusal, extra_patterns: {x: '(a'}}", "signals.1.extra_patterns", "x: invalid regex '(a'"),
    ("{name: pii, nlp: none, entities: [EMAIL_ADRESS]}", "signals.1.entities",
     "unknown entity 'EMAIL_ADRESS' (did you mean: EMAIL_ADDRESS"),
    ("{name: safety, thresholds: {toxic: -0.5}}", "signals.1.thresholds", "toxic: -0.5 is not between 0 and 1"),
    ("{name: safety, thresholds: {toxic: 7}}", "signals.1.thresholds", "toxic: 7.0 is not between 0 and 1"),
    ("{refusal: {classifier: false}}", "signals.1",  # was "unknown signal None"
     "{refusal: …} names the signal as a key — write {name: refusal, classifier: false}"),
])
def test_bad_signal_option_is_a_config_error_at_its_line(entry: str, where: str, says: str) -> None:
    with pytest.raises(ConfigError) as exc:
        load_monitor_text(MONITOR % entry, "m.yaml")
    line = exc.value.one_line()
    assert line.startswith(f"m.yaml:6: {where}: {says}"), line
    assert " — " in line  # a hint: what to do


def test_valid_signal_options_still_load() -> None:
    pii = PiiConfig(nlp="none", entities=["email_address", "PERSON", "IBAN"], extra_patterns={"IBAN": r"\bDE\d{20}\b"})
    assert pii.entities == ["email_address", "PERSON", "IBAN"]
    assert RefusalConfig(extra_patterns={"sorry": r"(?i)\bsorry\b"}).extra_patterns
    assert SafetyConfig(thresholds={"toxic": 0.0, "jailbreak": 1.0}).thresholds["jailbreak"] == 1.0
    with pytest.raises(ValidationError, match="not between 0 and 1"):
        SafetyConfig(thresholds={"toxic": float("nan")})


def test_out_that_cannot_be_written_is_an_output_error_and_leaves_nothing(tmp_path: Path) -> None:
    (tmp_path / "a_file").write_text("x")
    with pytest.raises(OutputError, match=r"cannot write there \(.*a_file"):
        check_writable(tmp_path / "a_file" / "scores.jsonl")
    (tmp_path / "d.jsonl").mkdir()
    with pytest.raises(OutputError, match="is a directory"):
        check_writable(tmp_path / "d.jsonl")
    check_writable(tmp_path / "new" / "scores.parquet")  # its folder is created, the file is not left behind
    assert (tmp_path / "new").is_dir() and not (tmp_path / "new" / "scores.parquet").exists()
    (tmp_path / "old.jsonl").write_text("kept\n")
    check_writable(tmp_path / "old.jsonl")  # an existing output is not truncated by the check
    assert (tmp_path / "old.jsonl").read_text() == "kept\n"


def test_calibrate_keeps_comments_and_leaves_a_read_only_yaml_alone(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    yaml_path = tmp_path / "m.yaml"
    yaml_path.write_text(MONITOR % "pii")
    os.chmod(yaml_path, 0o640)
    assert reference_thresholds(yaml_path, tmp_path / "m.thresholds.yaml")
    text = yaml_path.read_text()
    assert "alerts:   # rules below\n  thresholds: m.thresholds.yaml" in text
    assert "# the monitor" in text and "# keep this comment" in text  # comments and layout stay
    assert oct(yaml_path.stat().st_mode & 0o777) == "0o640"  # the file's mode stays
    assert not list(tmp_path.glob(".*tmp"))
    before = (MONITOR % "pii")
    yaml_path.write_text(before)
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: False if Path(p) == yaml_path else real_access(p, mode))
    assert not reference_thresholds(yaml_path, tmp_path / "m.thresholds.yaml")  # read-only: the caller says
    assert yaml_path.read_text() == before                                        # what line to add


def test_halludetect_artifact_that_cannot_be_applied_is_a_config_error(tmp_path: Path) -> None:
    """A wrong or newer artifact fails when the signal is built, not at its first prediction (a matmul
    shape error, a KeyError on an unknown feature) after the proxy model has scored a batch."""
    import json

    from evalmon.monitor.signals.halludetect import load_artifact

    good = load_artifact(None)
    cases = {"list": [1, 2, 3], "number": 5,
             "short_coef": {**good, "coef": good["coef"][:-1]},
             "new_feature": {**good, "features": [*good["features"][:-1], "attention_entropy"]},
             "threshold": {**good, "threshold": 1.5}, "intercept": {**good, "intercept": "x"}}
    says = {"list": "not a JSON object", "number": "not a JSON object", "short_coef": "coef: expected 8 numbers",
            "new_feature": "'attention_entropy'", "threshold": "not a probability", "intercept": "not a number"}
    for name, art in cases.items():
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps(art))
        with pytest.raises(ConfigError, match=says[name]) as exc:
            load_artifact(str(path))
        assert exc.value.one_line().startswith(f"signals.halludetect.artifact: {path} ")
    (tmp_path / "cut.json").write_text('{"mean": [1,')
    with pytest.raises(ConfigError, match="cannot read"):
        load_artifact(str(tmp_path / "cut.json"))


@pytest.mark.parametrize(("rate", "draws", "says"), [
    (1e-9, None, "--false-alarm-rate 1e-09 (needs 2e+10 resampled windows)"),
    (0.001, 10**11, "--draws 100000000000"),
])
def test_calibrate_refuses_more_draws_than_fit_before_scoring(rate: float, draws: int | None, says: str,
                                                              tmp_path: Path) -> None:
    """A tiny --false-alarm-rate (or a huge --draws) was "out of memory" after the whole reference had been
    scored; now a one-line error before the monitor file is even read (it does not exist here)."""
    from evalmon.cli.monitor import calibrate

    with pytest.raises(ConfigError, match="more than 1,000,000 resampled windows") as exc:
        calibrate(config=tmp_path / "missing.yaml", false_alarm_rate=rate, draws=draws, out=None,
                  reference_rows=None, dry_run=True)
    assert exc.value.one_line().startswith(says)


def test_rule_on_a_signal_not_listed_is_an_error_before_any_window() -> None:
    """`evalmon monitor` stopped with this only after scoring its first window (41 s on 40 records with the
    hallucination signal); calibrate said "cannot calibrate" and exit 0. Both now check it first."""
    from evalmon.config.monitor import check_rule_signals

    def cfg(signals: str, metric: str) -> object:
        return load_monitor_text(f"name: m\nsource: {{kind: jsonl, path: t.jsonl}}\nsignals: {signals}\n"
                                 f'alerts: {{rules: [{{metric: "p90/latency_ms", op: ">", value: 1}}, '
                                 f'{{metric: "{metric}", op: ">", value: 0.1}}]}}\n', "m.yaml")

    for signals, metric, prefix in (("[text]", "rate/refusal.refused", "refusal"),
                                    ("[{name: pii, enabled: false}]", "rate/pii.any", "pii"),
                                    ("[]", "share/text.prompt_language/en", "text"),
                                    ("[text]", "drift/embedding.prompt", "embedding")):
        with pytest.raises(ConfigError, match=rf"alerts\.rules\[1\]\.metric: .* the `{prefix}` signal") as exc:
            check_rule_signals(cfg(signals, metric))  # type: ignore[arg-type]
        assert f"add `- {prefix}` to signals:" in exc.value.one_line()
    for signals, metric in (("[refusal]", "rate/refusal.refused"), ("[embeddings]", "drift/embedding.prompt"),
                            ("[text]", "drift/prompt"), ("[]", "mean/my_logged.score")):
        check_rule_signals(cfg(signals, metric))  # type: ignore[arg-type]


def test_signal_paths_resolve_against_the_yaml_folder(tmp_path: Path) -> None:
    """Relative signal files (halludetect artifact, safety data_dir and classifier) were read from the cwd: a
    monitor started by cron elsewhere failed with "cannot read art.json" although it sat next to the YAML."""
    (tmp_path / "clf").mkdir()
    text = ("name: m\nsource: {kind: jsonl, path: t.jsonl}\nsignals:\n"
            "  - {name: halludetect, artifact: art/h.json}\n"
            "  - {name: safety, data_dir: labels, classifier: {path: clf}}\n")
    hd, safety = load_monitor_text(text, "m.yaml", base_dir=tmp_path).signals
    assert hd.artifact == str(tmp_path / "art" / "h.json")
    assert safety.data_dir == str(tmp_path / "labels") and safety.classifier.path == str(tmp_path / "clf")
    text = text.replace("art/h.json", "builtin:halludetect-v2.json").replace("path: clf", "path: org/hub-model")
    hd, safety = load_monitor_text(text, "m.yaml", base_dir=tmp_path).signals
    assert hd.artifact == "builtin:halludetect-v2.json" and safety.classifier.path == "org/hub-model"


def test_calibrate_says_when_the_reference_is_shorter_than_a_window_or_nothing_calibrated(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """8 reference records for 48-record windows gave thresholds without a word; "any rule fires in nan%"
    when no rule could be calibrated. (The calibration itself is stubbed: this is the CLI's report.)"""
    import evalmon.monitor.calibrate as cal
    from evalmon.cli.monitor import calibrate

    (tmp_path / "m.yaml").write_text("name: m\nsource: {kind: jsonl, path: t.jsonl}\nwindow: {size: 1h}\n"
                                     "signals: [text]\nalerts: {rules: [{metric: mean/text.response_chars, "
                                     "op: '>', value: 9}]}\n")
    rule = cal.RuleCalibration("r", "mean/text.response_chars", ">", 9.0, status="cannot calibrate",
                               reason="constant")
    monkeypatch.setattr(cal, "calibrate", lambda *a, **k: cal.Calibration("m", 0.001, 2000, 8, 48.0, rules=[rule]))
    import typer

    with pytest.raises(typer.Exit) as done:  # nothing calibrated: exit 1 (session 16)
        calibrate(config=tmp_path / "m.yaml", false_alarm_rate=0.001, draws=None, out=None, reference_rows=None,
                  dry_run=True)
    out, err = capsys.readouterr()
    assert done.value.exit_code == 1
    assert "warning: the reference holds 8 records, fewer than one 1h window (48.0)" in err
    assert "no rule of 1 could be calibrated" in err and "nan" not in out + err


def test_signals_score_names_why_no_record_was_usable(tmp_path: Path) -> None:
    """Said only "(9 quarantined)"; now the commonest reason — or that the file is empty."""
    from evalmon.monitor.signal_scoring import score_file

    rows = [f'{{"timestamp": "2026-11-01T00:0{i}:00Z", "prompt": {i}, "response": "ok"}}' for i in range(3)]
    (tmp_path / "t.jsonl").write_text("\n".join(rows) + "\n")
    with pytest.raises(ConfigError, match=r"all 3 records quarantined; all of them: wrong type for prompt"):
        score_file(tmp_path / "t.jsonl", ["usage"], tmp_path / "o.jsonl")
    (tmp_path / "e.jsonl").write_text("")
    with pytest.raises(ConfigError, match=r"no usable record to score \(it holds no record\)"):
        score_file(tmp_path / "e.jsonl", ["usage"], tmp_path / "o.jsonl")


def test_thresholds_file_header_says_no_rule_calibrated_instead_of_nan(tmp_path: Path) -> None:
    import evalmon.monitor.calibrate as cal
    from evalmon.config.monitor import load_monitor

    (tmp_path / "m.yaml").write_text("name: m\nsource: {kind: jsonl, path: t.jsonl}\nwindow: {size: 1h}\n"
                                     "signals: [text]\nalerts: {rules: [{metric: mean/text.response_chars, "
                                     "op: '>', value: 9}]}\n")
    rule = cal.RuleCalibration("r", "mean/text.response_chars", ">", 9.0, status="cannot calibrate",
                               reason="constant")
    result = cal.Calibration("m", 0.001, 2000, 8, 48.0, rules=[rule])
    cal.save_calibration(load_monitor(tmp_path / "m.yaml"), result, out=tmp_path / "t.yaml")
    text = (tmp_path / "t.yaml").read_text()
    assert "no rule calibrated" in text and "nan" not in text


def test_halludetect_bad_artifact_is_named_before_a_missing_proxy_model(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """Both wrong (a cut artifact, no default proxy model here): the cheap check, naming the artifact's path,
    is the error — it used to say the proxy model was missing first."""
    from evalmon.monitor.signals import build_signals

    monkeypatch.chdir(tmp_path)  # no .evalmon/checkpoints here: the default proxy model is missing
    (tmp_path / "cut.json").write_text('{"mean": [1,')
    with pytest.raises(ConfigError) as exc:
        build_signals([{"name": "halludetect", "artifact": str(tmp_path / "cut.json")}])
    assert exc.value.one_line().startswith(f"signals.halludetect.artifact: cannot read {tmp_path / 'cut.json'}")
    with pytest.raises(ConfigError, match=r"signals\.halludetect\.uncertainty\.model: not set"):
        build_signals(["halludetect"])  # a good artifact: the missing proxy model is still named


@pytest.mark.parametrize("where", ["top", "to_suite"])
@pytest.mark.parametrize("seed", [-1, 2**32])
def test_a_seed_numpy_refuses_is_a_config_error_at_load(where: str, seed: int) -> None:
    """``seed: -1`` loaded, then numpy refused it: ``reference.max_rows``' sample was ``internal error: ValueError:
    Seed must be between 0 and 2**32 - 1`` after the reference was read, ``calibrate`` after it was scored, and an
    ``on_alert: {to_suite: …}`` replay after the window had alerted."""
    def text(top: int, replay: int) -> str:
        return (f"name: m\nseed: {top}\nsource: {{kind: jsonl, path: t.jsonl}}\n"
                "alerts:\n  rules:\n    - {metric: records, op: '>', value: 1, "
                f"on_alert: {{to_suite: {{suite: r.yaml, seed: {replay}}}}}}}\n")

    with pytest.raises(ConfigError) as exc:
        load_monitor_text(text(seed, 0) if where == "top" else text(0, seed), "m.yaml")
    line = exc.value.one_line()
    assert "seed" in line and "4294967295" in line and ("m.yaml:2" in line if where == "top" else "m.yaml:6" in line)
    for ok in (0, 2**32 - 1):
        assert load_monitor_text(text(ok, ok), "m.yaml").seed == ok


@pytest.mark.parametrize("value", [".nan", ".inf", "-.inf", "-0.1"])
def test_a_drift_threshold_that_no_score_can_cross_is_a_config_error(value: str) -> None:
    """``drift.thresholds: {latency_ms: .nan}`` loaded and reached evidently, whose comparisons with NaN are all
    False: that column never drifted, in every window, without a word (as a NaN alert ``value:`` never fired)."""
    text = ("name: m\nsource: {kind: jsonl, path: t.jsonl}\n"
            f"drift:\n  thresholds: {{latency_ms: {value}}}\n")
    with pytest.raises(ConfigError) as exc:
        load_monitor_text(text, "m.yaml")
    assert "m.yaml:4" in exc.value.one_line() and "drift.thresholds" in exc.value.one_line()
    assert load_monitor_text(text.replace(value, "0.1"), "m.yaml").drift.thresholds == {"latency_ms": 0.1}


@pytest.mark.parametrize(("spec", "says"), [
    ("{min: .nan}", "min"), ("{max: .inf}", "max"), ("{min: 10, max: 1}", "min 10.0 is above max 1.0")])
def test_a_quality_range_that_cannot_be_checked_is_a_config_error(spec: str, says: str) -> None:
    """``quality.ranges`` with a NaN bound loaded and the check passed every value (``v < nan`` is False) — a range
    check silently off; ``min`` above ``max`` failed every value of every window."""
    text = f"name: m\nsource: {{kind: jsonl, path: t.jsonl}}\nquality:\n  ranges:\n    latency_ms: {spec}\n"
    with pytest.raises(ConfigError) as exc:
        load_monitor_text(text, "m.yaml")
    line = exc.value.one_line()
    assert "m.yaml:5" in line and "quality.ranges.latency_ms" in line and says in line
    assert load_monitor_text(text.replace(spec, "{min: 0, max: 60000}"), "m.yaml").quality.ranges["latency_ms"].max == 60000


def test_a_window_end_not_after_its_start_is_a_config_error() -> None:
    """``window: {start: 2026-11-02, end: 2026-11-01}`` loaded and every run said "no complete window to process",
    exit 0: a monitor that can never process anything, quietly."""
    text = "name: m\nsource: {kind: jsonl, path: t.jsonl}\nwindow: {size: 1h, start: %s, end: 2026-11-01T02:00:00Z}\n"
    for start in ("2026-11-02T00:00:00Z", "2026-11-01T02:00:00Z"):
        with pytest.raises(ConfigError) as exc:
            load_monitor_text(text % start, "m.yaml")
        assert "m.yaml:3" in exc.value.one_line() and "window.end" in exc.value.one_line()
    assert load_monitor_text(text % "2026-11-01T00:00:00Z", "m.yaml").window.end is not None

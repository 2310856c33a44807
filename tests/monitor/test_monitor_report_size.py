"""``report: full|summary|none``: one drift report per window, written once in the window folder and uploaded
from there; the default summary is a few KB (evidently's full report is ~4 MB a window)."""

from __future__ import annotations

import gzip
import json
import math
import textwrap
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from evalmon.config.monitor import DriftConfig, load_monitor_text
from evalmon.core.errors import ConfigError
from evalmon.monitor.drift import ColumnDrift, DriftResult, summary_html
from evalmon.monitor.pipeline import report_file
from evalmon.monitor.runner import run_monitor

T0 = datetime(2026, 11, 1, tzinfo=UTC)
HOUR = timedelta(hours=1)
REPORTS = {"drift.html", "drift.html.gz"}


def _traffic(path: Path, hours: int = 3, per_hour: int = 80) -> None:
    rng = np.random.default_rng(0)
    lines = []
    for h in range(hours):
        shift = 300 if h == hours - 1 else 0  # the last hour drifts in latency and model
        for i in range(per_hour):
            ts = T0 + h * HOUR + timedelta(seconds=float(rng.uniform(0, 3599)))
            lines.append(json.dumps({
                "request_id": f"r{h}-{i}", "timestamp": ts.isoformat(), "prompt": f"question {i}",
                "response": f"answer {i}", "latency_ms": float(rng.normal(200 + shift, 20)),
                "output_tokens": int(rng.integers(10, 200)),
                "model": str(rng.choice(["m-b", "m-c"] if shift else ["m-a", "m-b"]))}))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _config(root: Path, name: str, report: str | None, tracking: str = "{enabled: false}"):  # type: ignore[no-untyped-def]
    line = f"report: {report}\n" if report else ""
    return load_monitor_text(textwrap.dedent(f"""\
        name: {name}
        source: {{kind: jsonl, path: traffic.jsonl}}
        window: {{size: 1h, end: "2026-11-01T03:00:00Z"}}
        reference: {{kind: fixed, start: "2026-11-01T00:00:00Z", end: "2026-11-01T01:00:00Z"}}
        drift: {{text_drift: false, embedding_drift: false}}
        quality: {{enabled: false}}
        tracking: {tracking}
        state: {{path: state-{name}.sqlite}}
        output_dir: out
        """) + line, "m.yaml", base_dir=root)


def _files(root: Path, name: str) -> dict[str, dict[str, int]]:
    """window key → {report file: size}"""
    return {d.name: {f.name: f.stat().st_size for f in d.iterdir() if f.name in REPORTS}
            for d in sorted((root / "out" / name / "windows").iterdir())}


def _numbers(metrics: dict[str, float]) -> dict[str, float | None]:
    """NaN as None (NaN != NaN); without ``assessments/…``, which only a run logging to MLflow has."""
    return {k: None if math.isnan(v) else v for k, v in metrics.items() if not k.startswith("assessments/")}


# ------------------------------------------------------------------------------------------------ unit


def test_report_option_defaults_to_summary_and_refuses_other_values(tmp_path: Path) -> None:
    assert _config(tmp_path, "d", None).report == "summary"
    full = _config(tmp_path, "d", "full")
    assert full.report == "full" and full.config_hash() == _config(tmp_path, "d", None).config_hash()
    with pytest.raises(ConfigError) as err:
        _config(tmp_path, "d", "verbose")
    msg = str(err.value)
    assert "\n" not in msg and "report" in msg and "summary" in msg, msg
    assert report_file(tmp_path, "summary") == tmp_path / "drift.html"
    assert report_file(tmp_path, "full") == tmp_path / "drift.html.gz"
    assert report_file(tmp_path, "none") is None


def test_summary_table_escapes_every_value() -> None:
    hostile = "<img src=x onerror=alert(1)>"
    res = DriftResult(columns=[ColumnDrift(hostile, "categorical", "Jensen-Shannon distance", 0.1, 0.4, True),
                               ColumnDrift("latency_ms", "numerical", "K-S p_value", 0.05, 0.5, False),
                               ColumnDrift("empty", "numerical", skipped="no values in this window")],
                      n_reference=100, n_current=50, drift_share=DriftConfig().drift_share)
    page = summary_html(res, title=hostile)
    assert "<img" not in page and "<script" not in page and "&lt;img src=x" in page
    assert "Dataset drift is <b>DETECTED</b>: 1 of 2 columns drifted (50%; dataset drift at &ge; 0.5)" in page
    assert '<td class="detected">DETECTED</td>' in page and "no values in this window" in page


# ------------------------------------------------------------------------------------------------ e2e


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory, mlflow_server: str) -> dict[str, object]:
    """The same two windows in each mode; summary (the default) logged to a real MLflow server."""
    root = tmp_path_factory.mktemp("report-size")
    _traffic(root / "traffic.jsonl")
    experiment = f"report-size-{uuid.uuid4().hex[:6]}"
    now = T0 + 4 * HOUR
    out = {"root": root, "experiment": experiment}
    out["summary"] = run_monitor(_config(root, "summary", None, f"{{uri: '{mlflow_server}', experiment: {experiment}}}"),
                                 now=now)
    for mode in ("full", "none"):
        out[mode] = run_monitor(_config(root, mode, mode), now=now)
    return out


def test_each_mode_writes_its_one_report_and_the_same_metrics(runs: dict[str, object]) -> None:
    root = runs["root"]
    assert isinstance(root, Path)
    summary, full, none = (_files(root, m) for m in ("summary", "full", "none"))
    assert list(summary) == list(full) == list(none) == [f"20261101T0{h}0000Z" for h in range(3)]
    for key in summary:
        assert set(summary[key]) == {"drift.html"} and set(full[key]) == {"drift.html.gz"} and none[key] == {}
        small, big = summary[key]["drift.html"], full[key]["drift.html.gz"]
        assert small < 20_000 and big > 20 * small, (small, big)  # even gzipped, full is ≫ summary
    page = gzip.decompress((root / "out/full/windows/20261101T020000Z/drift.html.gz").read_bytes()).decode()
    assert "Drift in column 'latency_ms'" in page and "<script" in page  # evidently's report, intact
    metrics = {m: [(_numbers(w.metrics), {k: v for k, v in w.params.items() if k not in ("monitor", "config_hash")})
                   for w in runs[m].windows] for m in ("summary", "full", "none")}  # type: ignore[attr-defined]
    for mode in ("full", "none"):  # the report never changes a number
        for (ma, pa), (mb, pb) in zip(metrics["summary"], metrics[mode], strict=True):
            assert ma == mb and pa == pb, (mode, {k: (ma.get(k), mb.get(k)) for k in ma.keys() | mb.keys()
                                                  if ma.get(k) != mb.get(k)}, set(pa.items()) ^ set(pb.items()))
    drifted = runs["summary"].windows[2].metrics  # type: ignore[attr-defined]
    assert drifted["drift_detected/latency_ms"] == 1.0
    # reprocessing a window in another mode leaves only the report asked for now
    again = run_monitor(_config(root, "none", "full"), backfill=(T0 + HOUR, T0 + 2 * HOUR), now=T0 + 4 * HOUR)
    assert len(again.windows) == 1
    assert set(_files(root, "none")["20261101T010000Z"]) == {"drift.html.gz"}


def test_mlflow_holds_the_report_once_per_window(runs: dict[str, object], mlflow_server: str) -> None:
    from mlflow import MlflowClient

    c = MlflowClient(mlflow_server)
    exp = c.get_experiment_by_name(str(runs["experiment"]))
    windows = c.search_runs([exp.experiment_id], filter_string="tags.`evalmon.window_id` LIKE '%'")
    assert len(windows) == 3
    root = runs["root"]
    assert isinstance(root, Path)
    for run in windows:
        arts = [a for a in c.list_artifacts(run.info.run_id)]
        reports = [a for a in arts if a.path in REPORTS]
        assert [a.path for a in reports] == ["drift.html"], [a.path for a in arts]
        key = run.data.tags["evalmon.window_id"].split("/")[-1]
        assert reports[0].file_size == (root / "out/summary/windows" / key / "drift.html").stat().st_size


def test_summary_html_renders_the_drift_table_in_chromium(runs: dict[str, object]) -> None:
    from chromium import dump_dom

    root = runs["root"]
    assert isinstance(root, Path)
    dom = dump_dom(root / "out/summary/windows/20261101T020000Z/drift.html")
    assert 'id="dataset-drift"' in dom and "Dataset drift is" in dom
    assert "<th>score</th>" in dom and "<td>latency_ms</td>" in dom and "<td>model</td>" in dom
    assert '<td class="detected">DETECTED</td>' in dom  # the shifted hour's latency

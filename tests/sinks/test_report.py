"""report.html / summary.md / console rendering of a hand-built RunResult, checked as text, as parsed
HTML, and as rendered by headless Chromium (DOM dump + screenshot)."""

from __future__ import annotations

import os
from html.parser import HTMLParser
from pathlib import Path

import pytest
from chromium import ChromiumMissing, count_color, dump_dom, find_chromium, png_stats, screenshot
from rich.console import Console

from evalmon.cli.console import print_results, results_table
from evalmon.core.results import (
    REPORT_FILE,
    SUMMARY_FILE,
    GroupResult,
    MetricValue,
    Provenance,
    RunResult,
    TaskResult,
    TaskTiming,
)
from evalmon.sinks.report import CHART_W, PALETTE, build_charts, render_html, write_reports

EVIL = "<script>alert(1)</script>"
# task → metric → (value, stderr); ppl is the one metric outside [0, 1]
VALUES: dict[str, dict[str, tuple[float, float | None]]] = {
    "mmlu_anatomy": {"acc": (0.45925926, 0.04304)},
    "mmlu_astronomy": {"acc": (0.61842105, 0.03953)},
    "hellaswag": {"acc": (0.3125, 0.014652), "acc_norm": (0.37501234, 0.015311)},
    "truthfulqa_mc2": {"mc2": (0.42131999, 0.015124)},
    "wikitext": {"word_perplexity": (23.456789, None)},
    EVIL: {"acc": (0.02, 0.02)},  # CI crosses 0: whisker clipped at the axis
}
GROUP_ACC = (0.54416961, 0.02929)  # mmlu = micro average of anatomy (135) and astronomy (152)
N = {"mmlu_anatomy": 135, "mmlu_astronomy": 152, "hellaswag": 1000, "truthfulqa_mc2": 817, "wikitext": 62,
     EVIL: 50}


def make_result(status: str = "finished") -> RunResult:
    tasks = {
        name: TaskResult(
            name=name, n=N[name], num_fewshot=5 if name.startswith("mmlu") else 0,
            source=f"/data/{name}", config_hash="c" * 16, lm_eval_task=name if name != EVIL else None,
            metrics={m: MetricValue.with_ci(v, se, higher_is_better=m != "word_perplexity")
                     for m, (v, se) in metrics.items()},
            timing=TaskTiming(seconds=2.5, requests=4 * N[name], unique_requests=4 * N[name], cached=10,
                              computed=4 * N[name] - 10, tokens=100 * N[name], requests_per_s=1.6 * N[name],
                              tokens_per_s=40.0 * N[name]),
        )
        for name, metrics in VALUES.items()
    }
    groups = {"mmlu": GroupResult(name="mmlu", n=287, members=["mmlu_anatomy", "mmlu_astronomy"],
                                  metrics={"acc": MetricValue.with_ci(*GROUP_ACC)})}
    if status != "finished":
        del tasks["mmlu_astronomy"]
    return RunResult(
        run_id="20260101T120000-abc123", suite_name="general", suite_hash="s" * 16, status=status,
        started_at="2026-01-01T12:00:00+00:00",
        finished_at="2026-01-01T12:03:30+00:00" if status == "finished" else None,
        provenance=Provenance(evalmon_version="0.1.0", lm_eval_version="0.4.13", torch_version="2.13.0",
                              transformers_version="5.24.0", python_version="3.11.2", platform="linux",
                              hostname="ci", git_commit="0123456789abcdef", git_dirty=True,
                              command="evalmon run suites/general.yaml"),
        model={"backend": "hf", "model": "/models/tiny-llama", "weights_hash": "w" * 64, "adapter": "/a/lora",
               "dtype": "float32", "device": "cpu", "bos_policy": "tokenizer-default", "max_length": 2048,
               "batch_size": 8},
        tasks=tasks, groups=groups,
    )


def pairs(result: RunResult) -> list[tuple[str, str, float, float | None]]:
    rows = [(g, m, mv.value, mv.stderr) for g, gr in result.groups.items() for m, mv in gr.metrics.items()]
    return rows + [(t, m, mv.value, mv.stderr) for t, tr in result.tasks.items() for m, mv in tr.metrics.items()]


class Elements(HTMLParser):
    """Every start tag as a dict of its attributes plus ``tag`` and ``_text`` (its text content), in order."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.els: list[dict] = []
        self.stack: list[dict] = []
        self.feed(html)
        self.close()

    def handle_starttag(self, tag, attrs):
        el = {"tag": tag, **{k: v or "" for k, v in attrs}, "_text": ""}
        self.els.append(el)
        if tag not in {"meta", "link", "br", "hr", "img", "input", "line", "rect", "path", "circle"}:
            self.stack.append(el)

    def handle_startendtag(self, tag, attrs):
        self.els.append({"tag": tag, **{k: v or "" for k, v in attrs}, "_text": ""})

    def handle_endtag(self, tag):
        while self.stack:
            if self.stack.pop()["tag"] == tag:
                break

    def handle_data(self, data):
        for el in self.stack:
            el["_text"] += data

    def find(self, tag: str | None = None, cls: str | None = None, **attrs: str) -> list[dict]:
        out = []
        for el in self.els:
            if tag and el["tag"] != tag:
                continue
            if cls and cls not in el.get("class", "").split():
                continue
            if all(el.get(k.replace("_", "-")) == v for k, v in attrs.items()):
                out.append(el)
        return out


def check_html(html: str, result: RunResult) -> Elements:
    doc = Elements(html)
    assert doc.find("h1", id="suite-name")[0]["_text"] == result.suite_name
    assert doc.find(id="run-id")[0]["_text"] == result.run_id
    assert doc.find(id="run-status")[0]["_text"] == result.status
    for field, value in [("backend", "hf"), ("weights hash", "w" * 64), ("adapter", "/a/lora"), ("dtype", "float32"),
                         ("BOS policy", "tokenizer-default"), ("max length", "2048"), ("batch size", "8")]:
        assert value in doc.find("tr", data_field=field)[0]["_text"] or value in html
    for field, value in [("lm-eval", "0.4.13"), ("torch", "2.13.0"), ("transformers", "5.24.0"),
                         ("git commit", "0123456789abcdef (dirty)"), ("command", "evalmon run suites/general.yaml")]:
        assert [el for el in doc.find("td") if el["_text"] == value], field
    # results table: one value cell per task × metric, 4 decimals, stderr and CI
    for task, metric, value, stderr in pairs(result):
        cells = doc.find("td", cls="metric", data_task=task, data_metric=metric)
        assert [c["_text"] for c in cells] == [f"{value:.4f}"], (task, metric)
        se = doc.find("td", cls="stderr", data_task=task, data_metric=metric)[0]["_text"]
        assert se == (f"{stderr:.4f}" if stderr is not None else "—")
        ci = doc.find("td", cls="ci", data_task=task, data_metric=metric)[0]["_text"]
        if stderr is not None:
            assert ci == f"[{value - 1.96 * stderr:.4f}, {value + 1.96 * stderr:.4f}]"
    assert doc.find("tr", cls="row-group", data_task="mmlu")
    # timing table
    for task in result.tasks:
        row = doc.find("tr", data_task=task)
        assert row
    assert doc.find("tr", cls="row-total")
    return doc


def check_chart(doc: Elements, result: RunResult) -> None:
    unit = doc.find("svg", id="chart-unit")[0]
    x0, w = float(unit["data-x0"]), float(unit["data-plot-width"])
    assert (float(unit["data-lo"]), float(unit["data-hi"])) == (0.0, 1.0)
    bars = [b for b in doc.find("rect", cls="bar") if b["data-metric"] != "word_perplexity"]
    expected = [(t, m, v, se) for t, m, v, se in pairs(result) if m != "word_perplexity"]
    assert sorted((b["data-task"], b["data-metric"]) for b in bars) == sorted((t, m) for t, m, _, _ in expected)
    ys = [float(b["y"]) for b in bars]
    assert ys == sorted(ys) and len(set(ys)) == len(ys)  # one row each, top to bottom
    assert bars[0]["data-task"] == "mmlu" and "bar-group" in bars[0]["class"]  # groups first, styled apart
    assert [b["data-task"] for b in bars[1:3]] == ["mmlu_anatomy", "mmlu_astronomy"][: len(bars[1:3])] or \
        result.status != "finished"
    for task, metric, value, stderr in expected:
        (bar,) = doc.find("rect", cls="bar", data_task=task, data_metric=metric)
        assert float(bar["x"]) == pytest.approx(x0, abs=0.01)
        assert float(bar["width"]) == pytest.approx(value * w, abs=0.01)
        (ci,) = doc.find("g", cls="ci", data_task=task, data_metric=metric)
        lines = [el for el in doc.els[doc.els.index(ci) + 1: doc.els.index(ci) + 4]]
        line, cap_lo, cap_hi = lines
        assert "ci-line" in line["class"]
        lo, hi = max(0.0, value - 1.96 * stderr), min(1.0, value + 1.96 * stderr)
        assert float(line["x1"]) == pytest.approx(x0 + lo * w, abs=0.01)
        assert float(line["x2"]) == pytest.approx(x0 + hi * w, abs=0.01)
        assert float(cap_lo["x1"]) == float(line["x1"]) and float(cap_hi["x1"]) == float(line["x2"])
        assert ("ci-clipped" in ci["class"]) == (value - 1.96 * stderr < 0)
        assert float(line["x1"]) < float(bar["x"]) + float(bar["width"]) < float(line["x2"])
    # metrics outside [0, 1] get their own axis
    ppl = doc.find("svg", id="chart-word_perplexity")[0]
    (bar,) = doc.find("rect", cls="bar", data_metric="word_perplexity")
    hi = float(ppl["data-hi"])
    assert hi >= 23.456789
    assert float(bar["width"]) == pytest.approx(23.456789 / hi * float(ppl["data-plot-width"]), abs=0.01)
    assert not doc.find("g", cls="ci", data_metric="word_perplexity")  # no stderr, no whisker


def test_write_reports_html_and_markdown(tmp_path: Path) -> None:
    result = make_result()
    html_path, md_path = write_reports(result, tmp_path / "run")
    assert (html_path.name, md_path.name) == (REPORT_FILE, SUMMARY_FILE)
    assert html_path.parent == md_path.parent == tmp_path / "run"
    html = html_path.read_text(encoding="utf-8")
    # self-contained: no external resources
    assert "<script" not in html.replace("&lt;script", "")
    for needle in ("http://", "https://", "<link", "@import", "src="):
        assert needle not in html.replace('xmlns="http://www.w3.org/2000/svg"', ""), needle
    doc = check_html(html, result)
    check_chart(doc, result)
    assert not doc.find(id="status-note")

    md = md_path.read_text(encoding="utf-8")
    lines = md.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("| task | metric | value"))
    assert lines[header - 1] == ""  # a table needs a blank line before it in GitHub markdown
    table = [line for line in lines[header + 2:] if line.startswith("|")]
    assert "**mmlu** (group)" in table[0] and f"**{GROUP_ACC[0]:.4f}**" in table[0]
    assert "| 287 |" in table[0]
    assert "mmlu_anatomy" in table[1] and "mmlu_astronomy" in table[2]  # members right after the group
    for task, metric, value, stderr in pairs(result):
        row = next(line for line in table if f"| {metric} |" in line and
                   (task in line or (task == EVIL and "&lt;script&gt;" in line)))
        assert f"{value:.4f}" in row
        if stderr is not None:
            assert f"| {stderr:.4f} | [{value - 1.96 * stderr:.4f}, {value + 1.96 * stderr:.4f}] |" in row
    assert "<script>" not in md
    assert "0.4.13" in md and "`0123456789ab` (dirty)" in md and "`evalmon run suites/general.yaml`" in md
    assert "WARNING" not in md


def test_interrupted_run_is_marked_partial(tmp_path: Path) -> None:
    result = make_result("interrupted")
    html_path, md_path = write_reports(result, tmp_path)
    html = html_path.read_text(encoding="utf-8")
    doc = check_html(html, result)
    check_chart(doc, result)
    note = doc.find(id="status-note")[0]
    assert "interrupted" in note["_text"] and "partial" in note["_text"]
    assert "mmlu_astronomy" in html.split('id="status-note"')[1].split("</div>")[0]
    assert doc.find("tr", cls="row-missing", data_task="mmlu_astronomy")
    assert not doc.find("rect", cls="bar", data_task="mmlu_astronomy")
    md = md_path.read_text(encoding="utf-8")
    assert "[!WARNING]" in md and "**interrupted**" in md and "`mmlu_astronomy`" in md
    lines = md.splitlines()
    assert lines[lines.index(next(x for x in lines if x.startswith("| task |"))) - 1] == ""  # not in the quote


def test_html_escapes_task_names() -> None:
    html = render_html(make_result())
    assert EVIL not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    doc = Elements(html)
    assert not doc.find("script")
    assert doc.find("td", cls="metric", data_task=EVIL, data_metric="acc")  # attribute round-trips


def test_chart_geometry_fits_and_orders() -> None:
    charts = build_charts(make_result())
    assert [c.key for c in charts] == ["unit", "word_perplexity"]
    for chart in charts:
        for bar in chart.bars:
            assert chart.x0 <= bar.x and bar.x + bar.width <= chart.x0 + chart.plot_w + 1e-9
            assert 0 < bar.y < chart.height
        assert chart.width == CHART_W
    colors = {b.metric: b.color for b in charts[0].bars}
    assert colors["acc"] == PALETTE[0] and len(set(colors.values())) == len(colors)


def test_console_table() -> None:
    result = make_result("interrupted")
    console = Console(record=True, width=140, color_system=None)
    console.print(results_table(result))
    text = console.export_text()
    lines = text.splitlines()
    mmlu = next(i for i, line in enumerate(lines) if "mmlu " in line and f"{GROUP_ACC[0]:.4f}" in line)
    assert "  mmlu_anatomy" in lines[mmlu + 1] and "0.4593" in lines[mmlu + 1]
    assert "not run" in lines[mmlu + 2]
    assert EVIL in text and "0.3750" in text and "23.4568" in text
    console = Console(record=True, width=140, color_system=None)
    print_results(result, console)
    out = console.export_text()
    assert "interrupted" in out and "partial" in out and "lm-eval 0.4.13" in out


def require_chromium() -> None:
    """Fail (never skip) without Chromium: CI must install it (`apt-get install -y chromium`)."""
    missing = None
    try:
        find_chromium()
    except ChromiumMissing as e:
        missing = str(e)
    if missing:
        pytest.fail(missing, pytrace=False)


def test_report_renders_in_headless_chromium(tmp_path: Path) -> None:
    require_chromium()
    result = make_result()
    html_path, _ = write_reports(result, tmp_path)
    dom = dump_dom(html_path)
    doc = check_html(dom, result)
    check_chart(doc, result)
    assert len(doc.find("rect", cls="bar")) == sum(1 for _ in pairs(result))
    assert not doc.find("script")

    png = screenshot(html_path, tmp_path / "report.png", window_size=(1280, 2000))
    if os.environ.get("EVALMON_KEEP_SCREENSHOT"):
        Path(os.environ["EVALMON_KEEP_SCREENSHOT"]).write_bytes(png.read_bytes())
    stats = png_stats(png)
    assert (stats["width"], stats["height"]) == (1280, 2000)
    assert stats["bytes"] > 20_000, stats
    assert stats["colors"] > 50 and 0.03 < stats["nonwhite"] < 0.8, stats
    # bars are painted: each metric's colour covers at least a bar's worth of pixels
    for color in PALETTE[:4]:
        rgb = tuple(int(color[i:i + 2], 16) for i in (1, 3, 5))
        assert count_color(png, rgb, tol=4) > 300, color


def test_empty_and_nan_results_render() -> None:
    result = make_result("failed")
    result.tasks, result.groups = {}, {}
    assert "No metric values to plot" in render_html(result)
    result = make_result()
    result.tasks["hellaswag"].metrics["acc"] = MetricValue(value=float("nan"))
    doc = Elements(render_html(result))
    assert doc.find("td", cls="metric", data_task="hellaswag", data_metric="acc")[0]["_text"] == "nan"
    assert float(doc.find("rect", cls="bar", data_task="hellaswag", data_metric="acc")[0]["width"]) == 0.0

"""Model × adapter planning (harness/matrix.py): the config and flag, the ranked paired table (the gate's tests,
Holm across the adapter × metric family), and a whole run on the tiny checkpoint with two LoRA adapters —
results for base and each adapter on the same documents, equal to separate ``adapter: path`` runs, the
response cache shared with them, the report's adapter table first and ``gate RUN#adapter``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from adapters_util import make_lora
from pydantic import ValidationError

from evalmon.config.suite import SuiteConfig, apply_overrides, load_suite_text
from evalmon.core.errors import ConfigError, EvalmonError
from evalmon.core.results import MetricValue, Provenance, RunResult, SampleRecord, TaskResult
from evalmon.harness.matrix import comparison_table
from evalmon.metrics.paired import holm, mcnemar_test

BASE_YAML = "name: s\nmodel:\n  path: /ckpt\n{extra}tasks: [hellaswag]\n"


def _load(extra: str, tmp_path: Path) -> SuiteConfig:
    return load_suite_text(BASE_YAML.format(extra=extra), "suite.yaml", base_dir=tmp_path)


def test_config_adapters_resolve_and_conflict(tmp_path: Path) -> None:
    cfg = _load("  adapters: {a: ./loras/a, b.v2: /abs/b}\n", tmp_path)
    assert cfg.model.adapters == {"a": str(tmp_path / "loras" / "a"), "b.v2": "/abs/b"} and cfg.model.adapter is None
    for extra, needle in (("  adapter: ./x\n  adapters: {a: ./y}\n", "both `adapter` and `adapters`"),
                          ("  adapters: {base: ./y}\n", "adapter name 'base' is not allowed"),
                          ("  adapters: {}\n", "no adapters listed"),
                          ("  adapters: [./y]\n", "expected a mapping")):
        with pytest.raises(EvalmonError) as exc:
            _load(extra, tmp_path)
        line = exc.value.one_line()
        assert needle in line and "suite.yaml:" in line and "\n" not in line, line


def test_adapters_flag(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    cfg = _load("", tmp_path)
    out = apply_overrides(cfg, adapters="a=./la, b=/abs/lb")
    assert out.model.adapters == {"a": str(tmp_path / "la"), "b": "/abs/lb"} and out.model.adapter is None
    for spec, needle in (("a", "'a' is not name=path"), ("a=x,a=y", "adapter 'a' given twice"),
                         ("base=./x", "adapter name 'base' is not allowed")):
        with pytest.raises(ConfigError, match=needle):
            apply_overrides(cfg, adapters=spec)
    with pytest.raises(ConfigError, match="already has `adapter:`"):
        apply_overrides(_load("  adapter: ./one\n", tmp_path), adapters="a=./x")
    with pytest.raises(ValidationError):  # the model class itself refuses both
        type(cfg.model).model_validate({"path": "/p", "adapter": "/a", "adapters": {"b": "/b"}})


def _run(name: str, values: dict[str, list[float]], kinds: dict[str, str]) -> tuple[RunResult, list[SampleRecord]]:
    prov = Provenance(evalmon_version="0", python_version="3", platform="p", hostname="h")
    n = len(next(iter(values.values())))
    task = TaskResult(name="t", n=n, num_fewshot=0, source="x", config_hash="c", metric_kinds=kinds,
                      metrics={m: MetricValue(value=float(np.mean(v))) for m, v in values.items()})
    samples = [SampleRecord(task="t", doc_id=str(i), prompt_hash="p", scores={m: v[i] for m, v in values.items()})
               for i in range(n)]
    return RunResult(run_id=name, suite_name="s", suite_hash="h", started_at="", provenance=prov, model={},
                     tasks={"t": task}), samples


def test_comparison_table_ranks_and_holm() -> None:
    rng = np.random.default_rng(0)
    truth = rng.random(100) < 0.5
    base_acc = truth.astype(float)
    flip_good = np.where(rng.random(100) < 0.25, 1.0, base_acc)  # more right answers than base
    flip_bad = np.where(rng.random(100) < 0.25, 0.0, base_acc)
    cont = rng.random(100)
    kinds = {"acc": "binary", "score": "continuous"}
    base = _run("r", {"acc": list(base_acc), "score": list(cont)}, kinds)
    variants = {"good": _run("r#good", {"acc": list(flip_good), "score": list(cont + 0.05)}, kinds),
                "bad": _run("r#bad", {"acc": list(flip_bad), "score": list(cont)}, kinds),
                "same": _run("r#same", {"acc": list(base_acc), "score": list(cont)}, kinds)}
    table = comparison_table(base[0], base[1], variants, seed=1, dirs={})
    assert [r["adapter"] for r in table["ranking"]] == ["good", "same", "bad"] and table["best"] == "good"
    acc = next(r for r in table["rows"] if r["metric"] == "acc")
    good, bad = acc["adapters"]["good"], acc["adapters"]["bad"]
    assert good["test"] == "mcnemar-exact" and good["p"] == mcnemar_test(base_acc, flip_good).p_value
    assert good["delta"] > 0 > bad["delta"] and good["delta_vs_best"] == 0 and bad["delta_vs_best"] < 0
    score = next(r for r in table["rows"] if r["metric"] == "score")
    assert score["adapters"]["good"]["test"] == "paired-bootstrap"
    cells = [c for r in table["rows"] for c in r["adapters"].values()]
    assert [c["p_holm"] for c in cells] == pytest.approx(list(holm([c["p"] for c in cells])))
    assert any(c["p_holm"] > c["p"] for c in cells)  # the family correction is applied
    ranks = {r["adapter"]: r for r in table["ranking"]}
    assert ranks["good"]["better_than_base"] == 2 and ranks["bad"]["worse_than_base"] == 1
    assert ranks["same"]["better_than_base"] == ranks["same"]["worse_than_base"] == 0
    assert "Holm over 6" in table["family"]


@pytest.mark.accuracy
def test_run_with_adapters_equals_separate_runs(tiny_checkpoint: Path, tmp_path: Path, benchmarks_dir: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    from evalmon.config.suite import load_suite
    from evalmon.core.results import read_samples
    from evalmon.gate.resolve import resolve_run
    from evalmon.harness.run import run_suite

    monkeypatch.setenv("EVALMON_CACHE_DIR", str(tmp_path / "evalmon-cache"))
    loras = {n: make_lora(tiny_checkpoint, tmp_path / n, seed) for n, seed in (("a", 21), ("b", 22))}

    def suite(name: str, model: dict[str, object]) -> SuiteConfig:
        text = json.dumps({"name": name, "model": {"path": str(tiny_checkpoint), **model},
                           "data": {"data_dir": str(benchmarks_dir)}, "output_dir": str(tmp_path / "reports"),
                           "tracking": {"enabled": False}, "cache": {"path": str(tmp_path / "cache.sqlite")},
                           "tasks": [{"name": "hellaswag", "limit": 12}, {"name": "truthfulqa_mc2", "limit": 6}]})
        (tmp_path / f"{name}.yaml").write_text(text)
        return load_suite(tmp_path / f"{name}.yaml")

    alone = {n: run_suite(suite(f"alone-{n}", {"adapter": str(p)})) for n, p in loras.items()}
    many = run_suite(suite("many", {"adapters": {n: str(p) for n, p in loras.items()}}))
    run_dir = tmp_path / "reports" / many.run_id
    assert many.status == "finished" and many.model["adapter"] is None
    assert many.adapters["variants"] == ["base", "a", "b"] and many.adapters["ranking"]
    for name, single in alone.items():
        variant = RunResult.load(run_dir / "adapters" / name)
        assert variant.run_id == f"{many.run_id}#{name}" and variant.model["adapter"] == single.model["adapter"]
        for task, res in single.tasks.items():
            for metric, mv in res.metrics.items():
                assert variant.tasks[task].metrics[metric].value == pytest.approx(mv.value, abs=1e-9), (name, metric)
            # every adapter request was served by the cache the separate run filled: same fingerprint
            assert variant.tasks[task].timing.computed == 0, (name, task)
        a = {(s.task, s.doc_id): s.loglikelihoods for s in read_samples(run_dir / "adapters" / name)}
        b = {(s.task, s.doc_id): s.loglikelihoods for s in read_samples(tmp_path / "reports" / single.run_id)}
        assert a.keys() == b.keys()
        assert max(abs(x - y) for k in a for x, y in zip(a[k], b[k], strict=True)) <= 1e-5
    base_ids = {(s.task, s.doc_id) for s in read_samples(run_dir)}
    assert base_ids == {(s.task, s.doc_id) for s in read_samples(run_dir / "adapters" / "a")}  # paired
    summary = (run_dir / "summary.md").read_text()
    assert summary.index("Adapters, ranked") < summary.index("| task | metric |")
    assert 'id="adapters-table"' in (run_dir / "report.html").read_text()
    assert resolve_run(f"{run_dir}#a").result.run_id == f"{many.run_id}#a"
    assert resolve_run(f"{run_dir}#base").result.run_id == many.run_id
    with pytest.raises(EvalmonError, match="has no adapter 'c'"):
        resolve_run(f"{run_dir}#c")

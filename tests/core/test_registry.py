"""The one registry (evalmon.core.registry): names, did-you-mean, duplicates, broken plugins, and a real
third-party plugin (tests/plugin_pkg) found through entry points by the ``evalmon`` CLI.

Plugins here are discovered for real: a ``.dist-info`` with ``entry_points.txt`` on ``sys.path`` (unit
tests) or ``pip install --target`` + ``PYTHONPATH`` (the CLI tests) — no registry internals are patched.
"""

from __future__ import annotations

import importlib
import json
import os
import shutil
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest
from cli_util import (
    assert_user_error,
    cli_env,
    load_results,
    only_run_dir,
    run_cli,
    show,
    suite_dict,
    write_suite,
)

from evalmon.core import registry
from evalmon.core.errors import ConfigError, UnknownNameError
from evalmon.core.registry import PluginError, Registry

PLUGIN_SRC = Path(__file__).resolve().parents[1] / "plugin_pkg"


def _fresh(kind: str = "widget") -> Registry[object]:
    return Registry(kind, f"evalmon_test.{uuid.uuid4().hex}")  # a group no installed package declares


def _env(site: Path, **extra: str) -> dict[str, str]:
    """The CLI environment with ``site`` first on ``PYTHONPATH`` (an existing PYTHONPATH is kept after it)."""
    env = cli_env(**extra)
    env["PYTHONPATH"] = os.pathsep.join([str(site), *filter(None, [env.get("PYTHONPATH")])])
    return env


def _dist(site: Path, dist: str, entry_points: str, modules: dict[str, str]) -> None:
    """A minimal installed distribution under ``site``: module files + ``<dist>.dist-info``."""
    info = site / f"{dist.replace('-', '_')}-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(textwrap.dedent(entry_points))
    for name, code in modules.items():
        (site / f"{name}.py").write_text(textwrap.dedent(code))
    importlib.invalidate_caches()


# --------------------------------------------------------------------------- unit: names and errors


def test_lookup_aliases_meta_and_did_you_mean() -> None:
    widgets = _fresh()

    @widgets.register("alpha", aliases=("a",), colour="red")
    def alpha() -> str:
        return "A"

    widgets.add("beta", str.upper)
    assert widgets.get("a") is alpha and widgets.canonical("a") == "alpha"
    assert widgets.meta("alpha") == {"colour": "red"} and widgets.meta("beta") == {}
    assert widgets.names() == ["alpha", "beta"] and widgets.aliases() == ["a"]
    assert "a" in widgets and "alpha" in widgets and "gamma" not in widgets and 3 not in widgets
    with pytest.raises(UnknownNameError) as info:
        widgets.get("alpah", where="suite.yaml:3: widgets.0")
    msg = str(info.value)
    assert isinstance(info.value, ConfigError) and "\n" not in msg
    assert msg.startswith("suite.yaml:3: widgets.0: unknown widget 'alpah' (did you mean: alpha?)")
    assert msg.endswith("known: alpha, beta")
    with pytest.raises(UnknownNameError) as info:
        registry.tasks.get("hellaswg")
    assert "(did you mean: hellaswag" in str(info.value) and "run `evalmon tasks` to list them" in str(info.value)
    widgets.remove("a")
    assert "alpha" not in widgets and "a" not in widgets and widgets.names() == ["beta"]


def test_duplicate_names_are_one_line_errors() -> None:
    widgets = _fresh()

    def first() -> None: ...

    def second() -> None: ...

    widgets.add("w", first, aliases=("ww",))
    widgets.add("w", first, aliases=("ww",))  # the same definition again (a re-imported module): no-op
    with pytest.raises(PluginError) as info:
        widgets.add("w", second)
    msg = str(info.value)
    assert "\n" not in msg and msg.startswith("widget 'w' is registered twice: by module ")
    assert "test_registry" in msg and "rename one of them" in msg
    with pytest.raises(PluginError, match="widget 'ww' is registered twice"):
        widgets.add("other", second, aliases=("ww",))  # an alias is a name too
    widgets.add("tuple", ("x", "y"))
    widgets.add("tuple", ("x", "y"))  # equal values: the same registration
    with pytest.raises(PluginError):
        widgets.add("tuple", ("x",))
    with pytest.raises(PluginError, match="non-empty strings"):
        widgets.add(" ", first)


def test_builtins_come_from_evalmons_own_entry_points() -> None:
    assert registry.tasks.origin("hellaswag").startswith("distribution 'evalmon' entry point 'hellaswag'")
    assert {"mmlu", "bbh", "mmlu_medical"} <= set(registry.task_groups.names())
    assert set(registry.backends.names()) >= {"hf", "openai", "hf_asr", "none"}
    assert registry.backends.meta("openai")["spec_key"] == "base_url"
    assert {"text", "usage", "embedding", "hallucination"} <= set(registry.signals.names())
    assert registry.signals.canonical("embeddings") == "embedding"
    assert set(registry.sources.names()) >= {"jsonl", "csv", "parquet", "sql", "mlflow_traces"}
    assert {"bleu", "chrf", "wer", "cer", "word_perplexity", "pr_auc"} <= set(registry.metrics.names())


# --------------------------------------------------------------------------- unit: entry points


def test_entry_points_modules_objects_and_broken_plugins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    group = f"evalmon_test.{uuid.uuid4().hex}"
    tag = uuid.uuid4().hex[:8]
    _dist(tmp_path, "good-widgets", f"""\
        [{group}]
        mod = good_widgets_{tag}
        obj = good_widgets_obj_{tag}:make
        """, {
        f"widget_registry_{tag}": f"from evalmon.core.registry import Registry\nwidgets = Registry('widget', {group!r})\n",
        f"good_widgets_{tag}": f"from widget_registry_{tag} import widgets\nwidgets.add('from_module', len, size=3)\n",
        f"good_widgets_obj_{tag}": "def make():\n    return 'made'\n"})
    monkeypatch.syspath_prepend(str(tmp_path))
    widgets = importlib.import_module(f"widget_registry_{tag}").widgets
    assert widgets.names() == ["from_module", "obj"]
    assert widgets.get("from_module") is len and widgets.meta("from_module") == {"size": 3}
    assert widgets.get("obj")() == "made"
    assert widgets.origin("obj") == f"distribution 'good-widgets' entry point 'obj' (good_widgets_obj_{tag}:make)"

    broken_group = f"evalmon_test.{uuid.uuid4().hex}"
    site = tmp_path / "broken"
    _dist(site, "broken-widgets", f"[{broken_group}]\nbad = broken_widgets_{tag}\n",
          {f"broken_widgets_{tag}": "import json\nraise RuntimeError('the plugin\\nis broken')\n"})
    monkeypatch.syspath_prepend(str(site))
    broken: Registry[object] = Registry("widget", broken_group)
    with pytest.raises(PluginError) as info:
        broken.get("anything")
    msg = str(info.value)
    assert "\n" not in msg
    assert msg.startswith(f"cannot load widget plugin: distribution 'broken-widgets', entry point 'bad' = "
                          f"'broken_widgets_{tag}' (group {broken_group}): RuntimeError: the plugin is broken")
    assert msg.endswith("fix or uninstall broken-widgets")
    with pytest.raises(PluginError, match=r"evalmon's own entry points .* are not installed"):
        Registry("widget", f"evalmon_test.{uuid.uuid4().hex}", require_builtin=True).names()


# --------------------------------------------------------------------------- the example plugin, via the CLI


@pytest.fixture(scope="module")
def plugin_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """tests/plugin_pkg installed with pip into a folder of its own (a copy: the build leaves files behind)."""
    root = tmp_path_factory.mktemp("plugin")
    shutil.copytree(PLUGIN_SRC, root / "src", ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    proc = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                           "--no-index", "--target", str(root / "site"), str(root / "src")],
                          capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr
    assert (root / "site" / "evalmon_example_plugin-0.1.0.dist-info" / "entry_points.txt").is_file()
    return root / "site"


def test_plugin_task_is_listed_and_runs_in_a_suite(plugin_site: Path, tiny_checkpoint: Path, tmp_path: Path) -> None:
    env = _env(plugin_site, COLUMNS="200")
    listing = run_cli(tmp_path, "tasks", env=env)
    assert listing.returncode == 0, show(listing)
    assert "example_capitals" in listing.stdout and "hellaswag" in listing.stdout
    assert "example_capitals" not in run_cli(tmp_path, "tasks", env=cli_env(COLUMNS="200")).stdout  # not installed

    write_suite(tmp_path / "suite.yaml", suite_dict(tiny_checkpoint, tmp_path, tasks=["example_capitals"],
                                                    name="plugin", limit=4, output_dir="reports"))
    proc = run_cli(tmp_path, "run", "suite.yaml", "--no-tracking", env=env)
    assert proc.returncode == 0, show(proc)
    task = load_results(only_run_dir(tmp_path / "reports"))["tasks"]["example_capitals"]
    assert task["n"] == 4 and {"acc", "acc_norm"} <= set(task["metrics"])

    typo = run_cli(tmp_path, "run", "suite.yaml", "--no-tracking", "--tasks", "example_capitols", env=env)
    assert_user_error(typo, "unknown task or group 'example_capitols'", "did you mean: example_capitals")


def test_plugin_signal_is_computed_and_logged(plugin_site: Path, mlflow_server: str, tmp_path: Path) -> None:
    experiment = f"plugin-signal-{uuid.uuid4().hex[:6]}"
    records = [{"timestamp": f"2026-01-01T00:{10 * i:02d}:00Z", "prompt": "hi", "response": text}
               for i, text in enumerate(["HELLO", "Hello", "hello", "HeLLo"])]
    (tmp_path / "traffic.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    (tmp_path / "m.yaml").write_text(textwrap.dedent(f"""\
        name: plugin
        source: {{kind: jsonl, path: traffic.jsonl}}
        window: {{size: 1h, start: "2026-01-01T00:00:00Z", end: "2026-01-01T01:00:00Z"}}
        signals: [shout]
        drift: {{enabled: false}}
        tracking: {{uri: "{mlflow_server}", experiment: {experiment}}}
        output_dir: out
        """))
    proc = run_cli(tmp_path, "monitor", "m.yaml", env=_env(plugin_site))
    assert proc.returncode == 0, show(proc)
    from mlflow import MlflowClient

    client = MlflowClient(mlflow_server)
    windows = client.search_runs([client.get_experiment_by_name(experiment).experiment_id],
                                 filter_string="tags.`evalmon.window_id` LIKE '%'")
    assert [w.data.metrics.get("mean/shout.upper_ratio") for w in windows] == [pytest.approx((1 + 0.2 + 0 + 0.6) / 4)]

    without = run_cli(tmp_path, "monitor", "m.yaml")  # the plugin is not installed here
    assert_user_error(without, "unknown signal 'shout'")


def test_broken_plugin_is_a_one_line_cli_error(tmp_path: Path) -> None:
    site = tmp_path / "site"
    _dist(site, "evalmon-broken-tasks", "[evalmon.tasks]\nbroken = evalmon_broken_tasks\n",
          {"evalmon_broken_tasks": "from evalmon.core import registry\nregistry.tasks.add('hellaswag', print)\n"})
    proc = run_cli(tmp_path, "tasks", env=_env(site))
    assert_user_error(proc, "task 'hellaswag' is registered twice", "distribution 'evalmon",
                      "distribution 'evalmon-broken-tasks' entry point 'broken'")

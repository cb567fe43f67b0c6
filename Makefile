# Two entry points, each doing its own set-up and safe to run again:
#   make demo   - the Gradio hub on http://127.0.0.1:7860 with the embedded default checkpoints
#   make test   - the whole test suite (CPU, no network)
# Everything installs into .venv; uv (installed into that venv from PyPI) does the resolving because it is
# about ten times faster than pip on torch's CUDA wheels. It writes the installed packages' bytecode at install:
# where PYTHONDONTWRITEBYTECODE is set, Python would otherwise compile them again in every process it starts
# (seconds for each `facehub` command and test worker).

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.facehub-installed
HOST   ?= 127.0.0.1
PORT   ?= 7860
# Test workers: one per core of the 2-core machines the suite is sized for; each takes whole test files and runs
# torch on one thread (the workers already fill the cores; the multi-process tests set their own threads).
TEST_WORKERS ?= 2

.PHONY: demo test lint install browser clean

install: $(STAMP)

$(STAMP): pyproject.toml setup.py
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "uv>=0.5"
	$(BIN)/uv pip install --python $(BIN)/python --compile-bytecode -e ".[dev]"
	@touch $@

# Headless Chromium (Debian) for the browser test. Needs root and apt; elsewhere the browser test skips and says why.
browser:
	@if command -v chromium >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "installing Debian chromium for the browser test"; \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
		|| echo "chromium could not be installed; the browser test will be skipped"; \
	else echo "chromium not found and not root: the browser test will be skipped"; fi

demo: $(STAMP)
	$(BIN)/facehub demo --host $(HOST) --port $(PORT)

test: $(STAMP) browser
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder

lint: $(STAMP)
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) build *.egg-info

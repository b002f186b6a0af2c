# `make demo` and `make test` work on a fresh clone: each first installs what it needs and is missing, once
# (see README.md). What is installed is recorded by stamp files in the venv, each newer than what it was built
# from, so a second call (or `make test` after `make install`, as CI runs them) installs nothing:
#   $(VENV)/.installed-core   .venv with adt and its dependencies (`pip install -e .`): enough for `make demo`
#   $(VENV)/.installed-dev    + the bayes/hf/dev/ray extras (py-irt, transformers, pytest, ruff, mypy, lm-eval, ...)
#   $(VENV)/.installed-extra  + scripts/install_extra.sh: .venv-vllm (the vLLM CPU build) and Chromium
# A stamp is rebuilt when pyproject.toml or this Makefile (or install_extra.sh) is newer than it.
PY      ?= python3.11
VENV    ?= .venv
BIN     := $(VENV)/bin
CORE    := $(VENV)/.installed-core
DEV     := $(VENV)/.installed-dev
EXTRA   := $(VENV)/.installed-extra
# Test groups run one after another so the time of each is printed.
GROUPS  ?= lint itembank calibration sampler runners adt

.PHONY: install demo test bench lint clean

install: $(EXTRA)

$(CORE): pyproject.toml Makefile
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e .
	touch $@

$(DEV): $(CORE)
	# torch is pinned to the local CPU build first so no extra pulls the CUDA wheels.
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e ".[bayes,hf,dev,ray]"
	touch $@

$(EXTRA): $(DEV) scripts/install_extra.sh
	@if [ -x scripts/install_extra.sh ]; then scripts/install_extra.sh; fi
	touch $@

demo: $(CORE)
	$(BIN)/python -m adt.demo

test: $(EXTRA)
	@$(BIN)/python scripts/run_tests.py $(GROUPS)

bench: $(DEV)
	@for b in bench/*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

lint: $(DEV)
	$(BIN)/ruff check .
	$(BIN)/mypy

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build *.egg-info

# One command installs, one runs the demo, one runs the tests (see README.md).
PY      ?= python3.11
VENV    ?= .venv
BIN     := $(VENV)/bin
# Test groups run one after another so the time of each is printed.
GROUPS  ?= lint itembank calibration sampler runners adt

.PHONY: install demo test bench lint clean

install:
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch is pinned to the local CPU build first so no extra pulls the CUDA wheels.
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e ".[bayes,hf,dev]"
	@if [ -x scripts/install_extra.sh ]; then scripts/install_extra.sh; fi

demo:
	$(BIN)/python -m adt.demo

test:
	@$(BIN)/python scripts/run_tests.py $(GROUPS)

bench:
	@for b in bench/*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

lint:
	$(BIN)/ruff check .
	$(BIN)/mypy

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build *.egg-info

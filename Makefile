# `make run` and `make test` work on a fresh machine with Python 3.11 and make:
# they create .venv, install the project into it (again only when its metadata changes), then run.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed

.PHONY: run test bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(INSTALLED): setup.cfg pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --no-compile -e '.[test]'
	touch $@

run: $(INSTALLED)
	$(BIN)/python run_pipeline.py --runner=DirectRunner $(ARGS)

test: $(INSTALLED)
	$(BIN)/python -m pytest -q --durations=15 $(ARGS)

bench: $(INSTALLED)
	$(BIN)/python -m benchmarks.bench_network $(ARGS)
	$(BIN)/python -m benchmarks.bench_preprocess $(ARGS)
	$(BIN)/python -m benchmarks.bench_input_pipeline
	$(BIN)/python -m benchmarks.bench_analyze

clean:
	rm -rf artifacts .pytest_cache

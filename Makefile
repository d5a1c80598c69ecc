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

# Two pytest workers (pytest-xdist): on 2 cores the suite takes about half the time, since most
# tests wait on subprocesses, Beam or TensorFlow's start-up. A test file stays on one worker, so
# its fixtures are built once. ARGS="-n 0" runs it in one process.
test: $(INSTALLED)
	$(BIN)/python -m pytest -q -n 2 --dist loadfile --durations=15 $(ARGS)

bench: $(INSTALLED)
	$(BIN)/python -m benchmarks.bench_network $(ARGS)
	$(BIN)/python -m benchmarks.bench_preprocess $(ARGS)
	$(BIN)/python -m benchmarks.bench_input_pipeline
	$(BIN)/python -m benchmarks.bench_analyze

clean:
	rm -rf artifacts .pytest_cache

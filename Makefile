# Two commands on a fresh machine with only Python 3.11+:
#   make run    - create .venv, install, run the service (embedded Redis + SQLite)
#   make test   - create .venv, install with test extras, run the test suite
#   make bench  - the benchmark suite (bench/suite.py; ARGS="--quick" for the short one)
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: run test bench lint clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -c 'import sys; sys.exit("Python 3.11+ is required") if sys.version_info < (3, 11) else None'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test,bench]'
	touch $@

run: $(VENV)/.installed
	$(VENV)/bin/ingest run

test: $(VENV)/.installed
	$(PY) -m pytest

bench: $(VENV)/.installed
	$(PY) bench/suite.py $(ARGS)

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache

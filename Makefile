# Two commands on a fresh machine with only Python 3.11+:
#   make run     - create .venv, install the service from the lock, run it (embedded Redis + SQLite)
#   make test    - create .venv, install the service + test/bench extras from the lock, run the suite
# and:
#   make bench        - the benchmark suite (bench/suite.py; ARGS="--quick" for the short one)
#   make test-latest  - the suite on the newest versions pyproject.toml allows (.venv-latest, no lock)
#   make lock         - re-resolve requirements/*.txt after a pyproject.toml change (UPGRADE=1: newest)
#   make lock-check   - do the locks still answer pyproject.toml? (CI runs it)
#   make image        - the container image from the lock (podman; base from Debian, image/)
#   make image-test   - build the images and run tests/test_image.py (image + compose)
# The locks pin every package with hashes (tools/lock.py, docs/decisions.md): what a user
# installs is what the suite tested.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
LATEST ?= .venv-latest
UV_VERSION ?= 0.13.9

.PHONY: run test bench test-latest lock lock-check lint clean image image-test

$(VENV)/.venv-made:
	$(PYTHON) -c 'import sys; sys.exit("Python 3.11+ is required") if sys.version_info < (3, 11) else None'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	touch $@

# The service alone: what `make run` and the container image install.
$(VENV)/.installed-service: requirements/service.txt pyproject.toml $(VENV)/.venv-made
	$(PY) -m pip install --quiet --no-deps --require-hashes -r requirements/service.txt
	$(PY) -m pip check
	$(PY) -m pip install --quiet --no-deps -e .
	touch $@

# The service with the test and bench extras: `make test` and `make bench`.
$(VENV)/.installed-dev: requirements/dev.txt pyproject.toml $(VENV)/.venv-made
	$(PY) -m pip install --quiet --no-deps --require-hashes -r requirements/dev.txt
	$(PY) -m pip check
	$(PY) -m pip install --quiet --no-deps -e .
	touch $@ $(VENV)/.installed-service

run: $(VENV)/.installed-service
	$(VENV)/bin/ingest run

test: $(VENV)/.installed-dev
	$(PY) tools/lock.py --check
	$(PY) -m pytest $(ARGS)

bench: $(VENV)/.installed-dev
	$(PY) bench/suite.py $(ARGS)

# A new venv each time, so "newest" means today's newest, not what was newest last time.
test-latest:
	rm -rf $(LATEST)
	$(PYTHON) -m venv $(LATEST)
	$(LATEST)/bin/python -m pip install --quiet --upgrade pip
	$(LATEST)/bin/python -m pip install --quiet --upgrade -e '.[test,bench]'
	$(LATEST)/bin/python -m pip list --format=freeze > $(LATEST)/versions.txt
	TEST_LATEST=1 $(LATEST)/bin/python -m pytest $(ARGS)

lock: $(VENV)/.installed-dev
	$(PY) -m pip install --quiet uv==$(UV_VERSION)
	$(PY) tools/lock.py $(if $(UPGRADE),--upgrade,)
	$(PY) tools/lock.py --check

lock-check: $(VENV)/.installed-dev
	$(PY) tools/lock.py --check

# The container image (docs/deployment.md): podman, runc and mmdebstrap from Debian, no
# registry needed. The base image is built once and kept (FORCE=1 image/base.sh rebuilds it).
image:
	bash image/build.sh

# Opt-in (TEST_IMAGE=1): `make test` skips tests/test_image.py, which builds images.
image-test: $(VENV)/.installed-dev
	bash image/build.sh
	bash image/services.sh
	TEST_IMAGE=1 $(PY) -m pytest tests/test_image.py $(ARGS)

clean:
	rm -rf $(VENV) $(LATEST) *.egg-info .pytest_cache

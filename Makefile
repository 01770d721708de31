# The exchange's entry points. `make demo` and `make test` are all a fresh machine needs.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: demo test test-fast lock lint bench run worker beat clean

$(VENV)/.base: requirements/base.lock
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "$(PYTHON) is needed (set PYTHON=...)"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet --require-hashes -r requirements/base.lock
	touch $@

$(VENV)/.dev: $(VENV)/.base requirements/dev.lock
	$(PIP) install --quiet --require-hashes -r requirements/dev.lock
	touch $@

## demo: the embedded exchange (SQLite, Celery eager, seeded demo data) at http://$(HOST):$(PORT)
demo: $(VENV)/.base
	$(PY) manage.py migrate --noinput
	$(PY) manage.py compilemessages --ignore=.venv >/dev/null 2>&1 || true
	$(PY) manage.py seed_demo
	$(PY) manage.py runserver $(HOST):$(PORT)

## test: install what the tests need and run the whole suite (DATABASE_URL picks the database), in
## PYTEST_WORKERS xdist processes, each with its own test database (test_<name>_gw0, ...); 0 runs in one
PYTEST_WORKERS ?= 2
test: $(VENV)/.dev
	$(VENV)/bin/pytest $(if $(filter 0,$(PYTEST_WORKERS)),,-n $(PYTEST_WORKERS) --dist worksteal) $(PYTEST_ARGS)

## lint: ruff, migrations in step with the models, the import contracts of pyproject.toml (lint-imports), and mypy
lint: $(VENV)/.dev
	$(VENV)/bin/ruff check .
	$(PY) manage.py makemigrations --check --dry-run
	$(VENV)/bin/lint-imports --no-cache
	$(VENV)/bin/mypy exchange listings compliance settlements reporting

## lock: re-resolve the pinned, hashed dependency locks from pyproject.toml
lock: $(VENV)/.base
	$(PIP) install --quiet uv
	$(VENV)/bin/uv pip compile pyproject.toml --python-version 3.11 --generate-hashes -q -o requirements/base.lock
	$(VENV)/bin/uv pip compile pyproject.toml --extra dev --python-version 3.11 --generate-hashes -q -o requirements/dev.lock

## bench: throughput and latency ratios against baselines served in the same run (needs PostgreSQL); the memory of checking a 1 GB dataset
bench: $(VENV)/.dev
	$(PY) bench/run.py $(BENCH_ARGS)
	$(PY) bench/upload_memory.py

## Production-style processes (set DATABASE_URL, CELERY_BROKER_URL, SECRET_KEY, DJANGO_DEBUG=0, ...)
run: $(VENV)/.base
	rm -rf var/prometheus && mkdir -p var/prometheus  # metrics of the worker processes, added up at /metrics
	PROMETHEUS_MULTIPROC_DIR=$(CURDIR)/var/prometheus $(VENV)/bin/gunicorn exchange.wsgi --bind $(HOST):$(PORT) --workers 3 --access-logfile -
worker: $(VENV)/.base
	$(VENV)/bin/celery -A exchange worker --loglevel INFO
beat: $(VENV)/.base
	$(VENV)/bin/celery -A exchange beat --loglevel INFO

clean:
	rm -rf $(VENV) var staticfiles .pytest_cache

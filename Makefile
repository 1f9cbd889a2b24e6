# Two commands: `make run` (everything, on RabbitMQ at localhost) and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
METRICS_DIR ?= $(CURDIR)/db/metrics
# `make run EXCEPT=worker_notifications` starts every process of the Procfile but those named.
EXCEPT ?=

.PHONY: install run test test-postgres chaos bench topology lint clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	@$(BIN)/python manage.py checkbroker
	$(BIN)/python manage.py migrate --no-input
	$(BIN)/python manage.py demo_setup
	$(BIN)/python manage.py demo_catalogue
	@# Every process writes its metrics here for /metrics to add up; wiped at each start.
	rm -rf "$(METRICS_DIR)" && mkdir -p "$(METRICS_DIR)"
	PROMETHEUS_MULTIPROC_DIR="$(METRICS_DIR)" CELERY_TASK_EVENTS=$${CELERY_TASK_EVENTS:-True} \
		PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/honcho start \
		$(if $(EXCEPT),$$(grep -oE '^[a-z_]+' Procfile | grep -vxF $(foreach p,$(EXCEPT),-e $(p))))

test: $(STAMP)
	$(BIN)/pytest

test-postgres: $(STAMP)
	DATABASE_URL=$${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test} $(BIN)/pytest

# The fault-injection suite: real processes, one fault at a time, then the ledger (see README, Reliability).
chaos: $(STAMP)
	$(BIN)/pytest $${CHAOS_TESTS:-tests/chaos} -m chaos --ds=tests.chaos.settings $(CHAOS_ARGS)

bench: $(STAMP)
	$(BIN)/python bench/run.py
	$(BIN)/python bench/streams.py
	$(BIN)/python bench/ordered.py

topology: $(STAMP)
	$(BIN)/python manage.py topology

lint: $(STAMP)
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) db/*.sqlite3* bench/results

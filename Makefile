PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint format venv lock server clean

demo: $(STAMP)  ## run the pipeline once on the sample database, offline
	$(BIN)/python -m include.demo

test: $(STAMP)  ## the whole test suite
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

server: $(STAMP)  ## the local IHC server on 127.0.0.1:8765, in the foreground
	$(BIN)/python -m include.local_server

venv: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check \
		-r requirements.txt -r requirements-dev.txt -c constraints.txt
	touch $@

lock:  ## re-resolve the requirements in a scratch venv and rewrite constraints.txt
	rm -rf .venv-lock && $(PYTHON) -m venv .venv-lock
	.venv-lock/bin/python -m pip install --quiet -r requirements.txt -r requirements-dev.txt
	{ echo "# Lock of every package installed by requirements.txt + requirements-dev.txt (Python 3.11)."; \
	  echo "# Regenerate with 'make lock' after changing a requirement."; \
	  .venv-lock/bin/pip freeze --exclude-editable; } > constraints.txt
	rm -rf .venv-lock

clean:
	rm -rf .airflow data/runs data/output .pytest_cache

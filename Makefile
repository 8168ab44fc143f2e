# consent-replay — the two commands: `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint format docs translations proof bench bench-crypto bench-pipeline bench-serve bench-upload clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11 or newer is needed"'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	@scripts/i18n.sh compile
	@touch $(STAMP)

# The gettext catalogs compiled (.po → .mo); `scripts/i18n.sh extract` gathers new strings.
translations: $(STAMP)
	@scripts/i18n.sh compile

run: $(STAMP) translations
	@scripts/ensure-system.sh
	$(BIN)/consent-replay up

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

test: $(STAMP) translations lint
	@scripts/ensure-system.sh --browser --hsm
	@export CR_TEST_PG="$$(scripts/ensure-services.sh)" && \
	  $(BIN)/python -m pytest -m "not proof" $(PYTEST_ARGS)

docs: $(STAMP)
	$(BIN)/python scripts/write_docs.py

proof: $(STAMP)
	@scripts/ensure-system.sh --browser --hsm
	@rm -f tests/artifacts/proof/results.jsonl
	@export CR_TEST_PG="$$(scripts/ensure-services.sh --rabbitmq)" && \
	  $(BIN)/python -m pytest -m proof $(PYTEST_ARGS); status=$$?; \
	  $(BIN)/python scripts/reliability_report.py && exit $$status

bench: bench-crypto bench-pipeline bench-serve bench-upload

bench-crypto: $(STAMP)
	@scripts/ensure-system.sh --age
	$(BIN)/python bench/crypto.py

bench-pipeline: $(STAMP)
	@scripts/ensure-system.sh
	@export CR_TEST_PG="$$(scripts/ensure-services.sh)" && $(BIN)/python bench/pipeline.py

bench-serve: $(STAMP)
	@export CR_TEST_PG="$$(scripts/ensure-services.sh)" && $(BIN)/python bench/serve.py

bench-upload: $(STAMP)
	@scripts/ensure-system.sh --browser
	@export CR_TEST_PG="$$(scripts/ensure-services.sh)" && $(BIN)/python bench/upload.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) instance .pytest_cache .ruff_cache

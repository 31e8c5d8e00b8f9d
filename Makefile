# Every target creates the virtualenv it needs, so a fresh clone needs nothing else.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help install test lint demo bench clean

help: ## list the targets
	@grep -E '^[a-z]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP) ## create .venv and install the package with its dev tools

test: $(STAMP) ## run the whole test suite (real embedded Postgres, emulators over HTTP)
	$(BIN)/pytest -q

lint: $(STAMP) ## ruff and mypy
	$(BIN)/ruff check reconciler tests bench migrations
	$(BIN)/ruff format --check reconciler tests bench migrations
	$(BIN)/mypy

demo: $(STAMP) ## run the whole job on embedded defaults and show the report
	$(BIN)/reconcile demo

bench: $(STAMP) ## benchmarks: request counts, wall time against the rate-limit floor, memory
	$(BIN)/python -m bench

clean: ## remove the virtualenv and the local working folder
	rm -rf $(VENV) .reconciler

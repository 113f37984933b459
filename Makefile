# The two commands of the README. Each sets up its own environment on a fresh machine.
#   make demo   run the whole pipeline on the embedded demo region and catalog
#   make test   lint, type-check and run every test (what CI runs)
SHELL := /bin/bash
VENV ?= .venv
BIN := $(VENV)/bin
OUT ?= out/demo

.PHONY: demo test lint env

env:
	@bash scripts/bootstrap.sh

demo: env
	$(BIN)/clearcube demo --out $(OUT)

lint: env
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	VENV=$(VENV) bash scripts/typecheck

test: lint
	bash scripts/system-deps.sh
	$(BIN)/python -m pytest $(PYTEST_ARGS)

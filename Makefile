# Two commands on a fresh machine (Python 3.11 and nothing else): `make run`, `make test`.
PYTHON ?= python3
VENV := .venv
UV_VERSION := 0.13.8
PYTEST_ARGS ?=

.PHONY: install run test lint bench-help clean

$(VENV)/.installed: pyproject.toml uv.lock
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	test -x $(VENV)/bin/uv || $(VENV)/bin/python -m pip install --quiet "uv==$(UV_VERSION)"
	UV_PROJECT_ENVIRONMENT=$(VENV) $(VENV)/bin/uv sync --locked --quiet
	touch $@

install: $(VENV)/.installed

run: install
	$(VENV)/bin/keepwell run

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

test: lint
	$(VENV)/bin/pytest $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) .keepwell .pytest_cache .mypy_cache .ruff_cache

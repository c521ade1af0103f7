# Two commands on a fresh machine (Python 3.11 and nothing else): `make run`, `make test`.
PYTHON ?= python3
VENV := .venv
UV_VERSION := 0.13.8
PYTEST_ARGS ?=
# AS_OF="2027-02-06 10:00 UTC": run the tests as if it were then. libfaketime moves the clock
# of pytest and every process it starts (PostgreSQL's now() included) by one fixed offset.
AS_OF ?=
AS_OF_PREFIX = $(if $(AS_OF),faketime -f "$$(printf '%+d' $$(( $$(date -ud '$(AS_OF)' +%s) - $$(date +%s) )))s",)

.PHONY: install run test lint bench-help clean

$(VENV)/.installed: pyproject.toml uv.lock Makefile
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	test -x $(VENV)/bin/uv || $(VENV)/bin/python -m pip install --quiet "uv==$(UV_VERSION)"
	UV_PROJECT_ENVIRONMENT=$(VENV) $(VENV)/bin/uv sync --locked --quiet --compile-bytecode
	touch $@

install: $(VENV)/.installed

run: install
	$(VENV)/bin/keepwell run

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports --no-logo --cache-dir .import_linter_cache

test: lint
	@test -z "$(AS_OF)" || command -v faketime >/dev/null || \
		{ echo "AS_OF needs libfaketime: apt-get install faketime"; exit 2; }
	$(AS_OF_PREFIX) $(VENV)/bin/pytest $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) .keepwell .pytest_cache .mypy_cache .ruff_cache .import_linter_cache

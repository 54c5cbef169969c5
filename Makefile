# channelbus: `make demo` runs the demo, `make test` runs lint, types and tests, `make bench` the benchmarks.
PYTHON ?= python3
VENV   ?= .venv
HOST   ?= 127.0.0.1
PORT   ?= 8000
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed

.PHONY: demo test lint typecheck pytest bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	cd demo && ../$(BIN)/python manage.py migrate --noinput
	cd demo && ../$(BIN)/python manage.py runbus --host $(HOST) --port $(PORT)

lint: $(STAMP)
	$(BIN)/ruff check channelbus tests demo bench
	$(BIN)/ruff format --check channelbus tests demo bench

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP)
	$(BIN)/pytest

test: lint typecheck pytest

bench: $(STAMP)
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

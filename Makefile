# channelbus: `make demo` runs the demo, `make test` runs lint, types and tests, `make bench` the benchmarks.
PYTHON ?= python3
VENV   ?= .venv
HOST   ?= 127.0.0.1
PORT   ?= 8000
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed
# Django 6 needs Python >= 3.12: the suite runs a second time in .venv-django6 when one is found.
PYTHON_DJ6 ?= $(shell for p in python3.12 python3.13 $$HOME/.pyenv/versions/3.12*/bin/python $$HOME/.pyenv/versions/3.13*/bin/python; do $$p -c 'import sys; assert sys.version_info >= (3, 12)' >/dev/null 2>&1 && { echo $$p; break; }; done)
VENV_DJ6 = .venv-django6

.PHONY: demo test lint typecheck pytest pytest-django6 jstest browsertest bench clean

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

# The suite runs in two processes (pytest-xdist), a test module per process: most tests wait on servers,
# workers and sockets, so two halve the time on a 2-core machine. PYTEST_ARGS='-n 0' runs it in one.
PYTEST_ARGS ?= -n 2 --dist loadfile

pytest: $(STAMP)
	$(BIN)/pytest $(PYTEST_ARGS)

$(VENV_DJ6)/.installed: pyproject.toml
	$(PYTHON_DJ6) -m venv $(VENV_DJ6)
	$(VENV_DJ6)/bin/python -m pip install --quiet --upgrade pip
	$(VENV_DJ6)/bin/python -m pip install --quiet -e '.[dev]' 'Django>=6,<7'
	touch $@

pytest-django6:
ifeq ($(PYTHON_DJ6),)
	@if [ "$$CI" = "true" ]; then echo "Python >= 3.12 is needed to test Django 6 and none was found" >&2; exit 1; fi
	@echo "SKIPPED: no Python >= 3.12 found, so the suite does not run on Django 6 here"
else
	$(MAKE) $(VENV_DJ6)/.installed
	$(VENV_DJ6)/bin/pytest -p no:cacheprovider $(PYTEST_ARGS)
endif

# The browser client: tsc --noEmit checks channelbus.d.ts against tests/js/typed-usage.ts, eslint lints the
# client and the JS tests, and node's own test runner runs the unit tests of its pure parts (no browser).
# typescript and eslint come from npm (tests/js/package-lock.json); nothing is downloaded at run time.
jstest:
	@if command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1; then \
		cd tests/js && npm ci --no-audit --no-fund --loglevel=error \
		&& npm run --silent typecheck && npm run --silent lint && npm test --silent; \
	elif [ "$$CI" = "true" ]; then echo "node and npm are needed for the JS client checks and tests and were not found" >&2; exit 1; \
	elif command -v node >/dev/null 2>&1; then \
		echo "SKIPPED: npm not found, so the JS client is not type-checked or linted here"; node --test tests/js/; \
	else echo "SKIPPED: node not found, so the JS client tests do not run here"; fi

# The demo in Debian's headless Chromium (apt-get install -y chromium), driven by playwright-core from npm,
# which downloads no browser. .ci/run installs chromium; elsewhere the tests are skipped without it.
CHROMIUM ?= /usr/bin/chromium
browsertest: $(STAMP)
	@if [ -x "$(CHROMIUM)" ] && command -v npm >/dev/null 2>&1; then \
		cd tests/browser && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error \
		&& CHROMIUM="$(CHROMIUM)" npm test --silent; \
	elif [ "$$CI" = "true" ]; then echo "$(CHROMIUM) and npm are needed for the browser tests (apt-get install -y chromium)" >&2; exit 1; \
	else echo "SKIPPED: no $(CHROMIUM) or npm here, so the browser tests do not run (apt-get install -y chromium)"; fi

test: lint typecheck pytest pytest-django6 jstest browsertest

bench: $(STAMP)
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) $(VENV_DJ6) .pytest_cache .mypy_cache .ruff_cache tests/browser/node_modules tests/js/node_modules test-artifacts

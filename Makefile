# The two commands of the README: `make run` and `make test`. Each does all the
# set-up it needs on a fresh machine (virtualenv, dependencies, generated stubs).
# `make bench` runs the benchmarks (BENCHMARKS.md); BENCH_ARGS="--quick --only 1,5".

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
STUBS := gen/.generated
PROTO_FILES := $(shell find protos -name '*.proto')
BUF := node_modules/.bin/buf

BENCH_INSTALLED := $(VENV)/.bench-installed
BENCH_ARGS ?=

.PHONY: run demo test check lint typecheck buf-lint protos clean bench

run: $(STUBS)
	$(BIN)/python scripts/run_all.py

# The main job with demo data loaded once it is ready.
demo: $(STUBS)
	$(BIN)/python scripts/run_all.py --demo

test: check
	$(BIN)/pytest

# Lint, format and type checks; `make test` runs them before the tests.
check: lint typecheck buf-lint

lint: $(INSTALLED)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STUBS)
	$(BIN)/mypy

buf-lint: $(STUBS) $(BUF)
	$(BUF) lint

protos: $(STUBS)

# wrk (Debian's package) is the HTTP load generator; the harness needs it.
bench: $(STUBS) $(BENCH_INSTALLED)
	@command -v wrk >/dev/null 2>&1 || { \
		echo "make bench: wrk is not installed; install it with: apt-get install -y wrk" >&2; \
		exit 2; }
	$(BIN)/python -m bench $(BENCH_ARGS)

$(BENCH_INSTALLED): $(INSTALLED) pyproject.toml
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	touch $@

$(INSTALLED): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	$(BIN)/python scripts/gen_protos.py
	# Install once more now that gen/research exists, so that the editable
	# install maps the generated package too.
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $@

$(STUBS): $(INSTALLED) scripts/gen_protos.py $(PROTO_FILES)
	$(BIN)/python scripts/gen_protos.py
	touch $@

$(BUF): package.json package-lock.json
	npm install --no-audit --no-fund --ignore-scripts
	touch $@

clean:
	rm -rf $(VENV) gen .build node_modules .mypy_cache .ruff_cache .pytest_cache

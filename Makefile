# The two commands of the README: `make run` and `make test`. Each does all the
# set-up it needs on a fresh machine (virtualenv, dependencies, generated stubs).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
STUBS := gen/.generated
PROTO_FILES := $(shell find protos -name '*.proto')
BUF := node_modules/.bin/buf

.PHONY: run demo test check lint typecheck buf-lint protos clean

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

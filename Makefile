# Everything a fresh machine needs: `make run` serves the embedded default, `make test` runs the suite.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
BUF := node_modules/.bin/buf

.PHONY: install run test proto lint buf-lint bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

$(BUF):
	npm install --no-save --no-audit --no-fund --silent @bufbuild/buf@1.75.0

proto: $(STAMP)
	$(PY) -m service.protogen

buf-lint: $(BUF)
	$(BUF) lint

lint: $(STAMP) buf-lint
	$(VENV)/bin/ruff check service workers tests

run: $(STAMP)
	$(PY) -m service migrate
	$(PY) -m service demo
	$(PY) -m service serve

test: $(STAMP) $(BUF)
	$(PY) -m pytest -q

clean:
	rm -rf $(VENV) node_modules var

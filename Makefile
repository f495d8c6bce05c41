# Everything a fresh machine needs: `make run` serves the embedded default, `make test` runs the suite.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
BUF := node_modules/.bin/buf

.PHONY: install run test test-deps proto lint buf-lint bench fuzz clean

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

# The servers the test fixtures start themselves (tests/backends.py): PostgreSQL,
# Redis, RabbitMQ from the Debian packages. Installs only what is missing.
APT_GET := DEBIAN_FRONTEND=noninteractive apt-get -qq -o=Dpkg::Use-Pty=0 -o DPkg::Lock::Timeout=120
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)

test-deps:
	@missing=""; \
	command -v redis-server >/dev/null 2>&1 || missing="$$missing redis-server"; \
	{ [ -x /usr/lib/rabbitmq/bin/rabbitmq-server ] || command -v rabbitmq-server >/dev/null 2>&1; } \
	  || missing="$$missing rabbitmq-server"; \
	{ command -v pg_config >/dev/null 2>&1 && [ -x "$$(pg_config --bindir)/initdb" ]; } \
	  || missing="$$missing postgresql"; \
	if [ -n "$$missing" ]; then \
	  echo "installing$$missing (apt-get)"; \
	  $(SUDO) $(APT_GET) install -y --no-install-recommends $$missing >/tmp/posts-apt.log 2>&1 \
	  || { $(SUDO) $(APT_GET) update >>/tmp/posts-apt.log 2>&1 \
	       && $(SUDO) $(APT_GET) install -y --no-install-recommends $$missing >>/tmp/posts-apt.log 2>&1; } \
	  || { tail -n 30 /tmp/posts-apt.log; exit 1; }; \
	fi

test: $(STAMP) $(BUF) test-deps
	$(PY) -m pytest -q

# Property-based fuzzing of every RPC with many more (randomly seeded) examples than
# `make test` runs; FUZZ_EXAMPLES overrides the count per RPC.
fuzz: $(STAMP) test-deps
	HYPOTHESIS_PROFILE=fuzz $(PY) -m pytest -q tests/service/test_fuzz.py

# Benchmarks (not part of `make test`): `make bench ARGS="--quick"`; see BENCHMARKS.md.
bench: $(STAMP)
	$(PY) -m tests.benchmarks $(ARGS)

clean:
	rm -rf $(VENV) node_modules var

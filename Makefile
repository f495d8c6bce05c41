# Everything a fresh machine needs: `make run` serves the embedded default, `make test` runs the suite.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
BUF := node_modules/.bin/buf
#: buf, the TypeScript client's generator and the libraries its program builds
#: with, pinned; one npm command, since each `npm install --no-save` prunes the rest.
NODE_PACKAGES := @bufbuild/buf@1.75.0 @bufbuild/protoc-gen-es@2.17.0 @bufbuild/protobuf@2.17.0 \
	@connectrpc/connect@2.3.0 @connectrpc/connect-node@2.3.0 typescript@7.0.2 @types/node@20.19.25
NODE_STAMP := node_modules/.installed

.PHONY: install run test test-deps client-deps clients proto lint buf-lint bench fuzz clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

$(BUF): $(NODE_STAMP)

$(NODE_STAMP): Makefile
	npm install --no-save --no-audit --no-fund --silent $(NODE_PACKAGES)
	touch $(NODE_STAMP)

proto: $(STAMP)
	$(PY) -m service.protogen

# generated/<language>/ for the TypeScript, Go, C++, Java and Ruby clients.
clients: $(STAMP) $(NODE_STAMP) client-deps
	$(PY) -m tests.clients.generate

buf-lint: $(BUF)
	$(BUF) lint

# Lint and type checks, every tool from the venv and node_modules (pinned): ruff's
# rules and formatting, buf lint on the proto, mypy on service/ and workers/
# (its settings are in pyproject.toml).
lint: $(STAMP) buf-lint
	$(VENV)/bin/ruff check service workers tests
	$(VENV)/bin/ruff format --check service workers tests
	$(VENV)/bin/mypy

run: $(STAMP)
	$(PY) -m service migrate
	$(PY) -m service demo
	$(PY) -m service serve

# The servers the test fixtures start themselves (tests/backends.py): PostgreSQL,
# Redis, RabbitMQ from the Debian packages. Installs only what is missing.
APT_GET := DEBIAN_FRONTEND=noninteractive apt-get -qq -o=Dpkg::Use-Pty=0 -o DPkg::Lock::Timeout=120
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
# Installs the packages named in the shell variable $$missing, if any (updating
# the package lists only when the first try fails).
APT_INSTALL_MISSING = if [ -n "$$missing" ]; then \
	  echo "installing$$missing (apt-get)"; \
	  $(SUDO) $(APT_GET) install -y --no-install-recommends $$missing >/tmp/posts-apt.log 2>&1 \
	  || { $(SUDO) $(APT_GET) update >>/tmp/posts-apt.log 2>&1 \
	       && $(SUDO) $(APT_GET) install -y --no-install-recommends $$missing >>/tmp/posts-apt.log 2>&1; } \
	  || { tail -n 30 /tmp/posts-apt.log; exit 1; }; \
	fi

test-deps:
	@missing=""; \
	command -v redis-server >/dev/null 2>&1 || missing="$$missing redis-server"; \
	{ [ -x /usr/lib/rabbitmq/bin/rabbitmq-server ] || command -v rabbitmq-server >/dev/null 2>&1; } \
	  || missing="$$missing rabbitmq-server"; \
	{ command -v pg_config >/dev/null 2>&1 && [ -x "$$(pg_config --bindir)/initdb" ]; } \
	  || missing="$$missing postgresql"; \
	$(APT_INSTALL_MISSING)

# The compilers, gRPC plugins and runtimes of the generated clients, from Debian
# (tests/clients). Go's protobuf 1.5 is named: apt's default, 1.3, builds a client
# that panics on its first call. Java's netty, perfmark and gson are undeclared
# dependencies of libgrpc-java.
CLIENT_PACKAGES := protobuf-compiler golang-go protoc-gen-go protoc-gen-go-grpc \
	golang-google-grpc-dev golang-google-protobuf-dev golang-github-golang-protobuf-1-5-dev \
	libgrpc++-dev protobuf-compiler-grpc \
	openjdk-17-jdk-headless libgrpc-java protobuf-compiler-grpc-java-plugin libprotobuf-java \
	libnetty-java libperfmark-java libgoogle-gson-java libgeronimo-annotation-1.3-spec-java \
	ruby-grpc ruby-grpc-tools

client-deps:
	@missing=""; \
	for package in $(CLIENT_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$package 2>/dev/null | grep -q 'ok installed' \
	    || missing="$$missing $$package"; \
	done; \
	$(APT_INSTALL_MISSING)

test: lint $(STAMP) $(NODE_STAMP) test-deps client-deps
	$(PY) -m pytest -q

# Property-based fuzzing of every RPC with many more (randomly seeded) examples than
# `make test` runs; FUZZ_EXAMPLES overrides the count per RPC.
fuzz: $(STAMP) test-deps
	HYPOTHESIS_PROFILE=fuzz $(PY) -m pytest -q tests/service/test_fuzz.py

# Benchmarks (not part of `make test`): `make bench ARGS="--quick"`; see BENCHMARKS.md.
bench: $(STAMP)
	$(PY) -m tests.benchmarks $(ARGS)

clean:
	rm -rf $(VENV) node_modules var build

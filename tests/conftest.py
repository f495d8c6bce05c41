"""Fixtures shared by the whole suite.

The integration tests talk to a real server over a real gRPC channel: a
``server`` on a free port, with a Dramatiq worker, dispatcher and sweeper in
the same process. It runs on each backend combination in turn (test ids end
in ``[sqlite]``, ``[postgres-redis]``, ``[postgres-rabbitmq]``):

- ``sqlite``: the embedded default, a SQLite file in a temporary directory and
  the in-memory broker;
- ``postgres-redis`` / ``postgres-rabbitmq``: a fresh PostgreSQL database per
  module on a real PostgreSQL server, and a real Redis or RabbitMQ broker, with
  ``POSTS_INPROCESS_WORKER=1`` so the worker consuming from that broker runs in
  this process (where ``workers.delivery.hooks`` and the sandbox ledger are).

The PostgreSQL, Redis and RabbitMQ servers (``tests.backends``) are started
once per session, only when a test needs them, and always stopped. Only one
service server can run per process (the database proxy and the broker are
global), so ``server`` is module-scoped and always stopped in teardown.

A module may limit its backends with ``BACKENDS = ["sqlite", ...]`` and set
extra environment with ``pytestmark = pytest.mark.server_env(...)``; the
command line can limit them for the whole run with ``--backends sqlite,...``
(or ``POSTS_TEST_BACKENDS``).

Test data comes from factories (``make_tenant``, ``make_key``), calls go through
``api`` (or ``tests.support.call``), and anything asynchronous is awaited with
``tests.support.wait_for`` (polling with a deadline, never a bare sleep).
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import re
from collections.abc import Callable
from typing import Any

import grpc
import pytest

from tests.processes import FAKES_EGRESS_ALLOW
from tests.support import DEFAULT_WAIT, Api, DeliveryHooks, Gate, Tenant

# isort: split
from posts.v1 import posts_pb2, posts_pb2_grpc

SECRET_KEY = "test-secret-key-0123456789abcdef-0123456789"

#: Every backend combination the ``server`` fixture runs on: (database, broker).
BACKENDS = {
    "sqlite": ("sqlite", ""),
    "postgres-redis": ("postgres", "redis"),
    "postgres-rabbitmq": ("postgres", "rabbitmq"),
}


def pytest_addoption(parser):
    parser.addoption(
        "--backends",
        default=os.environ.get("POSTS_TEST_BACKENDS", ",".join(BACKENDS)),
        help="comma-separated backend combinations for the server fixture "
        f"(default: all of {', '.join(BACKENDS)}; env POSTS_TEST_BACKENDS)",
    )


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "server_env(**env): extra POSTS_* variables for this module's server"
    )
    wanted = [name.strip() for name in config.getoption("--backends").split(",") if name.strip()]
    unknown = set(wanted) - set(BACKENDS)
    if unknown:
        raise pytest.UsageError(f"--backends: unknown {sorted(unknown)}; known: {list(BACKENDS)}")
    config.posts_backends = wanted


def pytest_generate_tests(metafunc):
    """Runs every test that uses ``server`` once per backend (module-level
    ``BACKENDS`` narrows the list for a module)."""
    if "server" not in metafunc.fixturenames:
        return
    allowed = getattr(metafunc.module, "BACKENDS", list(BACKENDS))
    backends = [name for name in metafunc.config.posts_backends if name in allowed]
    metafunc.parametrize("server", backends, indirect=True, scope="module")


# -------------------------------------------------------------------- backends


@pytest.fixture(scope="session")
def postgres_server():
    """A PostgreSQL server for the session (``tests.backends.PostgresServer``)."""
    from tests.backends import PostgresServer

    with PostgresServer() as server:
        yield server


@pytest.fixture(scope="session")
def redis_server():
    """A Redis server for the session (``tests.backends.RedisServer``)."""
    from tests.backends import RedisServer

    with RedisServer() as server:
        yield server


@pytest.fixture(scope="session")
def rabbit_server():
    """A RabbitMQ node for the session (``tests.backends.RabbitServer``)."""
    from tests.backends import RabbitServer

    with RabbitServer() as server:
        yield server


_databases = itertools.count(1)


def _backend_env(request, backend: str) -> dict[str, str]:
    """The database and broker variables for ``backend``, on clean state: a new
    database, and an empty broker (nothing left from an earlier module)."""
    from workers.actors import DELIVERY_QUEUE
    from workers.webhooks import WEBHOOK_QUEUE

    database, broker = BACKENDS[backend]
    env = {}
    if database == "postgres":
        postgres = request.getfixturevalue("postgres_server")
        module = re.sub(r"[^a-z0-9]+", "_", request.module.__name__.rsplit(".", 1)[-1].lower())
        name = f"t{next(_databases)}_{module}_{broker}"[:63]
        env["POSTS_DATABASE_URL"] = postgres.create_database(name)
    if broker == "redis":
        redis = request.getfixturevalue("redis_server")
        redis.flush()
        env["POSTS_BROKER_URL"] = redis.url
    elif broker == "rabbitmq":
        from dramatiq.common import dq_name, xq_name

        rabbit = request.getfixturevalue("rabbit_server")
        rabbit.purge(
            *(
                name(queue)
                for queue in (DELIVERY_QUEUE, WEBHOOK_QUEUE)
                for name in (str, dq_name, xq_name)
            )
        )
        env["POSTS_BROKER_URL"] = rabbit.url
    if broker:
        env["POSTS_INPROCESS_WORKER"] = "1"
    return env


# -------------------------------------------------------------------- fixtures


@dataclasses.dataclass
class Running:
    """A started server: where it listens, how it was configured, on which backend."""

    config: Any
    port: int
    backend: str = "sqlite"

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"


@pytest.fixture(scope="module")
def server(request, tmp_path_factory):
    """A started server (gRPC + in-process worker, dispatcher, sweeper) on a free port,
    on the backend combination ``request.param`` names (see ``BACKENDS``)."""
    from service import config as service_config
    from service import db, migrations
    from service import server as service_server
    from workers import broker as workers_broker
    from workers import delivery, inprocess, scheduler
    from workers.adapters.sandbox import LEDGER

    backend = request.param
    var_dir = tmp_path_factory.mktemp(f"var-{backend}")
    env = {
        "POSTS_LISTEN": "127.0.0.1:0",
        "POSTS_DATABASE_URL": f"sqlite:///{var_dir}/posts.db",
        "POSTS_VAR_DIR": str(var_dir),
        "POSTS_SECRET_KEY": SECRET_KEY,
        "POSTS_EGRESS_ALLOW": FAKES_EGRESS_ALLOW,  # the fakes (tests/fakes) listen there
        **_backend_env(request, backend),
    }
    marker = request.node.get_closest_marker("server_env")
    if marker is not None:
        env.update({name: str(value) for name, value in marker.kwargs.items()})
    # The egress guard (service.egress) reads its settings from this process's
    # environment, as a server process does: they are set there for the module.
    egress_env = pytest.MonkeyPatch()
    request.addfinalizer(egress_env.undo)
    for name in ("POSTS_EGRESS_ALLOW", "POSTS_MEDIA_MAX_BYTES"):
        if name in env:
            egress_env.setenv(name, env[name])
        else:
            egress_env.delenv(name, raising=False)
    config = service_config.Config.from_env(env)
    # Process-global state the previous module may have left behind.
    LEDGER.clear()
    for hooks in (
        delivery.hooks.before_claim,
        delivery.hooks.after_claim,
        delivery.hooks.before_send,
        scheduler.hooks.before_dispatch,
    ):
        hooks.clear()
    db.init(config)
    migrations.migrate()
    grpc_server, port = service_server.create_server(config, *inprocess.wire(config))
    try:
        grpc_server.start()
        yield Running(config=config, port=port, backend=backend)
    finally:
        try:
            grpc_server.stop(grace=2.0)
        finally:
            # Back to the in-memory broker: the real one's connections close now,
            # while its server is still up; and nothing later sends to it.
            workers_broker.use("")
            db.close()  # every connection of the PostgreSQL pool, too


@pytest.fixture(scope="module")
def channel(server):
    with grpc.insecure_channel(server.address) as channel:
        grpc.channel_ready_future(channel).result(timeout=DEFAULT_WAIT)
        yield channel


@pytest.fixture(scope="module")
def stub(channel) -> posts_pb2_grpc.PostServiceStub:
    return posts_pb2_grpc.PostServiceStub(channel)


@pytest.fixture(scope="module")
def api(stub) -> Api:
    return Api(stub)


@pytest.fixture
def make_tenant(server) -> Callable[..., Tenant]:
    """Factory: a fresh workspace with its own key and a sandbox X account."""
    from service import admin

    def make(name: str = "acme") -> Tenant:
        workspace_id = admin.create_workspace(name)
        key = admin.create_api_key([workspace_id])
        account_id = admin.create_account(workspace_id, platform="x", handle=name, sandbox=True)
        return Tenant(workspace_id=workspace_id, key=key, account_id=account_id)

    return make


@pytest.fixture
def make_key(server) -> Callable[..., str]:
    """Factory: an API key granted to the given workspaces."""
    from service import admin

    def make(*workspace_ids: str) -> str:
        return admin.create_api_key(list(workspace_ids))

    return make


@pytest.fixture
def tenant(make_tenant) -> Tenant:
    return make_tenant("acme")


@pytest.fixture
def ledger(server):
    """The sandbox network's record of every send the worker made."""
    from workers.adapters.sandbox import LEDGER

    return LEDGER


@pytest.fixture
def delivery_hooks(server):
    hooks = DeliveryHooks()
    try:
        yield hooks
    finally:
        hooks.remove_all()


@pytest.fixture
def held_claims(delivery_hooks) -> Gate:
    """Holds every delivery just before its claim until ``release()`` (or teardown)."""
    gate = Gate()
    delivery_hooks.before_claim(gate)
    try:
        yield gate
    finally:
        gate.release()


@pytest.fixture
def held_sends(delivery_hooks) -> Gate:
    """Holds every delivery just before it sends an item until ``release()`` (or teardown)."""
    gate = Gate()
    delivery_hooks.before_send(gate)
    try:
        yield gate
    finally:
        gate.release()


@pytest.fixture
def published(api, tenant) -> posts_pb2.Post:
    """A post of ``tenant`` that the worker has published."""
    post = api.create(tenant, text="Already live", status=posts_pb2.STATUS_CHANGE_PUBLISH)
    return api.wait_published(tenant, post.post_id)

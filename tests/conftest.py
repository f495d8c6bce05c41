"""Fixtures shared by the whole suite.

The integration tests talk to a real server over a real gRPC channel: a
``server`` on a free port with a real SQLite file in a temporary directory and
the embedded in-process Dramatiq worker, dispatcher and sweeper. Only one
server can run per process (the database proxy and the broker are global), so
it is module-scoped and always stopped in teardown.

Test data comes from factories (``make_tenant``, ``make_key``), calls go through
``api`` (or ``tests.support.call``), and anything asynchronous is awaited with
``tests.support.wait_for`` (polling with a deadline, never a bare sleep).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import grpc
import pytest

from tests.support import DEFAULT_WAIT, Api, DeliveryHooks, Gate, Tenant

# isort: split
from posts.v1 import posts_pb2, posts_pb2_grpc

SECRET_KEY = "test-secret-key-0123456789abcdef-0123456789"


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "server_env(**env): extra POSTS_* variables for this module's server"
    )


# -------------------------------------------------------------------- fixtures


@dataclasses.dataclass
class Running:
    """A started server: where it listens and how it was configured."""

    config: Any
    port: int

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"


@pytest.fixture(scope="module", params=["sqlite"])
def server(request, tmp_path_factory):
    """A started server (gRPC + embedded worker, dispatcher, sweeper) on a free port.

    Parametrized by backend so PostgreSQL / Redis can join later. A module may
    set extra environment with ``pytestmark = pytest.mark.server_env(...)``.
    """
    from service import config as service_config
    from service import db, migrations
    from service import server as service_server

    var_dir = tmp_path_factory.mktemp(f"var-{request.param}")
    env = {
        "POSTS_LISTEN": "127.0.0.1:0",
        "POSTS_DATABASE_URL": f"sqlite:///{var_dir}/posts.db",
        "POSTS_VAR_DIR": str(var_dir),
        "POSTS_SECRET_KEY": SECRET_KEY,
    }
    marker = request.node.get_closest_marker("server_env")
    if marker is not None:
        env.update({name: str(value) for name, value in marker.kwargs.items()})
    config = service_config.Config.from_env(env)
    db.init(config)
    migrations.migrate()
    grpc_server, port = service_server.create_server(config)
    grpc_server.start()
    try:
        yield Running(config=config, port=port)
    finally:
        stopped = grpc_server.stop(grace=2.0)
        if hasattr(stopped, "wait"):
            stopped.wait(DEFAULT_WAIT)


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

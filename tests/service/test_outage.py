"""A database outage is answered UNAVAILABLE / BACKEND_UNAVAILABLE, never INTERNAL,
health says NOT_SERVING meanwhile, and the service recovers by itself when the
database is back."""

from __future__ import annotations

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.backends import PostgresServer
from tests.support import Api, Tenant, refused, wait_for

# isort: split
from posts.v1 import posts_pb2, posts_pb2_grpc

SECRET_KEY = "outage-secret-key-0123456789abcdef-0123456789"


@pytest.fixture
def postgres_service(tmp_path):
    """A server (embedded worker) on its own PostgreSQL, which the test may stop."""
    from service import admin, db, migrations
    from service.config import Config
    from service.server import create_server
    from workers.inprocess import wire

    with PostgresServer() as postgres:
        config = Config.from_env(
            {
                "POSTS_LISTEN": "127.0.0.1:0",
                "POSTS_DATABASE_URL": postgres.create_database("outage"),
                "POSTS_VAR_DIR": str(tmp_path),
                "POSTS_SECRET_KEY": SECRET_KEY,
                "POSTS_HEALTH_INTERVAL": "0.1",
            }
        )
        db.init(config)
        migrations.migrate()
        server, port = create_server(config, *wire(config))
        server.start()
        try:
            workspace_id = admin.create_workspace("outage")
            tenant = Tenant(
                workspace_id,
                admin.create_api_key([workspace_id]),
                admin.create_account(workspace_id, platform="x", sandbox=True),
            )
            with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
                yield (
                    postgres,
                    Api(posts_pb2_grpc.PostServiceStub(channel)),
                    tenant,
                    health_pb2_grpc.HealthStub(channel),
                )
        finally:
            server.stop(grace=2.0)
            db.close()


def test_a_database_outage_is_unavailable_and_heals(postgres_service):
    postgres, api, tenant, health = postgres_service
    post = api.create(tenant, text="before", status=posts_pb2.STATUS_CHANGE_DRAFT)

    assert _health(health) == SERVING

    # When the database goes away
    postgres._halt()
    try:
        read = refused(
            api.stub.GetPostStatus,
            api.request("GetPostStatus", tenant, post_id=post.post_id),
            tenant.key,
        )
        write = refused(
            api.stub.CreatePost,
            api.create_request(tenant, text="during", status=posts_pb2.STATUS_CHANGE_DRAFT),
            tenant.key,
        )
        # (and health turns NOT_SERVING, for the service and the server as a whole)
        wait_for(lambda: _health(health) == NOT_SERVING, timeout=10)
        assert _health(health, "posts.v1.PostService") == NOT_SERVING
    finally:
        postgres._launch()

    # Then calls are UNAVAILABLE with BACKEND_UNAVAILABLE, not INTERNAL
    for failure in (read, write):
        assert failure.kind == ("UNAVAILABLE", "BACKEND_UNAVAILABLE")
    # And once it is back, the same calls succeed without a restart
    wait_for(lambda: _answers(api, tenant, post.post_id), timeout=30)
    assert api.get(tenant, post.post_id).items[0].text == "before"
    # ... and health is SERVING again
    wait_for(lambda: _health(health) == SERVING, timeout=10)


SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def _health(stub, service: str = "") -> int:
    return stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5).status


def _answers(api: Api, tenant: Tenant, post_id: str) -> bool:
    try:
        api.get(tenant, post_id)
    except grpc.RpcError as error:
        assert error.code() == grpc.StatusCode.UNAVAILABLE, error
        return False
    return True

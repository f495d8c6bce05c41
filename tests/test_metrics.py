"""Prometheus metrics on POSTS_METRICS_LISTEN: scraped after real RPCs and
deliveries, from one embedded server, and from ``serve --processes 2`` and two
worker processes on PostgreSQL + Redis (each group's endpoint adds up its
processes)."""

from __future__ import annotations

import urllib.request

import grpc
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.backends import PostgresServer, RedisServer
from tests.processes import (
    ServerProcess,
    WorkerProcess,
    free_port,
    provision_tenant,
)
from tests.support import Api, wait_for

# isort: split
from posts.v1 import posts_pb2 as pb
from posts.v1 import posts_pb2_grpc

SECRET_KEY = "metrics-secret-key-0123456789abcdef-0123456789"


def scrape(port: int) -> dict[tuple[str, frozenset], float]:
    """Every sample of the endpoint: (name, labels) -> value."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as answer:
        text = answer.read().decode()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(samples, name: str, **labels) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def api_on(address: str) -> tuple[grpc.Channel, Api]:
    """A new connection to ``address`` and the test API over it."""
    channel = grpc.insecure_channel(address)
    return channel, Api(posts_pb2_grpc.PostServiceStub(channel))


def test_an_embedded_server_counts_its_rpcs_transitions_and_deliveries(tmp_path):
    metrics_port = free_port()
    env = {
        "POSTS_DATABASE_URL": f"sqlite:///{tmp_path}/posts.db",
        "POSTS_VAR_DIR": str(tmp_path),
        "POSTS_SECRET_KEY": SECRET_KEY,
        "POSTS_METRICS_LISTEN": f"127.0.0.1:{metrics_port}",
    }
    tenant = provision_tenant(env, "metrics", migrate=True)
    server = ServerProcess(env, str(tmp_path / "server.log"))
    try:
        server.start()
        server.wait_serving()
        channel, api = api_on(server.address)
        # Given a draft, a post published now, and a call refused NOT_FOUND
        api.create(tenant, text="measured", status=pb.STATUS_CHANGE_DRAFT)
        post = api.create(tenant, text="measured", status=pb.STATUS_CHANGE_PUBLISH)
        refused = api.refused("GetPostStatus", tenant, post_id="pst_01JZZZZZZZZZZZZZZZZZZZZZZZ")
        assert refused.code == grpc.StatusCode.NOT_FOUND
        api.wait_published(tenant, post.post_id, timeout=30)
        channel.close()

        # When the endpoint is scraped (the delivery's counts land after its commit)
        wait_for(
            lambda: (
                value(
                    scrape(metrics_port), "posts_deliveries_total", network="x", outcome="published"
                )
                == 1
            )
        )
        samples = scrape(metrics_port)

        # Then it counted each call by method and code, with its latency
        assert value(samples, "posts_rpc_requests_total", method="CreatePost", code="OK") == 2
        assert (
            value(samples, "posts_rpc_requests_total", method="GetPostStatus", code="NOT_FOUND")
            == 1
        )
        assert value(samples, "posts_rpc_duration_seconds_count", method="CreatePost") == 2
        # ... each committed transition, the delivery and how late its claim came
        assert value(samples, "posts_transitions_total", event="create", status="draft") == 1
        assert value(samples, "posts_transitions_total", event="create", status="pending") == 1
        assert value(samples, "posts_transitions_total", event="claim", status="processing") == 1
        assert value(samples, "posts_transitions_total", event="succeed", status="published") == 1
        assert value(samples, "posts_delivery_duration_seconds_count", network="x") == 1
        assert value(samples, "posts_schedule_lateness_seconds_count") == 1
        assert value(samples, "posts_queue_lag_seconds_count", queue="deliveries") == 1
        assert value(samples, "posts_lease_takeovers_total") == 0
        # ... and the commits of its writes, each carrying at least one
        commits = value(samples, "posts_group_commit_writes_count")
        assert commits and value(samples, "posts_group_commit_writes_sum") >= commits
    finally:
        server.stop()


@pytest.mark.timeout(300)
def test_several_server_and_worker_processes_add_up_on_their_endpoints(tmp_path):
    posts = 20
    server_metrics, worker_metrics = free_port(), free_port()
    with PostgresServer() as postgres, RedisServer() as redis:
        env = {
            "POSTS_DATABASE_URL": postgres.create_database("metrics"),
            "POSTS_BROKER_URL": redis.url,
            "POSTS_SECRET_KEY": SECRET_KEY,
            "POSTS_VAR_DIR": str(tmp_path),
        }
        tenant = provision_tenant(env, "metrics", migrate=True)
        server = ServerProcess(
            {**env, "POSTS_METRICS_LISTEN": f"127.0.0.1:{server_metrics}"},
            str(tmp_path / "server.log"),
            processes=2,
        )
        workers = WorkerProcess(
            {**env, "POSTS_METRICS_LISTEN": f"127.0.0.1:{worker_metrics}"},
            str(tmp_path / "workers.log"),
            processes=2,
            threads=2,
        )
        try:
            server.start()
            workers.start()
            server.wait_serving(timeout=60)
            workers.wait_ready()
            # Given posts created on new connections (spread over both server
            # processes) and delivered by both worker processes
            ids = []
            for _ in range(posts):
                channel, api = api_on(server.address)
                ids.append(
                    api.create(tenant, text="measured", status=pb.STATUS_CHANGE_PUBLISH).post_id
                )
                channel.close()
            channel, api = api_on(server.address)
            for post_id in ids:
                api.wait_published(tenant, post_id, timeout=60)
            channel.close()

            # Then the servers' endpoint counts every call, whichever process took it
            served = scrape(server_metrics)
            assert (
                value(served, "posts_rpc_requests_total", method="CreatePost", code="OK") == posts
            )
            assert (
                value(served, "posts_transitions_total", event="create", status="pending") == posts
            )
            # ... and the workers' endpoint every delivery, with Dramatiq's own metrics
            wait_for(
                lambda: (
                    value(
                        scrape(worker_metrics),
                        "posts_deliveries_total",
                        network="x",
                        outcome="published",
                    )
                    == posts
                )
            )
            done = scrape(worker_metrics)
            assert (
                value(done, "posts_transitions_total", event="claim", status="processing") == posts
            )
            assert (
                value(
                    done,
                    "dramatiq_messages_total",
                    queue_name="deliveries",
                    actor_name="deliver_post",
                )
                >= posts
            )
        finally:
            workers.stop(timeout=20)
            server.stop(timeout=20)

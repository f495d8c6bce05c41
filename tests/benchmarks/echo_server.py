"""The baseline server: posts.v1.PostService answering a canned Post, nothing else.

No database, no authentication, no interceptor: every RPC answers a prebuilt
Post of the same shape and size as the service's answer for a scheduled
benchmark tweet (``canned_post``). It runs like the service does: a sync
``grpc.server`` with the service's thread pool size (POSTS_MAX_WORKERS: 4 on SQLite),
listening on POSTS_LISTEN, with the health service (so it is waited for the
same way). What it measures is the ceiling of a Python gRPC server on this
machine with these messages.

    POSTS_LISTEN=127.0.0.1:50061 python -m tests.benchmarks.echo_server
"""

from __future__ import annotations

import datetime as dt
import os
import secrets
import signal
import threading
from concurrent import futures

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from ulid import ULID

import service  # noqa: F401  (puts generated/ on the import path)
from service.config import Config
from tests.benchmarks.common import TEXT

# isort: split
from posts.v1 import posts_pb2, posts_pb2_grpc

pb = posts_pb2


def _ts(when: dt.datetime):
    from google.protobuf import timestamp_pb2

    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(when)
    return stamp


def canned_post() -> pb.Post:
    """A Post as the service answers one for a scheduled benchmark tweet."""
    now = dt.datetime.now(dt.UTC)
    item = pb.PostItem(text=TEXT, status=pb.POST_STATUS_SCHEDULED)
    return pb.Post(
        post_id=f"pst_{ULID()}",
        workspace_id=f"wks_{ULID()}",
        account_id=f"acc_{ULID()}",
        platform=pb.PLATFORM_X,
        post_type=pb.POST_TYPE_TWEET,
        items=[item],
        text=TEXT,
        status=pb.POST_STATUS_SCHEDULED,
        scheduled_at=_ts(now + dt.timedelta(days=1, microseconds=123_456)),
        etag=secrets.token_hex(10),
        delivery=pb.Delivery(),
        create_time=_ts(now.replace(microsecond=654_321)),
        update_time=_ts(now.replace(microsecond=654_321)),
    )


class EchoServicer(posts_pb2_grpc.PostServiceServicer):
    def __init__(self):
        post = canned_post()
        self._create = pb.CreatePostResponse(post=post)
        self._get = pb.GetPostStatusResponse(post=post)
        self._update = pb.UpdatePostResponse(post=post)
        self._delete = pb.DeletePostResponse(post=post)
        self._lists: dict[int, pb.ListPostsResponse] = {}
        self._post = post

    def CreatePost(self, request, context):
        return self._create

    def GetPostStatus(self, request, context):
        return self._get

    def UpdatePost(self, request, context):
        return self._update

    def DeletePost(self, request, context):
        return self._delete

    def ListPosts(self, request, context):
        size = request.page_size or 50
        if size not in self._lists:
            self._lists[size] = pb.ListPostsResponse(
                posts=[self._post] * size, next_page_token=secrets.token_urlsafe(90)
            )
        return self._lists[size]


def main() -> None:
    listen = os.environ.get("POSTS_LISTEN", "127.0.0.1:50061")
    threads = Config.from_env().max_workers  # the service's pool size, for the same setup
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=threads, thread_name_prefix="rpc"),
        options=[("grpc.so_reuseport", 1)],
    )
    posts_pb2_grpc.add_PostServiceServicer_to_server(EchoServicer(), server)
    health_servicer = health.HealthServicer(experimental_non_blocking=True)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    server.add_insecure_port(listen)
    server.start()
    health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    stopping = threading.Event()

    def on_signal(signum, frame):
        if not stopping.is_set():
            stopping.set()
            threading.Thread(target=lambda: server.stop(2), daemon=True).start()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    server.wait_for_termination()


if __name__ == "__main__":
    main()

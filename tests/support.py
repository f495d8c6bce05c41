"""Helpers the tests share: calling the service, reading its errors, waiting, test data.

Plain functions and classes (fixtures live in ``conftest.py``), imported by the
tests as ``from tests.support import …``.
"""

from __future__ import annotations

import dataclasses
import datetime
import http.client
import os
import pathlib
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any, Self

import grpc
from google.protobuf import timestamp_pb2
from google.rpc import error_details_pb2
from grpc_status import rpc_status

import service  # noqa: F401  (puts generated/ on the import path)

# isort: split
from posts.v1 import posts_pb2, posts_pb2_grpc

DEFAULT_WAIT = 10.0  # seconds; generous for a shared 2-core machine, still fails fast

STATUS_NAMES = posts_pb2.PostStatus.Name
TERMINAL = {
    posts_pb2.POST_STATUS_PUBLISHED,
    posts_pb2.POST_STATUS_FAILED,
    posts_pb2.POST_STATUS_CANCELLED,
}


# --------------------------------------------------------------------------- time


def utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def timestamp(when: datetime.datetime) -> timestamp_pb2.Timestamp:
    """The protobuf Timestamp of an aware datetime."""
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(when)
    return stamp


def in_seconds(seconds: float) -> datetime.datetime:
    return utcnow() + datetime.timedelta(seconds=seconds)


def as_datetime(stamp: timestamp_pb2.Timestamp) -> datetime.datetime:
    return stamp.ToDatetime(tzinfo=datetime.UTC)


# ------------------------------------------------------------------------ helpers


def wait_for(
    predicate: Callable[[], Any],
    timeout: float = DEFAULT_WAIT,
    interval: float = 0.02,
    message: str | None = None,
) -> Any:
    """Polls ``predicate`` until it returns something truthy, and returns that.

    Raises AssertionError (with ``message``) when ``timeout`` seconds pass first.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message or predicate}")
        time.sleep(interval)


def call(method, request, key: str | None = None, *, timeout: float = DEFAULT_WAIT):
    """Calls a stub method with the API key as bearer metadata (none when key is None)."""
    metadata = () if key is None else (("authorization", f"Bearer {key}"),)
    return method(request, metadata=metadata, timeout=timeout)


@dataclasses.dataclass
class Failure:
    """What an RPC error says: its code and the rich details of its google.rpc.Status."""

    code: grpc.StatusCode
    message: str
    domain: str | None = None
    reason: str | None = None
    metadata: dict[str, str] = dataclasses.field(default_factory=dict)
    field_violations: dict[str, str] = dataclasses.field(default_factory=dict)
    #: Every BadRequest violation as (field, description), in order, repeats included.
    violations: list[tuple[str, str]] = dataclasses.field(default_factory=list)
    precondition_violations: list = dataclasses.field(default_factory=list)

    @property
    def kind(self) -> tuple[str, str | None]:
        """``(code name, reason)``: what tests compare, with a readable diff."""
        return self.code.name, self.reason

    @property
    def fields(self) -> set[str]:
        """The BadRequest field paths."""
        return set(self.field_violations)

    @classmethod
    def of(cls, error: grpc.RpcError) -> Failure:
        status = rpc_status.from_call(error)
        failure = cls(code=error.code(), message=error.details() or "")
        if status is None:
            return failure
        for detail in status.details:
            if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
                info = error_details_pb2.ErrorInfo()
                detail.Unpack(info)
                failure.domain, failure.reason = info.domain, info.reason
                failure.metadata = dict(info.metadata)
            elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
                bad = error_details_pb2.BadRequest()
                detail.Unpack(bad)
                for violation in bad.field_violations:
                    failure.field_violations[violation.field] = violation.description
                    failure.violations.append((violation.field, violation.description))
            elif detail.Is(error_details_pb2.PreconditionFailure.DESCRIPTOR):
                pre = error_details_pb2.PreconditionFailure()
                detail.Unpack(pre)
                failure.precondition_violations.extend(pre.violations)
        return failure


def refused(method, request, key: str | None = None) -> Failure:
    """Calls ``method`` and returns the Failure it answers; fails the test if it succeeds."""
    try:
        response = call(method, request, key)
    except grpc.RpcError as error:
        return Failure.of(error)
    raise AssertionError(f"expected an error, got {response}")


# -------------------------------------------------------------------- test data


def image(n: int = 0) -> posts_pb2.Media:
    return posts_pb2.Media(url=f"https://cdn.example.com/{n}.png", kind=posts_pb2.MEDIA_KIND_IMAGE)


def video(n: int = 0) -> posts_pb2.Media:
    return posts_pb2.Media(url=f"https://cdn.example.com/{n}.mp4", kind=posts_pb2.MEDIA_KIND_VIDEO)


def item(text: str = "", media=()) -> posts_pb2.PostItem:
    return posts_pb2.PostItem(text=text, media=list(media))


@dataclasses.dataclass
class Tenant:
    """A workspace, an API key granted only to it, and a sandbox X account in it."""

    workspace_id: str
    key: str
    account_id: str

    def add_account(self, platform: str = "x", *, sandbox: bool = True, **options) -> str:
        """Connects another account to this workspace; returns its ``acc_…`` id."""
        from service import admin

        options.setdefault("handle", f"{platform}-{'sandbox' if sandbox else 'live'}")
        return admin.create_account(
            self.workspace_id, platform=platform, sandbox=sandbox, **options
        )


def stored_posts(tenant: Tenant, count: int, text: str, **columns) -> dict[str, str]:
    """``count`` one-item X tweets of ``tenant`` with the lifecycle ``columns``
    given, written straight to the database in one transaction: states the API
    cannot make (a lease expired, a message lost long ago), or many posts at
    once. Their events are not written. {post_id: job token}."""
    from service import db, ids, store
    from service.models import Post, PostItem

    now = db.utcnow()
    made = {}
    with db.connection(), db.write():
        for n in range(count):
            post = Post.create(
                id=ids.new(ids.POST),
                workspace=tenant.workspace_id,
                account=tenant.account_id,
                platform="x",
                post_type="tweet",
                job_token=store.new_token(),
                created_at=now,
                updated_at=now,
                **columns,
            )
            PostItem.create(post=post.id, position=0, text=f"{text} {n}")
            made[post.id] = post.job_token
    return made


def _request(message_type, tenant: Tenant | None, fields: dict):
    fields = dict(fields)
    if tenant is not None:
        fields.setdefault("workspace_id", tenant.workspace_id)
    for name in ("scheduled_at",):
        if isinstance(fields.get(name), datetime.datetime):
            fields[name] = timestamp(fields[name])
    return message_type(**fields)


class Api:
    """The PostService as tests speak to it: one method per RPC, plus waiting.

    Each method takes the tenant whose key and workspace the call carries, then
    the request's fields (``scheduled_at`` may be an aware datetime). Pass
    ``workspace_id=""`` to leave the workspace out.
    """

    def __init__(self, stub: posts_pb2_grpc.PostServiceStub):
        self.stub = stub

    # requests -------------------------------------------------------------
    def create_request(self, tenant: Tenant, **fields) -> posts_pb2.CreatePostRequest:
        """A valid CreatePostRequest (a draft tweet) with ``fields`` overriding it."""
        fields.setdefault("account_id", tenant.account_id)
        fields.setdefault("post_type", posts_pb2.POST_TYPE_TWEET)
        fields.setdefault("status", posts_pb2.STATUS_CHANGE_DRAFT)
        if "items" not in fields and "text" not in fields:
            fields["text"] = "Hello from the test suite"
        return _request(posts_pb2.CreatePostRequest, tenant, fields)

    def request(self, rpc: str, tenant: Tenant | None, **fields):
        if rpc == "CreatePost" and tenant is not None:
            return self.create_request(tenant, **fields)
        return _request(getattr(posts_pb2, f"{rpc}Request"), tenant, fields)

    # calls ----------------------------------------------------------------
    def create(self, tenant: Tenant, **fields) -> posts_pb2.Post:
        return call(self.stub.CreatePost, self.create_request(tenant, **fields), tenant.key).post

    def get(self, tenant: Tenant, post_id: str, **fields) -> posts_pb2.Post:
        request = self.request("GetPostStatus", tenant, post_id=post_id, **fields)
        return call(self.stub.GetPostStatus, request, tenant.key).post

    def update(self, tenant: Tenant, post_id: str, **fields) -> posts_pb2.Post:
        request = self.request("UpdatePost", tenant, post_id=post_id, **fields)
        return call(self.stub.UpdatePost, request, tenant.key).post

    def delete(self, tenant: Tenant, post_id: str, **fields) -> posts_pb2.Post:
        request = self.request("DeletePost", tenant, post_id=post_id, **fields)
        return call(self.stub.DeletePost, request, tenant.key).post

    def list(self, tenant: Tenant, **fields) -> posts_pb2.ListPostsResponse:
        return call(self.stub.ListPosts, self.request("ListPosts", tenant, **fields), tenant.key)

    def list_all(self, tenant: Tenant, **fields) -> list[posts_pb2.Post]:
        """Every page of ListPosts, concatenated."""
        posts, token = [], ""
        for _ in range(1000):
            page = self.list(tenant, page_token=token, **fields)
            posts.extend(page.posts)
            token = page.next_page_token
            if not token:
                return posts
        raise AssertionError("ListPosts never returned an empty next_page_token")

    def refused(self, rpc: str, tenant: Tenant, *, key: str | None = None, **fields) -> Failure:
        """Calls ``rpc`` (with the tenant's key unless ``key`` is given) expecting an error."""
        request = self.request(rpc, tenant, **fields)
        return refused(getattr(self.stub, rpc), request, key or tenant.key)

    # waiting --------------------------------------------------------------
    def wait_status(
        self, tenant: Tenant, post_id: str, status: int, timeout: float = DEFAULT_WAIT
    ) -> posts_pb2.Post:
        """Polls GetPostStatus until the post has ``status``; fails early on another end state."""
        seen: list[posts_pb2.Post] = []

        def reached():
            post = self.get(tenant, post_id)
            seen[:] = [post]
            if post.status != status and post.status in TERMINAL:
                raise AssertionError(
                    f"{post_id} ended {STATUS_NAMES(post.status)} while waiting for "
                    f"{STATUS_NAMES(status)}: error={post.error}"
                )
            return post if post.status == status else None

        try:
            return wait_for(
                reached, timeout, interval=0.05, message=f"{post_id} to be {STATUS_NAMES(status)}"
            )
        except AssertionError as error:
            last = STATUS_NAMES(seen[0].status) if seen else "nothing"
            raise AssertionError(f"{error}; {post_id} is {last}") from None

    def wait_published(self, tenant: Tenant, post_id: str, timeout: float = DEFAULT_WAIT):
        return self.wait_status(tenant, post_id, posts_pb2.POST_STATUS_PUBLISHED, timeout)

    def settle(self, tenant: Tenant) -> posts_pb2.Post:
        """Publishes a sentinel post and waits for it: work queued earlier has been handled."""
        sentinel = self.create(tenant, text="sentinel", status=posts_pb2.STATUS_CHANGE_PUBLISH)
        return self.wait_published(tenant, sentinel.post_id)


# ---------------------------------------------------------------------- hooks


class Gate:
    """A delivery hook that holds every delivery reaching it until released.

    Records which posts arrived and which left, so a test can wait for "the
    worker is inside the hook for this post" and "it has gone past it".
    Never holds longer than ``timeout`` seconds, so a test cannot hang.
    """

    def __init__(self, timeout: float = DEFAULT_WAIT):
        self.timeout = timeout
        self._open = threading.Event()
        self._lock = threading.Lock()
        self._arrived: dict[str, threading.Event] = {}
        self._left: dict[str, threading.Event] = {}

    def _event(self, table, post_id) -> threading.Event:
        with self._lock:
            return table.setdefault(post_id, threading.Event())

    def __call__(self, post_id, *_):
        self._event(self._arrived, post_id).set()
        self._open.wait(self.timeout)
        self._event(self._left, post_id).set()

    def wait_arrival(self, post_id: str, timeout: float = DEFAULT_WAIT) -> None:
        if not self._event(self._arrived, post_id).wait(timeout):
            raise AssertionError(f"the worker never reached the hook for {post_id}")

    def wait_departure(self, post_id: str, timeout: float = DEFAULT_WAIT) -> None:
        if not self._event(self._left, post_id).wait(timeout):
            raise AssertionError(f"the worker never left the hook for {post_id}")

    def arrived(self, post_id: str) -> bool:
        return self._event(self._arrived, post_id).is_set()

    def release(self) -> None:
        self._open.set()


class DeliveryHooks:
    """Adds callables to ``workers.delivery.hooks`` and ``workers.scheduler.hooks``;
    the fixture removes them all."""

    def __init__(self):
        from workers import delivery, scheduler

        self._hooks = delivery.hooks
        self._scheduler_hooks = scheduler.hooks
        self._added: list[tuple[list, Callable]] = []

    def before_dispatch(self, fn: Callable) -> Callable:
        return self._add(self._scheduler_hooks.before_dispatch, fn)

    def before_claim(self, fn: Callable) -> Callable:
        return self._add(self._hooks.before_claim, fn)

    def after_claim(self, fn: Callable) -> Callable:
        return self._add(self._hooks.after_claim, fn)

    def before_send(self, fn: Callable) -> Callable:
        return self._add(self._hooks.before_send, fn)

    def _add(self, hooks: list, fn: Callable) -> Callable:
        hooks.append(fn)
        self._added.append((hooks, fn))
        return fn

    def remove_all(self) -> None:
        for hooks, fn in reversed(self._added):
            if fn in hooks:
                hooks.remove(fn)
        self._added.clear()


# ----------------------------------------------------------------- the README's code


def readme_block(heading: str, language: str = "python") -> str:
    """The ``language`` code block of the README's section ``## heading`` (the
    section alone: a block further down belongs to another section)."""
    from tests.processes import ROOT

    text = (pathlib.Path(ROOT) / "README.md").read_text()
    flags = re.DOTALL | re.MULTILINE
    section = re.search(rf"^## {re.escape(heading)}\n(.*?)(?=^## |\Z)", text, flags)
    assert section, f"README.md has no section {heading!r}"
    blocks = re.findall(rf"^```{language}\n(.*?)^```", section.group(1), flags)
    assert len(blocks) == 1, f"README.md's {heading!r} has {len(blocks)} {language} blocks"
    return blocks[0]


class ReadmeReceiver:
    """A receiver the README shows (a Python script) in a process of its own on a
    free loopback port, given ``PORT`` and ``env``; its output, and requests to it."""

    def __init__(self, code: str, directory: pathlib.Path):
        from tests.processes import free_port

        self.port = free_port()
        self.script = directory / "receiver.py"
        self.script.write_text(code)
        self.log = directory / "receiver.out"
        self._popen: subprocess.Popen | None = None

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def start(self, **env: str) -> Self:
        with open(self.log, "w") as out:
            self._popen = subprocess.Popen(
                [sys.executable, str(self.script)],
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, **env, "PORT": str(self.port)},
            )
        wait_for(self._listening, message=f"the receiver listening on {self.port}")
        return self

    def _listening(self) -> bool:
        assert self._popen.poll() is None, f"the receiver exited: {self.output()}"
        with socket.socket() as sock:
            return sock.connect_ex(("127.0.0.1", self.port)) == 0

    def output(self) -> str:
        """What it printed (and logged) so far."""
        return self.log.read_text()

    def post(self, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
        """POSTs ``body`` to it; the answer's status and body."""
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=DEFAULT_WAIT)
        try:
            connection.request("POST", path, body, {"Content-Type": "application/json", **headers})
            answer = connection.getresponse()
            return answer.status, answer.read()
        finally:
            connection.close()

    def stop(self) -> None:
        if self._popen is not None:
            self._popen.kill()
            self._popen.wait(timeout=DEFAULT_WAIT)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

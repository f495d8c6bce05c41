"""What every HTTP adapter shares (workers/adapters/http.py): how answers to a
create map, the total deadline of a request, and waits that keep the lease.

Unit tests, against loopback servers: a fake network, or a raw socket server
that answers a byte at a time (each byte well within httpx's read timeout).
"""

from __future__ import annotations

import socket
import threading
import time
from typing import Self

import httpx
import pytest

from tests.fakes.x import FakeX
from workers.adapters import http
from workers.adapters.base import (
    LeaseLost,
    MediaRef,
    OutcomeUnknown,
    PermanentError,
    TransientError,
)

#: A trickling server gives up after this long, so a test without a deadline ends.
TRICKLE_FOR = 5.0
DEADLINE = 0.5
SLACK = 1.5  # a loaded machine's scheduling, on top of the deadline


def answer(status: int, **headers: str) -> httpx.Response:
    request = httpx.Request("POST", "http://127.0.0.1/create")
    return httpx.Response(status, headers=headers, json={"detail": "busy"}, request=request)


# ------------------------------------------------------------- creates


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_a_5xx_to_a_create_is_an_unknown_outcome(status):
    with pytest.raises(OutcomeUnknown) as caught:
        http.check(answer(status, **{"Retry-After": "3"}), creates=True)
    assert (caught.value.code, caught.value.message, caught.value.retry_after) == (
        str(status),
        "busy",
        3.0,
    )

    with pytest.raises(TransientError):  # any other request changed nothing
        http.check(answer(status))


def test_a_refused_create_is_transient_or_permanent():
    with pytest.raises(TransientError) as limited:
        http.check(answer(429, **{"Retry-After": "2"}), creates=True)
    assert (limited.value.code, limited.value.retry_after) == ("429", 2.0)
    with pytest.raises(PermanentError):
        http.check(answer(400), creates=True)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"error": "channel is archived"}, "channel is archived"),
        ({"error": {"code": 400, "message": "channel is archived"}}, "channel is archived"),
        ({"errors": [{"message": "channel is archived", "code": 7}]}, "channel is archived"),
        ({"error": {"reason": {"nested": True}}}, "Bad Request"),
        ({"errors": {"channel": "archived"}}, "Bad Request"),
        (["channel", "archived"], "Bad Request"),
    ],
)
def test_a_refusal_says_the_networks_reason_never_a_python_object(body, message):
    request = httpx.Request("POST", "http://127.0.0.1/hooks/posts")
    with pytest.raises(PermanentError) as refused:
        http.check(httpx.Response(400, json=body, request=request))
    assert refused.value.message == message


def test_a_create_that_cannot_connect_is_transient():
    with socket.socket() as closed:  # a free port with nobody listening on it
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    with http.client(f"http://127.0.0.1:{port}") as api, pytest.raises(TransientError) as caught:
        http.request(api, "POST", "/create", json={}, creates=True)
    assert caught.value.code == "CONNECTION_ERROR"


# ------------------------------------------------------------- deadline


class Trickler:
    """A loopback server answering each request a byte every ``gap`` seconds, for
    TRICKLE_FOR seconds: its head (``where="head"``) or, after a whole head, its
    body (``where="body"``)."""

    def __init__(self, where: str, gap: float = 0.05):
        self.where, self.gap = where, gap
        self._server = socket.create_server(("127.0.0.1", 0))
        self._server.settimeout(TRICKLE_FOR)  # accept() is not woken by close()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.getsockname()[1]}"

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._server.close()
        self._thread.join(timeout=TRICKLE_FOR + 1)

    def _serve(self) -> None:
        try:
            connection, _ = self._server.accept()
        except OSError:
            return
        with connection:
            received = b""
            while b"\r\n\r\n" not in received:
                chunk = connection.recv(65536)
                if not chunk:
                    return
                received += chunk
            head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            if self.where == "body":
                connection.sendall(head + b"Content-Length: 100000\r\n\r\n")
                head = b""
            else:
                head += b"X-Slow: "
            ends_at = time.monotonic() + TRICKLE_FOR
            for byte in head + b"a" * 100_000:
                if self._stop.wait(self.gap) or time.monotonic() >= ends_at:
                    return
                try:
                    connection.sendall(bytes([byte]))
                except OSError:
                    return  # the client gave up: the deadline worked


@pytest.mark.parametrize("where", ["head", "body"])
def test_a_trickling_answer_ends_at_the_deadline(monkeypatch, where):
    monkeypatch.setattr(http, "REQUEST_DEADLINE", DEADLINE)
    with Trickler(where) as server, http.client(server.url) as api:
        started = time.monotonic()
        with pytest.raises(OutcomeUnknown) as caught:
            http.request(api, "POST", "/create", json={}, creates=True)
        took = time.monotonic() - started

    assert caught.value.code == "NO_ANSWER"
    assert DEADLINE - 0.05 <= took < DEADLINE + SLACK


def test_a_trickling_download_ends_at_its_deadline(monkeypatch):
    monkeypatch.setattr(http, "DOWNLOAD_DEADLINE", DEADLINE)
    with Trickler("body") as server:
        started = time.monotonic()
        with pytest.raises(TransientError) as caught:
            http.download(MediaRef(f"{server.url}/media/slow.png", "image"))
        took = time.monotonic() - started

    assert caught.value.code == "MEDIA_UNAVAILABLE"
    assert DEADLINE - 0.05 <= took < DEADLINE + SLACK


def test_the_deadline_is_at_most_half_the_lease(monkeypatch):
    from service import lifecycle, store

    monkeypatch.setattr(store, "policy", lambda: lifecycle.Policy(lease_seconds=8.0))
    assert http.deadline() == 4.0
    monkeypatch.setattr(store, "policy", lambda: lifecycle.Policy(lease_seconds=600.0))
    assert http.deadline() == http.REQUEST_DEADLINE


# ------------------------------------------------------------- leases


class LostLease:
    """A lease taken over: every call says so."""

    def __init__(self):
        self.calls = 0

    def renew(self) -> None:
        self.calls += 1
        raise LeaseLost("pst_unit")

    def still_mine(self) -> bool:
        return False

    def before_create(self) -> None:
        self.renew()


@pytest.fixture
def fake():
    network = FakeX().start()
    try:
        yield network
    finally:
        network.stop()


def test_a_download_renews_the_lease_and_stops_when_it_is_lost(fake):
    lease = LostLease()
    with pytest.raises(LeaseLost):
        http.download(MediaRef(fake.media_url("a.png"), "image"), lease)
    assert lease.calls == 1


def test_a_pause_renews_the_lease_and_stops_when_it_is_lost():
    lease = LostLease()
    started = time.monotonic()
    with pytest.raises(LeaseLost):
        http.pause(5.0, lease)
    assert time.monotonic() - started < 1.0 and lease.calls == 1

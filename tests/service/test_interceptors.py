"""The interceptor alone, around fake handlers of every kind (no server): it fails
closed, authenticating every method under the service's prefix, unary or
streaming, and it is the one error boundary."""

from __future__ import annotations

import logging
import types

import grpc
import peewee
import pytest
from google.rpc import error_details_pb2, status_pb2

from service import db, errors
from service.auth import Principal
from service.interceptors import PostServiceInterceptor, current_principal

METHOD = "/posts.v1.PostService/WatchPosts"
KINDS = ["unary_unary", "unary_stream", "stream_unary", "stream_stream"]


class Aborted(Exception):
    """What grpc's ServicerContext.abort raises."""


class FakeContext:
    def __init__(self):
        self.status: grpc.Status | None = None

    def abort_with_status(self, status: grpc.Status):
        self.status = status
        raise Aborted()

    def abort(self, code, details):
        self.abort_with_status(
            types.SimpleNamespace(code=code, details=details, trailing_metadata=())
        )

    def code(self):
        return self.status.code if self.status else None

    def invocation_metadata(self):
        return ()

    def reason(self) -> str:
        details = dict(self.status.trailing_metadata)["grpc-status-details-bin"]
        info = error_details_pb2.ErrorInfo()
        status_pb2.Status.FromString(details).details[0].Unpack(info)
        return info.reason


class FakeKeys:
    """Accepts ``Bearer good`` only."""

    def authenticate(self, authorization):
        if authorization != "Bearer good":
            raise errors.ApiKeyInvalid()
        return Principal("key_fake", frozenset({"wks_fake"}))


@pytest.fixture(autouse=True)
def database(tmp_path):
    """A database for the connection the interceptor opens per call (never queried)."""
    previous = db.database.obj
    db.database.initialize(peewee.SqliteDatabase(str(tmp_path / "unit.db")))
    try:
        yield
    finally:
        db.database.obj.close()
        db.database.initialize(previous)


def handler_of(kind: str, behaviour):
    """A method handler of ``kind`` running ``behaviour(request, context)``, which
    returns an answer (or, for a streaming answer, an iterable of them)."""
    make = getattr(grpc, f"{kind}_rpc_method_handler")
    return make(behaviour)


def intercepted(
    kind: str, behaviour, authorization: str | None = "Bearer good", method: str = METHOD
):
    metadata = (("authorization", authorization),) if authorization else ()
    details = types.SimpleNamespace(method=method, invocation_metadata=metadata)
    handler = handler_of(kind, behaviour)
    return handler, PostServiceInterceptor(FakeKeys()).intercept_service(lambda _: handler, details)


def call(kind: str, handler, context: FakeContext):
    """Calls the handler as grpc would; a streaming answer is read to its end."""
    answer = getattr(handler, kind)("request", context)
    return list(answer) if kind.endswith("_stream") else answer


@pytest.mark.parametrize("kind", KINDS)
def test_a_method_of_any_kind_without_a_key_is_unauthenticated_and_never_runs(kind):
    ran = []
    _, handler = intercepted(
        kind, lambda request, context: ran.append(request) or ["x"], authorization=None
    )
    context = FakeContext()

    with pytest.raises(Aborted):
        call(kind, handler, context)

    assert context.code() == grpc.StatusCode.UNAUTHENTICATED
    assert context.reason() == "API_KEY_INVALID"
    assert ran == []


@pytest.mark.parametrize("kind", KINDS)
def test_a_method_of_any_kind_with_a_key_runs_as_its_principal(kind):
    def behaviour(request, context):
        principal = current_principal().key_id
        return iter([principal, principal]) if kind.endswith("_stream") else principal

    _, handler = intercepted(kind, behaviour)

    answer = call(kind, handler, FakeContext())

    assert answer == (["key_fake"] * 2 if kind.endswith("_stream") else "key_fake")


@pytest.mark.parametrize("kind", KINDS)
def test_an_unexpected_error_is_internal_with_an_id_and_never_its_text(kind, caplog):
    def behaviour(request, context):
        if kind.endswith("_stream"):
            return _answers_then_fail()
        raise RuntimeError("password=hunter2")

    _, handler = intercepted(kind, behaviour)
    context = FakeContext()

    with caplog.at_level(logging.ERROR, logger="service.interceptors"), pytest.raises(Aborted):
        call(kind, handler, context)

    assert context.code() == grpc.StatusCode.INTERNAL
    assert context.reason() == "INTERNAL_ERROR"
    assert "hunter2" not in context.status.details
    error_id = context.status.details.split()[2].rstrip(":")
    [logged] = [r for r in caplog.records if error_id in r.getMessage()]
    assert "hunter2" in str(logged.exc_info[1])


def _answers_then_fail():
    yield "first"
    raise RuntimeError("password=hunter2")


def test_a_domain_error_and_an_outage_keep_their_answers():
    def refused(request, context):
        raise errors.PostNotFound("pst_x")

    def outage(request, context):
        raise peewee.OperationalError("could not connect to server")

    answers = []
    for behaviour in (refused, outage):
        _, handler = intercepted("unary_unary", behaviour)
        context = FakeContext()
        with pytest.raises(Aborted):
            call("unary_unary", handler, context)
        answers.append((context.code(), context.reason()))

    assert answers == [
        (grpc.StatusCode.NOT_FOUND, "POST_NOT_FOUND"),
        (grpc.StatusCode.UNAVAILABLE, "BACKEND_UNAVAILABLE"),
    ]


def test_a_behaviour_that_aborts_keeps_its_own_answer():
    def aborting(request, context):
        context.abort(grpc.StatusCode.FAILED_PRECONDITION, "its own")

    _, handler = intercepted("unary_unary", aborting)
    context = FakeContext()

    with pytest.raises(Aborted):
        call("unary_unary", handler, context)

    assert (context.code(), context.status.details) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "its own",
    )


@pytest.mark.parametrize(
    "method", ["/grpc.reflection.v1alpha.ServerReflection/Info", "/other.v1.Service/Call"]
)
def test_methods_of_other_services_pass_untouched(method):
    handler, answered = intercepted("stream_stream", lambda r, c: iter([r]), None, method)

    assert answered is handler


# -- non-blocking streams (WatchPostEvents): the behaviour returns at once and
# answers later through gRPC's callback; it is guarded like every other method.


def intercepted_non_blocking(behaviour, authorization: str | None = "Bearer good"):
    behaviour.experimental_non_blocking = True
    _, handler = intercepted("unary_stream", behaviour, authorization)
    return handler


def test_a_non_blocking_stream_stays_non_blocking_for_the_server():
    handler = intercepted_non_blocking(lambda request, context, send: None)

    assert handler.unary_stream.experimental_non_blocking is True


def test_a_non_blocking_stream_without_a_key_is_unauthenticated_and_never_runs():
    ran = []
    handler = intercepted_non_blocking(
        lambda request, context, send: ran.append(request), authorization=None
    )
    context = FakeContext()

    with pytest.raises(Aborted):
        handler.unary_stream("request", context, lambda answer: None)

    assert (context.code(), context.reason()) == (
        grpc.StatusCode.UNAUTHENTICATED,
        "API_KEY_INVALID",
    )
    assert ran == []


def test_a_non_blocking_stream_runs_as_its_principal_with_the_callback():
    sent = []

    def behaviour(request, context, send):
        send(current_principal().key_id)

    handler = intercepted_non_blocking(behaviour)
    handler.unary_stream("request", FakeContext(), sent.append)

    assert sent == ["key_fake"]


@pytest.mark.parametrize(
    "raised, expected",
    [
        (errors.EventCursorExpired(5, 9), (grpc.StatusCode.OUT_OF_RANGE, "EVENT_CURSOR_EXPIRED")),
        (peewee.OperationalError("gone"), (grpc.StatusCode.UNAVAILABLE, "BACKEND_UNAVAILABLE")),
        (RuntimeError("password=hunter2"), (grpc.StatusCode.INTERNAL, "INTERNAL_ERROR")),
    ],
)
def test_a_non_blocking_stream_answers_through_the_same_boundary(raised, expected):
    def behaviour(request, context, send):
        raise raised

    handler = intercepted_non_blocking(behaviour)
    context = FakeContext()

    with pytest.raises(Aborted):
        handler.unary_stream("request", context, lambda answer: None)

    assert (context.code(), context.reason()) == expected
    assert "hunter2" not in context.status.details

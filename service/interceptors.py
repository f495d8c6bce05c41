"""Server interceptors: authentication and the error boundary, around every PostService call.

The work happens in the wrapped handler, on the RPC's own thread:
``intercept_service`` itself runs on gRPC's single serving thread, where a
database lookup would stall every call.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import os
import secrets
import time
from collections.abc import Callable

import grpc

from service import db, errors, logs, metrics
from service.auth import Authenticator, Principal
from service.ratelimit import RateLimiter

log = logging.getLogger(__name__)

SERVICE_PREFIX = "/posts.v1.PostService/"
HEALTH_CHECK = "/grpc.health.v1.Health/Check"
#: Initial metadata of every health check answer: the answering process's id, so
#: a client can tell apart the ``serve --processes N`` servers sharing a port.
PID_METADATA = "posts-server-pid"
#: A caller's request id, carried by its log lines (one is made when absent).
REQUEST_ID_HEADER = "x-request-id"

_principal: contextvars.ContextVar[Principal] = contextvars.ContextVar("principal")


def current_principal() -> Principal:
    """The caller of the RPC running on this thread."""
    return _principal.get()


class PostServiceInterceptor(grpc.ServerInterceptor):
    """Authenticates each PostService call, gives it a database connection,
    and answers domain errors as rich ``google.rpc.Status`` values: the one
    error boundary.

    Every method under SERVICE_PREFIX is guarded, whatever its kind (unary or
    streaming), so that no method can be added that answers without a key.
    Reflection and health need no key; health checks only gain the answering
    process's id (``PID_METADATA``).

    With a ``rate_limiter`` (POSTS_RATE_LIMIT), each authenticated call takes a
    token of its key's bucket: refused RATE_LIMITED when it is empty.
    """

    def __init__(self, authenticator: Authenticator, rate_limiter: RateLimiter | None = None):
        self._authenticator = authenticator
        self._rate_limiter = rate_limiter

    def intercept_service(self, continuation, handler_call_details):
        handler = continuation(handler_call_details)
        method = handler_call_details.method
        if handler is not None and method == HEALTH_CHECK:
            return _with_pid(handler)
        if handler is None or not method.startswith(SERVICE_PREFIX):
            return handler
        authorization = dict(handler_call_details.invocation_metadata or ()).get("authorization")
        serving = self._serving
        codecs = {
            "request_deserializer": handler.request_deserializer,
            "response_serializer": handler.response_serializer,
        }
        name = method.removeprefix(SERVICE_PREFIX)
        if handler.unary_unary or handler.stream_unary:
            behaviour = handler.unary_unary or handler.stream_unary

            def answer(request, context):
                started = time.perf_counter()
                try:
                    with serving(method, authorization, context):
                        return behaviour(request, context)
                finally:
                    _count(name, context, started)

            if handler.unary_unary:
                return grpc.unary_unary_rpc_method_handler(answer, **codecs)
            return grpc.stream_unary_rpc_method_handler(answer, **codecs)
        behaviour = handler.unary_stream or handler.stream_stream
        stream: Callable
        if getattr(behaviour, "experimental_non_blocking", False):
            # gRPC's non-blocking stream (WatchPostEvents): the behaviour returns at
            # once, and its answers go out later through the callback.
            def non_blocking(request, context, send_response_callback):
                # Counted as it opens (or is refused): it ends later, from the hub.
                started = time.perf_counter()
                try:
                    with serving(method, authorization, context):
                        behaviour(request, context, send_response_callback)
                finally:
                    _count(name, context, started)

            # gRPC reads this mark off the function; no stub declares it.
            non_blocking.experimental_non_blocking = True  # type: ignore[attr-defined]
            stream = non_blocking
        else:

            def stream(request, context):
                # The answers are made as they are sent: the boundary spans them all.
                with serving(method, authorization, context):
                    yield from behaviour(request, context)

        if handler.unary_stream:
            return grpc.unary_stream_rpc_method_handler(stream, **codecs)
        return grpc.stream_stream_rpc_method_handler(stream, **codecs)

    @contextlib.contextmanager
    def _serving(self, method: str, authorization: str | None, context):
        """Runs the call's behaviour authenticated, with a database connection, and
        answers whatever it raises: a domain error as itself, a database outage
        UNAVAILABLE, anything else INTERNAL with an error id (the log line with
        the traceback has it too), never the exception's text."""
        request_id = dict(context.invocation_metadata() or ()).get(
            REQUEST_ID_HEADER
        ) or secrets.token_hex(8)
        with logs.bound(request_id=request_id[:64]):
            try:
                # Kept by the handler thread from call to call: no checkout per call.
                with db.held_connection():
                    principal = self._authenticator.authenticate(authorization)
                    if len(principal.workspace_ids) == 1:
                        logs.bind(workspace=next(iter(principal.workspace_ids)))
                    # After authentication: an unknown key must not fill a bucket of its own.
                    if self._rate_limiter is not None:
                        wait = self._rate_limiter.acquire(principal.key_id)
                        if wait > 0:
                            raise errors.RateLimited(wait)
                    token = _principal.set(principal)
                    try:
                        yield
                    finally:
                        _principal.reset(token)
            except errors.ServiceError as error:
                context.abort_with_status(errors.to_status(error))
            except db.UNAVAILABLE as error:
                log.warning("database unavailable in %s: %s", method, error)
                context.abort_with_status(errors.to_status(errors.BackendUnavailable("database")))
            except Exception:
                if context.code() not in (None, grpc.StatusCode.OK):
                    raise  # the behaviour aborted the call itself: that is its answer
                error_id = secrets.token_hex(6)
                log.exception("unexpected error %s in %s", error_id, method)
                context.abort_with_status(errors.to_status(errors.InternalError(error_id)))


def _count(method: str, context, started: float) -> None:
    if metrics.enabled():
        code = context.code() or grpc.StatusCode.OK
        metrics.rpc(method, code.name, time.perf_counter() - started)


def _with_pid(handler):
    """``handler`` (a health check) answering with the process id as initial metadata."""
    check = handler.unary_unary

    def answer(request, context):
        context.send_initial_metadata(((PID_METADATA, str(os.getpid())),))
        return check(request, context)

    return grpc.unary_unary_rpc_method_handler(
        answer,
        request_deserializer=handler.request_deserializer,
        response_serializer=handler.response_serializer,
    )

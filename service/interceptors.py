"""Server interceptors: authentication and the error boundary, around every PostService call.

The server is a ``grpc.aio`` server. Its unary methods are synchronous and run
on the server's thread pool (``migration_thread_pool``): the interceptor wraps
them in synchronous functions, so that the authentication, the database
connection and the call itself all run on the RPC's pool thread. Streaming
methods that are async generators (WatchPostEvents) run on the event loop: the
interceptor authenticates them on the same pool (``run_in_executor``), never
on the loop, whose thread serves every call.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import inspect
import logging
import os
import secrets
from concurrent import futures

import grpc

from service import db, errors
from service.auth import Authenticator, Principal
from service.ratelimit import RateLimiter

log = logging.getLogger(__name__)

SERVICE_PREFIX = "/posts.v1.PostService/"
HEALTH_CHECK = "/grpc.health.v1.Health/Check"
#: Initial metadata of every health check answer: the answering process's id, so
#: a client can tell apart the ``serve --processes N`` servers sharing a port.
PID_METADATA = "posts-server-pid"

_principal: contextvars.ContextVar[Principal] = contextvars.ContextVar("principal")


def current_principal() -> Principal:
    """The caller of the RPC running on this thread (or in this stream's task)."""
    return _principal.get()


class PostServiceInterceptor(grpc.aio.ServerInterceptor):
    """Authenticates each PostService call, gives it a database connection,
    and answers domain errors as rich ``google.rpc.Status`` values: the one
    error boundary.

    Every method under SERVICE_PREFIX is guarded, whatever its kind (unary or
    streaming, synchronous or async), so that no method can be added that
    answers without a key. Reflection and health need no key; health checks
    only gain the answering process's id (``PID_METADATA``).

    With a ``rate_limiter`` (POSTS_RATE_LIMIT), each authenticated call takes a
    token of its key's bucket: refused RATE_LIMITED when it is empty.

    ``executor``: where an async stream's authentication runs (the server's
    thread pool); None is the event loop's default executor.
    """

    def __init__(self, authenticator: Authenticator, rate_limiter: RateLimiter | None = None,
                 executor: futures.Executor | None = None):  # fmt: skip
        self._authenticator = authenticator
        self._rate_limiter = rate_limiter
        self._executor = executor

    async def intercept_service(self, continuation, handler_call_details):
        handler = await continuation(handler_call_details)
        return self.wrap(handler, handler_call_details)

    def wrap(self, handler, handler_call_details):
        """``handler`` guarded (or as it is, outside the service)."""
        method = handler_call_details.method
        if handler is not None and method == HEALTH_CHECK:
            return _with_pid(handler)
        if handler is None or not method.startswith(SERVICE_PREFIX):
            return handler
        authorization = dict(handler_call_details.invocation_metadata or ()).get("authorization")
        serving = self._serving
        codecs = {"request_deserializer": handler.request_deserializer,
                  "response_serializer": handler.response_serializer}  # fmt: skip
        if handler.unary_unary or handler.stream_unary:
            behaviour = handler.unary_unary or handler.stream_unary

            def answer(request, context):
                with serving(method, authorization, context):
                    return behaviour(request, context)

            if handler.unary_unary:
                return grpc.unary_unary_rpc_method_handler(answer, **codecs)
            return grpc.stream_unary_rpc_method_handler(answer, **codecs)
        behaviour = handler.unary_stream or handler.stream_stream
        if inspect.isasyncgenfunction(behaviour):
            stream = self._async_stream(method, authorization, behaviour)
        else:

            def stream(request, context):
                # The answers are made as they are sent: the boundary spans them all.
                with serving(method, authorization, context):
                    yield from behaviour(request, context)

        if handler.unary_stream:
            return grpc.unary_stream_rpc_method_handler(stream, **codecs)
        return grpc.stream_stream_rpc_method_handler(stream, **codecs)

    def _async_stream(self, method: str, authorization: str | None, behaviour):
        """An async stream: authenticated on the executor, then run on the event
        loop with the same error boundary as every other call."""
        executor = self._executor

        async def stream(request, context):
            token = None
            try:
                loop = asyncio.get_running_loop()
                principal = await loop.run_in_executor(executor, self._admit, authorization)
                token = _principal.set(principal)
                async for answer in behaviour(request, context):
                    yield answer
            except Exception as error:  # noqa: BLE001 (answered, see _answer)
                status = _answer(error, method, context)
                await context.abort(status.code, status.details, status.trailing_metadata)
            finally:
                if token is not None:
                    _principal.reset(token)

        return stream

    def _admit(self, authorization: str | None) -> Principal:
        """The caller, authenticated, with a token of its rate-limit bucket."""
        with db.connection():
            principal = self._authenticator.authenticate(authorization)
        # After authentication: an unknown key must not fill a bucket of its own.
        if self._rate_limiter is not None:
            wait = self._rate_limiter.acquire(principal.key_id)
            if wait > 0:
                raise errors.RateLimited(wait)
        return principal

    @contextlib.contextmanager
    def _serving(self, method: str, authorization: str | None, context):
        """Runs the call's behaviour authenticated, with a database connection, and
        answers whatever it raises (see ``_answer``)."""
        try:
            with db.connection():
                token = _principal.set(self._admit(authorization))
                try:
                    yield
                finally:
                    _principal.reset(token)
        except Exception as error:  # noqa: BLE001 (answered, see _answer)
            status = _answer(error, method, context)
            context.abort(status.code, status.details, status.trailing_metadata)


def _answer(error: Exception, method: str, context) -> grpc.Status:
    """The status answering ``error``: a domain error as itself, a database
    outage UNAVAILABLE, anything else INTERNAL with an error id (the log line
    with the traceback has it too), never the exception's text. Re-raises an
    abort: the behaviour aborted the call itself, that is its answer."""
    if isinstance(error, grpc.aio.AbortError) or _aborted(context):
        raise error
    if isinstance(error, errors.ServiceError):
        return errors.to_status(error)
    if isinstance(error, db.UNAVAILABLE):
        log.exception("database unavailable in %s", method)
        return errors.to_status(errors.BackendUnavailable("database"))
    error_id = secrets.token_hex(6)
    log.exception("unexpected error %s in %s", error_id, method)
    return errors.to_status(errors.InternalError(error_id))


def _aborted(context) -> bool:
    """Whether the call already has a status other than OK (a context that
    can tell: the synchronous one of grpc.aio cannot, its abort raises AbortError)."""
    code = getattr(context, "code", None)
    return code is not None and code() not in (None, grpc.StatusCode.OK)


def _with_pid(handler):
    """``handler`` (a health check, async on grpc.aio) answering with the
    process id as initial metadata."""
    check = handler.unary_unary
    pid = ((PID_METADATA, str(os.getpid())),)

    if inspect.iscoroutinefunction(check):

        async def answer(request, context):
            await context.send_initial_metadata(pid)
            return await check(request, context)

    else:

        def answer(request, context):
            context.send_initial_metadata(pid)
            return check(request, context)

    return grpc.unary_unary_rpc_method_handler(
        answer,
        request_deserializer=handler.request_deserializer,
        response_serializer=handler.response_serializer,
    )

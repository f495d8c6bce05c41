"""Server interceptors: authentication and the error boundary, around every PostService call.

The work happens in the wrapped handler, on the RPC's own thread:
``intercept_service`` itself runs on gRPC's single serving thread, where a
database lookup would stall every call.
"""

from __future__ import annotations

import contextvars
import logging
import os

import grpc

from service import db, errors
from service.auth import Authenticator, Principal

log = logging.getLogger(__name__)

SERVICE_PREFIX = "/posts.v1.PostService/"
HEALTH_CHECK = "/grpc.health.v1.Health/Check"
#: Initial metadata of every health check answer: the answering process's id, so
#: a client can tell apart the ``serve --processes N`` servers sharing a port.
PID_METADATA = "posts-server-pid"

_principal: contextvars.ContextVar[Principal] = contextvars.ContextVar("principal")


def current_principal() -> Principal:
    """The caller of the RPC running on this thread."""
    return _principal.get()


class PostServiceInterceptor(grpc.ServerInterceptor):
    """Authenticates each PostService call, gives it a database connection,
    and answers domain errors as rich ``google.rpc.Status`` values.

    Reflection and health need no key; health checks only gain the
    answering process's id (``PID_METADATA``).
    """

    def __init__(self, authenticator: Authenticator):
        self._authenticator = authenticator

    def intercept_service(self, continuation, handler_call_details):
        handler = continuation(handler_call_details)
        if handler is not None and handler_call_details.method == HEALTH_CHECK:
            return _with_pid(handler)
        if handler is None or not handler_call_details.method.startswith(SERVICE_PREFIX):
            return handler
        if handler.unary_unary is None:
            return handler
        authorization = dict(handler_call_details.invocation_metadata or ()).get("authorization")
        behaviour = handler.unary_unary

        def guarded(request, context):
            try:
                with db.connection():
                    principal = self._authenticator.authenticate(authorization)
                    token = _principal.set(principal)
                    try:
                        return behaviour(request, context)
                    finally:
                        _principal.reset(token)
            except errors.ServiceError as error:
                context.abort_with_status(errors.to_status(error))
            except db.UNAVAILABLE:
                log.exception("database unavailable in %s", handler_call_details.method)
                context.abort_with_status(errors.to_status(errors.BackendUnavailable("database")))

        return grpc.unary_unary_rpc_method_handler(
            guarded,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )


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

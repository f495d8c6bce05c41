"""Server interceptors: authentication and the error boundary, around every PostService call.

The work happens in the wrapped handler, on the RPC's own thread:
``intercept_service`` itself runs on gRPC's single serving thread, where a
database lookup would stall every call.
"""

from __future__ import annotations

import contextvars
import logging

import grpc

from service import db, errors
from service.auth import Authenticator, Principal

log = logging.getLogger(__name__)

SERVICE_PREFIX = "/posts.v1.PostService/"

_principal: contextvars.ContextVar[Principal] = contextvars.ContextVar("principal")


def current_principal() -> Principal:
    """The caller of the RPC running on this thread."""
    return _principal.get()


class PostServiceInterceptor(grpc.ServerInterceptor):
    """Authenticates each PostService call, gives it a database connection,
    and answers domain errors as rich ``google.rpc.Status`` values.

    Reflection and health pass through untouched: they need no key.
    """

    def __init__(self, authenticator: Authenticator):
        self._authenticator = authenticator

    def intercept_service(self, continuation, handler_call_details):
        handler = continuation(handler_call_details)
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

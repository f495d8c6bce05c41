"""Domain errors, and the one function that turns them into ``google.rpc.Status``.

Every error a caller can meet is a ServiceError with a gRPC code, a stable
UPPER_SNAKE reason and lowerCamel metadata; docs/errors.md lists them all,
with the order in which the checks run.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from service import ids

DOMAIN = "posts.v1"


class ServiceError(Exception):
    """An error answered to the caller.

    ``violations`` maps field paths (``items[2].text``) to descriptions (a tuple
    of them where several rules break at one path) and becomes a BadRequest, one
    violation per description; ``precondition`` (type, subject, description) a
    PreconditionFailure.
    """

    code = grpc.StatusCode.INVALID_ARGUMENT
    reason = "INVALID_FIELD"
    #: Seconds until the caller may try again, answered as a RetryInfo; None: no hint.
    retry_delay: float | None = None

    def __init__(
        self,
        message: str,
        *,
        metadata: dict[str, str] | None = None,
        violations: Mapping[str, str | tuple[str, ...]] | None = None,
        precondition: tuple[str, str, str] | None = None,
    ):
        super().__init__(message)
        self.message = message
        self.metadata = metadata or {}
        self.violations = violations or {}
        self.precondition = precondition


class ApiKeyInvalid(ServiceError):
    code, reason = grpc.StatusCode.UNAUTHENTICATED, "API_KEY_INVALID"

    def __init__(self):
        super().__init__("missing or invalid API key: send 'authorization: Bearer <key>'")


class WorkspaceAccessDenied(ServiceError):
    code, reason = grpc.StatusCode.PERMISSION_DENIED, "WORKSPACE_ACCESS_DENIED"

    def __init__(self, workspace_id: str):
        # A name where the id belongs ("demo") is a likely slip: say what is expected.
        hint = (
            ""
            if ids.is_valid(workspace_id, ids.WORKSPACE)
            else (": workspace_id takes a workspace's id (wks_…), not its name")
        )
        super().__init__(
            f"the API key is not granted workspace {workspace_id!r}{hint}",
            metadata={"workspaceId": workspace_id},
        )


class WorkspaceRequired(ServiceError):
    reason = "WORKSPACE_REQUIRED"

    def __init__(self, workspace_ids: list[str]):
        super().__init__(
            "the API key reaches several workspaces: name one in workspace_id",
            metadata={"workspaces": ",".join(sorted(workspace_ids))},
            violations={"workspace_id": "required: the key reaches several workspaces"},
        )


class InvalidField(ServiceError):
    reason = "INVALID_FIELD"

    def __init__(self, violations: Mapping[str, str | tuple[str, ...]]):
        first = next(iter(violations))
        super().__init__(f"invalid {first}: {violations[first]}", violations=violations)


class PlatformRuleViolated(ServiceError):
    reason = "PLATFORM_RULE_VIOLATED"

    def __init__(self, platform: str, violations: dict[str, str | tuple[str, ...]]):
        broken = sum(len(d) if isinstance(d, tuple) else 1 for d in violations.values())
        super().__init__(
            f"the content breaks {broken} rule(s) of {platform}",
            metadata={"platform": platform},
            violations=violations,
        )


class FieldImmutable(ServiceError):
    reason = "FIELD_IMMUTABLE"

    def __init__(self, field: str):
        super().__init__(
            f"{field} cannot be changed: delete the post and create another",
            metadata={"field": field},
            violations={field: "immutable: delete and recreate the post instead"},
        )


class PostNotFound(ServiceError):
    code, reason = grpc.StatusCode.NOT_FOUND, "POST_NOT_FOUND"

    def __init__(self, post_id: str):
        super().__init__(f"post {post_id!r} not found", metadata={"postId": post_id})


class AccountNotFound(ServiceError):
    code, reason = grpc.StatusCode.NOT_FOUND, "ACCOUNT_NOT_FOUND"

    def __init__(self, account_id: str):
        super().__init__(f"account {account_id!r} not found", metadata={"accountId": account_id})


class InvalidTransition(ServiceError):
    code, reason = grpc.StatusCode.FAILED_PRECONDITION, "INVALID_TRANSITION"

    def __init__(self, current: str, wanted: str = ""):
        name = f"POST_STATUS_{current}"
        what = f" to {wanted}" if wanted else ""
        super().__init__(
            f"a post in {name} cannot change{what}",
            metadata={"currentStatus": name},
            precondition=("STATUS", "post", f"the post is {name}"),
        )


class PlatformNotSupported(ServiceError):
    code, reason = grpc.StatusCode.FAILED_PRECONDITION, "PLATFORM_NOT_SUPPORTED"

    def __init__(self, platform: str):
        name = f"PLATFORM_{platform.upper()}"
        super().__init__(
            f"delivery to {name} has no adapter yet (use a sandbox account)",
            metadata={"platform": name},
            precondition=("PLATFORM", "account", f"{name} has no adapter yet"),
        )


class EtagMismatch(ServiceError):
    code, reason = grpc.StatusCode.ABORTED, "ETAG_MISMATCH"

    def __init__(self, etag: str):
        super().__init__(
            "the post changed since this etag: read it again",
            metadata={"currentEtag": etag},
        )


class IdempotencyKeyReused(ServiceError):
    code, reason = grpc.StatusCode.ALREADY_EXISTS, "IDEMPOTENCY_KEY_REUSED"

    def __init__(self, key: str, post_id: str):
        super().__init__(
            "this idempotency key was used for a different request",
            metadata={"idempotencyKey": key, "postId": post_id},
        )


class BackendUnavailable(ServiceError):
    code, reason = grpc.StatusCode.UNAVAILABLE, "BACKEND_UNAVAILABLE"

    def __init__(self, what: str):
        super().__init__(f"{what} is unavailable; retry with backoff", metadata={"backend": what})


class RateLimited(ServiceError):
    code, reason = grpc.StatusCode.RESOURCE_EXHAUSTED, "RATE_LIMITED"

    def __init__(self, retry_delay: float):
        super().__init__(
            f"too many requests for this API key: retry in {retry_delay:.3f}s",
            metadata={"retryDelay": f"{retry_delay:.3f}s"},
        )
        self.retry_delay = retry_delay


class EventCursorExpired(ServiceError):
    """A cursor older than the retained events: what came after it is pruned."""

    code, reason = grpc.StatusCode.OUT_OF_RANGE, "EVENT_CURSOR_EXPIRED"

    def __init__(self, after: int, pruned_through: int):
        super().__init__(
            f"events after {after} are no longer kept (pruned through {pruned_through}); "
            "start again from ListPostEvents or without after_event_id",
            metadata={"afterEventId": str(after), "prunedThrough": str(pruned_through)},
        )


class SubscriptionNotFound(ServiceError):
    code, reason = grpc.StatusCode.NOT_FOUND, "SUBSCRIPTION_NOT_FOUND"

    def __init__(self, subscription_id: str):
        super().__init__(
            f"webhook subscription {subscription_id!r} not found",
            metadata={"subscriptionId": subscription_id},
        )


class SubscriptionLimitReached(ServiceError):
    """A workspace has as many webhook subscriptions as it may."""

    code, reason = grpc.StatusCode.RESOURCE_EXHAUSTED, "SUBSCRIPTION_LIMIT_REACHED"

    def __init__(self, limit: int):
        super().__init__(
            f"the workspace already has {limit} webhook subscriptions: delete one first",
            metadata={"limit": str(limit)},
        )


class _StreamEnded(ServiceError):
    """WatchPostEvents ended by the server; the client watches again from ``last_event_id``."""

    why = ""  # what ended it
    where = ""  # where to watch again, if anywhere special

    def __init__(self, last_event_id: int):
        super().__init__(
            f"{self.why}: watch again{self.where} with after_event_id {last_event_id}, "
            "the last event_id received",
            metadata={"lastEventId": str(last_event_id)},
        )


class ServerDraining(_StreamEnded):
    """WatchPostEvents: the server is shutting down; the client resumes elsewhere."""

    code, reason = grpc.StatusCode.UNAVAILABLE, "SERVER_DRAINING"
    why, where = "the server is shutting down", " (on any server)"


class WatcherTooSlow(_StreamEnded):
    """WatchPostEvents: the client read too slowly; its queue on the server overflowed."""

    code, reason = grpc.StatusCode.RESOURCE_EXHAUSTED, "WATCHER_TOO_SLOW"
    why = "the stream fell too far behind the events"


class InternalError(ServiceError):
    """What an unexpected exception is answered as: its id, never its text."""

    code, reason = grpc.StatusCode.INTERNAL, "INTERNAL_ERROR"

    def __init__(self, error_id: str):
        super().__init__(
            f"internal error {error_id}: the service logged it under this id",
            metadata={"errorId": error_id},
        )


def to_status(error: ServiceError) -> grpc.Status:
    """The ``google.rpc.Status`` (as a grpc.Status) answering ``error``."""
    details = [
        error_details_pb2.ErrorInfo(reason=error.reason, domain=DOMAIN, metadata=error.metadata)
    ]
    if error.violations:
        details.append(
            error_details_pb2.BadRequest(
                field_violations=[
                    error_details_pb2.BadRequest.FieldViolation(field=f, description=d)
                    for f, ds in error.violations.items()
                    for d in (ds if isinstance(ds, tuple) else (ds,))
                ]
            )
        )
    if error.precondition:
        kind, subject, description = error.precondition
        details.append(
            error_details_pb2.PreconditionFailure(
                violations=[
                    error_details_pb2.PreconditionFailure.Violation(
                        type=kind, subject=subject, description=description
                    )
                ]
            )
        )
    if error.retry_delay is not None:
        delay = duration_pb2.Duration()
        delay.FromNanoseconds(max(1, math.ceil(error.retry_delay * 1e9)))
        details.append(error_details_pb2.RetryInfo(retry_delay=delay))
    packed = []
    for detail in details:
        container = any_pb2.Any()
        container.Pack(detail)
        packed.append(container)
    status = status_pb2.Status(
        code=getattr(code_pb2, error.code.name), message=error.message, details=packed
    )
    return rpc_status.to_status(status)

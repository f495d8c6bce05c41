"""Domain posts as protobuf messages: the answers PostService gives and the
webhook body a delivery sends, encoded the same way."""

from __future__ import annotations

import datetime as dt
from typing import cast, overload

from google.protobuf import timestamp_pb2
from posts.v1 import posts_pb2

from service.models import LoadedPost

pb = posts_pb2

# The generated stubs type an enum field as its enum class; the ints that
# EnumTypeWrapper.Value() and the database answer are its values at run time,
# which the casts (no-ops at run time) say.


@overload
def timestamp(value: dt.datetime) -> timestamp_pb2.Timestamp: ...
@overload
def timestamp(value: dt.datetime | None) -> timestamp_pb2.Timestamp | None: ...
def timestamp(value: dt.datetime | None) -> timestamp_pb2.Timestamp | None:
    if value is None:
        return None
    # Timestamp.FromDatetime goes through a time tuple, several times slower, and
    # every answer and event snapshot carries up to seven times.
    since = value - (_EPOCH if value.tzinfo else _NAIVE_EPOCH)
    return timestamp_pb2.Timestamp(
        seconds=since.days * 86400 + since.seconds, nanos=since.microseconds * 1000
    )


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_NAIVE_EPOCH = dt.datetime(1970, 1, 1)  # a naive time is UTC, as FromDatetime takes it


def status_value(name: str) -> pb.PostStatus:
    return cast("pb.PostStatus", pb.PostStatus.Value(f"POST_STATUS_{name.upper()}"))


def encode_post(loaded: LoadedPost) -> pb.Post:
    """The domain's post as a posts.v1.Post (the same message for the same
    version of ``loaded``: treat it as read-only)."""
    post = loaded.post
    if loaded.encoded is not None and loaded.encoded[0] == post.version:
        return loaded.encoded[1]
    items = []
    for item, media in loaded.items:
        items.append(
            pb.PostItem(
                text=item.text,
                media=[
                    pb.Media(
                        media_id=m.id,
                        url=m.url,
                        kind=cast(
                            "pb.MediaKind", pb.MediaKind.Value(f"MEDIA_KIND_{m.kind.upper()}")
                        ),
                        mime_type=m.mime_type,
                        alt_text=m.alt_text,
                    )
                    for m in media
                ],
                status=status_value("published" if item.platform_post_id else post.status),
                platform_post_id=item.platform_post_id,
                platform_url=item.platform_url,
            )
        )
    first = items[0] if items else pb.PostItem()
    message = pb.Post(
        post_id=post.id,
        workspace_id=post.workspace_id,
        account_id=post.account_id,
        platform=cast("pb.Platform", pb.Platform.Value(f"PLATFORM_{post.platform.upper()}")),
        post_type=cast("pb.PostType", pb.PostType.Value(f"POST_TYPE_{post.post_type.upper()}")),
        title=post.title,
        items=items,
        text=first.text,
        media=first.media,
        status=status_value(post.status),
        scheduled_at=timestamp(post.scheduled_at),
        idempotency_key=post.idempotency_key,
        etag=loaded.etag,
        platform_post_id=first.platform_post_id,
        platform_url=first.platform_url,
        delivery=pb.Delivery(
            attempts=post.attempts,
            last_attempt_time=timestamp(post.last_attempt_at),
            next_attempt_time=timestamp(post.next_attempt_at if post.status == "pending" else None),
            queue_time=timestamp(post.queued_at),
            publish_time=timestamp(post.published_at),
        ),
        create_time=timestamp(post.created_at),
        update_time=timestamp(post.updated_at),
        delete_time=timestamp(post.deleted_at),
    )
    if post.error_code or post.error_message:
        message.error.CopyFrom(pb.PostError(code=post.error_code, message=post.error_message))
    loaded.encoded = (post.version, message)
    return message

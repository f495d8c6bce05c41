"""PostService: decodes protobuf requests, calls the posts domain, encodes the answer."""

from __future__ import annotations

import datetime as dt
import functools

from google.protobuf import timestamp_pb2
from posts.v1 import posts_pb2, posts_pb2_grpc

from service import errors
from service.codec import encode_post
from service.interceptors import current_principal
from service.posts import (
    EDITABLE_FIELDS,
    IMMUTABLE_FIELDS,
    ItemInput,
    ListQuery,
    MediaInput,
    NewPost,
    PostEdit,
    Posts,
)

pb = posts_pb2


class PostServicer(posts_pb2_grpc.PostServiceServicer):
    """The gRPC face of the posts domain."""

    def __init__(self, posts: Posts, cached_answers: int = 4096):
        self._posts = posts
        # Clients poll GetPostStatus: each version of a post is encoded once.
        self._status_answer = functools.lru_cache(maxsize=cached_answers)(self._encode_status)

    def CreatePost(self, request, context):
        workspace = current_principal().workspace(request.workspace_id)
        post = self._posts.create(workspace, decode_new_post(request))
        return pb.CreatePostResponse(post=encode_post(post))

    def GetPostStatus(self, request, context):
        workspace = current_principal().workspace(request.workspace_id)
        version = self._posts.version(workspace, request.post_id)
        return self._status_answer(workspace, request.post_id, version)

    def _encode_status(self, workspace: str, post_id: str, version: int):
        # The post read may be newer than ``version``, never older: still current.
        return pb.GetPostStatusResponse(post=encode_post(self._posts.get(workspace, post_id)))

    def UpdatePost(self, request, context):
        workspace = current_principal().workspace(request.workspace_id)
        post = self._posts.update(workspace, decode_edit(request))
        return pb.UpdatePostResponse(post=encode_post(post))

    def DeletePost(self, request, context):
        workspace = current_principal().workspace(request.workspace_id)
        post = self._posts.delete(workspace, request.post_id, request.etag)
        return pb.DeletePostResponse(post=encode_post(post))

    def ListPosts(self, request, context):
        workspace = current_principal().workspace(request.workspace_id)
        query = ListQuery(
            statuses=tuple(
                _enum(pb.PostStatus, s, "POST_STATUS_", f"statuses[{i}]")
                for i, s in enumerate(request.statuses)
            ),
            account_id=request.account_id,
            platform=_enum(pb.Platform, request.platform, "PLATFORM_", "platform"),
            show_deleted=request.show_deleted,
            page_size=request.page_size,
            page_token=request.page_token,
        )
        if request.page_size < 0:
            raise errors.InvalidField({"page_size": "must not be negative"})
        page, token = self._posts.list(workspace, query)
        return pb.ListPostsResponse(posts=[encode_post(p) for p in page], next_page_token=token)


# -- decoding -----------------------------------------------------------------


def _enum(enum_type, value: int, prefix: str, field: str) -> str:
    """An enum value's lower-case name without its prefix; '' for UNSPECIFIED."""
    if value not in enum_type.values():
        raise errors.InvalidField({field: f"unknown {enum_type.DESCRIPTOR.name} value {value}"})
    return "" if value == 0 else enum_type.Name(value).removeprefix(prefix).lower()


def _time(ts: timestamp_pb2.Timestamp, field: str) -> dt.datetime:
    try:
        return ts.ToDatetime(tzinfo=dt.UTC)
    except (ValueError, OverflowError):
        raise errors.InvalidField({field: "not a valid timestamp"}) from None


def _media(media, path: str) -> tuple[MediaInput, ...]:
    return tuple(
        MediaInput(m.url, _enum(pb.MediaKind, m.kind, "MEDIA_KIND_", f"{path}[{i}].kind"),
                   m.mime_type, m.alt_text)
        for i, m in enumerate(media)
    )  # fmt: skip


def _items(items) -> tuple[ItemInput, ...]:
    return tuple(ItemInput(i.text, _media(i.media, f"items[{n}].media")) for n, i in enumerate(items))


def decode_new_post(request: pb.CreatePostRequest) -> NewPost:
    """A CreatePostRequest as the domain's NewPost; raises InvalidField."""
    shorthand = not request.items
    if request.items and (request.text or request.media):
        raise errors.InvalidField({"items": "send items, or text and media, not both"})
    items = (
        _items(request.items)
        if request.items
        else (ItemInput(request.text, _media(request.media, "media")),)
    )
    return NewPost(
        account_id=request.account_id,
        post_type=_enum(pb.PostType, request.post_type, "POST_TYPE_", "post_type"),
        items=items,
        title=request.title,
        status=_enum(pb.StatusChange, request.status, "STATUS_CHANGE_", "status"),
        scheduled_at=(
            _time(request.scheduled_at, "scheduled_at") if request.HasField("scheduled_at") else None
        ),
        idempotency_key=request.idempotency_key,
        shorthand=shorthand,
    )


def decode_edit(request: pb.UpdatePostRequest) -> PostEdit:
    """An UpdatePostRequest as the domain's PostEdit: only the fields it changes."""
    if request.HasField("update_mask"):
        paths = list(request.update_mask.paths)
        unknown = [p for p in paths if p not in EDITABLE_FIELDS + IMMUTABLE_FIELDS]
        if unknown:
            raise errors.InvalidField({"update_mask": f"unknown or read-only field {unknown[0]!r}"})
    else:
        present = {
            "text": request.HasField("text"),
            "media": bool(request.media),
            "items": bool(request.items),
            "title": request.HasField("title"),
            "scheduled_at": request.HasField("scheduled_at"),
            "status": request.status != 0,
            "idempotency_key": request.HasField("idempotency_key"),
            "account_id": request.HasField("account_id"),
            "platform": request.platform != 0,
            "post_type": request.post_type != 0,
        }
        paths = [p for p, on in present.items() if on]
    changes: dict[str, object] = {}
    immutable: dict[str, str] = {}
    for path in paths:
        if path == "text":
            changes["text"] = request.text
        elif path == "media":
            changes["media"] = _media(request.media, "media")
        elif path == "items":
            changes["items"] = _items(request.items)
        elif path == "title":
            changes["title"] = request.title
        elif path == "scheduled_at":
            changes["scheduled_at"] = (
                _time(request.scheduled_at, "scheduled_at")
                if request.HasField("scheduled_at")
                else None
            )
        elif path == "status":
            status = _enum(pb.StatusChange, request.status, "STATUS_CHANGE_", "status")
            if status:
                changes["status"] = status
        elif path == "idempotency_key":
            changes["idempotency_key"] = request.idempotency_key
        elif path == "account_id":
            immutable["account_id"] = request.account_id
        elif path == "platform":
            immutable["platform"] = _enum(pb.Platform, request.platform, "PLATFORM_", "platform")
        elif path == "post_type":
            immutable["post_type"] = _enum(pb.PostType, request.post_type, "POST_TYPE_", "post_type")
    return PostEdit(request.post_id, request.etag, changes, immutable)

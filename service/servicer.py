"""PostService: decodes protobuf requests, calls the posts domain, encodes the answer."""

from __future__ import annotations

import collections
import datetime as dt
import threading
from collections.abc import Hashable

from google.protobuf import message as protobuf_message
from google.protobuf import timestamp_pb2
from posts.v1 import posts_pb2, posts_pb2_grpc

from service import errors, events, ids, webhooks
from service.codec import encode_post
from service.interceptors import current_principal
from service.posts import (
    EDITABLE_FIELDS,
    IMMUTABLE_FIELDS,
    MAX_FILTER_ENTRIES,
    MAX_ID_LENGTH,
    MAX_MASK_PATHS,
    ItemInput,
    ListQuery,
    MediaInput,
    NewPost,
    PostChanges,
    PostEdit,
    Posts,
)
from service.watch import Hub

pb = posts_pb2

#: A ListPosts page stops before the post that would take it past this size
#: (bytes, encoded), under gRPC clients' default receive limit of 4 MiB; a post
#: larger than that comes alone on its page.
MAX_PAGE_BYTES = 4_000_000

#: UpdatePost's update_mask paths in their JSON (lowerCamel) spelling, by field name.
MASK_PATHS = {
    pb.UpdatePostRequest.DESCRIPTOR.fields_by_name[name].json_name: name
    for name in EDITABLE_FIELDS + IMMUTABLE_FIELDS
}

#: WatchPostEvents follows at most this many posts by id.
MAX_WATCHED_POSTS = 100


class PostServicer(posts_pb2_grpc.PostServiceServicer):
    """The gRPC face of the posts domain."""

    def __init__(
        self,
        posts: Posts,
        cached_answers: int = 4096,
        cached_bytes: int = 16 * 1024 * 1024,
        hub: Hub | None = None,
    ):
        self._posts = posts
        self._hub = hub  # WatchPostEvents' fan-out (service.watch); None: not served
        # Clients poll GetPostStatus: each version of a post is encoded once.
        self._status_answers = AnswerCache(cached_answers, cached_bytes)

    def CreatePost(self, request, context):
        workspace = _workspace(request)
        post = self._posts.create(workspace, decode_new_post(request))
        return pb.CreatePostResponse(post=encode_post(post))

    def GetPostStatus(self, request, context):
        workspace = _workspace(request)
        version = self._posts.version(workspace, request.post_id)
        key = (workspace, request.post_id, version)
        answer = self._status_answers.get(key)
        if answer is None:
            # The post read may be newer than ``version``, never older: still current.
            post = self._posts.get(workspace, request.post_id)
            answer = pb.GetPostStatusResponse(post=encode_post(post))
            self._status_answers.put(key, answer)
        return answer

    def UpdatePost(self, request, context):
        workspace = _workspace(request)
        post = self._posts.update(workspace, decode_edit(request))
        return pb.UpdatePostResponse(post=encode_post(post))

    def DeletePost(self, request, context):
        workspace = _workspace(request)
        post = self._posts.delete(workspace, request.post_id, request.etag)
        return pb.DeletePostResponse(post=encode_post(post))

    def ListPosts(self, request, context):
        workspace = _workspace(request)
        if len(request.statuses) > MAX_FILTER_ENTRIES:
            raise errors.InvalidField({"statuses": f"at most {MAX_FILTER_ENTRIES} entries"})
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
        posts: list[pb.Post] = []
        size = 0
        for n, loaded in enumerate(page):
            post = encode_post(loaded)
            size += post.ByteSize() + 8  # with its tag and length
            if posts and size > MAX_PAGE_BYTES:
                token = self._posts.page_token_after(workspace, query, page[n - 1].post)
                break
            posts.append(post)
        return pb.ListPostsResponse(posts=posts, next_page_token=token)

    def ListPostEvents(self, request, context):
        workspace = _workspace(request)
        if request.page_size < 0:
            raise errors.InvalidField({"page_size": "must not be negative"})
        if request.post_id and not ids.is_valid(request.post_id, ids.POST):
            raise errors.InvalidField({"post_id": "not a post id (pst_…)"})
        which = decode_event_filter(
            workspace, [request.post_id] if request.post_id else [], request.types
        )
        found, token = self._posts.events(which, request.page_size, request.page_token)
        return pb.ListPostEventsResponse(events=found, next_page_token=token)

    def WatchPostEvents(self, request, context, send_response_callback=None):
        # A non-blocking stream: the hub sends through the callback, no thread waits.
        workspace = _workspace(request)
        which = decode_event_filter(workspace, request.post_ids, request.types)
        after = request.after_event_id if request.HasField("after_event_id") else None
        if after is not None and after < 0:
            raise errors.InvalidField({"after_event_id": "must not be negative"})
        if self._hub is None or send_response_callback is None:
            raise errors.BackendUnavailable("event stream")
        self._hub.follow(which, after, send_response_callback, context)

    # gRPC reads this mark off the method; no stub declares it.
    WatchPostEvents.experimental_non_blocking = True  # type: ignore[attr-defined]

    def CreateWebhookSubscription(self, request, context):
        workspace = _workspace(request)
        subscription, secret = webhooks.create(
            workspace, request.url, list(request.event_types), request.description
        )
        return pb.CreateWebhookSubscriptionResponse(
            subscription=webhooks.encode(subscription), secret=secret
        )

    def ListWebhookSubscriptions(self, request, context):
        workspace = _workspace(request)
        return pb.ListWebhookSubscriptionsResponse(
            subscriptions=[webhooks.encode(s) for s in webhooks.list_all(workspace)]
        )

    def DeleteWebhookSubscription(self, request, context):
        workspace = _workspace(request)
        webhooks.delete(workspace, request.subscription_id)
        return pb.DeleteWebhookSubscriptionResponse()


class AnswerCache:
    """Encoded answers by key, the least recently used dropped first: at most
    ``max_entries`` of them and ``max_bytes`` of encoded answers. An answer over
    a sixteenth of the bytes is not kept (a few would push out thousands)."""

    def __init__(self, max_entries: int, max_bytes: int):
        self.max_entries, self.max_bytes = max_entries, max_bytes
        self.bytes = 0
        self._answers: collections.OrderedDict[Hashable, tuple[protobuf_message.Message, int]]
        self._answers = collections.OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._answers)

    def get(self, key: Hashable) -> protobuf_message.Message | None:
        with self._lock:
            entry = self._answers.get(key)
            if entry is None:
                return None
            self._answers.move_to_end(key)
            return entry[0]

    def put(self, key: Hashable, answer: protobuf_message.Message) -> None:
        size = answer.ByteSize()
        if size > self.max_bytes // 16:
            return
        with self._lock:
            old = self._answers.pop(key, None)
            if old is not None:
                self.bytes -= old[1]
            self._answers[key] = (answer, size)
            self.bytes += size
            while len(self._answers) > self.max_entries or self.bytes > self.max_bytes:
                self.bytes -= self._answers.popitem(last=False)[1][1]


# -- decoding -----------------------------------------------------------------


def _workspace(request) -> str:
    """The workspace ``request`` acts on (its workspace_id checked first), once
    every string of it is within its limits; raises InvalidField, or what
    Principal.workspace raises."""
    requested = request.workspace_id
    if violations := _check_string("workspace_id", requested):
        raise errors.InvalidField(violations)
    workspace = current_principal().workspace(requested)
    if violations := check_strings(request):
        raise errors.InvalidField(violations)
    return workspace


def check_strings(message: protobuf_message.Message, path: str = "") -> dict[str, str]:
    """The violations of what every string of a request must keep to, wherever it
    is: no NUL (PostgreSQL cannot store one), and ids (``…_id``) of at most
    MAX_ID_LENGTH characters. The other limits are the domain's."""
    violations: dict[str, str] = {}
    for field, value in message.ListFields():
        name = path + field.name
        if field.type == field.TYPE_MESSAGE:
            for n, element in enumerate(value) if field.is_repeated else [(None, value)]:
                where = name if n is None else f"{name}[{n}]"
                violations |= check_strings(element, where + ".")
        elif field.type == field.TYPE_STRING:
            for n, text in enumerate(value) if field.is_repeated else [(None, value)]:
                violations |= _check_string(name if n is None else f"{name}[{n}]", text)
    return violations


def _check_string(path: str, text: str) -> dict[str, str]:
    if "\0" in text:
        return {path: "must not contain NUL characters"}
    if path.endswith("_id") and len(text) > MAX_ID_LENGTH:
        return {path: f"at most {MAX_ID_LENGTH} characters"}
    return {}


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
        MediaInput(
            m.url,
            _enum(pb.MediaKind, m.kind, "MEDIA_KIND_", f"{path}[{i}].kind"),
            m.mime_type,
            m.alt_text,
        )
        for i, m in enumerate(media)
    )


def _items(items) -> tuple[ItemInput, ...]:
    return tuple(
        ItemInput(i.text, _media(i.media, f"items[{n}].media")) for n, i in enumerate(items)
    )


def decode_event_filter(workspace: str, post_ids, types) -> events.Filter:
    """Which events a ListPostEvents or WatchPostEvents request wants."""
    if len(types) > MAX_FILTER_ENTRIES:
        raise errors.InvalidField({"types": f"at most {MAX_FILTER_ENTRIES} entries"})
    for i, value in enumerate(types):
        if value == 0 or value not in pb.PostEventType.values():
            raise errors.InvalidField({f"types[{i}]": f"not a PostEventType: {value}"})
    if len(post_ids) > MAX_WATCHED_POSTS:
        raise errors.InvalidField({"post_ids": f"at most {MAX_WATCHED_POSTS} entries"})
    for i, post_id in enumerate(post_ids):
        if not ids.is_valid(post_id, ids.POST):
            raise errors.InvalidField({f"post_ids[{i}]": "not a post id (pst_…)"})
    return events.Filter(workspace, tuple(dict.fromkeys(post_ids)), tuple(sorted(set(types))))


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
            _time(request.scheduled_at, "scheduled_at")
            if request.HasField("scheduled_at")
            else None
        ),
        idempotency_key=request.idempotency_key,
        shorthand=shorthand,
    )


def decode_edit(request: pb.UpdatePostRequest) -> PostEdit:
    """An UpdatePostRequest as the domain's PostEdit: only the fields it changes."""
    paths = _edited_paths(request)
    return PostEdit(
        request.post_id, request.etag, _changes(request, paths), _immutable(request, paths)
    )


def _changes(request: pb.UpdatePostRequest, paths: list[str]) -> PostChanges:
    """The editable fields of ``paths``, decoded."""
    changes: PostChanges = {}
    for path in paths:
        if path == "text":
            changes["text"] = request.text
        elif path == "title":
            changes["title"] = request.title
        elif path == "idempotency_key":
            changes["idempotency_key"] = request.idempotency_key
        elif path == "media":
            changes["media"] = _media(request.media, "media")
        elif path == "items":
            changes["items"] = _items(request.items)
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
    return changes


def _immutable(request: pb.UpdatePostRequest, paths: list[str]) -> dict[str, str]:
    """The fields of ``paths`` that cannot change, as sent (compared with the post's)."""
    immutable: dict[str, str] = {}
    for path in paths:
        if path == "account_id":
            immutable["account_id"] = request.account_id
        elif path == "platform":
            immutable["platform"] = _enum(pb.Platform, request.platform, "PLATFORM_", "platform")
        elif path == "post_type":
            immutable["post_type"] = _enum(
                pb.PostType, request.post_type, "POST_TYPE_", "post_type"
            )
    return immutable


def _edited_paths(request: pb.UpdatePostRequest) -> list[str]:
    """The fields an UpdatePostRequest changes: its update_mask's paths, or without
    a mask, the fields it sets."""
    if request.HasField("update_mask"):
        # Paths name fields in snake_case, as FieldMask says; the lowerCamel
        # spelling a JSON client writes (grpcurl's "scheduledAt") means the same.
        paths = list(dict.fromkeys(MASK_PATHS.get(p, p) for p in request.update_mask.paths))
        if len(request.update_mask.paths) > MAX_MASK_PATHS:
            raise errors.InvalidField({"update_mask": f"at most {MAX_MASK_PATHS} paths"})
        unknown = [p for p in paths if p not in EDITABLE_FIELDS + IMMUTABLE_FIELDS]
        if unknown:
            named = unknown[0] if len(unknown[0]) <= 64 else unknown[0][:64] + "…"
            raise errors.InvalidField({"update_mask": f"unknown or read-only field {named!r}"})
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
    return paths

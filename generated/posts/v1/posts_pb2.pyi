import datetime

from google.protobuf import field_mask_pb2 as _field_mask_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class PostStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    POST_STATUS_UNSPECIFIED: _ClassVar[PostStatus]
    POST_STATUS_DRAFT: _ClassVar[PostStatus]
    POST_STATUS_SCHEDULED: _ClassVar[PostStatus]
    POST_STATUS_PENDING: _ClassVar[PostStatus]
    POST_STATUS_PROCESSING: _ClassVar[PostStatus]
    POST_STATUS_PUBLISHED: _ClassVar[PostStatus]
    POST_STATUS_FAILED: _ClassVar[PostStatus]
    POST_STATUS_CANCELLED: _ClassVar[PostStatus]

class StatusChange(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    STATUS_CHANGE_UNSPECIFIED: _ClassVar[StatusChange]
    STATUS_CHANGE_PUBLISH: _ClassVar[StatusChange]
    STATUS_CHANGE_CANCELLED: _ClassVar[StatusChange]
    STATUS_CHANGE_DRAFT: _ClassVar[StatusChange]
    STATUS_CHANGE_SCHEDULED: _ClassVar[StatusChange]

class Platform(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PLATFORM_UNSPECIFIED: _ClassVar[Platform]
    PLATFORM_X: _ClassVar[Platform]
    PLATFORM_INSTAGRAM: _ClassVar[Platform]
    PLATFORM_LINKEDIN: _ClassVar[Platform]
    PLATFORM_TIKTOK: _ClassVar[Platform]
    PLATFORM_YOUTUBE: _ClassVar[Platform]
    PLATFORM_BLUESKY: _ClassVar[Platform]
    PLATFORM_MASTODON: _ClassVar[Platform]
    PLATFORM_WEBHOOK: _ClassVar[Platform]

class PostType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    POST_TYPE_UNSPECIFIED: _ClassVar[PostType]
    POST_TYPE_TWEET: _ClassVar[PostType]
    POST_TYPE_THREAD: _ClassVar[PostType]
    POST_TYPE_FEED: _ClassVar[PostType]
    POST_TYPE_REEL: _ClassVar[PostType]
    POST_TYPE_STORY: _ClassVar[PostType]
    POST_TYPE_CAROUSEL: _ClassVar[PostType]
    POST_TYPE_POST: _ClassVar[PostType]
    POST_TYPE_DOCUMENT: _ClassVar[PostType]
    POST_TYPE_VIDEO: _ClassVar[PostType]
    POST_TYPE_PHOTO: _ClassVar[PostType]
    POST_TYPE_SHORT: _ClassVar[PostType]

class MediaKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    MEDIA_KIND_UNSPECIFIED: _ClassVar[MediaKind]
    MEDIA_KIND_IMAGE: _ClassVar[MediaKind]
    MEDIA_KIND_VIDEO: _ClassVar[MediaKind]
    MEDIA_KIND_GIF: _ClassVar[MediaKind]
    MEDIA_KIND_DOCUMENT: _ClassVar[MediaKind]

class PostEventType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    POST_EVENT_TYPE_UNSPECIFIED: _ClassVar[PostEventType]
    POST_EVENT_TYPE_CREATED: _ClassVar[PostEventType]
    POST_EVENT_TYPE_UPDATED: _ClassVar[PostEventType]
    POST_EVENT_TYPE_SCHEDULED: _ClassVar[PostEventType]
    POST_EVENT_TYPE_QUEUED: _ClassVar[PostEventType]
    POST_EVENT_TYPE_PROCESSING: _ClassVar[PostEventType]
    POST_EVENT_TYPE_ITEM_PUBLISHED: _ClassVar[PostEventType]
    POST_EVENT_TYPE_RETRY_SCHEDULED: _ClassVar[PostEventType]
    POST_EVENT_TYPE_PUBLISHED: _ClassVar[PostEventType]
    POST_EVENT_TYPE_FAILED: _ClassVar[PostEventType]
    POST_EVENT_TYPE_CANCELLED: _ClassVar[PostEventType]
    POST_EVENT_TYPE_DELETED: _ClassVar[PostEventType]

class WebhookSubscriptionState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    WEBHOOK_SUBSCRIPTION_STATE_UNSPECIFIED: _ClassVar[WebhookSubscriptionState]
    WEBHOOK_SUBSCRIPTION_STATE_ACTIVE: _ClassVar[WebhookSubscriptionState]
    WEBHOOK_SUBSCRIPTION_STATE_DISABLED: _ClassVar[WebhookSubscriptionState]
POST_STATUS_UNSPECIFIED: PostStatus
POST_STATUS_DRAFT: PostStatus
POST_STATUS_SCHEDULED: PostStatus
POST_STATUS_PENDING: PostStatus
POST_STATUS_PROCESSING: PostStatus
POST_STATUS_PUBLISHED: PostStatus
POST_STATUS_FAILED: PostStatus
POST_STATUS_CANCELLED: PostStatus
STATUS_CHANGE_UNSPECIFIED: StatusChange
STATUS_CHANGE_PUBLISH: StatusChange
STATUS_CHANGE_CANCELLED: StatusChange
STATUS_CHANGE_DRAFT: StatusChange
STATUS_CHANGE_SCHEDULED: StatusChange
PLATFORM_UNSPECIFIED: Platform
PLATFORM_X: Platform
PLATFORM_INSTAGRAM: Platform
PLATFORM_LINKEDIN: Platform
PLATFORM_TIKTOK: Platform
PLATFORM_YOUTUBE: Platform
PLATFORM_BLUESKY: Platform
PLATFORM_MASTODON: Platform
PLATFORM_WEBHOOK: Platform
POST_TYPE_UNSPECIFIED: PostType
POST_TYPE_TWEET: PostType
POST_TYPE_THREAD: PostType
POST_TYPE_FEED: PostType
POST_TYPE_REEL: PostType
POST_TYPE_STORY: PostType
POST_TYPE_CAROUSEL: PostType
POST_TYPE_POST: PostType
POST_TYPE_DOCUMENT: PostType
POST_TYPE_VIDEO: PostType
POST_TYPE_PHOTO: PostType
POST_TYPE_SHORT: PostType
MEDIA_KIND_UNSPECIFIED: MediaKind
MEDIA_KIND_IMAGE: MediaKind
MEDIA_KIND_VIDEO: MediaKind
MEDIA_KIND_GIF: MediaKind
MEDIA_KIND_DOCUMENT: MediaKind
POST_EVENT_TYPE_UNSPECIFIED: PostEventType
POST_EVENT_TYPE_CREATED: PostEventType
POST_EVENT_TYPE_UPDATED: PostEventType
POST_EVENT_TYPE_SCHEDULED: PostEventType
POST_EVENT_TYPE_QUEUED: PostEventType
POST_EVENT_TYPE_PROCESSING: PostEventType
POST_EVENT_TYPE_ITEM_PUBLISHED: PostEventType
POST_EVENT_TYPE_RETRY_SCHEDULED: PostEventType
POST_EVENT_TYPE_PUBLISHED: PostEventType
POST_EVENT_TYPE_FAILED: PostEventType
POST_EVENT_TYPE_CANCELLED: PostEventType
POST_EVENT_TYPE_DELETED: PostEventType
WEBHOOK_SUBSCRIPTION_STATE_UNSPECIFIED: WebhookSubscriptionState
WEBHOOK_SUBSCRIPTION_STATE_ACTIVE: WebhookSubscriptionState
WEBHOOK_SUBSCRIPTION_STATE_DISABLED: WebhookSubscriptionState

class Media(_message.Message):
    __slots__ = ("media_id", "url", "kind", "mime_type", "alt_text")
    MEDIA_ID_FIELD_NUMBER: _ClassVar[int]
    URL_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    MIME_TYPE_FIELD_NUMBER: _ClassVar[int]
    ALT_TEXT_FIELD_NUMBER: _ClassVar[int]
    media_id: str
    url: str
    kind: MediaKind
    mime_type: str
    alt_text: str
    def __init__(self, media_id: _Optional[str] = ..., url: _Optional[str] = ..., kind: _Optional[_Union[MediaKind, str]] = ..., mime_type: _Optional[str] = ..., alt_text: _Optional[str] = ...) -> None: ...

class PostItem(_message.Message):
    __slots__ = ("text", "media", "status", "platform_post_id", "platform_url")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    MEDIA_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    PLATFORM_POST_ID_FIELD_NUMBER: _ClassVar[int]
    PLATFORM_URL_FIELD_NUMBER: _ClassVar[int]
    text: str
    media: _containers.RepeatedCompositeFieldContainer[Media]
    status: PostStatus
    platform_post_id: str
    platform_url: str
    def __init__(self, text: _Optional[str] = ..., media: _Optional[_Iterable[_Union[Media, _Mapping]]] = ..., status: _Optional[_Union[PostStatus, str]] = ..., platform_post_id: _Optional[str] = ..., platform_url: _Optional[str] = ...) -> None: ...

class PostError(_message.Message):
    __slots__ = ("code", "message")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    code: str
    message: str
    def __init__(self, code: _Optional[str] = ..., message: _Optional[str] = ...) -> None: ...

class Delivery(_message.Message):
    __slots__ = ("attempts", "last_attempt_time", "next_attempt_time", "queue_time", "publish_time")
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    LAST_ATTEMPT_TIME_FIELD_NUMBER: _ClassVar[int]
    NEXT_ATTEMPT_TIME_FIELD_NUMBER: _ClassVar[int]
    QUEUE_TIME_FIELD_NUMBER: _ClassVar[int]
    PUBLISH_TIME_FIELD_NUMBER: _ClassVar[int]
    attempts: int
    last_attempt_time: _timestamp_pb2.Timestamp
    next_attempt_time: _timestamp_pb2.Timestamp
    queue_time: _timestamp_pb2.Timestamp
    publish_time: _timestamp_pb2.Timestamp
    def __init__(self, attempts: _Optional[int] = ..., last_attempt_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., next_attempt_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., queue_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., publish_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class Post(_message.Message):
    __slots__ = ("post_id", "workspace_id", "account_id", "platform", "post_type", "title", "items", "text", "media", "status", "scheduled_at", "idempotency_key", "etag", "platform_post_id", "platform_url", "error", "delivery", "create_time", "update_time", "delete_time")
    POST_ID_FIELD_NUMBER: _ClassVar[int]
    WORKSPACE_ID_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    PLATFORM_FIELD_NUMBER: _ClassVar[int]
    POST_TYPE_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    MEDIA_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    SCHEDULED_AT_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    ETAG_FIELD_NUMBER: _ClassVar[int]
    PLATFORM_POST_ID_FIELD_NUMBER: _ClassVar[int]
    PLATFORM_URL_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    DELIVERY_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    DELETE_TIME_FIELD_NUMBER: _ClassVar[int]
    post_id: str
    workspace_id: str
    account_id: str
    platform: Platform
    post_type: PostType
    title: str
    items: _containers.RepeatedCompositeFieldContainer[PostItem]
    text: str
    media: _containers.RepeatedCompositeFieldContainer[Media]
    status: PostStatus
    scheduled_at: _timestamp_pb2.Timestamp
    idempotency_key: str
    etag: str
    platform_post_id: str
    platform_url: str
    error: PostError
    delivery: Delivery
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    delete_time: _timestamp_pb2.Timestamp
    def __init__(self, post_id: _Optional[str] = ..., workspace_id: _Optional[str] = ..., account_id: _Optional[str] = ..., platform: _Optional[_Union[Platform, str]] = ..., post_type: _Optional[_Union[PostType, str]] = ..., title: _Optional[str] = ..., items: _Optional[_Iterable[_Union[PostItem, _Mapping]]] = ..., text: _Optional[str] = ..., media: _Optional[_Iterable[_Union[Media, _Mapping]]] = ..., status: _Optional[_Union[PostStatus, str]] = ..., scheduled_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., idempotency_key: _Optional[str] = ..., etag: _Optional[str] = ..., platform_post_id: _Optional[str] = ..., platform_url: _Optional[str] = ..., error: _Optional[_Union[PostError, _Mapping]] = ..., delivery: _Optional[_Union[Delivery, _Mapping]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., delete_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class CreatePostRequest(_message.Message):
    __slots__ = ("workspace_id", "account_id", "post_type", "text", "media", "items", "title", "status", "scheduled_at", "idempotency_key")
    WORKSPACE_ID_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    POST_TYPE_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    MEDIA_FIELD_NUMBER: _ClassVar[int]
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    SCHEDULED_AT_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    workspace_id: str
    account_id: str
    post_type: PostType
    text: str
    media: _containers.RepeatedCompositeFieldContainer[Media]
    items: _containers.RepeatedCompositeFieldContainer[PostItem]
    title: str
    status: StatusChange
    scheduled_at: _timestamp_pb2.Timestamp
    idempotency_key: str
    def __init__(self, workspace_id: _Optional[str] = ..., account_id: _Optional[str] = ..., post_type: _Optional[_Union[PostType, str]] = ..., text: _Optional[str] = ..., media: _Optional[_Iterable[_Union[Media, _Mapping]]] = ..., items: _Optional[_Iterable[_Union[PostItem, _Mapping]]] = ..., title: _Optional[str] = ..., status: _Optional[_Union[StatusChange, str]] = ..., scheduled_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., idempotency_key: _Optional[str] = ...) -> None: ...

class CreatePostResponse(_message.Message):
    __slots__ = ("post",)
    POST_FIELD_NUMBER: _ClassVar[int]
    post: Post
    def __init__(self, post: _Optional[_Union[Post, _Mapping]] = ...) -> None: ...

class GetPostStatusRequest(_message.Message):
    __slots__ = ("post_id", "workspace_id")
    POST_ID_FIELD_NUMBER: _ClassVar[int]
    WORKSPACE_ID_FIELD_NUMBER: _ClassVar[int]
    post_id: str
    workspace_id: str
    def __init__(self, post_id: _Optional[str] = ..., workspace_id: _Optional[str] = ...) -> None: ...

class GetPostStatusResponse(_message.Message):
    __slots__ = ("post",)
    POST_FIELD_NUMBER: _ClassVar[int]
    post: Post
    def __init__(self, post: _Optional[_Union[Post, _Mapping]] = ...) -> None: ...

class UpdatePostRequest(_message.Message):
    __slots__ = ("post_id", "workspace_id", "text", "media", "items", "title", "scheduled_at", "status", "idempotency_key", "etag", "update_mask", "account_id", "platform", "post_type")
    POST_ID_FIELD_NUMBER: _ClassVar[int]
    WORKSPACE_ID_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    MEDIA_FIELD_NUMBER: _ClassVar[int]
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    SCHEDULED_AT_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    ETAG_FIELD_NUMBER: _ClassVar[int]
    UPDATE_MASK_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    PLATFORM_FIELD_NUMBER: _ClassVar[int]
    POST_TYPE_FIELD_NUMBER: _ClassVar[int]
    post_id: str
    workspace_id: str
    text: str
    media: _containers.RepeatedCompositeFieldContainer[Media]
    items: _containers.RepeatedCompositeFieldContainer[PostItem]
    title: str
    scheduled_at: _timestamp_pb2.Timestamp
    status: StatusChange
    idempotency_key: str
    etag: str
    update_mask: _field_mask_pb2.FieldMask
    account_id: str
    platform: Platform
    post_type: PostType
    def __init__(self, post_id: _Optional[str] = ..., workspace_id: _Optional[str] = ..., text: _Optional[str] = ..., media: _Optional[_Iterable[_Union[Media, _Mapping]]] = ..., items: _Optional[_Iterable[_Union[PostItem, _Mapping]]] = ..., title: _Optional[str] = ..., scheduled_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., status: _Optional[_Union[StatusChange, str]] = ..., idempotency_key: _Optional[str] = ..., etag: _Optional[str] = ..., update_mask: _Optional[_Union[_field_mask_pb2.FieldMask, _Mapping]] = ..., account_id: _Optional[str] = ..., platform: _Optional[_Union[Platform, str]] = ..., post_type: _Optional[_Union[PostType, str]] = ...) -> None: ...

class UpdatePostResponse(_message.Message):
    __slots__ = ("post",)
    POST_FIELD_NUMBER: _ClassVar[int]
    post: Post
    def __init__(self, post: _Optional[_Union[Post, _Mapping]] = ...) -> None: ...

class DeletePostRequest(_message.Message):
    __slots__ = ("post_id", "workspace_id", "etag")
    POST_ID_FIELD_NUMBER: _ClassVar[int]
    WORKSPACE_ID_FIELD_NUMBER: _ClassVar[int]
    ETAG_FIELD_NUMBER: _ClassVar[int]
    post_id: str
    workspace_id: str
    etag: str
    def __init__(self, post_id: _Optional[str] = ..., workspace_id: _Optional[str] = ..., etag: _Optional[str] = ...) -> None: ...

class DeletePostResponse(_message.Message):
    __slots__ = ("post",)
    POST_FIELD_NUMBER: _ClassVar[int]
    post: Post
    def __init__(self, post: _Optional[_Union[Post, _Mapping]] = ...) -> None: ...

class ListPostsRequest(_message.Message):
    __slots__ = ("workspace_id", "statuses", "account_id", "platform", "show_deleted", "page_size", "page_token")
    WORKSPACE_ID_FIELD_NUMBER: _ClassVar[int]
    STATUSES_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    PLATFORM_FIELD_NUMBER: _ClassVar[int]
    SHOW_DELETED_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    workspace_id: str
    statuses: _containers.RepeatedScalarFieldContainer[PostStatus]
    account_id: str
    platform: Platform
    show_deleted: bool
    page_size: int
    page_token: str
    def __init__(self, workspace_id: _Optional[str] = ..., statuses: _Optional[_Iterable[_Union[PostStatus, str]]] = ..., account_id: _Optional[str] = ..., platform: _Optional[_Union[Platform, str]] = ..., show_deleted: _Optional[bool] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListPostsResponse(_message.Message):
    __slots__ = ("posts", "next_page_token")
    POSTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    posts: _containers.RepeatedCompositeFieldContainer[Post]
    next_page_token: str
    def __init__(self, posts: _Optional[_Iterable[_Union[Post, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class PostEvent(_message.Message):
    __slots__ = ("event_id", "post_id", "workspace_id", "type", "status", "create_time", "attempt", "cause", "item_index", "error", "post")
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    POST_ID_FIELD_NUMBER: _ClassVar[int]
    WORKSPACE_ID_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    CAUSE_FIELD_NUMBER: _ClassVar[int]
    ITEM_INDEX_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    POST_FIELD_NUMBER: _ClassVar[int]
    event_id: int
    post_id: str
    workspace_id: str
    type: PostEventType
    status: PostStatus
    create_time: _timestamp_pb2.Timestamp
    attempt: int
    cause: str
    item_index: int
    error: PostError
    post: Post
    def __init__(self, event_id: _Optional[int] = ..., post_id: _Optional[str] = ..., workspace_id: _Optional[str] = ..., type: _Optional[_Union[PostEventType, str]] = ..., status: _Optional[_Union[PostStatus, str]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., attempt: _Optional[int] = ..., cause: _Optional[str] = ..., item_index: _Optional[int] = ..., error: _Optional[_Union[PostError, _Mapping]] = ..., post: _Optional[_Union[Post, _Mapping]] = ...) -> None: ...

class ListPostEventsRequest(_message.Message):
    __slots__ = ("workspace_id", "post_id", "types", "page_size", "page_token")
    WORKSPACE_ID_FIELD_NUMBER: _ClassVar[int]
    POST_ID_FIELD_NUMBER: _ClassVar[int]
    TYPES_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    workspace_id: str
    post_id: str
    types: _containers.RepeatedScalarFieldContainer[PostEventType]
    page_size: int
    page_token: str
    def __init__(self, workspace_id: _Optional[str] = ..., post_id: _Optional[str] = ..., types: _Optional[_Iterable[_Union[PostEventType, str]]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListPostEventsResponse(_message.Message):
    __slots__ = ("events", "next_page_token")
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[PostEvent]
    next_page_token: str
    def __init__(self, events: _Optional[_Iterable[_Union[PostEvent, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class WatchPostEventsRequest(_message.Message):
    __slots__ = ("workspace_id", "post_ids", "types", "after_event_id")
    WORKSPACE_ID_FIELD_NUMBER: _ClassVar[int]
    POST_IDS_FIELD_NUMBER: _ClassVar[int]
    TYPES_FIELD_NUMBER: _ClassVar[int]
    AFTER_EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    workspace_id: str
    post_ids: _containers.RepeatedScalarFieldContainer[str]
    types: _containers.RepeatedScalarFieldContainer[PostEventType]
    after_event_id: int
    def __init__(self, workspace_id: _Optional[str] = ..., post_ids: _Optional[_Iterable[str]] = ..., types: _Optional[_Iterable[_Union[PostEventType, str]]] = ..., after_event_id: _Optional[int] = ...) -> None: ...

class WatchPostEventsResponse(_message.Message):
    __slots__ = ("event",)
    EVENT_FIELD_NUMBER: _ClassVar[int]
    event: PostEvent
    def __init__(self, event: _Optional[_Union[PostEvent, _Mapping]] = ...) -> None: ...

class WebhookSubscription(_message.Message):
    __slots__ = ("subscription_id", "workspace_id", "url", "event_types", "description", "state", "last_error", "consecutive_failures", "create_time", "disable_time")
    SUBSCRIPTION_ID_FIELD_NUMBER: _ClassVar[int]
    WORKSPACE_ID_FIELD_NUMBER: _ClassVar[int]
    URL_FIELD_NUMBER: _ClassVar[int]
    EVENT_TYPES_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    LAST_ERROR_FIELD_NUMBER: _ClassVar[int]
    CONSECUTIVE_FAILURES_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    DISABLE_TIME_FIELD_NUMBER: _ClassVar[int]
    subscription_id: str
    workspace_id: str
    url: str
    event_types: _containers.RepeatedScalarFieldContainer[PostEventType]
    description: str
    state: WebhookSubscriptionState
    last_error: str
    consecutive_failures: int
    create_time: _timestamp_pb2.Timestamp
    disable_time: _timestamp_pb2.Timestamp
    def __init__(self, subscription_id: _Optional[str] = ..., workspace_id: _Optional[str] = ..., url: _Optional[str] = ..., event_types: _Optional[_Iterable[_Union[PostEventType, str]]] = ..., description: _Optional[str] = ..., state: _Optional[_Union[WebhookSubscriptionState, str]] = ..., last_error: _Optional[str] = ..., consecutive_failures: _Optional[int] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., disable_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class CreateWebhookSubscriptionRequest(_message.Message):
    __slots__ = ("workspace_id", "url", "event_types", "description")
    WORKSPACE_ID_FIELD_NUMBER: _ClassVar[int]
    URL_FIELD_NUMBER: _ClassVar[int]
    EVENT_TYPES_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    workspace_id: str
    url: str
    event_types: _containers.RepeatedScalarFieldContainer[PostEventType]
    description: str
    def __init__(self, workspace_id: _Optional[str] = ..., url: _Optional[str] = ..., event_types: _Optional[_Iterable[_Union[PostEventType, str]]] = ..., description: _Optional[str] = ...) -> None: ...

class CreateWebhookSubscriptionResponse(_message.Message):
    __slots__ = ("subscription", "secret")
    SUBSCRIPTION_FIELD_NUMBER: _ClassVar[int]
    SECRET_FIELD_NUMBER: _ClassVar[int]
    subscription: WebhookSubscription
    secret: str
    def __init__(self, subscription: _Optional[_Union[WebhookSubscription, _Mapping]] = ..., secret: _Optional[str] = ...) -> None: ...

class ListWebhookSubscriptionsRequest(_message.Message):
    __slots__ = ("workspace_id",)
    WORKSPACE_ID_FIELD_NUMBER: _ClassVar[int]
    workspace_id: str
    def __init__(self, workspace_id: _Optional[str] = ...) -> None: ...

class ListWebhookSubscriptionsResponse(_message.Message):
    __slots__ = ("subscriptions",)
    SUBSCRIPTIONS_FIELD_NUMBER: _ClassVar[int]
    subscriptions: _containers.RepeatedCompositeFieldContainer[WebhookSubscription]
    def __init__(self, subscriptions: _Optional[_Iterable[_Union[WebhookSubscription, _Mapping]]] = ...) -> None: ...

class DeleteWebhookSubscriptionRequest(_message.Message):
    __slots__ = ("workspace_id", "subscription_id")
    WORKSPACE_ID_FIELD_NUMBER: _ClassVar[int]
    SUBSCRIPTION_ID_FIELD_NUMBER: _ClassVar[int]
    workspace_id: str
    subscription_id: str
    def __init__(self, workspace_id: _Optional[str] = ..., subscription_id: _Optional[str] = ...) -> None: ...

class DeleteWebhookSubscriptionResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

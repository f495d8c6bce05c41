"""Limits on what a request may carry, over a real channel on every backend: string
lengths, NUL characters, repeated fields, page sizes, message sizes."""

import grpc
import pytest

from service import db, ids, models, posts
from service import server as service_server
from tests.support import Failure, item

# isort: split
from posts.v1 import posts_pb2 as pb
from posts.v1 import posts_pb2_grpc as pb_grpc

DRAFT = pb.STATUS_CHANGE_DRAFT
KIB = 1024
EMOJI = "\U0001f600"  # 4 bytes of UTF-8


def assert_invalid(failure: Failure, paths: set[str]) -> None:
    assert failure.kind == ("INVALID_ARGUMENT", "INVALID_FIELD"), failure
    assert failure.fields == paths


def _media(**fields) -> pb.Media:
    return pb.Media(url="https://cdn.example.com/a.png", kind=pb.MEDIA_KIND_IMAGE, **fields)


# ------------------------------------------------------------------- NUL


NUL = "a\0b"

CREATE_WITH_NUL = [
    pytest.param({"text": NUL}, "text", id="text"),
    pytest.param({"title": NUL}, "title", id="title"),
    pytest.param(
        {"items": [item("one"), item(NUL)], "post_type": pb.POST_TYPE_THREAD},
        "items[1].text",
        id="item-text",
    ),
    pytest.param({"media": [_media(alt_text=NUL)]}, "media[0].alt_text", id="alt-text"),
    pytest.param({"media": [_media(mime_type=NUL)]}, "media[0].mime_type", id="mime-type"),
    pytest.param(
        {"media": [pb.Media(url="https://cdn.example.com/a\0.png", kind=pb.MEDIA_KIND_IMAGE)]},
        "media[0].url",
        id="url",
    ),
    pytest.param(
        {"items": [item("x", [_media(media_id=NUL)])]}, "items[0].media[0].media_id", id="media-id"
    ),
    pytest.param({"idempotency_key": NUL}, "idempotency_key", id="idempotency-key"),
    pytest.param({"account_id": NUL}, "account_id", id="account-id"),
]


@pytest.mark.parametrize(("fields", "path"), CREATE_WITH_NUL)
def test_a_nul_in_any_string_of_a_create_is_invalid_field(api, tenant, fields, path):
    failure = api.refused("CreatePost", tenant, **fields)

    assert_invalid(failure, {path})
    assert api.list_all(tenant) == []


@pytest.mark.parametrize(
    ("fields", "path"),
    [
        pytest.param({"text": NUL}, "text", id="text"),
        pytest.param({"title": NUL}, "title", id="title"),
        pytest.param({"items": [item(NUL)]}, "items[0].text", id="item-text"),
        pytest.param({"etag": NUL}, "etag", id="etag"),
        pytest.param(
            {"update_mask": {"paths": ["text", NUL]}}, "update_mask.paths[1]", id="mask-path"
        ),
    ],
)
def test_a_nul_in_any_string_of_an_update_is_invalid_field(api, tenant, fields, path):
    post = api.create(tenant, text="before")

    failure = api.refused("UpdatePost", tenant, post_id=post.post_id, **fields)

    assert_invalid(failure, {path})
    assert api.get(tenant, post.post_id).etag == post.etag


@pytest.mark.parametrize(
    ("rpc", "fields", "path"),
    [
        pytest.param("ListPosts", {"page_token": NUL}, "page_token", id="list-page-token"),
        pytest.param("ListPosts", {"account_id": NUL}, "account_id", id="list-account-id"),
        pytest.param("GetPostStatus", {"post_id": NUL}, "post_id", id="get-post-id"),
        pytest.param("DeletePost", {"post_id": NUL}, "post_id", id="delete-post-id"),
        pytest.param("ListPosts", {"workspace_id": NUL}, "workspace_id", id="workspace-id"),
    ],
)
def test_a_nul_in_any_string_of_other_requests_is_invalid_field(api, tenant, rpc, fields, path):
    failure = api.refused(rpc, tenant, **fields)

    assert_invalid(failure, {path})


# ------------------------------------------------------------ string lengths


def test_strings_over_their_limits_are_invalid_field(api, tenant):
    over = {
        "title": EMOJI * (posts.MAX_TITLE_LENGTH + 1),
        "items": [
            item(
                "x",
                [
                    _media(alt_text="a" * (posts.MAX_ALT_TEXT_LENGTH + 1)),
                    _media(mime_type="i" * (posts.MAX_MIME_TYPE_LENGTH + 1)),
                ],
            )
        ],
        "idempotency_key": "k" * (posts.MAX_KEY_LENGTH + 1),
    }
    long_id = [item("x", [_media(media_id="m" * (posts.MAX_ID_LENGTH + 1))])]

    failure = api.refused("CreatePost", tenant, **over)
    id_failure = api.refused("CreatePost", tenant, items=long_id)

    assert_invalid(
        failure,
        {"title", "items[0].media[0].alt_text", "items[0].media[1].mime_type", "idempotency_key"},
    )
    assert_invalid(id_failure, {"items[0].media[0].media_id"})
    assert api.list_all(tenant) == []


def test_strings_at_their_limits_are_accepted(api, tenant):
    at = {
        "title": EMOJI * posts.MAX_TITLE_LENGTH,
        "media": [
            _media(
                alt_text=EMOJI * posts.MAX_ALT_TEXT_LENGTH,
                mime_type="i" * posts.MAX_MIME_TYPE_LENGTH,
                media_id="m" * posts.MAX_ID_LENGTH,
            )
        ],
        "idempotency_key": "k" * posts.MAX_KEY_LENGTH,
    }

    post = api.create(tenant, **at)

    assert post.title == at["title"]
    assert post.media[0].alt_text == at["media"][0].alt_text
    assert post.media[0].mime_type == at["media"][0].mime_type


@pytest.mark.parametrize(
    ("fields", "path"),
    [
        pytest.param({"title": "t" * (posts.MAX_TITLE_LENGTH + 1)}, "title", id="title"),
        pytest.param(
            {"media": [_media(alt_text="a" * (posts.MAX_ALT_TEXT_LENGTH + 1))]},
            "media[0].alt_text",
            id="alt-text",
        ),
        pytest.param({"text": "x", "etag": "e" * (posts.MAX_ETAG_LENGTH + 1)}, "etag", id="etag"),
    ],
)
def test_an_update_over_a_string_limit_is_invalid_field(api, tenant, fields, path):
    post = api.create(tenant, text="before")

    failure = api.refused("UpdatePost", tenant, post_id=post.post_id, **fields)

    assert_invalid(failure, {path})
    assert api.get(tenant, post.post_id).etag == post.etag


@pytest.mark.parametrize(
    ("rpc", "fields", "path"),
    [
        pytest.param("ListPosts", {"workspace_id": "w" * 65}, "workspace_id", id="workspace-id"),
        pytest.param(
            "ListPosts",
            {"page_token": "t" * (posts.MAX_PAGE_TOKEN_LENGTH + 1)},
            "page_token",
            id="page-token",
        ),
        pytest.param(
            "DeletePost", {"post_id": ids.new(ids.POST), "etag": "e" * 65}, "etag", id="delete-etag"
        ),
    ],
)
def test_other_strings_over_their_limits_are_invalid_field(api, tenant, rpc, fields, path):
    failure = api.refused(rpc, tenant, **fields)

    assert_invalid(failure, {path})
    assert "w" * 65 not in failure.message + str(failure.metadata)


# ---------------------------------------------------------- repeated fields


def test_an_update_mask_of_more_than_20_paths_is_invalid_field(api, tenant):
    post = api.create(tenant, text="before")
    paths = ["title"] * posts.MAX_MASK_PATHS

    failure = api.refused(
        "UpdatePost",
        tenant,
        post_id=post.post_id,
        title="t",
        update_mask={"paths": [*paths, "title"]},
    )
    edited = api.update(tenant, post.post_id, title="t", update_mask={"paths": paths})

    assert_invalid(failure, {"update_mask"})
    assert edited.title == "t"


def test_an_unknown_mask_path_is_named_shortened(api, tenant):
    post = api.create(tenant, text="before")

    failure = api.refused(
        "UpdatePost", tenant, post_id=post.post_id, update_mask={"paths": ["z" * 10_000]}
    )

    assert_invalid(failure, {"update_mask"})
    assert len(failure.message) < 200


def test_more_than_16_statuses_in_a_list_filter_is_invalid_field(api, tenant):
    api.create(tenant, text="a draft")
    statuses = [pb.POST_STATUS_DRAFT] * posts.MAX_FILTER_ENTRIES

    failure = api.refused("ListPosts", tenant, statuses=[*statuses, pb.POST_STATUS_DRAFT])
    listed = api.list(tenant, statuses=statuses)

    assert_invalid(failure, {"statuses"})
    assert len(listed.posts) == 1


# ------------------------------------------------------------------ pages


def test_a_page_holds_at_most_100_posts_whatever_page_size_asks(api, tenant):
    for n in range(posts.MAX_PAGE_SIZE + 1):
        api.create(tenant, text=f"post {n}")

    first = api.list(tenant, page_size=1000)
    second = api.list(tenant, page_size=1000, page_token=first.next_page_token)

    assert len(first.posts) == posts.MAX_PAGE_SIZE
    assert len(second.posts) == 1 and not second.next_page_token


def test_a_page_of_large_posts_stops_before_4_mb(api, tenant):
    """Three posts of 1.7 MB each: a page of all three would be over the 4 MiB a
    gRPC client takes by default; the page stops after two, and the next holds
    the third."""
    thread = [item(f"{n}" + "a" * (64 * KIB - 8)) for n in range(25)]
    made = [
        api.create(tenant, post_type=pb.POST_TYPE_THREAD, items=thread).post_id for _ in range(3)
    ]

    first = api.list(tenant)
    second = api.list(tenant, page_token=first.next_page_token)

    assert len(first.posts) == 2 and first.next_page_token
    assert len(second.posts) == 1 and not second.next_page_token
    listed = [p.post_id for p in [*first.posts, *second.posts]]
    assert listed == made[::-1]


# ---------------------------------------------------------------- messages


def _largest_items() -> list[pb.PostItem]:
    """25 items of 64 KiB of text, each with 35 media at their string limits in
    4-byte characters (media URLs: at most 2,048 characters)."""
    media = pb.Media(
        media_id="m" * posts.MAX_ID_LENGTH,
        url="https://cdn.example.com/" + EMOJI * (2048 - 24),
        kind=pb.MEDIA_KIND_IMAGE,
        mime_type=EMOJI * posts.MAX_MIME_TYPE_LENGTH,
        alt_text=EMOJI * posts.MAX_ALT_TEXT_LENGTH,
    )
    return [
        pb.PostItem(text="a" * posts.MAX_TEXT_BYTES, media=[media] * posts.MAX_MEDIA)
        for _ in range(posts.MAX_ITEMS)
    ]


def test_the_message_limits_fit_the_largest_valid_request_and_its_answer():
    items = _largest_items()
    request = pb.CreatePostRequest(
        workspace_id="w" * 64,
        account_id="a" * 64,
        post_type=pb.POST_TYPE_THREAD,
        items=items,
        title=EMOJI * posts.MAX_TITLE_LENGTH,
        status=DRAFT,
        idempotency_key="k" * posts.MAX_KEY_LENGTH,
    )
    answered = [pb.PostItem(text=i.text, media=i.media, platform_url="u" * 500) for i in items]
    answer = pb.GetPostStatusResponse(
        post=pb.Post(
            post_id="p" * 30,
            items=answered,
            text=answered[0].text,
            media=answered[0].media,
            title=request.title,
            idempotency_key=request.idempotency_key,
            error=pb.PostError(message="m" * 1000),
        )
    )

    assert request.ByteSize() <= service_server.MAX_RECEIVE_MESSAGE_BYTES
    assert answer.ByteSize() <= service_server.MAX_SEND_MESSAGE_BYTES


def test_the_server_takes_a_request_over_4_mib_and_refuses_one_over_its_limit(api, server, tenant):
    """gRPC's default receive limit is 4 MiB: the largest valid requests are larger."""
    options = [("grpc.max_receive_message_length", service_server.MAX_SEND_MESSAGE_BYTES)]
    # 25 items of 64 KiB of text and 20 media with 6,000 bytes of alt text: 4.6 MB
    thread = [
        item("a" * posts.MAX_TEXT_BYTES, [_media(alt_text=EMOJI * posts.MAX_ALT_TEXT_LENGTH)] * 20)
        for _ in range(posts.MAX_ITEMS)
    ]
    large = api.create_request(tenant, post_type=pb.POST_TYPE_THREAD, items=thread)
    too_large = api.create_request(
        tenant, text="x" * (service_server.MAX_RECEIVE_MESSAGE_BYTES + 1)
    )
    metadata = (("authorization", f"Bearer {tenant.key}"),)
    with grpc.insecure_channel(server.address, options=options) as channel:
        stub = pb_grpc.PostServiceStub(channel)

        made = stub.CreatePost(large, metadata=metadata, timeout=30).post
        with pytest.raises(grpc.RpcError) as refusal:
            stub.CreatePost(too_large, metadata=metadata, timeout=30)

    assert large.ByteSize() > 4 * 1024 * 1024
    assert len(made.items) == posts.MAX_ITEMS
    assert refusal.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


def test_reading_the_items_of_many_posts_binds_at_most_a_page_of_ids_per_query(
    api, tenant, monkeypatch
):
    """One bound parameter per post id: never near SQLite's limit on them."""
    made = api.create(tenant, post_type=pb.POST_TYPE_THREAD, items=[item("one"), item("two")])
    with db.connection():
        post = posts.load(made.post_id).post
    bound = []
    tuples = models._ITEMS.tuples

    def counting(*post_ids):
        bound.append(len(post_ids))
        return tuples(*post_ids)

    monkeypatch.setattr(models._ITEMS, "tuples", counting)
    with db.connection():
        loaded = models.load_items([post] * 250)

    assert bound == [100, 100, 50]
    assert len(loaded) == 250 and all(len(each.items) == 2 for each in loaded)

"""Every error of docs/errors.md, and the order in which the checks run.

Each test asserts the exact gRPC code and ErrorInfo reason (domain posts.v1),
and the BadRequest field paths or metadata where the contract names them.
"""

import datetime

import grpc
import pytest

from service import ids
from tests.support import Failure, Tenant, image, in_seconds, item, refused, video

# isort: split
from posts.v1 import posts_pb2 as pb

DRAFT = pb.STATUS_CHANGE_DRAFT
SCHEDULED = pb.STATUS_CHANGE_SCHEDULED
PUBLISH = pb.STATUS_CHANGE_PUBLISH
CANCELLED = pb.STATUS_CHANGE_CANCELLED

KIB = 1024


def assert_refused(failure: Failure, code: str, reason: str) -> None:
    """The failure has this code and reason, in the posts.v1 domain."""
    assert failure.kind == (code, reason), failure
    assert failure.domain == "posts.v1"


def some_request(rpc: str, tenant, post_id: str = "") -> dict:
    """Well-formed fields for ``rpc`` (CreatePost fills in the rest itself)."""
    post_id = post_id or ids.new(ids.POST)
    return {
        "CreatePost": {},
        "GetPostStatus": {"post_id": post_id},
        "UpdatePost": {"post_id": post_id, "text": "x"},
        "DeletePost": {"post_id": post_id},
        "ListPosts": {},
    }[rpc]


RPCS = ["CreatePost", "GetPostStatus", "UpdatePost", "DeletePost", "ListPosts"]


# ---------------------------------------------------------------- API key


@pytest.mark.parametrize("rpc", RPCS)
@pytest.mark.parametrize(
    "metadata",
    [
        pytest.param((), id="no-key"),
        pytest.param((("authorization", "Bearer not-a-real-key"),), id="unknown-key"),
        pytest.param((("authorization", "Bearer "),), id="empty-bearer"),
        pytest.param((("authorization", "Basic dXNlcjpwYXNz"),), id="not-bearer"),
    ],
)
def test_a_call_without_a_valid_api_key_is_unauthenticated(api, stub, tenant, rpc, metadata):
    request = api.request(rpc, tenant, **some_request(rpc, tenant))

    try:
        getattr(stub, rpc)(request, metadata=metadata, timeout=10)
    except grpc.RpcError as error:
        failure = Failure.of(error)
    else:
        pytest.fail("the call succeeded without a valid key")

    assert_refused(failure, "UNAUTHENTICATED", "API_KEY_INVALID")


def test_a_key_altered_by_one_character_is_unauthenticated(api, tenant):
    altered = tenant.key[:-1] + ("a" if tenant.key[-1] != "a" else "b")

    failure = api.refused("ListPosts", tenant, key=altered)

    assert_refused(failure, "UNAUTHENTICATED", "API_KEY_INVALID")


# -------------------------------------------------------------- workspaces


@pytest.mark.parametrize("rpc", RPCS)
def test_a_workspace_not_granted_to_the_key_is_permission_denied(api, make_tenant, rpc):
    mine, theirs = make_tenant("mine"), make_tenant("theirs")

    failure = api.refused(rpc, mine, workspace_id=theirs.workspace_id, **some_request(rpc, mine))

    assert_refused(failure, "PERMISSION_DENIED", "WORKSPACE_ACCESS_DENIED")


def test_an_unknown_workspace_is_permission_denied(api, tenant):
    failure = api.refused("ListPosts", tenant, workspace_id=ids.new(ids.WORKSPACE))

    assert_refused(failure, "PERMISSION_DENIED", "WORKSPACE_ACCESS_DENIED")
    assert "wks_…" not in failure.message  # a well-formed id needs no hint


def test_a_workspace_name_where_its_id_belongs_is_denied_with_a_hint(api, tenant):
    """The same answer as for any workspace not granted (whether one exists stays
    unsaid), and a message saying a wks_… id is expected."""
    failure = api.refused("ListPosts", tenant, workspace_id="demo")

    assert_refused(failure, "PERMISSION_DENIED", "WORKSPACE_ACCESS_DENIED")
    assert failure.metadata == {"workspaceId": "demo"}
    assert "'demo'" in failure.message and "workspace's id (wks_…)" in failure.message


@pytest.mark.parametrize("rpc", RPCS)
def test_a_key_reaching_two_workspaces_must_name_one(api, make_tenant, make_key, rpc):
    one, two = make_tenant("one"), make_tenant("two")
    both = make_key(one.workspace_id, two.workspace_id)

    failure = api.refused(rpc, one, key=both, workspace_id="", **some_request(rpc, one))

    assert_refused(failure, "INVALID_ARGUMENT", "WORKSPACE_REQUIRED")
    assert set(failure.metadata["workspaces"].split(",")) == {one.workspace_id, two.workspace_id}


def test_a_key_reaching_one_workspace_may_leave_it_out(api, tenant):
    post = api.create(tenant, workspace_id="")

    assert post.workspace_id == tenant.workspace_id
    assert api.get(tenant, post.post_id, workspace_id="").post_id == post.post_id


def test_a_key_reaching_two_workspaces_works_in_the_one_it_names(api, make_tenant, make_key):
    one, two = make_tenant("one"), make_tenant("two")
    both = make_key(one.workspace_id, two.workspace_id)

    post = api.create(Tenant(workspace_id=two.workspace_id, key=both, account_id=two.account_id))

    assert post.workspace_id == two.workspace_id


# ----------------------------------------------------------- INVALID_FIELD


def _items(count: int) -> list:
    return [item(f"tweet {n}") for n in range(count)]


CREATE_INVALID_FIELDS = [
    pytest.param({"account_id": ""}, {"account_id"}, id="account-missing"),
    pytest.param({"account_id": "acc_123"}, {"account_id"}, id="account-id-malformed"),
    pytest.param({"account_id": ids.new(ids.POST)}, {"account_id"}, id="account-id-wrong-prefix"),
    pytest.param({"post_type": pb.POST_TYPE_UNSPECIFIED}, {"post_type"}, id="post-type-missing"),
    pytest.param({"post_type": 99}, {"post_type"}, id="post-type-unknown-enum"),
    pytest.param({"status": pb.STATUS_CHANGE_UNSPECIFIED}, {"status"}, id="status-missing"),
    pytest.param({"status": 99}, {"status"}, id="status-unknown-enum"),
    pytest.param({"status": CANCELLED}, {"status"}, id="status-cancelled-at-create"),
    pytest.param({"status": SCHEDULED}, {"scheduled_at"}, id="scheduled-without-time"),
    pytest.param(
        {"status": SCHEDULED, "scheduled_at": in_seconds(-60)},
        {"scheduled_at"},
        id="scheduled-in-the-past",
    ),
    pytest.param(
        {"status": SCHEDULED, "scheduled_at": in_seconds(366 * 86400)},
        {"scheduled_at"},
        id="scheduled-over-a-year-ahead",
    ),
    pytest.param(
        {"status": DRAFT, "scheduled_at": in_seconds(366 * 86400)},
        {"scheduled_at"},
        id="draft-time-over-a-year-ahead",
    ),
    pytest.param({"post_type": pb.POST_TYPE_THREAD, "items": _items(26)}, {"items"}, id="26-items"),
    pytest.param(
        {"post_type": pb.POST_TYPE_THREAD, "items": [*_items(2), item("a" * (64 * KIB + 1))]},
        {"items[2].text"},
        id="item-text-over-64-KiB",
    ),
    pytest.param({"text": "a" * (64 * KIB + 1)}, {"text"}, id="text-over-64-KiB"),
    pytest.param(
        {
            "post_type": pb.POST_TYPE_THREAD,
            "items": [item("one"), item("two", [image(n) for n in range(36)])],
        },
        {"items[1].media"},
        id="36-media-in-an-item",
    ),
    pytest.param(
        {"items": [item("x", [pb.Media(kind=pb.MEDIA_KIND_IMAGE)])]},
        {"items[0].media[0].url"},
        id="media-without-url",
    ),
    pytest.param(
        {"items": [item("x", [pb.Media(url="https://cdn.example.com/a.png", kind=99)])]},
        {"items[0].media[0].kind"},
        id="media-kind-unknown-enum",
    ),
    pytest.param({"idempotency_key": "k" * 129}, {"idempotency_key"}, id="idempotency-key-129"),
    pytest.param({"idempotency_key": "tab\tkey"}, {"idempotency_key"}, id="idempotency-key-tab"),
    pytest.param({"idempotency_key": "clé"}, {"idempotency_key"}, id="idempotency-key-non-ascii"),
]


@pytest.mark.parametrize(("fields", "paths"), CREATE_INVALID_FIELDS)
def test_a_malformed_create_request_is_invalid_field(api, tenant, fields, paths):
    failure = api.refused("CreatePost", tenant, **fields)

    assert_refused(failure, "INVALID_ARGUMENT", "INVALID_FIELD")
    assert failure.fields == paths
    assert api.list_all(tenant) == []


def test_text_and_items_together_are_invalid_field(api, tenant):
    failure = api.refused("CreatePost", tenant, text="shorthand", items=[item("and items")])

    assert_refused(failure, "INVALID_ARGUMENT", "INVALID_FIELD")
    assert failure.fields & {"text", "items"}


@pytest.mark.parametrize(
    "limits",
    [
        pytest.param({"post_type": pb.POST_TYPE_THREAD, "items": _items(25)}, id="25-items"),
        pytest.param({"text": "a" * (64 * KIB)}, id="64-KiB-text"),
        pytest.param(
            {"items": [item("x", [image(n) for n in range(35)])]}, id="35-media-in-an-item"
        ),
        pytest.param({"scheduled_at": in_seconds(360 * 86400)}, id="scheduled-360-days-ahead"),
        pytest.param({"idempotency_key": "k" * 128}, id="idempotency-key-128"),
    ],
)
def test_a_draft_at_the_limits_is_accepted(api, tenant, limits):
    post = api.create(tenant, status=DRAFT, **limits)

    assert post.status == pb.POST_STATUS_DRAFT


# ------------------------------------------- media URLs the egress guard refuses


def _media(url: str) -> pb.Media:
    return pb.Media(url=url, kind=pb.MEDIA_KIND_IMAGE)


def _url_of(length: int) -> str:
    base = "https://media.invalid/"
    return base + "a" * (length - len(base))


@pytest.mark.parametrize(
    "url",
    [
        pytest.param("https://user:hunter2@media.invalid/a.png", id="userinfo"),
        pytest.param("https://user@media.invalid/a.png", id="user-only"),
        pytest.param("ftp://media.invalid/a.png", id="ftp"),
        pytest.param("http://169.254.169.254/latest/meta-data/", id="cloud-metadata"),
        pytest.param("http://[::1]/a.png", id="ipv6-loopback"),
        pytest.param("http://[::ffff:169.254.169.254]/a.png", id="ipv4-mapped"),
        pytest.param("http://10.0.0.1/a.png", id="private"),
        pytest.param("http://100.64.0.1/a.png", id="cgnat"),
        pytest.param("http://127.0.0.2/a.png", id="loopback-off-the-allow-list"),
        pytest.param("http://2130706434/a.png", id="loopback-as-a-number"),  # 127.0.0.2
        pytest.param(_url_of(2049), id="2049-characters"),
    ],
)
def test_a_media_url_the_egress_guard_refuses_is_invalid_field(api, tenant, url):
    """What the URL alone shows is refused at the API, drafts included, in every
    form a request names media: items, the shorthand, an update."""
    in_items = api.refused(
        "CreatePost",
        tenant,
        post_type=pb.POST_TYPE_THREAD,
        items=[item("one"), item("two", [image(), _media(url)])],
    )
    shorthand = api.refused("CreatePost", tenant, text="x", media=[_media(url)])
    post = api.create(tenant, text="a draft")
    update = api.refused("UpdatePost", tenant, post_id=post.post_id, media=[_media(url)])

    for failure in (in_items, shorthand, update):
        assert_refused(failure, "INVALID_ARGUMENT", "INVALID_FIELD")
    assert in_items.fields == {"items[1].media[1].url"}
    assert shorthand.fields == update.fields == {"media[0].url"}
    assert "hunter2" not in str(in_items.field_violations)
    assert [p.post_id for p in api.list_all(tenant)] == [post.post_id]
    assert api.get(tenant, post.post_id).etag == post.etag


@pytest.mark.parametrize(
    "url",
    [
        pytest.param(_url_of(2048), id="2048-characters"),
        pytest.param("http://127.0.0.1:9/a.png", id="loopback-on-the-allow-list"),
        pytest.param("HTTPS://MEDIA.INVALID/a.png", id="upper-case"),
        pytest.param("https://media.invalid:8443/a.png?size=large#top", id="port-query-fragment"),
    ],
)
def test_a_media_url_the_egress_guard_lets_through_is_accepted(api, tenant, url):
    post = api.create(tenant, text="x", media=[_media(url)])

    assert post.status == pb.POST_STATUS_DRAFT


@pytest.mark.parametrize(
    ("rpc", "fields", "paths"),
    [
        pytest.param("GetPostStatus", {"post_id": ""}, {"post_id"}, id="get-no-id"),
        pytest.param("GetPostStatus", {"post_id": "pst_nope"}, {"post_id"}, id="get-bad-id"),
        pytest.param(
            "GetPostStatus", {"post_id": ids.new(ids.ACCOUNT)}, {"post_id"}, id="get-wrong-prefix"
        ),
        pytest.param("DeletePost", {"post_id": "pst_nope"}, {"post_id"}, id="delete-bad-id"),
        pytest.param(
            "UpdatePost", {"post_id": "pst_nope", "text": "x"}, {"post_id"}, id="update-bad-id"
        ),
        pytest.param("ListPosts", {"page_size": -1}, {"page_size"}, id="list-negative-page-size"),
        pytest.param("ListPosts", {"platform": 99}, {"platform"}, id="list-unknown-platform"),
        pytest.param("ListPosts", {"account_id": "acc_nope"}, {"account_id"}, id="list-bad-acc"),
    ],
)
def test_a_malformed_request_to_other_rpcs_is_invalid_field(api, tenant, rpc, fields, paths):
    failure = api.refused(rpc, tenant, **fields)

    assert_refused(failure, "INVALID_ARGUMENT", "INVALID_FIELD")
    assert failure.fields == paths


def test_an_unknown_status_in_a_list_filter_is_invalid_field(api, tenant):
    failure = api.refused("ListPosts", tenant, statuses=[pb.POST_STATUS_DRAFT, 99])

    assert_refused(failure, "INVALID_ARGUMENT", "INVALID_FIELD")
    assert all(path.startswith("statuses") for path in failure.fields), failure.fields


@pytest.mark.parametrize(
    ("fields", "paths"),
    [
        pytest.param({"status": 99}, {"status"}, id="status-unknown-enum"),
        pytest.param({"text": "a" * (64 * KIB + 1)}, {"text"}, id="text-over-64-KiB"),
        pytest.param(
            {"items": [*_items(3), item("x", [image(n) for n in range(36)])]},
            {"items[3].media"},
            id="36-media",
        ),
        pytest.param({"scheduled_at": in_seconds(366 * 86400)}, {"scheduled_at"}, id="over-a-year"),
        pytest.param({"idempotency_key": "k" * 129}, {"idempotency_key"}, id="key-too-long"),
        pytest.param({"update_mask": {"paths": ["no_such_field"]}}, {"update_mask"}, id="mask"),
    ],
)
def test_a_malformed_update_is_invalid_field_and_changes_nothing(api, tenant, fields, paths):
    post = api.create(tenant, post_type=pb.POST_TYPE_THREAD, items=_items(2))

    failure = api.refused("UpdatePost", tenant, post_id=post.post_id, **fields)

    assert_refused(failure, "INVALID_ARGUMENT", "INVALID_FIELD")
    assert failure.fields == paths
    assert api.get(tenant, post.post_id).etag == post.etag


@pytest.mark.parametrize(
    "status", [DRAFT, SCHEDULED, PUBLISH], ids=["draft", "scheduled", "publish"]
)
def test_a_post_type_the_platform_lacks_is_invalid_field_drafts_included(api, tenant, status):
    failure = api.refused(
        "CreatePost",
        tenant,
        post_type=pb.POST_TYPE_REEL,
        media=[video()],
        status=status,
        scheduled_at=in_seconds(3600) if status == SCHEDULED else None,
    )

    assert_refused(failure, "INVALID_ARGUMENT", "INVALID_FIELD")
    assert failure.field_violations == {
        "post_type": "PLATFORM_X takes POST_TYPE_THREAD or POST_TYPE_TWEET, not POST_TYPE_REEL"
    }


def test_clearing_a_scheduled_posts_time_is_invalid_field_unless_it_becomes_a_draft(api, tenant):
    post = api.create(tenant, text="later", status=SCHEDULED, scheduled_at=in_seconds(3600))
    clear = {"update_mask": {"paths": ["scheduled_at"]}}

    # A scheduled post with no time would never fire: refused, nothing changed
    failure = api.refused("UpdatePost", tenant, post_id=post.post_id, **clear)
    assert_refused(failure, "INVALID_ARGUMENT", "INVALID_FIELD")
    assert failure.fields == {"scheduled_at"}
    assert api.get(tenant, post.post_id).etag == post.etag

    # Together with a move to DRAFT it is allowed
    draft = api.update(
        tenant, post.post_id, status=DRAFT, update_mask={"paths": ["scheduled_at", "status"]}
    )
    assert draft.status == pb.POST_STATUS_DRAFT
    assert not draft.HasField("scheduled_at")


@pytest.mark.parametrize("status", [PUBLISH, SCHEDULED], ids=["publish", "schedule"])
@pytest.mark.parametrize(
    "content",
    [{"items": []}, {"text": ""}, {"text": "   "}],
    ids=["no-items", "empty-text", "blank-text"],
)
def test_a_post_with_no_content_cannot_be_published_or_scheduled(api, tenant, status, content):
    when = {"scheduled_at": in_seconds(3600)} if status == SCHEDULED else {}

    # Created so, refused
    failure = api.refused("CreatePost", tenant, status=status, **content, **when)
    assert_refused(failure, "INVALID_ARGUMENT", "INVALID_FIELD")
    assert failure.fields & {"items", "text"}, failure.fields

    # Kept as a draft, then promoted: refused too, the draft unchanged
    draft = api.create(tenant, status=DRAFT, **content)
    failure = api.refused("UpdatePost", tenant, post_id=draft.post_id, status=status, **when)
    assert_refused(failure, "INVALID_ARGUMENT", "INVALID_FIELD")
    assert api.get(tenant, draft.post_id).status == pb.POST_STATUS_DRAFT


# -------------------------------------------------------- PLATFORM_RULE_VIOLATED


def test_content_breaking_a_platform_rule_is_refused_on_the_way_to_pending(api, tenant):
    failure = api.refused("CreatePost", tenant, text="a" * 281, status=PUBLISH)

    assert_refused(failure, "INVALID_ARGUMENT", "PLATFORM_RULE_VIOLATED")
    assert failure.fields == {"text"}  # named as the request named it
    assert api.list_all(tenant) == []


def test_each_broken_rule_is_its_own_violation(api, tenant):
    failure = api.refused(
        "CreatePost",
        tenant,
        post_type=pb.POST_TYPE_THREAD,
        items=[item("fine"), item("a" * 281), item("five images", [image(n) for n in range(5)])],
        status=SCHEDULED,
        scheduled_at=in_seconds(3600),
    )

    assert_refused(failure, "INVALID_ARGUMENT", "PLATFORM_RULE_VIOLATED")
    assert failure.fields == {"items[1].text", "items[2].media"}


def test_a_draft_may_break_platform_rules_until_it_is_promoted(api, tenant):
    draft = api.create(tenant, text="a" * 281, status=DRAFT)

    failure = api.refused("UpdatePost", tenant, post_id=draft.post_id, status=PUBLISH)

    assert draft.status == pb.POST_STATUS_DRAFT
    assert_refused(failure, "INVALID_ARGUMENT", "PLATFORM_RULE_VIOLATED")
    assert api.get(tenant, draft.post_id).status == pb.POST_STATUS_DRAFT


def test_editing_a_scheduled_post_into_breaking_a_rule_is_refused(api, tenant):
    post = api.create(tenant, status=SCHEDULED, scheduled_at=in_seconds(3600))

    failure = api.refused("UpdatePost", tenant, post_id=post.post_id, text="a" * 281)

    assert_refused(failure, "INVALID_ARGUMENT", "PLATFORM_RULE_VIOLATED")
    assert api.get(tenant, post.post_id).etag == post.etag


# --------------------------------------------------------------- FIELD_IMMUTABLE


@pytest.mark.parametrize(
    ("field", "value"),
    [("platform", pb.PLATFORM_BLUESKY), ("post_type", pb.POST_TYPE_THREAD), ("account_id", None)],
)
def test_changing_platform_account_or_post_type_is_field_immutable(api, tenant, field, value):
    post = api.create(tenant)
    if value is None:
        value = tenant.add_account("x", handle="other")

    failure = api.refused("UpdatePost", tenant, post_id=post.post_id, **{field: value})

    assert_refused(failure, "INVALID_ARGUMENT", "FIELD_IMMUTABLE")
    assert failure.fields == {field}


# ------------------------------------------------------------- POST_NOT_FOUND


@pytest.mark.parametrize("rpc", ["GetPostStatus", "UpdatePost", "DeletePost"])
def test_an_unknown_post_is_not_found(api, tenant, rpc):
    failure = api.refused(rpc, tenant, **some_request(rpc, tenant, ids.new(ids.POST)))

    assert_refused(failure, "NOT_FOUND", "POST_NOT_FOUND")


@pytest.mark.parametrize("rpc", ["GetPostStatus", "UpdatePost", "DeletePost"])
def test_another_workspaces_post_is_not_found(api, make_tenant, rpc):
    mine, theirs = make_tenant("mine"), make_tenant("theirs")
    their_post = api.create(theirs)

    failure = api.refused(rpc, mine, **some_request(rpc, mine, their_post.post_id))

    assert_refused(failure, "NOT_FOUND", "POST_NOT_FOUND")


# ---------------------------------------------------------- ACCOUNT_NOT_FOUND


def test_an_unknown_account_is_not_found(api, tenant):
    failure = api.refused("CreatePost", tenant, account_id=ids.new(ids.ACCOUNT))

    assert_refused(failure, "NOT_FOUND", "ACCOUNT_NOT_FOUND")


def test_another_workspaces_account_is_not_found(api, make_tenant):
    mine, theirs = make_tenant("mine"), make_tenant("theirs")

    failure = api.refused("CreatePost", mine, account_id=theirs.account_id)

    assert_refused(failure, "NOT_FOUND", "ACCOUNT_NOT_FOUND")
    assert api.list_all(theirs) == []


# --------------------------------------------------------- INVALID_TRANSITION


def test_a_change_the_status_does_not_allow_is_invalid_transition(api, tenant):
    post = api.create(tenant)
    api.update(tenant, post.post_id, status=CANCELLED)

    failure = api.refused("UpdatePost", tenant, post_id=post.post_id, status=PUBLISH)

    assert_refused(failure, "FAILED_PRECONDITION", "INVALID_TRANSITION")
    assert failure.metadata["currentStatus"] == "POST_STATUS_CANCELLED"
    assert failure.precondition_violations


def test_editing_a_published_post_is_invalid_transition(api, tenant, published):
    failure = api.refused("UpdatePost", tenant, post_id=published.post_id, text="late")

    assert_refused(failure, "FAILED_PRECONDITION", "INVALID_TRANSITION")
    assert failure.metadata["currentStatus"] == "POST_STATUS_PUBLISHED"
    assert failure.precondition_violations


# ----------------------------------------------------- PLATFORM_NOT_SUPPORTED


# Every network has an adapter now; the refusal still guards one that is added to
# the platform table before its adapter: here YouTube plays that part.
LIVE_ONLY = [
    pytest.param(
        "youtube",
        {"post_type": pb.POST_TYPE_VIDEO, "title": "Title", "media": [video()]},
        id="youtube",
    ),
]


@pytest.fixture
def without_adapter(monkeypatch):
    """Makes ``platform`` a network without an adapter for one test (the server runs
    in this process and reads the table at each call)."""
    from service import platforms

    def make(platform: str) -> None:
        monkeypatch.setattr(platforms, "WITHOUT_ADAPTER", frozenset({platform}))

    return make


def test_every_network_has_an_adapter():
    from service import platforms
    from workers.adapters import adapter_class

    assert not platforms.WITHOUT_ADAPTER, platforms.WITHOUT_ADAPTER
    assert all(adapter_class(p) for p in platforms.PLATFORMS)


@pytest.mark.parametrize(("platform", "content"), LIVE_ONLY)
@pytest.mark.parametrize("status", [PUBLISH, SCHEDULED], ids=["publish", "schedule"])
def test_a_network_without_an_adapter_is_platform_not_supported(
    api, tenant, without_adapter, platform, content, status
):
    without_adapter(platform)
    account_id = tenant.add_account(
        platform, sandbox=False, token="live-token", base_url="https://api.example.com"
    )

    failure = api.refused(
        "CreatePost",
        tenant,
        account_id=account_id,
        text="caption",
        status=status,
        scheduled_at=in_seconds(3600) if status == SCHEDULED else None,
        **content,
    )

    assert_refused(failure, "FAILED_PRECONDITION", "PLATFORM_NOT_SUPPORTED")
    assert api.list_all(tenant) == []


@pytest.mark.parametrize(("platform", "content"), LIVE_ONLY)
def test_a_draft_for_a_network_without_an_adapter_cannot_be_published(
    api, tenant, without_adapter, platform, content
):
    without_adapter(platform)
    account_id = tenant.add_account(
        platform, sandbox=False, token="live-token", base_url="https://api.example.com"
    )
    draft = api.create(tenant, account_id=account_id, text="caption", status=DRAFT, **content)

    failure = api.refused("UpdatePost", tenant, post_id=draft.post_id, status=PUBLISH)

    assert_refused(failure, "FAILED_PRECONDITION", "PLATFORM_NOT_SUPPORTED")


# -------------------------------------------------------------- ETAG_MISMATCH


@pytest.mark.parametrize("rpc", ["UpdatePost", "DeletePost"])
def test_a_stale_etag_is_etag_mismatch(api, tenant, rpc):
    post = api.create(tenant, text="v1")
    api.update(tenant, post.post_id, text="v2")

    failure = api.refused(rpc, tenant, **some_request(rpc, tenant, post.post_id), etag=post.etag)

    assert_refused(failure, "ABORTED", "ETAG_MISMATCH")
    assert api.get(tenant, post.post_id).text == "v2"


# ------------------------------------------------------ IDEMPOTENCY_KEY_REUSED


def test_the_same_idempotency_key_with_a_different_request_is_key_reused(api, tenant):
    api.create(tenant, text="first", idempotency_key="reuse-me")

    failure = api.refused("CreatePost", tenant, text="second", idempotency_key="reuse-me")

    assert_refused(failure, "ALREADY_EXISTS", "IDEMPOTENCY_KEY_REUSED")


# ------------------------------------------------------------------ the order


def test_unauthenticated_comes_before_a_malformed_field(api, stub, tenant):
    request = api.create_request(tenant, post_type=99, account_id="nonsense")

    failure = refused(stub.CreatePost, request, key=None)

    assert_refused(failure, "UNAUTHENTICATED", "API_KEY_INVALID")


def test_a_denied_workspace_comes_before_a_malformed_field(api, make_tenant):
    mine, theirs = make_tenant("mine"), make_tenant("theirs")

    failure = api.refused("GetPostStatus", mine, workspace_id=theirs.workspace_id, post_id="bad")

    assert_refused(failure, "PERMISSION_DENIED", "WORKSPACE_ACCESS_DENIED")


def test_a_malformed_field_comes_before_a_stale_etag(api, tenant):
    post = api.create(tenant)
    api.update(tenant, post.post_id, text="v2")

    failure = api.refused("UpdatePost", tenant, post_id=post.post_id, status=99, etag=post.etag)

    assert_refused(failure, "INVALID_ARGUMENT", "INVALID_FIELD")
    assert failure.fields == {"status"}


def test_a_malformed_field_comes_before_an_unknown_post(api, tenant):
    failure = api.refused(
        "UpdatePost", tenant, post_id=ids.new(ids.POST), text="a" * (64 * KIB + 1)
    )

    assert_refused(failure, "INVALID_ARGUMENT", "INVALID_FIELD")


def test_an_unknown_post_comes_before_an_immutable_field(api, tenant):
    failure = api.refused(
        "UpdatePost", tenant, post_id=ids.new(ids.POST), platform=pb.PLATFORM_LINKEDIN
    )

    assert_refused(failure, "NOT_FOUND", "POST_NOT_FOUND")


def test_an_immutable_field_comes_before_a_stale_etag(api, tenant):
    post = api.create(tenant)
    api.update(tenant, post.post_id, text="v2")

    failure = api.refused(
        "UpdatePost", tenant, post_id=post.post_id, platform=pb.PLATFORM_LINKEDIN, etag=post.etag
    )

    assert_refused(failure, "INVALID_ARGUMENT", "FIELD_IMMUTABLE")


def test_an_immutable_field_comes_before_the_transition(api, tenant, published):
    failure = api.refused(
        "UpdatePost", tenant, post_id=published.post_id, post_type=pb.POST_TYPE_THREAD
    )

    assert_refused(failure, "INVALID_ARGUMENT", "FIELD_IMMUTABLE")


def test_a_stale_etag_comes_before_the_transition(api, tenant):
    draft = api.create(tenant)
    api.update(tenant, draft.post_id, status=PUBLISH)
    api.wait_published(tenant, draft.post_id)

    failure = api.refused("UpdatePost", tenant, post_id=draft.post_id, text="late", etag=draft.etag)

    assert_refused(failure, "ABORTED", "ETAG_MISMATCH")


def test_the_transition_comes_before_platform_rules(api, tenant, published):
    failure = api.refused("UpdatePost", tenant, post_id=published.post_id, text="a" * 281)

    assert_refused(failure, "FAILED_PRECONDITION", "INVALID_TRANSITION")


def test_scheduled_time_in_the_past_is_checked_before_the_account(api, tenant):
    """Fields come before existence: a past time on an unknown account is INVALID_FIELD."""
    failure = api.refused(
        "CreatePost",
        tenant,
        account_id=ids.new(ids.ACCOUNT),
        status=SCHEDULED,
        scheduled_at=datetime.datetime(2000, 1, 1, tzinfo=datetime.UTC),
    )

    assert_refused(failure, "INVALID_ARGUMENT", "INVALID_FIELD")
    assert failure.fields == {"scheduled_at"}

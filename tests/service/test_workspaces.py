"""A key for workspace A never sees, changes or lists workspace B's posts."""

import grpc
import pytest

from tests.support import Failure, Tenant, in_seconds

# isort: split
from posts.v1 import posts_pb2 as pb


@pytest.fixture
def a_and_b(api, make_tenant):
    """Workspaces A and B, each with a post of its own; B's is scheduled an hour ahead."""
    a, b = make_tenant("a"), make_tenant("b")
    a_post = api.create(a, text="A's post")
    b_post = api.create(
        b, text="B's post", status=pb.STATUS_CHANGE_SCHEDULED, scheduled_at=in_seconds(3600)
    )
    return a, b, a_post, b_post


@pytest.mark.parametrize(
    ("rpc", "fields"),
    [
        ("GetPostStatus", {}),
        ("UpdatePost", {"text": "A was here"}),
        ("UpdatePost", {"status": pb.STATUS_CHANGE_CANCELLED}),
        ("DeletePost", {}),
    ],
    ids=["get", "edit", "cancel", "delete"],
)
@pytest.mark.parametrize("name_workspace", [False, True], ids=["implicit", "named"])
def test_a_key_for_a_cannot_reach_bs_post(api, a_and_b, rpc, fields, name_workspace):
    a, b, _, b_post = a_and_b
    workspace = {} if name_workspace else {"workspace_id": ""}

    failure = api.refused(rpc, a, post_id=b_post.post_id, **workspace, **fields)

    assert failure.kind == ("NOT_FOUND", "POST_NOT_FOUND")
    untouched = api.get(b, b_post.post_id)
    assert untouched.etag == b_post.etag
    assert untouched.status == pb.POST_STATUS_SCHEDULED
    assert not untouched.HasField("delete_time")


@pytest.mark.parametrize("show_deleted", [False, True])
def test_a_key_for_a_lists_only_as_posts(api, a_and_b, show_deleted):
    a, b, a_post, _ = a_and_b
    api.delete(b, api.create(b, text="B's deleted post").post_id)

    listed = api.list_all(a, show_deleted=show_deleted)

    assert [post.post_id for post in listed] == [a_post.post_id]
    assert {post.workspace_id for post in listed} == {a.workspace_id}


def test_filtering_as_list_by_bs_account_shows_none_of_bs_posts(api, a_and_b):
    a, b, _, _ = a_and_b

    try:
        listed = api.list_all(a, account_id=b.account_id)
    except grpc.RpcError as error:
        assert Failure.of(error).kind == ("NOT_FOUND", "ACCOUNT_NOT_FOUND")
    else:
        assert listed == []


def test_a_key_for_both_sees_only_the_named_workspaces_posts(api, a_and_b, make_key):
    a, b, a_post, b_post = a_and_b
    both = make_key(a.workspace_id, b.workspace_id)
    in_a = Tenant(workspace_id=a.workspace_id, key=both, account_id=a.account_id)

    assert [post.post_id for post in api.list_all(in_a)] == [a_post.post_id]
    failure = api.refused("GetPostStatus", in_a, post_id=b_post.post_id)
    assert failure.kind == ("NOT_FOUND", "POST_NOT_FOUND")


def test_a_cannot_post_through_bs_account(api, a_and_b):
    a, b, _, _ = a_and_b

    failure = api.refused("CreatePost", a, account_id=b.account_id)

    assert failure.kind == ("NOT_FOUND", "ACCOUNT_NOT_FOUND")
    assert len(api.list_all(b)) == 1

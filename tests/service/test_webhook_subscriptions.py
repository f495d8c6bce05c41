"""CreateWebhookSubscription, ListWebhookSubscriptions, DeleteWebhookSubscription:
the secret shown once, the limits, the egress guard on the URL, workspace isolation."""

from __future__ import annotations

import pytest

from tests.support import call

# isort: split
from posts.v1 import posts_pb2 as pb

URL = "https://hooks.example.com/posts"


def create(api, tenant, **fields) -> pb.CreateWebhookSubscriptionResponse:
    fields.setdefault("url", URL)
    request = pb.CreateWebhookSubscriptionRequest(workspace_id=tenant.workspace_id, **fields)
    return call(api.stub.CreateWebhookSubscription, request, tenant.key)


def listed(api, tenant) -> list[pb.WebhookSubscription]:
    request = pb.ListWebhookSubscriptionsRequest(workspace_id=tenant.workspace_id)
    return list(call(api.stub.ListWebhookSubscriptions, request, tenant.key).subscriptions)


def test_create_shows_the_secret_once_and_list_never(api, make_tenant):
    tenant = make_tenant("subs")
    made = create(
        api,
        tenant,
        description="ops",
        event_types=[
            pb.POST_EVENT_TYPE_PUBLISHED,
            pb.POST_EVENT_TYPE_FAILED,
            pb.POST_EVENT_TYPE_PUBLISHED,
        ],
    )
    sub = made.subscription
    assert made.secret.startswith("whsec_") and len(made.secret) > 30
    assert sub.subscription_id.startswith("whs_")
    assert sub.workspace_id == tenant.workspace_id
    assert (sub.url, sub.description) == (URL, "ops")
    assert list(sub.event_types) == [pb.POST_EVENT_TYPE_PUBLISHED, pb.POST_EVENT_TYPE_FAILED]
    assert sub.state == pb.WEBHOOK_SUBSCRIPTION_STATE_ACTIVE
    assert sub.HasField("create_time") and not sub.HasField("disable_time")

    [again] = listed(api, tenant)
    assert again == sub
    assert made.secret not in str(again) and made.secret not in again.SerializeToString().decode(
        "utf-8", "replace"
    )
    # Two subscriptions never share a secret.
    assert create(api, tenant).secret != made.secret


def test_the_secret_is_stored_encrypted(api, make_tenant, server):
    from service import db
    from service.models import WebhookSubscription

    tenant = make_tenant("stored")
    made = create(api, tenant)
    with db.connection():
        row = WebhookSubscription.get_by_id(made.subscription.subscription_id)
    assert made.secret not in row.secret
    from service import crypto

    assert crypto.keyring().decrypt(row.secret) == made.secret


def test_delete_removes(api, make_tenant):
    tenant = make_tenant("deleting")
    first, second = create(api, tenant).subscription, create(api, tenant).subscription
    request = pb.DeleteWebhookSubscriptionRequest(
        workspace_id=tenant.workspace_id, subscription_id=first.subscription_id
    )
    assert call(api.stub.DeleteWebhookSubscription, request, tenant.key) == (
        pb.DeleteWebhookSubscriptionResponse()
    )
    assert [s.subscription_id for s in listed(api, tenant)] == [second.subscription_id]
    # Deleting again: it is gone.
    failure = api.refused(
        "DeleteWebhookSubscription", tenant, subscription_id=first.subscription_id
    )
    assert failure.kind == ("NOT_FOUND", "SUBSCRIPTION_NOT_FOUND")
    assert failure.metadata == {"subscriptionId": first.subscription_id}


def test_at_most_20_per_workspace(api, make_tenant):
    tenant, other = make_tenant("many"), make_tenant("few")
    made = [create(api, tenant).subscription for _ in range(20)]
    failure = api.refused("CreateWebhookSubscription", tenant, url=URL)
    assert failure.kind == ("RESOURCE_EXHAUSTED", "SUBSCRIPTION_LIMIT_REACHED")
    assert failure.metadata == {"limit": "20"}
    # Oldest first.
    assert [s.subscription_id for s in listed(api, tenant)] == [s.subscription_id for s in made]
    # Another workspace has its own 20.
    create(api, other)
    # Deleting one makes room again.
    request = pb.DeleteWebhookSubscriptionRequest(
        workspace_id=tenant.workspace_id, subscription_id=made[0].subscription_id
    )
    call(api.stub.DeleteWebhookSubscription, request, tenant.key)
    create(api, tenant)


@pytest.mark.parametrize(
    ("fields", "path"),
    [
        ({"url": ""}, "url"),
        ({"url": "ftp://hooks.example.com/x"}, "url"),
        ({"url": "not a url"}, "url"),
        ({"url": "https://user:pass@hooks.example.com/x"}, "url"),
        ({"url": "https://hooks.example.com/" + "a" * 2048}, "url"),
        # Refused by the egress guard: loopback (other than the fakes' 127.0.0.1),
        # private, link-local (cloud metadata) addresses.
        ({"url": "http://127.0.0.2:8080/hook"}, "url"),
        ({"url": "http://10.1.2.3/hook"}, "url"),
        ({"url": "http://169.254.169.254/latest/meta-data"}, "url"),
        ({"url": "http://[::1]/hook"}, "url"),
        ({"description": "d" * 301}, "description"),
        ({"event_types": [pb.POST_EVENT_TYPE_UNSPECIFIED]}, "event_types[0]"),
        ({"event_types": [pb.POST_EVENT_TYPE_CREATED, 999]}, "event_types[1]"),
        ({"event_types": [pb.POST_EVENT_TYPE_CREATED] * 17}, "event_types"),
    ],
)
def test_bad_fields_are_invalid(api, make_tenant, fields, path):
    tenant = make_tenant("bad")
    fields.setdefault("url", URL)
    failure = api.refused("CreateWebhookSubscription", tenant, **fields)
    assert failure.kind == ("INVALID_ARGUMENT", "INVALID_FIELD")
    assert path in failure.fields, failure
    assert listed(api, tenant) == []


def test_the_limits_themselves_are_accepted(api, make_tenant):
    tenant = make_tenant("edges")
    url = "https://hooks.example.com/" + "a" * (2048 - len("https://hooks.example.com/"))
    made = create(
        api,
        tenant,
        url=url,
        description="d" * 300,
        event_types=[t for t in pb.PostEventType.values() if t][:16],
    )
    assert made.subscription.url == url
    # The fakes' address, let through by POSTS_EGRESS_ALLOW.
    create(api, tenant, url="http://127.0.0.1:9/hook")


def test_another_workspace_can_neither_see_nor_delete(api, make_tenant, make_key):
    owner, stranger = make_tenant("owner"), make_tenant("stranger")
    sub = create(api, owner).subscription
    assert listed(api, stranger) == []
    failure = api.refused(
        "DeleteWebhookSubscription", stranger, subscription_id=sub.subscription_id
    )
    assert failure.kind == ("NOT_FOUND", "SUBSCRIPTION_NOT_FOUND")
    # Naming the owner's workspace with the stranger's key is refused outright.
    failure = api.refused("ListWebhookSubscriptions", stranger, workspace_id=owner.workspace_id)
    assert failure.kind == ("PERMISSION_DENIED", "WORKSPACE_ACCESS_DENIED")
    # A key reaching both sees each workspace's own only.
    both = make_key(owner.workspace_id, stranger.workspace_id)
    request = pb.ListWebhookSubscriptionsRequest(workspace_id=stranger.workspace_id)
    assert list(call(api.stub.ListWebhookSubscriptions, request, both).subscriptions) == []
    assert [s.subscription_id for s in listed(api, owner)] == [sub.subscription_id]


def test_a_malformed_subscription_id_is_invalid(api, make_tenant):
    tenant = make_tenant("ids")
    failure = api.refused("DeleteWebhookSubscription", tenant, subscription_id="nope")
    assert failure.kind == ("INVALID_ARGUMENT", "INVALID_FIELD")
    assert failure.fields == {"subscription_id"}

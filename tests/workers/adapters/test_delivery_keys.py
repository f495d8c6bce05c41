"""The idempotency keys sent to networks come from the post, never the caller's key alone.

Two workspaces may use the same ``idempotency_key`` (it is scoped to a
workspace). A consumer that honours keys would answer the second post with
the first one's result if the key sent to it came from the caller's key:
one delivery between the two, the second post recorded with the first's id.
"""

from __future__ import annotations

import pytest

from tests.fakes.webhook import FakeWebhook

SECRET = "whsec_delivery-keys"


@pytest.fixture
def consumer(start_fake) -> FakeWebhook:
    return start_fake(FakeWebhook(SECRET))


def test_two_workspaces_with_the_same_key_get_two_deliveries(api, make_account, consumer):
    # Given two workspaces that publish through one webhook consumer
    url = consumer.base_url + "/hooks/posts"
    first, second = (
        make_account("webhook", handle="consumer", base_url=url, token=SECRET) for _ in range(2)
    )

    # When each publishes a post with the same idempotency key
    posts = [
        account.publish(api, text=f"from {n}", idempotency_key="order-1234")
        for n, account in enumerate((first, second))
    ]
    live = [
        api.wait_published(account.tenant, post.post_id)
        for account, post in zip((first, second), posts, strict=True)
    ]

    # Then the consumer got two deliveries under two keys, each post its own result
    assert len(set(consumer.keys())) == 2, consumer.keys()
    for post, answer in zip(posts, live, strict=True):
        [entry] = consumer.live_for(post.post_id)
        assert answer.platform_post_id == entry["id"]
        assert entry["body"]["post"]["items"][0]["text"] == post.items[0].text
    assert live[0].platform_post_id != live[1].platform_post_id

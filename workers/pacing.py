"""Per-account pacing: deliveries stay under each network's posting limits.

``LIMITS`` holds, per network, (creates, window seconds) pairs: at most that
many items go live per account within any such window. The numbers are kept
below the networks' published limits at the time of writing (they change, and
some depend on the API tier), so a shared app quota is not run to the edge;
POSTS_PACING_OVERRIDES replaces them for a network or for one account
(``x=50/15m,acc_123=5/1h``). A network missing here is not paced, nor is a
sandbox account unless an override names its network or itself.
"""

from __future__ import annotations

import datetime as dt

from peewee import fn

from service import db
from service.models import Post, PostItem, micros

MINUTE, HOUR, DAY = 60.0, 3600.0, 86400.0

#: network -> ((creates per account, window seconds), ...)
LIMITS: dict[str, tuple[tuple[int, float], ...]] = {
    # X API v2 POST /2/tweets: 100 per user per 15 min (paid tiers), 2,400 per day per account.
    "x": ((50, 15 * MINUTE), (1500, DAY)),
    # Bluesky PDS: 5,000 points per hour and 35,000 per day, a create costing 3.
    "bluesky": ((1000, HOUR), (7500, DAY)),
    # Mastodon's default: 300 statuses per account per 3 hours (instances may lower it).
    "mastodon": ((200, 3 * HOUR),),
    # LinkedIn: 150 member shares per day.
    "linkedin": ((100, DAY),),
    # Instagram Graph API content publishing: 50 (now 100) posts per 24 hours.
    "instagram": ((40, DAY),),
    # TikTok Content Posting API: about 15 posts per creator per day.
    "tiktok": ((10, DAY),),
    # YouTube: an upload costs 1,600 of the default 10,000 daily quota units.
    "youtube": ((5, DAY),),
}


def limits_for(
    account_id: str,
    platform: str,
    overrides: tuple[tuple[str, int, float], ...] = (),
    sandbox: bool = False,
) -> tuple[tuple[int, float], ...]:
    """The (creates, window) limits of one account: its own override, else its
    network's override, else the table. A sandbox account reaches no network:
    only an override paces it."""
    for name in (account_id, platform):
        chosen = tuple((count, window) for key, count, window in overrides if key == name)
        if chosen:
            return chosen
    return () if sandbox else LIMITS.get(platform, ())


# Existing indexes serve it: the account's posts (post_account_id), then their
# items (post_item_post_id_position).
_RECENT = db.Compiled(
    lambda account_id, since: (
        PostItem.select(fn.COUNT(PostItem.id), fn.MIN(PostItem.published_at))
        .join(Post, on=(PostItem.post == Post.id))
        .where((Post.account == account_id) & (PostItem.published_at >= since))
    )
)


def ready_at(
    account_id: str,
    platform: str,
    now: dt.datetime,
    overrides: tuple[tuple[str, int, float], ...] = (),
    sandbox: bool = False,
) -> dt.datetime | None:
    """When the account may send another item, or None when it may now: when the
    oldest create of a full window leaves it."""
    ready = None
    for count, window in limits_for(account_id, platform, overrides, sandbox):
        since = micros(now - dt.timedelta(seconds=window))
        sent, oldest = db.database.execute_sql(
            _RECENT.sql(account_id, since), (account_id, since)
        ).fetchone()
        if sent >= count and oldest is not None:
            end = PostItem.published_at.python_value(oldest) + dt.timedelta(seconds=window)
            ready = end if ready is None else max(ready, end)
    return ready if ready is not None and ready > now else None

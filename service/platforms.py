"""Networks and the post types each accepts: the one table the API checks `post_type` against."""

PLATFORMS = ("x", "instagram", "linkedin", "tiktok", "youtube", "bluesky", "mastodon", "webhook")

POST_TYPES = (
    "tweet",
    "thread",
    "feed",
    "reel",
    "story",
    "carousel",
    "post",
    "document",
    "video",
    "photo",
    "short",
)

#: Post types per platform; the webhook takes any.
ALLOWED_TYPES: dict[str, frozenset[str]] = {
    "x": frozenset({"tweet", "thread"}),
    "instagram": frozenset({"feed", "reel", "story", "carousel"}),
    "linkedin": frozenset({"post", "document"}),
    "tiktok": frozenset({"video", "photo"}),
    "youtube": frozenset({"video", "short"}),
    "bluesky": frozenset({"post", "thread"}),
    "mastodon": frozenset({"post", "thread"}),
    "webhook": frozenset(POST_TYPES),
}


def wrong_type(platform: str, post_type: str, allowed) -> str:
    """Why ``platform``, which takes the ``allowed`` post types, refuses
    ``post_type``: in the proto's names."""
    names = [f"POST_TYPE_{name.upper()}" for name in sorted(allowed)]
    takes = " or ".join(filter(None, [", ".join(names[:-1]), names[-1]]))
    given = f"POST_TYPE_{post_type.upper()}" if post_type else "an unspecified post type"
    return f"PLATFORM_{platform.upper()} takes {takes}, not {given}"


#: Networks whose real delivery has no adapter yet (sandbox accounts still work).
WITHOUT_ADAPTER: frozenset[str] = frozenset()

#: What a real (not sandbox) account of each network with an adapter is given:
#: (its base URL, its token). ``admin account create`` refuses one without both.
ACCOUNT_SETTINGS: dict[str, tuple[str, str]] = {
    "x": ("the API's root, https://api.x.com", "an OAuth 2.0 user access token"),
    "linkedin": ("the API's root, https://api.linkedin.com", "an OAuth 2.0 access token"),
    "mastodon": ("the instance, such as https://mastodon.social", "an access token"),
    "bluesky": ("the account's PDS, such as https://bsky.social", "an app password"),
    "webhook": ("the receiver's URL, which each item is POSTed to", "the signing secret"),
    "instagram": ("the API's root, https://graph.instagram.com", "a long-lived user access token"),
    "tiktok": ("the API's root, https://open.tiktokapis.com", "a user access token"),
    "youtube": ("the API's root, https://www.googleapis.com", "an OAuth 2.0 access token"),
}

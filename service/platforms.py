"""Networks and the post types each accepts: the one table the API checks `post_type` against."""

PLATFORMS = ("x", "instagram", "linkedin", "tiktok", "youtube", "bluesky", "mastodon", "webhook")

POST_TYPES = (
    "tweet", "thread", "feed", "reel", "story", "carousel",
    "post", "document", "video", "photo", "short",
)  # fmt: skip

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

#: Networks whose real delivery has no adapter yet (sandbox accounts still work).
WITHOUT_ADAPTER: frozenset[str] = frozenset()

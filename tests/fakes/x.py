"""A fake X (API v2): tweets, replies, media upload, the user's timeline.

Speaks the shapes the X adapter uses: ``POST /2/tweets`` (``text``, ``reply``,
``media``) answering ``{"data": {"id", "text", "edit_history_tweet_ids"}}``;
the v2 media upload (one-shot multipart for images, initialize/append/finalize
for video and GIF, ``GET /2/media/upload?command=STATUS``); ``POST
/2/media/metadata`` (alt text); ``GET /2/users/me``; ``GET
/2/users/<id>/tweets`` (newest first, text HTML-escaped and links turned into
t.co links, as X returns them). Every API route checks the bearer token (401
otherwise). ``GET /media/<name>`` serves media files for tests, no token needed.

As strict as X where an adapter could get it wrong:

- a tweet over 280 weighted characters (``weighted_length``) is refused (400);
- a tweet with the same text as one of the user's tweets of the last
  ``duplicate_window`` is refused (403), as a re-send of a live tweet is on X;
- media must be uploaded and, for video and GIF, finalized and processed:
  processing takes ``processing_checks`` STATUS checks after FINALIZE, and at
  least ``processing_seconds`` (STATUS then asks to check again after a
  second, as X does for long videos), and a tweet naming media that is not
  ready is refused (400);
- the timeline returns only ``id``, ``text`` and ``edit_history_tweet_ids``
  unless ``tweet.fields`` asks for more, refuses unknown field names and a
  ``max_results`` outside 5–100 (400).

``live`` holds every tweet that went live; ``log`` every request with the time
it arrived (the base's ``arrivals``); ``lose_next`` closes the connection of a
request before it runs (an unknown outcome where nothing went live), unlike
``Fault(drop=True)``.
"""

from __future__ import annotations

import datetime as dt
import functools
import html
import itertools
import re
import time
import unicodedata
import urllib.parse
from typing import ClassVar

import regex

from tests.fakes.base import MEDIA_ROUTE, Arrival, FakeNetwork, Request, Response, multipart

USER_ID = "1000"
MAX_WEIGHTED_LENGTH = 280
TOO_LONG = "Your Tweet text is too long."
DUPLICATE = "You are not allowed to create a Tweet with duplicate content."
INVALID_MEDIA = "Your media IDs are invalid."
#: What X answers a request with a bad parameter in, whatever the parameter.
INVALID_REQUEST = "One or more parameters to your request was invalid."
#: Tweet fields X v2 knows (a name outside them is refused); only some are served here.
TWEET_FIELDS = frozenset(
    {
        "article",
        "attachments",
        "author_id",
        "card_uri",
        "community_id",
        "context_annotations",
        "conversation_id",
        "created_at",
        "display_text_range",
        "edit_controls",
        "edit_history_tweet_ids",
        "entities",
        "geo",
        "id",
        "in_reply_to_user_id",
        "lang",
        "media_metadata",
        "non_public_metrics",
        "note_tweet",
        "organic_metrics",
        "possibly_sensitive",
        "promoted_metrics",
        "public_metrics",
        "referenced_tweets",
        "reply_settings",
        "scopes",
        "source",
        "text",
        "withheld",
    }
)
#: Fields every tweet comes with, asked for or not.
DEFAULT_FIELDS = ("id", "text", "edit_history_tweet_ids")

# Tweet length as twitter-text v3 weighs it: weight 100 (one unit) for these code
# point ranges, 200 (two units) for all others; a link is 23 units, an emoji 2.
# Written apart from the service's counter so that each checks the other.
LIGHT_RANGES = ((0, 4351), (8192, 8205), (8208, 8223), (8242, 8247))
LINK_WEIGHT = 23
_LINK = regex.compile(
    r"(?<![\w@./-])(?:https?://\S+|(?:[a-z0-9-]+\.)+(?:com|org|net|edu|gov)\b(?:[/?#]\S*)?)",
    regex.IGNORECASE,
)
_LINK_TAIL = regex.compile(r"""[.,:;!?'")\]}]+$""")
_EMOJI = regex.compile(r"[\p{Extended_Pictographic}\p{Regional_Indicator}\u20e3]")


def authorized(handler):
    """Answers 401 unless the request carries the network's bearer token."""

    @functools.wraps(handler)
    def checked(self, request: Request, *args):
        if request.headers.get("authorization") != f"Bearer {self.token}":
            return Response(
                401,
                {
                    "title": "Unauthorized",
                    "type": "about:blank",
                    "status": 401,
                    "detail": "Unauthorized",
                },
            )
        return handler(self, request, *args)

    return checked


def problem(status: int, detail: str, title: str = "Invalid Request") -> Response:
    return Response(
        status,
        {"title": title, "detail": detail, "status": status, "errors": [{"message": detail}]},
    )


def invalid(parameter: str, values: list, message: str) -> Response:
    """X's 400 for a bad parameter: the generic detail, the specifics in ``errors``."""
    return Response(
        400,
        {
            "title": "Invalid Request",
            "detail": INVALID_REQUEST,
            "errors": [{"parameters": {parameter: values}, "message": message}],
        },
    )


def forbidden(detail: str) -> Response:
    return Response(
        403, {"title": "Forbidden", "type": "about:blank", "status": 403, "detail": detail}
    )


def weighted_length(text: str) -> int:
    """How many of the 280 units ``text`` takes on X (twitter-text v3)."""
    text = unicodedata.normalize("NFC", text)
    units, at = 0, 0
    for link in _LINK.finditer(text):
        tail = _LINK_TAIL.search(link.group())
        units += _plain_units(text[at : link.start()]) + LINK_WEIGHT
        at = link.end() - (len(tail.group()) if tail else 0)
    return units + _plain_units(text[at:])


def _plain_units(text: str) -> int:
    units = 0
    for cluster in regex.findall(r"\X", text):
        if len(cluster) > 1 and _EMOJI.search(cluster):
            units += 2  # one emoji, however many code points make it
        else:
            units += sum(
                1 if any(lo <= ord(c) <= hi for lo, hi in LIGHT_RANGES) else 2 for c in cluster
            )
    return units


def form(request: Request) -> dict[str, bytes]:
    """The fields of a multipart/form-data body."""
    return {name: part["data"] for name, part in multipart(request).items()}


class FakeX(FakeNetwork):
    routes: ClassVar[list[tuple[str, str, str]]] = [
        ("POST", r"/2/tweets", "create_tweet"),
        ("POST", r"/2/media/upload", "upload_media"),
        ("GET", r"/2/media/upload", "media_status"),
        ("POST", r"/2/media/upload/initialize", "initialize_upload"),
        ("POST", r"/2/media/upload/(\d+)/append", "append_upload"),
        ("POST", r"/2/media/upload/(\d+)/finalize", "finalize_upload"),
        ("POST", r"/2/media/metadata", "media_metadata"),
        ("GET", r"/2/users/me", "me"),
        ("GET", r"/2/users/(\d+)/tweets", "user_tweets"),
        MEDIA_ROUTE,
    ]
    serves_any_file = True

    def __init__(self, token: str = "x-token", username: str = "acme"):
        super().__init__()
        self.token = token
        self.username = username
        #: media id -> category, mime, size, alt text, ``done`` (upload complete),
        #: ``state`` (initialized, pending, in_progress, succeeded), STATUS checks left
        self.media: dict[str, dict] = {}
        #: How far back a tweet with the same text makes a new one a duplicate
        #: (X does not say; a day matches what users run into).
        self.duplicate_window = dt.timedelta(hours=24)
        #: STATUS checks a finalized video or GIF takes to be processed.
        self.processing_checks = 2
        #: Seconds (at least) a finalized video or GIF takes to be processed.
        self.processing_seconds = 0.0
        self._ids = itertools.count(1_900_000_000_000_000_000)
        self._lose: list[str] = []

    # ------------------------------------------------------------ test helpers
    def lose_next(self, path: str) -> None:
        """Closes the connection of the next request to ``path`` before it runs."""
        with self.lock:
            self._lose.append(path)

    def posts(self) -> list[Arrival]:
        """Every ``POST /2/tweets`` that arrived, answered or not."""
        return self.seen("POST", "/2/tweets")

    def tweeted_before(self, text: str, ago: dt.timedelta, reply_to: str | None = None) -> dict:
        """A tweet of the user's, live since ``ago`` (made outside the tests' sends)."""
        with self.lock:
            tweet = self._tweet(text, reply_to, [], dt.datetime.now(dt.UTC) - ago)
            self.live.append(tweet)
            self.live.sort(key=lambda t: t["created"])
        return tweet

    def dispatch(self, request: Request) -> tuple[Response, bool]:
        with self.lock:
            if request.path in self._lose:
                self._lose.remove(request.path)
                self._arrive(request)
                self.requests.append(request)
                return Response(500), True
        return super().dispatch(request)

    # ------------------------------------------------------------------ tweets
    @authorized
    def create_tweet(self, request: Request) -> Response:
        body = request.json or {}
        text = body.get("text", "")
        media_ids = list((body.get("media") or {}).get("media_ids") or [])
        reply_to = (body.get("reply") or {}).get("in_reply_to_tweet_id")
        if not text and not media_ids:
            return problem(400, "Tweet needs text or media")
        if weighted_length(text) > MAX_WEIGHTED_LENGTH:
            return invalid("text", [text], TOO_LONG)
        now = dt.datetime.now(dt.UTC)
        with self.lock:
            if reply_to and not any(t["id"] == reply_to for t in self.live):
                return problem(400, f"in_reply_to_tweet_id {reply_to} does not exist")
            not_ready = [m for m in media_ids if self.media.get(m, {}).get("state") != "succeeded"]
            if not_ready:
                return invalid("media.media_ids", not_ready, INVALID_MEDIA)
            if self._duplicate(text, now):
                return forbidden(DUPLICATE)
            tweet = self._tweet(text, reply_to, media_ids, now)
            self.live.append(tweet)
        return Response(
            201,
            {"data": {"id": tweet["id"], "text": text, "edit_history_tweet_ids": [tweet["id"]]}},
        )

    def _duplicate(self, text: str, now: dt.datetime) -> bool:
        """Whether the user tweeted ``text`` within ``duplicate_window`` (media-only
        tweets, without text, are never duplicates)."""
        text = unicodedata.normalize("NFC", text).strip()
        return bool(text) and any(
            unicodedata.normalize("NFC", t["text"]).strip() == text
            and now - t["created"] < self.duplicate_window
            for t in self.live
        )

    def _tweet(
        self, text: str, reply_to: str | None, media_ids: list[str], created: dt.datetime
    ) -> dict:
        return {
            "id": str(next(self._ids)),
            "text": text,
            "reply_to": reply_to,
            "media_ids": media_ids,
            "created": created,
            "created_at": created.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
            "at": time.monotonic(),
        }

    @authorized
    def me(self, request: Request) -> Response:
        return Response(200, {"data": {"id": USER_ID, "name": "Acme", "username": self.username}})

    @authorized
    def user_tweets(self, request: Request, user_id: str) -> Response:
        query = urllib.parse.parse_qs(request.query)
        limit = (query.get("max_results") or ["10"])[0]
        if not limit.isdigit() or not 5 <= int(limit) <= 100:
            return invalid(
                "max_results",
                [limit],
                f"The `max_results` query parameter value [{limit}] is not between 5 and 100",
            )
        asked = [f for f in ",".join(query.get("tweet.fields") or []).split(",") if f]
        unknown = [f for f in asked if f not in TWEET_FIELDS]
        if unknown:
            return invalid(
                "tweet.fields",
                unknown,
                f"The `tweet.fields` query parameter value "
                f"[{unknown[0]}] is not one of {sorted(TWEET_FIELDS)}",
            )
        with self.lock:
            tweets = [] if user_id != USER_ID else list(reversed(self.live))[: int(limit)]
            data = [self._as_returned(t, set(asked)) for t in tweets]
        meta = {"result_count": len(data)}
        if data:
            meta.update(newest_id=data[0]["id"], oldest_id=data[-1]["id"])
        return Response(200, {"data": data, "meta": meta} if data else {"meta": meta})

    def _as_returned(self, tweet: dict, fields: set[str]) -> dict:
        """The tweet as X returns it: the default fields plus those asked for."""
        text = html.escape(tweet["text"], quote=False)
        text = re.sub(r"https?://\S+", "https://t.co/abcdEFGH12", text)
        if tweet["media_ids"]:
            text = f"{text} https://t.co/MediaLink99".strip()
        known = {
            "id": tweet["id"],
            "text": text,
            "edit_history_tweet_ids": [tweet["id"]],
            "author_id": USER_ID,
            "created_at": tweet["created_at"],
            "conversation_id": self._root(tweet)["id"],
        }
        if tweet["reply_to"]:
            known["in_reply_to_user_id"] = USER_ID
            known["referenced_tweets"] = [{"type": "replied_to", "id": tweet["reply_to"]}]
        return {k: v for k, v in known.items() if k in DEFAULT_FIELDS or k in fields}

    def _root(self, tweet: dict) -> dict:
        by_id = {t["id"]: t for t in self.live}
        while tweet["reply_to"] in by_id:
            tweet = by_id[tweet["reply_to"]]
        return tweet

    # ------------------------------------------------------------------- media
    @authorized
    def upload_media(self, request: Request) -> Response:
        fields = form(request)
        if not fields.get("media"):
            return problem(400, "media is required")
        category = (fields.get("media_category") or b"").decode()
        if category != "tweet_image":
            return problem(400, f"one-shot upload takes tweet_image, not {category!r}")
        return self._stored(
            category,
            (fields.get("media_type") or b"").decode(),
            len(fields["media"]),
            state="succeeded",
        )

    @authorized
    def initialize_upload(self, request: Request) -> Response:
        body = request.json or {}
        if body.get("media_category") not in ("tweet_video", "tweet_gif"):
            return problem(400, "media_category must be tweet_video or tweet_gif")
        return self._stored(
            body["media_category"],
            body.get("media_type", ""),
            int(body.get("total_bytes") or 0),
            state="initialized",
        )

    @authorized
    def append_upload(self, request: Request, media_id: str) -> Response:
        fields = form(request)
        with self.lock:
            upload = self.media.get(media_id)
            if upload is None or upload["state"] != "initialized":
                return problem(400, f"no upload session {media_id}")
            upload["segments"][int(fields["segment_index"])] = len(fields["media"])
        return Response(204)

    @authorized
    def finalize_upload(self, request: Request, media_id: str) -> Response:
        with self.lock:
            upload = self.media.get(media_id)
            if upload is None or upload["state"] != "initialized":
                return problem(400, f"no upload session {media_id}")
            if sum(upload["segments"].values()) != upload["size"]:
                return problem(400, "the segments do not add up to total_bytes")
            upload["done"], upload["checks_left"] = True, self.processing_checks
            upload["ready_at"] = time.monotonic() + self.processing_seconds
            slow = self.processing_checks > 0 or self.processing_seconds > 0
            upload["state"] = "pending" if slow else "succeeded"
        data: dict = {"id": media_id}
        if upload["state"] == "pending":
            data["processing_info"] = {"state": "pending", "check_after_secs": self._check_after}
        return Response(200, {"data": data})

    @property
    def _check_after(self) -> int:
        return 1 if self.processing_seconds > 0 else 0

    @authorized
    def media_status(self, request: Request) -> Response:
        media_id = (urllib.parse.parse_qs(request.query).get("media_id") or [""])[0]
        with self.lock:
            upload = self.media.get(media_id)
            if upload is None or upload["state"] == "initialized":
                return problem(400, f"no media {media_id} to check: upload and finalize it first")
            if upload["state"] in ("pending", "in_progress"):
                upload["checks_left"] -= 1
                done = upload["checks_left"] <= 0 and time.monotonic() >= upload["ready_at"]
                upload["state"] = "succeeded" if done else "in_progress"
            state = upload["state"]
        info = {"state": state, "progress_percent": 100 if state == "succeeded" else 50}
        if state != "succeeded":
            info["check_after_secs"] = self._check_after
        return Response(200, {"data": {"id": media_id, "processing_info": info}})

    @authorized
    def media_metadata(self, request: Request) -> Response:
        body = request.json or {}
        with self.lock:
            if body.get("id") not in self.media:
                return problem(400, f"no media {body.get('id')}")
            alt = ((body.get("metadata") or {}).get("alt_text") or {}).get("text", "")
            self.media[body["id"]]["alt_text"] = alt
        return Response(200, {"data": {"id": body["id"], "associated_metadata": body["metadata"]}})

    def _stored(self, category: str, mime: str, size: int, state: str) -> Response:
        with self.lock:
            media_id = str(next(self._ids))
            self.media[media_id] = {
                "category": category,
                "mime": mime,
                "size": size,
                "state": state,
                "done": state == "succeeded",
                "segments": {},
                "alt_text": "",
                "checks_left": 0,
            }
        return Response(
            200,
            {
                "data": {
                    "id": media_id,
                    "media_key": f"3_{media_id}",
                    "size": size,
                    "expires_after_secs": 86400,
                }
            },
        )

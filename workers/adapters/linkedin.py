"""LinkedIn (Posts API, versioned ``/rest`` endpoints): one post per item, no threads.

The account's handle is the author URN (``urn:li:person:…`` or
``urn:li:organization:…``). Media go up first (Images, Documents or Videos API:
``initializeUpload``, then a PUT of the bytes), then ``POST /rest/posts``
creates the post; its URN comes back in the ``x-restli-id`` header.

LinkedIn neither honours idempotency keys nor (here) lets us look a post up, so
a post whose creation got no answer, or a 5xx, fails with
DELIVERY_OUTCOME_UNKNOWN. Nothing is live before ``POST /rest/posts``: an
unanswered upload is transient. Videos and documents are processed before a
post can carry them: the adapter polls them, renewing the lease, and proves
the lease (``before_create``) only right before the create.
"""

from __future__ import annotations

import re
import time
import urllib.parse

import httpx

from workers.adapters.base import (
    AccountRef,
    ItemRequest,
    Lease,
    MediaRef,
    OutcomeUnknown,
    PermanentError,
    Published,
    TransientError,
)
from workers.adapters.http import (
    client,
    download,
    json_field,
    json_object,
    nothing_live_yet,
    pause,
    request,
)

#: The Posts API version (YYYYMM) this adapter speaks; LinkedIn sunsets each after a year.
VERSION = "202511"
#: How long to wait for LinkedIn to process a video or document before retrying later.
PROCESSING_DEADLINE = 120.0
PROCESSING_POLL_INTERVAL = 2.0

# "little" text format: these characters are markup and must be backslash-escaped,
# or LinkedIn silently cuts the commentary at the first one. Links too: little has
# no link element, and LinkedIn links them in the text as readers see it. A #hashtag
# goes out as a hashtag template, which says where the tag ends (``#dev_ops`` stays
# one tag); a # inside a link is no hashtag.
_RESERVED = re.compile(r"[\\|{}@\[\]()<>#*_~]")
_LINK_OR_HASHTAG = re.compile(r"https?://\S+|(?<!\w)#(\w+)")


class LinkedInAdapter:
    """Publishes posts for one member or organization through the LinkedIn Posts API."""

    honours_idempotency_keys = False
    can_look_up = False
    checks_before_create = True

    def __init__(self, account: AccountRef):
        self._account = account

    def publish(self, item: ItemRequest) -> Published:
        author = self._account.handle.strip()
        if not author.startswith("urn:li:"):
            raise PermanentError(
                "INVALID_AUTHOR",
                f"a LinkedIn account's handle must be its author URN "
                f"(urn:li:person:… or urn:li:organization:…), not {author!r}",
            )
        with self._client() as api:
            with nothing_live_yet("media"):
                content = self._content(api, author, item)
            body: dict = {
                "author": author,
                "commentary": little_text(item.text),
                "visibility": "PUBLIC",
                "distribution": {
                    "feedDistribution": "MAIN_FEED",
                    "targetEntities": [],
                    "thirdPartyDistributionChannels": [],
                },
                "lifecycleState": "PUBLISHED",
                "isReshareDisabledByAuthor": False,
            }
            if content:
                body["content"] = content
            item.lease.before_create()
            response = request(api, "POST", "/rest/posts", json=body, creates=True)
        urn = urllib.parse.unquote(response.headers.get("x-restli-id", ""))
        if not urn:
            raise OutcomeUnknown(
                "NO_POST_URN", f"LinkedIn answered {response.status_code} without the post's URN"
            )
        return Published(urn, f"https://www.linkedin.com/feed/update/{urn}/")

    def look_up(self, item: ItemRequest) -> Published | None:
        return None

    # ------------------------------------------------------------------ media
    def _client(self) -> httpx.Client:
        return client(
            self._account.base_url,
            {
                "Authorization": f"Bearer {self._account.token}",
                "LinkedIn-Version": VERSION,
                "X-Restli-Protocol-Version": "2.0.0",
            },
        )

    def _content(self, api: httpx.Client, author: str, item: ItemRequest) -> dict | None:
        media, lease = item.media, item.lease
        if not media:
            return None
        if all(m.kind in ("image", "gif") for m in media):
            images = [
                {
                    "id": self._upload(api, author, m, "images", "image", lease),
                    **({"altText": m.alt_text} if m.alt_text else {}),
                }
                for m in media
            ]
            return {"media": images[0]} if len(images) == 1 else {"multiImage": {"images": images}}
        if len(media) > 1:
            raise PermanentError(
                "PLATFORM_RULE_VIOLATED",
                "a LinkedIn post carries images, or one video, or one document",
            )
        only = media[0]
        if only.kind == "document":
            urn = self._upload(api, author, only, "documents", "document", lease)
            self._wait_available(api, "documents", urn, lease)
            return {"media": {"id": urn, "title": item.title or _title(only.url)}}
        if only.kind == "video":
            urn = self._upload_video(api, author, only, lease)
            return {"media": {"id": urn, **({"title": item.title} if item.title else {})}}
        raise PermanentError("PLATFORM_RULE_VIOLATED", f"LinkedIn does not take {only.kind} media")

    def _upload(
        self,
        api: httpx.Client,
        author: str,
        media: MediaRef,
        api_name: str,
        field: str,
        lease: Lease,
    ) -> str:
        """Images and Documents API: initializeUpload, then PUT the bytes to the upload URL."""
        with download(media, lease) as medium:  # a temporary file, streamed up from there
            init = request(
                api,
                "POST",
                f"/rest/{api_name}",
                params={"action": "initializeUpload"},
                json={"initializeUploadRequest": {"owner": author}},
            )
            value = json_field(init, "value")
            if not value.get("uploadUrl") or not value.get(field):
                raise TransientError(
                    "UPLOAD_NOT_INITIALIZED", f"LinkedIn gave no {field} upload URL"
                )
            body = medium.body()
            request(
                api,
                "PUT",
                value["uploadUrl"],
                content=body,
                headers={"Content-Type": medium.mime_type, **body.headers},
            )
        return value[field]

    def _upload_video(self, api: httpx.Client, author: str, media: MediaRef, lease: Lease) -> str:
        """Videos API: initializeUpload, PUT each part (streamed from the downloaded
        file), finalizeUpload with the parts' ETags."""
        with download(media, lease) as medium:
            init = request(
                api,
                "POST",
                "/rest/videos",
                params={"action": "initializeUpload"},
                json={
                    "initializeUploadRequest": {
                        "owner": author,
                        "fileSizeBytes": medium.size,
                        "uploadCaptions": False,
                        "uploadThumbnail": False,
                    }
                },
            )
            value = json_field(init, "value")
            urn, parts = value.get("video"), value.get("uploadInstructions") or []
            if not urn or not parts:
                raise TransientError("UPLOAD_NOT_INITIALIZED", "LinkedIn gave no video upload URL")
            etags = []
            for part in parts:
                lease.renew()
                body = medium.body(int(part["firstByte"]), int(part["lastByte"]) + 1)
                uploaded = request(
                    api,
                    "PUT",
                    part["uploadUrl"],
                    content=body,
                    headers={"Content-Type": "application/octet-stream", **body.headers},
                )
                etags.append(uploaded.headers.get("etag", ""))
        request(
            api,
            "POST",
            "/rest/videos",
            params={"action": "finalizeUpload"},
            json={
                "finalizeUploadRequest": {
                    "video": urn,
                    "uploadToken": value.get("uploadToken", ""),
                    "uploadedPartIds": etags,
                }
            },
        )
        self._wait_available(api, "videos", urn, lease)
        return urn

    def _wait_available(self, api: httpx.Client, api_name: str, urn: str, lease: Lease) -> None:
        """Polls a video or document until LinkedIn has processed it: a post cannot
        carry it before."""
        deadline = time.monotonic() + PROCESSING_DEADLINE
        path = f"/rest/{api_name}/{urllib.parse.quote(urn, safe='')}"
        while True:
            status = json_object(request(api, "GET", path)).get("status")
            if status == "AVAILABLE":
                return
            if status == "PROCESSING_FAILED":
                raise PermanentError("MEDIA_PROCESSING_FAILED", f"LinkedIn could not process {urn}")
            if time.monotonic() >= deadline:
                raise TransientError("MEDIA_PROCESSING", f"LinkedIn is still processing {urn}")
            pause(PROCESSING_POLL_INTERVAL, lease)


Adapter = LinkedInAdapter


# ---------------------------------------------------------------------- helpers


def little_text(text: str) -> str:
    """``text`` as LinkedIn's "little" commentary format shows it verbatim."""
    out, start = [], 0
    for match in _LINK_OR_HASHTAG.finditer(text):
        out.append(_escape(text[start : match.start()]))
        tag = match.group(1)
        out.append(_escape(match.group()) if tag is None else f"{{hashtag|\\#|{_escape(tag)}}}")
        start = match.end()
    out.append(_escape(text[start:]))
    return "".join(out)


def _escape(text: str) -> str:
    return _RESERVED.sub(lambda m: "\\" + m.group(), text)


def _title(url: str) -> str:
    """A document's title when the post gives none: its file name as readers see it."""
    return urllib.parse.unquote(urllib.parse.urlsplit(url).path.rsplit("/", 1)[-1]) or "Document"

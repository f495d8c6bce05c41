"""WEBHOOK: one signed JSON POST per item to the account's URL.

What a receiver must do is documented for its writers in the README
("Receiving posts: the webhook network", with a receiver the tests run) and on
PLATFORM_WEBHOOK in the proto; this is the sending side.

The account's ``base_url`` is the full URL to POST to (path and query kept as
given) and its ``token`` is the signing secret. Each item is sent as::

    POST <base_url>
    Content-Type: application/json
    Idempotency-Key: <the item's delivery key>
    X-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>", keyed with the token>

    {"post": <the Post as proto JSON>, "itemIndex": n, "idempotencyKey": "<the same key>"}

The consumer is expected to deduplicate by ``Idempotency-Key`` (the same key
gets the same answer), so a send whose outcome is unknown is simply repeated
with the same key and body shape; the signature is made afresh, with a new
``t``, on every request. The webhook cannot look an item up.

Answers: any 2xx is success. Its JSON ``{"id": …, "url": …}`` gives the item's
platform id and url; an answer without an id (204, an empty or non-JSON body,
an object lacking ``id``) falls back to the idempotency key as the id, which
identifies the item to the consumer just as well, and the url to ``url`` if
given, else "". Other answers map as every HTTP adapter's do
(workers.adapters.http): 5xx and 429 (with Retry-After) are transient, other
4xx (401 for a bad signature) permanent, no answer an unknown outcome.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Callable

import httpx

from workers.adapters import http
from workers.adapters.base import AccountRef, ItemRequest, PermanentError, Published

SIGNATURE_HEADER = "X-Signature"
IDEMPOTENCY_HEADER = "Idempotency-Key"


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The hex HMAC-SHA256 of ``"<timestamp>.<body>"`` keyed with ``secret``."""
    message = f"{timestamp}.".encode() + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def signature_header(secret: str, timestamp: int, body: bytes) -> str:
    """The ``X-Signature`` value: ``t=<unix>,v1=<hex>``."""
    return f"t={timestamp},v1={sign(secret, timestamp, body)}"


def encode_body(request: ItemRequest) -> bytes:
    """The exact bytes POSTed (and signed) for one item: compact UTF-8 JSON."""
    if request.post_json is None:
        raise PermanentError("INTERNAL", "the webhook needs the post as proto JSON")
    payload = {
        "post": request.post_json,
        "itemIndex": request.item_index,
        "idempotencyKey": request.idempotency_key,
    }
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


_clients: dict[str, httpx.Client] = {}
_clients_lock = threading.Lock()


def _client(url: str) -> httpx.Client:
    """One client per consumer URL, kept: a new one costs an SSL context each time."""
    with _clients_lock:
        if url not in _clients:
            _clients[url] = http.client(url)
        return _clients[url]


class WebhookAdapter:
    """Delivers each item as a signed JSON POST to the account's URL."""

    needs_post_json = True
    honours_idempotency_keys = True
    can_look_up = False
    checks_before_create = True

    def __init__(self, account: AccountRef, clock: Callable[[], float] = time.time):
        self._account = account
        self._clock = clock

    def publish(self, request: ItemRequest) -> Published:
        http.require_account(
            self._account, "webhook", "URL to POST to", "signing secret", token_code="NO_SECRET"
        )
        body = encode_body(request)
        headers = {
            "content-type": "application/json",
            IDEMPOTENCY_HEADER: request.idempotency_key,
            SIGNATURE_HEADER: signature_header(self._account.token, int(self._clock()), body),
        }
        client = _client(self._account.base_url)
        request.lease.before_create()
        # The absolute URL, not a path under base_url: httpx would add a trailing slash.
        response = http.request(
            client, "POST", self._account.base_url, content=body, headers=headers
        )
        return _published(response, request.idempotency_key)

    def look_up(self, request: ItemRequest) -> Published | None:
        return None


def _published(response, key: str) -> Published:
    answer = http.json_object(response)  # {} for a 204 or a body that is not a JSON object
    platform_id = answer.get("id")
    url = answer.get("url")
    # Only a string or a number is an id: anything else (an object, a list) would
    # show as Python's rendering of it.
    usable = isinstance(platform_id, (str, int)) and not isinstance(platform_id, bool)
    return Published(
        platform_post_id=str(platform_id) if usable and platform_id != "" else key,
        url=url if isinstance(url, str) else "",
    )


Adapter = WebhookAdapter

"""A webhook consumer: verifies the signature, deduplicates by Idempotency-Key.

``POST /hooks/<name>`` takes ``{"post": …, "itemIndex": n, "idempotencyKey": …}``
signed with ``X-Signature: t=<unix>,v1=<hex HMAC-SHA256 of "<t>.<body>">``.
It answers 401 for a missing or wrong signature or a timestamp more than
``tolerance`` seconds away from now, 400 for a body it cannot read, and
otherwise 201 ``{"id": …, "url": …}``. A key it has seen gets the same answer
again and is not recorded twice in ``live``.

Every request that reaches it is stamped on arrival (the base's ``arrivals``,
monotonic seconds), faults included, so tests can measure the gaps between
attempts.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from typing import ClassVar

from tests.fakes.base import FakeNetwork, Request, Response

TOLERANCE = 300.0  # seconds: a signature older than 5 minutes is refused


def parse_signature(value: str) -> tuple[int, str] | None:
    """``t=<unix>,v1=<hex>`` as (t, hex); None when malformed."""
    parts = dict(part.split("=", 1) for part in value.split(",") if "=" in part)
    try:
        return int(parts["t"]), parts["v1"]
    except (KeyError, ValueError):
        return None


class FakeWebhook(FakeNetwork):
    routes: ClassVar = [("POST", r"/hooks/([\w-]+)", "receive")]

    def __init__(self, secret: str, tolerance: float = TOLERANCE, with_ids: bool = True):
        super().__init__()
        self.secret = secret
        self.tolerance = tolerance
        #: False: answer 204 with no body, as a consumer that returns no id does.
        self.with_ids = with_ids
        self._answers: dict[str, Response] = {}

    def keys(self) -> list[str]:
        """The Idempotency-Key of every request that arrived, in order."""
        with self.lock:
            return [arrival.key for arrival in self.arrivals]

    def live_for(self, post_id: str) -> list[dict]:
        with self.lock:
            return [entry for entry in self.live if entry["post_id"] == post_id]

    def _verify(self, request: Request) -> str | None:
        """Why the signature is refused; None when it is good."""
        parsed = parse_signature(request.headers.get("x-signature", ""))
        if parsed is None:
            return "missing or malformed X-Signature"
        timestamp, given = parsed
        if abs(time.time() - timestamp) > self.tolerance:
            return "signature timestamp outside the tolerance"
        message = f"{timestamp}.".encode() + request.body
        expected = hmac.new(self.secret.encode(), message, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, given):
            return "invalid signature"
        return None

    def receive(self, request: Request, hook: str) -> Response:
        refusal = self._verify(request)
        if refusal:
            return Response(401, {"error": refusal})
        key = request.headers.get("idempotency-key", "")
        try:
            body = request.json
        except ValueError:
            return Response(400, {"error": "body is not JSON"})
        if not key or not isinstance(body, dict) or body.get("idempotencyKey") != key:
            return Response(400, {"error": "Idempotency-Key missing or not the body's"})
        post = body.get("post")
        if not isinstance(post, dict) or not isinstance(body.get("itemIndex"), int):
            return Response(400, {"error": "post and itemIndex are required"})
        with self.lock:
            if key in self._answers:
                return self._answers[key]
            platform_id = f"wh_{len(self.live) + 1}"
            if self.with_ids:
                answer = Response(
                    201,
                    {"id": platform_id, "url": f"https://consumer.example/{hook}/{platform_id}"},
                )
            else:
                answer = Response(204)
            self._answers[key] = answer
            self.live.append(
                {
                    "post_id": post.get("postId"),
                    "item_index": body["itemIndex"],
                    "key": key,
                    "body": body,
                    "id": platform_id,
                    "at": time.monotonic(),
                }
            )
            return answer

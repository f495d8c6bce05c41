"""An event webhook subscriber: checks each request's signature, records what arrived.

``POST /events/<name>`` takes ``{"id", "type", "createTime", "data": {"event"}}``
signed with ``X-Posts-Signature: t=<unix>,v1=<hex HMAC-SHA256 of "<t>.<body>">``
under the secret ``secrets[name]`` (set once CreateWebhookSubscription answered
it). A good request is recorded in ``live`` (duplicates too: tests count them)
and answered 200; a bad signature 401 (recorded in ``refused``). The base's
faults (``fail_next``), ``delay`` and ``hold`` apply as to every fake.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import ClassVar

from tests.fakes.base import FakeNetwork, Request, Response
from tests.fakes.webhook import TOLERANCE, parse_signature


class FakeSubscriber(FakeNetwork):
    routes: ClassVar = [("POST", r"/events/([\w-]+)", "receive")]

    def __init__(self, tolerance: float = TOLERANCE):
        super().__init__()
        self.secrets: dict[str, str] = {}
        self.tolerance = tolerance
        self.refused: list[tuple[str, Request]] = []
        #: True: requests are answered 503 and not recorded (those in flight when
        #: their sender was killed: it never learnt of them, nothing arrived).
        self.discarding = False

    def url(self, name: str) -> str:
        return f"{self.base_url}/events/{name}"

    def verify(self, name: str, request: Request) -> str | None:
        """Why the request's signature is refused; None when it is good."""
        parsed = parse_signature(request.headers.get("x-posts-signature", ""))
        if parsed is None:
            return "missing or malformed X-Posts-Signature"
        timestamp, given = parsed
        if abs(time.time() - timestamp) > self.tolerance:
            return "signature timestamp outside the tolerance"
        secret = self.secrets.get(name, "")
        expected = hmac.new(
            secret.encode(), f"{timestamp}.".encode() + request.body, hashlib.sha256
        ).hexdigest()
        if not secret or not hmac.compare_digest(expected, given):
            return "invalid signature"
        return None

    def receive(self, request: Request, name: str) -> Response:
        if self.discarding:
            return Response(503, {"error": "discarded"})
        refusal = self.verify(name, request)
        if refusal:
            with self.lock:
                self.refused.append((refusal, request))
            return Response(401, {"error": refusal})
        body = json.loads(request.body)
        with self.lock:
            self.live.append(
                {
                    "hook": name,
                    "id": body["id"],
                    "header_id": request.headers.get("x-posts-event-id"),
                    "type": body["type"],
                    "event": body["data"]["event"],
                    "post_id": body["data"]["event"].get("postId"),
                    "body": body,
                    "at": time.monotonic(),
                }
            )
        return Response(200, {"ok": True})

    def received(self, name: str | None = None, post_id: str | None = None) -> list[dict]:
        with self.lock:
            return [
                entry
                for entry in self.live
                if name in (None, entry["hook"]) and post_id in (None, entry["post_id"])
            ]

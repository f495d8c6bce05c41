"""The sandbox network: deliveries simulated inside the service.

It honours idempotency keys as a well-behaved network does, and keeps a
ledger of every call made to it so tests can prove what went out.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable

from ulid import ULID

from workers.adapters.base import AccountRef, ItemRequest, Published


@dataclasses.dataclass(frozen=True)
class Send:
    """One call made to the sandbox network."""

    post_id: str
    item_index: int
    idempotency_key: str
    platform_post_id: str


class Ledger:
    """Every send the sandbox saw, in order, duplicates included."""

    def __init__(self):
        self._lock = threading.Lock()
        self._sends: list[Send] = []
        self._by_key: dict[str, Published] = {}

    def record(self, request: ItemRequest, make: Callable[[], Published]) -> Published:
        with self._lock:
            published = self._by_key.get(request.idempotency_key) or make()
            self._by_key[request.idempotency_key] = published
            self._sends.append(
                Send(
                    request.post_id,
                    request.item_index,
                    request.idempotency_key,
                    published.platform_post_id,
                )
            )
            return published

    def find(self, key: str) -> Published | None:
        with self._lock:
            return self._by_key.get(key)

    def sends(self, post_id: str | None = None) -> list[Send]:
        with self._lock:
            return [s for s in self._sends if post_id is None or s.post_id == post_id]

    def clear(self) -> None:
        with self._lock:
            self._sends.clear()
            self._by_key.clear()


LEDGER = Ledger()


class SandboxAdapter:
    """Publishes into the LEDGER, under the account's platform rules."""

    honours_idempotency_keys = True
    can_look_up = True
    checks_before_create = True

    def __init__(self, account: AccountRef):
        self._account = account

    def publish(self, request: ItemRequest) -> Published:
        def make() -> Published:
            post_id = f"sbx_{ULID()}"
            url = (
                f"https://sandbox.invalid/{self._account.platform}/{self._account.handle}/{post_id}"
            )
            return Published(post_id, url)

        request.lease.before_create()
        return LEDGER.record(request, make)

    def look_up(self, request: ItemRequest) -> Published | None:
        return LEDGER.find(request.idempotency_key)

"""What the network adapters' tests share.

- ``SERVER_ENV``: the server settings of every module here (quick retries, few
  attempts, a fast dispatcher), as if each module had set
  ``pytestmark = pytest.mark.server_env(**SERVER_ENV)``; a module's own
  ``server_env`` marker takes its place.
- ``start_fake``: starts a fake network (tests/fakes), stopped at teardown.
- ``make_account``: a fresh tenant with a non-sandbox account on a fake, as an
  ``Account`` that can publish through it.
- ``wait_failed``: waits for a post to end FAILED.
- ``png``: an image served by a fake, as a post's media.
- ``fakes_allowed`` (autouse): the egress guard lets the fakes (127.0.0.1)
  through in the tests that call the adapters directly, as the ``server``
  fixture does for its worker.
- ``quick_processing_polls`` (autouse): Instagram's, LinkedIn's and TikTok's
  processing polls a moment apart (the fakes count polls, not seconds).
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import uuid
from collections.abc import Callable, Iterator

import pytest

from tests.fakes.base import FakeNetwork
from tests.processes import FAKES_EGRESS_ALLOW
from tests.support import Api, Tenant

# isort: split
from posts.v1 import posts_pb2 as pb

SERVER_ENV = {
    "POSTS_RETRY_BASE": "0.2",
    "POSTS_MAX_ATTEMPTS": "3",
    "POSTS_DISPATCH_INTERVAL": "0.05",
}
_HERE = pathlib.Path(__file__).parent


def pytest_collection_modifyitems(items) -> None:
    """Gives every module here without a ``server_env`` marker of its own SERVER_ENV."""
    modules = {item.getparent(pytest.Module) for item in items if _HERE in item.path.parents}
    for module in modules:
        if module is not None and module.get_closest_marker("server_env") is None:
            module.add_marker(pytest.mark.server_env(**SERVER_ENV))


@pytest.fixture(autouse=True)
def fakes_allowed(monkeypatch) -> None:
    """POSTS_EGRESS_ALLOW as the server fixture sets it, unless a module's own is set."""
    if "POSTS_EGRESS_ALLOW" not in os.environ:
        monkeypatch.setenv("POSTS_EGRESS_ALLOW", FAKES_EGRESS_ALLOW)


@pytest.fixture(autouse=True)
def quick_processing_polls(monkeypatch) -> None:
    """What these tests check is that a network's processing is polled until it
    ends, not the pace: waiting the adapters' real interval only costs time."""
    from workers.adapters import instagram, linkedin, tiktok

    for adapter in (instagram, linkedin, tiktok):
        monkeypatch.setattr(adapter, "PROCESSING_POLL_INTERVAL", 0.05)


@pytest.fixture
def start_fake() -> Iterator[Callable[[FakeNetwork], FakeNetwork]]:
    """Factory: starts a fake network and returns it; each one is stopped at teardown."""
    started: list[FakeNetwork] = []

    def start(network: FakeNetwork) -> FakeNetwork:
        started.append(network.start())
        return network

    try:
        yield start
    finally:
        for network in started:
            network.stop()


@dataclasses.dataclass
class Account:
    """A tenant with a (non-sandbox) account on a fake network."""

    tenant: Tenant
    account_id: str

    def publish(self, api: Api, *items: pb.PostItem, **fields) -> pb.Post:
        """Creates a post through this account to publish now: of ``items`` if given (a
        thread when there are several, else a post), of ``fields`` as given otherwise."""
        if items:
            fields.setdefault("items", list(items))
        thread = len(items) > 1
        fields.setdefault("post_type", pb.POST_TYPE_THREAD if thread else pb.POST_TYPE_POST)
        fields.setdefault("status", pb.STATUS_CHANGE_PUBLISH)
        return api.create(self.tenant, account_id=self.account_id, **fields)


@pytest.fixture
def make_account(make_tenant) -> Callable[..., Account]:
    """Factory: a fresh tenant (named after the platform) with a non-sandbox account."""

    def make(platform: str, *, handle: str, base_url: str, token: str) -> Account:
        tenant = make_tenant(f"{platform}-{uuid.uuid4().hex[:8]}")
        account_id = tenant.add_account(
            platform, sandbox=False, handle=handle, base_url=base_url, token=token
        )
        return Account(tenant, account_id)

    return make


@pytest.fixture
def wait_failed(api) -> Callable[[Tenant, str], pb.Post]:
    """Waits for a post of ``tenant`` to end FAILED, and returns it."""

    def wait(tenant: Tenant, post_id: str) -> pb.Post:
        return api.wait_status(tenant, post_id, pb.POST_STATUS_FAILED)

    return wait


@pytest.fixture
def png() -> Callable[..., pb.Media]:
    """Factory: a PNG image ``fake`` serves (``add_file``) as ``name``, as a post's media."""

    def make(fake: FakeNetwork, name: str, alt: str = "") -> pb.Media:
        return pb.Media(
            url=fake.add_file(name), kind=pb.MEDIA_KIND_IMAGE, mime_type="image/png", alt_text=alt
        )

    return make

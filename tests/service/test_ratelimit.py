"""POSTS_RATE_LIMIT: a token bucket per API key (service.ratelimit), refused
RESOURCE_EXHAUSTED / RATE_LIMITED with a RetryInfo when it is empty."""

import time

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from service import config as service_config
from service.ratelimit import RateLimiter
from tests.support import DEFAULT_WAIT, Failure, call

# isort: split
from posts.v1 import posts_pb2 as pb

BACKENDS = ["sqlite"]  # the limiter is in-process: the backend changes nothing
pytestmark = pytest.mark.server_env(POSTS_RATE_LIMIT="5:5")


class FakeClock:
    def __init__(self):
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


# ------------------------------------------------------------------ the bucket


def test_a_burst_then_refusals_with_the_wait_for_the_next_token():
    clock = FakeClock()
    # Binary fractions (4 per second, eighths of a second): exact float sums.
    limiter = RateLimiter(rate=4, burst=5, clock=clock)
    assert [limiter.acquire("k") for _ in range(5)] == [0.0] * 5
    assert limiter.acquire("k") == 0.25
    clock.now += 0.125
    assert limiter.acquire("k") == 0.125  # half a token came back: not enough
    clock.now += 0.125
    assert limiter.acquire("k") == 0.0
    assert limiter.acquire("k") > 0


def test_tokens_refill_at_the_rate_up_to_the_burst_only():
    clock = FakeClock()
    limiter = RateLimiter(rate=2, burst=3, clock=clock)
    for _ in range(3):
        limiter.acquire("k")
    clock.now += 3600  # a long idle time still gives one burst, not 7,200 calls
    assert [limiter.acquire("k") for _ in range(3)] == [0.0] * 3
    assert limiter.acquire("k") == pytest.approx(0.5)


def test_each_key_has_its_own_bucket():
    limiter = RateLimiter(rate=1, burst=1, clock=FakeClock())
    assert limiter.acquire("a") == 0.0
    assert limiter.acquire("a") > 0
    assert limiter.acquire("b") == 0.0


@pytest.mark.parametrize(
    "raw, parsed", [("", None), ("5", (5.0, 5)), ("0.5", (0.5, 1)), ("5:20", (5.0, 20))]
)
def test_the_setting(raw, parsed):
    assert service_config.Config.from_env({"POSTS_RATE_LIMIT": raw}).rate_limit == parsed


@pytest.mark.parametrize("raw", ["x", "0", "-1", "5:0", "5:x", "inf"])
def test_a_malformed_setting_is_refused(raw):
    with pytest.raises(service_config.ConfigError, match="POSTS_RATE_LIMIT"):
        service_config.Config.from_env({"POSTS_RATE_LIMIT": raw})


# ------------------------------------------------------------ through a server


def _list(stub, tenant):
    return call(stub.ListPosts, pb.ListPostsRequest(workspace_id=tenant.workspace_id), tenant.key)


def test_the_sixth_quick_call_is_refused_with_a_retry_delay(stub, make_tenant):
    tenant = make_tenant("limited")
    for _ in range(5):
        _list(stub, tenant)
    with pytest.raises(grpc.RpcError) as raised:
        _list(stub, tenant)
    failure = Failure.of(raised.value)
    assert failure.kind == ("RESOURCE_EXHAUSTED", "RATE_LIMITED")
    assert failure.domain == "posts.v1"
    infos = [
        d
        for d in rpc_status.from_call(raised.value).details
        if d.Is(error_details_pb2.RetryInfo.DESCRIPTOR)
    ]
    assert len(infos) == 1
    info = error_details_pb2.RetryInfo()
    infos[0].Unpack(info)
    delay = info.retry_delay.ToNanoseconds() / 1e9
    assert 0 < delay <= 0.2 + 1e-6  # one token at 5 per second
    # Another key is not held back by this one's bucket.
    _list(stub, make_tenant("other"))
    # After the delay the answer says, the key gets through again (a bounded wait:
    # the refill is real time on the server's clock).
    time.sleep(delay)
    deadline = time.monotonic() + DEFAULT_WAIT
    while True:
        try:
            assert _list(stub, tenant) is not None
            break
        except grpc.RpcError as error:
            assert Failure.of(error).reason == "RATE_LIMITED"
            assert time.monotonic() < deadline, "still limited after the retry delay"
            time.sleep(0.05)

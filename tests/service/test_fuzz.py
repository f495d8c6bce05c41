"""Property-based fuzzing of every PostService RPC, with requests built from the
proto's descriptors: whatever a caller with a valid key sends, the answer is a
success or a domain error, never INTERNAL / UNKNOWN / UNAVAILABLE, and the server
still answers afterwards.

``HYPOTHESIS_PROFILE`` picks the profile: ``ci`` (default; a fixed number of
derandomized examples, so a run is repeatable) or ``fuzz`` (``make fuzz``: many
more, randomly seeded; ``FUZZ_EXAMPLES`` sets how many per RPC). The codes seen
per RPC are printed at the module's end.
"""

from __future__ import annotations

import collections
import dataclasses
import os

import grpc
import pytest
from google.protobuf import descriptor as _descriptor
from google.protobuf import field_mask_pb2, timestamp_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service import admin, ids
from tests.support import DEFAULT_WAIT, Failure, Tenant, call, in_seconds, timestamp

# isort: split
from posts.v1 import posts_pb2 as pb

BACKENDS = ["sqlite", "postgres-redis"]
pytestmark = [
    # Rate limiting off: every fuzzed request should reach the code it targets.
    pytest.mark.server_env(POSTS_RATE_LIMIT=""),
    # The in-process worker's threads (broker client, retries) use the global `random`
    # while a request is drawn; hypothesis takes that for the strategy's doing.
    pytest.mark.filterwarnings(
        "ignore:Do not use the `random` module inside strategies"
        ":hypothesis.errors.HypothesisDeprecationWarning"
    ),
]

_COMMON = {
    "deadline": None,  # one example is a real RPC; its time depends on the machine
    "suppress_health_check": [
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
    "database": None,  # nothing saved between runs: CI replays the same examples
    "print_blob": True,  # a failure prints what reproduces it
}
settings.register_profile("ci", max_examples=200, derandomize=True, **_COMMON)
settings.register_profile(
    "fuzz", max_examples=int(os.environ.get("FUZZ_EXAMPLES", "3000")), derandomize=False, **_COMMON
)
PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "ci")

SERVICE = pb.DESCRIPTOR.services_by_name["PostService"]
RPCS = [method.name for method in SERVICE.methods]

#: Errors the contract allows: each one is a decision of the service about the request.
DOMAIN_CODES = {
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.ALREADY_EXISTS,
    grpc.StatusCode.PERMISSION_DENIED,
    grpc.StatusCode.UNAUTHENTICATED,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.ABORTED,  # ETAG_MISMATCH: the caller's etag is stale (AIP-154)
}

#: Codes gRPC itself may answer (a message over the size limit) without an ErrorInfo.
TRANSPORT_CODES = {grpc.StatusCode.RESOURCE_EXHAUSTED}

#: (backend, rpc) -> Counter of "CODE/REASON" (or OK): the figures printed at the end.
SEEN: dict[tuple[str, str], collections.Counter] = collections.defaultdict(collections.Counter)

# ------------------------------------------------------------------ strings

KIB = 1024
REGIONAL = [chr(c) for c in range(0x1F1E6, 0x1F200)]  # regional indicators A..Z
COMBINING = [chr(c) for c in range(0x0300, 0x0370)]  # combining diacritical marks
# Surrogates (category Cs) cannot be encoded as a proto string: skipped.
CHARS = st.characters(exclude_categories=("Cs",))


def _runs(alphabet: list[str], most: int) -> st.SearchStrategy[str]:
    return st.lists(st.sampled_from(alphabet), min_size=1, max_size=most).map("".join)


def _repeat(piece: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """A piece repeated up to about 100 KiB (cheap to draw, unlike 100 KiB of choices)."""
    return st.tuples(piece, st.integers(1, 100 * KIB)).map(
        lambda pair: (pair[0] * (pair[1] // max(1, len(pair[0])) + 1))[: pair[1]]
    )


STRINGS = st.one_of(
    st.just(""),
    st.text(CHARS, max_size=40),
    st.text(CHARS, max_size=10).map(lambda text: f"{text}\0{text}"),  # NULs
    st.sampled_from(["\0", "a\0", "\0" * 64, " ", "\t\n", "\u200b", "\ufeff", "..", "../", "*"]),
    _runs(REGIONAL, 200),
    st.text(st.sampled_from("aé"), min_size=1, max_size=3).flatmap(
        lambda base: _runs(COMBINING, 300).map(lambda marks: base + marks)
    ),
    _repeat(st.sampled_from(["a", "\U0001f600", "\U0001f1fa\U0001f1f8", "e\u0301", "\0", "é"])),
    st.integers(0, 3).map(lambda n: "x" * (63 + n)),  # around the id limit (64)
    st.integers(0, 3).map(lambda n: "k" * (127 + n)),  # around the key limit (128)
    st.integers(-2, 2).map(lambda n: "t" * (300 + n)),  # around the title limit
    st.integers(-2, 2).map(lambda n: "a" * (1500 + n)),  # around the alt text limit
)

# ------------------------------------------------------------------ scalars

INT32 = st.one_of(
    st.integers(-(2**31), 2**31 - 1),
    st.sampled_from([0, 1, -1, 50, 99, 100, 101, 2**31 - 1, -(2**31)]),
)
INT64 = st.one_of(
    st.integers(-(2**63), 2**63 - 1),
    st.sampled_from([0, 1, -1, 2, 100, 2**31, 2**63 - 1, -(2**63)]),
)
#: How long a stream is read for an answer: a valid one stays open, waiting for events.
STREAM_WAIT = 0.3


def _enum(field: _descriptor.FieldDescriptor) -> st.SearchStrategy[int]:
    known = [value.number for value in field.enum_type.values]
    # Proto3 enums are open: any int32 arrives as is.
    return st.one_of(st.sampled_from(known), st.integers(-3, 40), INT32)


MAX_SECONDS = 253402300799  # 9999-12-31T23:59:59Z, the largest valid Timestamp


def _timestamps() -> st.SearchStrategy[timestamp_pb2.Timestamp]:
    seconds = st.one_of(
        st.sampled_from(
            [
                0,
                -1,
                -62135596800,
                -62135596801,
                MAX_SECONDS,
                MAX_SECONDS + 1,
                2**63 - 1,
                -(2**63),
                4102444800,
            ]
        ),
        st.integers(-(2**63), 2**63 - 1),
        st.integers(-86400, 3 * 365 * 86400).map(
            lambda delta: int(in_seconds(delta).timestamp())  # around now, past and future
        ),
    )
    nanos = st.one_of(
        st.just(0),
        st.sampled_from([-1, 999_999_999, 1_000_000_000, 2**31 - 1, -(2**31)]),
        st.integers(-(2**31), 2**31 - 1),
    )
    return st.one_of(
        st.builds(timestamp_pb2.Timestamp, seconds=seconds, nanos=nanos),
        st.integers(-60, 400 * 86400).map(lambda delta: timestamp(in_seconds(delta))),
    )


def _mask_paths(message: _descriptor.Descriptor) -> st.SearchStrategy[str]:
    names = [field.name for field in message.fields]
    camel = [field.camelcase_name for field in message.fields]
    return st.one_of(
        st.sampled_from(names),
        st.sampled_from(camel),
        st.sampled_from(
            [
                "items.text",
                "media.url",
                "post.text",
                "*",
                "",
                ".",
                "text.",
                "update_mask",
                "post_id",
                "etag",
                "delete_time",
                "TEXT",
                "scheduledAt",
                "idempotencyKey",
                "items[0]",
                "a" * 1000,
            ]
        ),
        STRINGS,
    )


def _field_masks(message: _descriptor.Descriptor) -> st.SearchStrategy:
    paths = _mask_paths(message)
    # Up to 200 paths: the contract's limit is 20.
    return (
        st.sampled_from([0, 1, 3, 21, 200])
        .flatmap(lambda most: st.lists(paths, max_size=most))
        .map(lambda listed: field_mask_pb2.FieldMask(paths=listed))
    )


# ------------------------------------------------------------------ requests


@dataclasses.dataclass
class World:
    """The tenant the fuzzer calls as, and real ids that take requests deeper."""

    tenant: Tenant
    other: Tenant
    post_ids: list[str]
    foreign_post_ids: list[str]
    etags: list[str]
    #: prefix -> well-formed ids of nothing, and near misses (drawn from, not made
    #: while drawing: hypothesis refuses strategies that use randomness of their own)
    odd_ids: dict[str, list[str]] = dataclasses.field(default_factory=dict)
    #: real next_page_tokens (the tenant's, another's) and tampered copies
    page_tokens: list[str] = dataclasses.field(default_factory=list)


def _ids(world: World, field: _descriptor.FieldDescriptor) -> st.SearchStrategy[str]:
    """Ids for an ``*_id`` field: real ones of the tenant (and another), well-formed
    unknown ones, and garbage."""
    prefix = {
        "post_id": ids.POST,
        "account_id": ids.ACCOUNT,
        "media_id": ids.MEDIA,
        "workspace_id": ids.WORKSPACE,
    }.get(field.name, ids.POST)
    real = {
        "post_id": world.post_ids + world.foreign_post_ids,
        "account_id": [world.tenant.account_id, world.other.account_id],
        "workspace_id": [world.tenant.workspace_id, "", world.other.workspace_id],
    }.get(field.name, [])
    pools = [st.sampled_from(world.odd_ids[prefix]), STRINGS]
    if real:
        pools.insert(0, st.sampled_from(real))
        pools.insert(0, st.sampled_from(real))  # weighs real ids up: they reach deeper code
    return st.one_of(*pools)


def _field_value(world: World, field: _descriptor.FieldDescriptor, depth: int):
    if field.type == field.TYPE_MESSAGE:
        full_name = field.message_type.full_name
        if full_name == "google.protobuf.Timestamp":
            return _timestamps()
        if full_name == "google.protobuf.FieldMask":
            return _field_masks(field.containing_type)
        return message_strategy(world, field.message_type, depth + 1)
    if field.type == field.TYPE_ENUM:
        return _enum(field)
    if field.type == field.TYPE_BOOL:
        return st.booleans()
    if field.type in (field.TYPE_INT32, field.TYPE_SINT32, field.TYPE_SFIXED32):
        return INT32
    if field.type in (field.TYPE_INT64, field.TYPE_SINT64, field.TYPE_SFIXED64):
        return INT64
    if field.type == field.TYPE_STRING:
        return _string_value(world, field)
    raise NotImplementedError(f"no strategy for {field.full_name} (type {field.type})")


def _string_value(world: World, field: _descriptor.FieldDescriptor):
    """Strings for ``field``: ids, etags and page tokens of the world, or URLs, mixed
    with arbitrary ones."""
    if field.name.endswith("_id"):
        return _ids(world, field)
    if field.name == "etag":
        return st.one_of(st.sampled_from(world.etags), STRINGS)
    if field.name == "page_token" and world.page_tokens:
        return st.one_of(st.sampled_from(world.page_tokens), STRINGS)
    if field.name == "url":
        return st.one_of(
            st.sampled_from(
                [
                    "https://cdn.example.com/a.png",
                    "http://127.0.0.1/x.mp4",
                    "ftp://x",
                    "https://",
                    "javascript:alert(1)",
                ]
            ),
            STRINGS,
        )
    return STRINGS


def message_strategy(
    world: World, message: _descriptor.Descriptor, depth: int = 0, template=None, change=None
):
    """A strategy for ``message``, filled field by field from its descriptor: each
    field left out or set (proto3 ``optional`` ones are then present even when empty).
    From a ``template``, each field is kept or, when ``change`` draws True, replaced."""

    change = st.booleans() if change is None else change

    @st.composite
    def build(draw):
        value = getattr(pb, message.name)()
        if template is not None:
            value.CopyFrom(template)
        for field in message.fields:
            if field.name == "workspace_id" and depth == 0:
                continue  # set by the caller: the tenant's, none, or another
            if not draw(change):
                continue
            value.ClearField(field.name)
            if template is not None and not draw(st.booleans()):
                continue  # left out
            strategy = _field_value(world, field, depth)
            if field.is_repeated:
                # Messages nest: keep their lists shorter, or one example takes megabytes.
                most = 200 if field.type != field.TYPE_MESSAGE else (40 if depth == 0 else 12)
                size = draw(st.sampled_from([0, 1, 2, 3, 17, most]))
                entries = draw(st.lists(strategy, min_size=min(size, 3), max_size=size))
                getattr(value, field.name).extend(entries)
            elif field.type == field.TYPE_MESSAGE:
                getattr(value, field.name).CopyFrom(draw(strategy))
            else:
                setattr(value, field.name, draw(strategy))
        return value

    return build()


def _templates(world: World) -> dict:
    """A valid request per RPC: mutating a few of its fields reaches past validation."""
    tenant = world.tenant
    return {
        "CreatePost": pb.CreatePostRequest(
            account_id=tenant.account_id,
            post_type=pb.POST_TYPE_TWEET,
            status=pb.STATUS_CHANGE_DRAFT,
            text="fuzzed",
        ),
        "GetPostStatus": pb.GetPostStatusRequest(post_id=world.post_ids[0]),
        "UpdatePost": pb.UpdatePostRequest(post_id=world.post_ids[0], text="edited"),
        "DeletePost": pb.DeletePostRequest(post_id=world.post_ids[-1]),
        "ListPosts": pb.ListPostsRequest(),
    }


def request_strategy(world: World, rpc: str):
    """Requests for ``rpc``: built from nothing, or a valid one with some fields fuzzed
    (and its post_id one of the tenant's). The workspace is mostly the tenant's."""
    method = SERVICE.methods_by_name[rpc]
    template = _templates(world).get(rpc)
    rarely = st.integers(0, 3).map(lambda n: n == 0)
    workspace = st.sampled_from(
        [world.tenant.workspace_id] * 3 + ["", world.other.workspace_id, ids.new(ids.WORKSPACE)]
    )
    from_scratch = message_strategy(world, method.input_type)
    from_template = (
        from_scratch
        if template is None
        else message_strategy(world, method.input_type, template=template, change=rarely)
    )

    @st.composite
    def build(draw):
        request = draw(st.one_of(from_scratch, from_template, from_template))
        request.workspace_id = draw(workspace)
        return request

    return build()


# ------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def world(server, api) -> World:
    """Two tenants with posts in several states (draft, scheduled, deleted), so fuzzed
    ids and etags name real rows."""

    def tenant(name: str) -> Tenant:
        workspace_id = admin.create_workspace(name)
        key = admin.create_api_key([workspace_id])
        account_id = admin.create_account(workspace_id, platform="x", handle=name, sandbox=True)
        return Tenant(workspace_id=workspace_id, key=key, account_id=account_id)

    main, other = tenant("fuzz"), tenant("other")
    draft = api.create(main, text="a draft")
    scheduled = api.create(
        main, text="later", status=pb.STATUS_CHANGE_SCHEDULED, scheduled_at=in_seconds(3600)
    )
    thread = api.create(
        main,
        post_type=pb.POST_TYPE_THREAD,
        items=[pb.PostItem(text="one"), pb.PostItem(text="two")],
    )
    deleted = api.delete(main, api.create(main, text="gone").post_id)
    foreign = api.create(other, text="not yours")
    tokens = [api.list(tenant, page_size=1).next_page_token for tenant in (main, other)]
    tokens += [api.list(main, page_size=1, show_deleted=True).next_page_token]
    tampered = [token[:-2] + token[-1] + token[-2] for token in tokens if len(token) > 2]
    tampered += [token[: len(token) // 2] for token in tokens] + [token * 2 for token in tokens]
    posts = [draft, scheduled, thread, deleted]
    odd_ids = {}
    for prefix in (ids.POST, ids.ACCOUNT, ids.MEDIA, ids.WORKSPACE):
        fresh = ids.new(prefix)
        odd_ids[prefix] = [
            fresh,
            ids.new(ids.WORKSPACE),
            ids.new(ids.ACCOUNT),
            ids.new(ids.POST),
            f"{prefix}_",
            f"{prefix}_0",
            f"{prefix}_{'Z' * 26}",
            f"{prefix}_{'8' * 26}",
            fresh.lower(),
            fresh.upper(),
            f"{fresh}\0",
            f" {fresh}",
            f"{fresh}x",
        ]
    return World(
        tenant=main,
        other=other,
        post_ids=[post.post_id for post in posts],
        foreign_post_ids=[foreign.post_id],
        etags=[post.etag for post in posts],
        odd_ids=odd_ids,
        page_tokens=[token for token in tokens + tampered if token],
    )


@pytest.fixture(scope="module", autouse=True)
def report_codes(request, server):
    """Prints, at the module's end, how many requests each RPC got and the codes seen."""
    yield
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    lines = [f"fuzz [{server.backend}] profile={PROFILE}"]
    for (backend, rpc), codes in sorted(SEEN.items()):
        if backend == server.backend:
            seen = ", ".join(f"{code}={count}" for code, count in codes.most_common())
            lines.append(f"  {rpc}: {sum(codes.values())} requests: {seen}")
    # Around pytest's capture, so the figures show on a passing run too.
    with capture.global_and_fixture_disabled():
        print("\n" + "\n".join(lines), flush=True)


# ------------------------------------------------------------------ tests


@pytest.mark.parametrize("rpc", RPCS)
def test_no_request_gets_an_unexpected_error(server, stub, channel, world, rpc):
    counts = SEEN[(server.backend, rpc)]
    method = getattr(stub, rpc)
    streaming = SERVICE.methods_by_name[rpc].server_streaming
    unexpected: list[str] = []

    @settings(settings.get_profile(PROFILE))
    @given(request=request_strategy(world, rpc))
    def send(request):
        try:
            if streaming:  # its first answer, or its refusal; open and waiting is OK
                answers = call(method, request, world.tenant.key, timeout=STREAM_WAIT)
                try:
                    next(answers, None)
                except grpc.RpcError as error:
                    if error.code() != grpc.StatusCode.DEADLINE_EXCEEDED:
                        raise
            else:
                call(method, request, world.tenant.key, timeout=DEFAULT_WAIT)
        except grpc.RpcError as error:
            failure = Failure.of(error)
            counts[f"{failure.code.name}/{failure.reason}"] += 1
            if failure.code not in DOMAIN_CODES:
                unexpected.append(f"{failure.code.name} {failure.reason}: {failure.message}")
            assert failure.code in DOMAIN_CODES, (failure, request)
            # A domain error says which one it is (ErrorInfo); gRPC's own size limit does not.
            assert failure.domain == "posts.v1" or failure.code in TRANSPORT_CODES, failure
        else:
            counts["OK"] += 1

    send()
    assert not unexpected
    assert sum(counts.values()) >= 1

    # The server is still up and still serves a plain read.
    health = health_pb2_grpc.HealthStub(channel).Check(
        health_pb2.HealthCheckRequest(service=""), timeout=DEFAULT_WAIT
    )
    assert health.status == health_pb2.HealthCheckResponse.SERVING
    read = call(
        stub.GetPostStatus,
        pb.GetPostStatusRequest(post_id=world.post_ids[0], workspace_id=world.tenant.workspace_id),
        world.tenant.key,
    )
    assert read.post.post_id == world.post_ids[0]

"""The servicer's own pieces, without a server: the GetPostStatus answer cache and
the limits every string of every request keeps to."""

from __future__ import annotations

import pytest

import service  # noqa: F401  (puts generated/ on the import path)
from service import posts
from service.servicer import AnswerCache, PostServicer, check_strings

# isort: split
from posts.v1 import posts_pb2 as pb

REQUESTS = [
    pb.CreatePostRequest,
    pb.GetPostStatusRequest,
    pb.UpdatePostRequest,
    pb.DeletePostRequest,
    pb.ListPostsRequest,
]


def answer(size: int) -> pb.GetPostStatusResponse:
    """An answer of about ``size`` encoded bytes."""
    return pb.GetPostStatusResponse(post=pb.Post(text="x" * size))


# ---------------------------------------------------------------- answer cache


def test_the_answer_cache_drops_the_least_recently_used_past_its_count():
    cache = AnswerCache(max_entries=3, max_bytes=1 << 20)
    for key in "abc":
        cache.put(key, answer(10))
    cache.get("a")  # used: b is now the least recent

    cache.put("d", answer(10))

    assert [cache.get(k) is not None for k in "abcd"] == [True, False, True, True]


def test_the_answer_cache_is_bounded_by_bytes_too():
    cache = AnswerCache(max_entries=4096, max_bytes=16_000)

    for n in range(100):
        cache.put(n, answer(900))

    assert cache.bytes <= 16_000
    assert 10 <= len(cache) < 100
    assert cache.get(99) is not None and cache.get(0) is None
    assert cache.bytes == sum(cache.get(k).ByteSize() for k in range(100) if cache.get(k))


def test_an_answer_over_a_sixteenth_of_the_cache_is_not_kept():
    cache = AnswerCache(max_entries=4096, max_bytes=16_000)
    cache.put("small", answer(100))

    cache.put("large", answer(1_100))

    assert cache.get("large") is None and cache.get("small") is not None


def test_the_servicer_keeps_at_most_16_mib_of_answers():
    cache = PostServicer(posts=None)._status_answers

    assert (cache.max_entries, cache.max_bytes) == (4096, 16 * 1024 * 1024)


# ------------------------------------------------------------- string limits


def fill(message, value: str, path: str = "", depth: int = 0) -> set[str]:
    """Sets every string field of ``message`` (one element of each repeated field,
    nested messages too) to ``value``; returns their paths."""
    paths = set()
    for field in message.DESCRIPTOR.fields:
        name = path + field.name
        if field.type == field.TYPE_STRING:
            if field.is_repeated:
                getattr(message, field.name).append(value)
                paths.add(f"{name}[0]")
            else:
                setattr(message, field.name, value)
                paths.add(name)
        elif field.type == field.TYPE_MESSAGE and depth < 5:
            if field.is_repeated:
                paths |= fill(getattr(message, field.name).add(), value, f"{name}[0].", depth + 1)
            else:
                paths |= fill(getattr(message, field.name), value, f"{name}.", depth + 1)
    return paths


@pytest.mark.parametrize("request_type", REQUESTS, ids=lambda t: t.__name__)
def test_a_nul_in_any_string_of_any_request_is_named(request_type):
    request = request_type()
    paths = fill(request, "a\0b")

    violations = check_strings(request)

    assert set(violations) == paths


@pytest.mark.parametrize("request_type", REQUESTS, ids=lambda t: t.__name__)
def test_every_id_of_any_request_is_at_most_64_characters(request_type):
    at, over = request_type(), request_type()
    paths = fill(at, "i" * posts.MAX_ID_LENGTH)
    fill(over, "i" * (posts.MAX_ID_LENGTH + 1))

    assert check_strings(at) == {}
    assert set(check_strings(over)) == {p for p in paths if p.endswith("_id")}

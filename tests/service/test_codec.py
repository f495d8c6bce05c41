"""service.codec: domain posts as protobuf messages."""

from __future__ import annotations

import datetime as dt
import random

from google.protobuf import timestamp_pb2

from service import codec


def test_a_time_becomes_the_timestamp_protobuf_makes_of_it():
    generator = random.Random(7)
    zones = [
        dt.UTC,
        dt.timezone(dt.timedelta(hours=5, minutes=30)),
        dt.timezone(-dt.timedelta(hours=8)),
        None,
    ]
    times = [
        dt.datetime(1970, 1, 1, tzinfo=dt.UTC),
        dt.datetime(1969, 12, 31, 23, 59, 59, 999_999, tzinfo=dt.UTC),
        dt.datetime(1, 1, 1, tzinfo=dt.UTC),
        dt.datetime(9999, 12, 31, 23, 59, 59, 999_999, tzinfo=dt.UTC),
    ] + [
        dt.datetime(1970, 1, 1) + dt.timedelta(microseconds=generator.randrange(-(10**16), 10**16))
        for _ in range(2000)
    ]
    for naive in times:
        for zone in zones:
            value = naive.replace(tzinfo=zone) if naive.tzinfo is None else naive
            expected = timestamp_pb2.Timestamp()
            expected.FromDatetime(value)
            assert codec.timestamp(value) == expected, value
    assert codec.timestamp(None) is None

"""Prefixed ULIDs: ``wks_…``, ``acc_…``, ``pst_…``, ``med_…``, ``key_…``."""

import re

from ulid import ULID

WORKSPACE = "wks"
ACCOUNT = "acc"
POST = "pst"
MEDIA = "med"
KEY = "key"


def new(prefix: str) -> str:
    """A fresh id with the given prefix, sortable by creation time."""
    return f"{prefix}_{ULID()}"


# What ULID.from_str accepts, without decoding it (a tenth of a cached read's
# time): 26 Crockford base32 characters, either case, the first at most 7.
_ULID = re.compile(r"[0-7][0-9A-HJKMNP-TV-Z]{25}", re.IGNORECASE | re.ASCII)


def is_valid(value: str, prefix: str) -> bool:
    """True when ``value`` is ``<prefix>_`` followed by a well-formed ULID."""
    head, sep, tail = value.partition("_")
    return head == prefix and bool(sep) and _ULID.fullmatch(tail) is not None

"""Prefixed ULIDs: ``wks_…``, ``acc_…``, ``pst_…``, ``med_…``, ``key_…``."""

from ulid import ULID

WORKSPACE = "wks"
ACCOUNT = "acc"
POST = "pst"
MEDIA = "med"
KEY = "key"


def new(prefix: str) -> str:
    """A fresh id with the given prefix, sortable by creation time."""
    return f"{prefix}_{ULID()}"


def is_valid(value: str, prefix: str) -> bool:
    """True when ``value`` is ``<prefix>_`` followed by a well-formed ULID."""
    head, sep, tail = value.partition("_")
    if head != prefix or not sep or len(tail) != 26:
        return False
    try:
        ULID.from_str(tail)
    except ValueError:
        return False
    return True

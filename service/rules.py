"""Platform rules: one table, one pure checker.

Every limit lives in ``RULES``, a dict per platform. ``check`` reads it and answers
``{field_path: description}`` for every broken rule. Pure: stdlib and ``regex`` only.

Media rules say how many media one item needs (``min``) and which mixes it may carry:
``one_of`` maps kinds to a maximum, and the item's media must fit one entry; kinds
joined with ``|`` may be mixed within that entry (``"image|video": 10``).
"""

from __future__ import annotations

import collections
import itertools
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from typing import Protocol

import regex

from service import platforms


class Media(Protocol):
    @property
    def kind(self) -> str: ...  # image, video, gif, document


class Item(Protocol):
    @property
    def text(self) -> str: ...
    @property
    def media(self) -> Sequence[Media]: ...


#: ``check``'s answer: {field path: description, or a tuple of them}.
Violations = dict[str, str | tuple[str, ...]]


X_MEDIA = {"min": 0, "one_of": {"image": 4, "video": 1, "gif": 1}}
ONE_PHOTO_OR_VIDEO = {"min": 1, "one_of": {"image|video": 1}}
ONE_VIDEO = {"min": 1, "one_of": {"video": 1}}

#: platform -> how text is counted, the text limit, an optional title limit (the title
#: is then required), an optional limit of hashtags per item, and per post type the
#: item count (min, max) and the media rule.
#: ``None`` means no rules beyond the service's general limits.
# Laid out by hand: one network per block, its limits on one line.
# fmt: off
RULES: dict[str, dict | None] = {
    "x": {
        "count": "weighted", "text": 280,
        "types": {
            "tweet": {"items": (1, 1), "media": X_MEDIA},
            "thread": {"items": (1, 25), "media": X_MEDIA},
        },
    },
    "instagram": {
        "count": "code points", "text": 2200, "hashtags": 30,
        "types": {
            "feed": {"items": (1, 1), "media": ONE_PHOTO_OR_VIDEO},
            "reel": {"items": (1, 1), "media": ONE_VIDEO},
            "story": {"items": (1, 1), "media": ONE_PHOTO_OR_VIDEO},
            "carousel": {"items": (1, 1), "media": {"min": 2, "one_of": {"image|video": 10}}},
        },
    },
    "linkedin": {
        "count": "code points", "text": 3000,
        "types": {
            "post": {
                "items": (1, 1),
                "media": {"min": 0, "one_of": {"image": 9, "video": 1, "document": 1}},
            },
            "document": {"items": (1, 1), "media": {"min": 1, "one_of": {"document": 1}}},
        },
    },
    "tiktok": {
        "count": "code points", "text": 2200,
        "types": {
            "video": {"items": (1, 1), "media": ONE_VIDEO},
            "photo": {"items": (1, 1), "media": {"min": 2, "one_of": {"image": 35}}},
        },
    },
    "youtube": {
        "count": "code points", "text": 5000, "title": 100,
        "types": {
            "video": {"items": (1, 1), "media": ONE_VIDEO},
            "short": {"items": (1, 1), "media": ONE_VIDEO},
        },
    },
    "bluesky": {
        "count": "graphemes", "text": 300,
        "types": {
            "post": {"items": (1, 1), "media": {"min": 0, "one_of": {"image": 4}}},
            "thread": {"items": (1, 25), "media": {"min": 0, "one_of": {"image": 4}}},
        },
    },
    "mastodon": {
        "count": "code points", "text": 500,
        "types": {
            "post": {"items": (1, 1), "media": {"min": 0, "one_of": {"image|video|gif": 4}}},
            "thread": {"items": (1, 25), "media": {"min": 0, "one_of": {"image|video|gif": 4}}},
        },
    },
    "webhook": None,
}
# fmt: on

# twitter-text v3: these code points weigh 1, all others 2; a URL weighs 23.
X_LIGHT_RANGES = ((0x0000, 0x10FF), (0x2000, 0x200D), (0x2010, 0x201F), (0x2032, 0x2037))
X_URL_LENGTH = 23
# URLs with a scheme, or bare hosts under common generic TLDs (as twitter-text links
# them); not glued to a word, an e-mail address or an @mention. This pattern defines
# them; ``_urls`` finds the same, in linear time: on "a.a.a.…" the pattern itself
# backtracks quadratically (0.2 s for 64 KiB).
_URL = regex.compile(
    r"(?<![\w@.\-/])(?:https?://[^\s<>\"]+"
    r"|(?:[a-z0-9](?:[a-z0-9\-]*[a-z0-9])?\.)+(?:com|org|net|edu|gov)\b(?:[/?#][^\s<>\"]*)?)",
    regex.IGNORECASE,
)
# Where a URL may start: a whole URL with a scheme (group 1), or a label, its dot
# and a TLD further on in the same run of host characters. Tried only where the
# look-behind lets a URL start, so each costs at most the run it reads, and no
# later start is inside that run.
_URL_START = regex.compile(
    r"(?<![\w@.\-/])(?:(https?://[^\s<>\"]+)"
    r"|[a-z0-9][a-z0-9\-]*\.[a-z0-9.\-]*?(?:com|org|net|edu|gov))",
    regex.IGNORECASE,
)
# Labels and their dots, possessive: dots alone say where a label ends, so giving
# one back can never make another match.
_LABELS = regex.compile(r"(?:[a-z0-9](?:[a-z0-9\-]*[a-z0-9])?\.)++", regex.IGNORECASE)
_TLD = regex.compile(r"(?:com|org|net|edu|gov)\b", regex.IGNORECASE)
_DOT_BEFORE_TLD = regex.compile(r"\.(?=(?:com|org|net|edu|gov)\b)", regex.IGNORECASE)
_URL_PATH = regex.compile(r"[/?#][^\s<>\"]*")
_URL_TRAILING = ".,:;!?'\")]}"
_GRAPHEME = regex.compile(r"\X")
_EMOJI_PART = regex.compile(r"[\p{Extended_Pictographic}\p{Regional_Indicator}\u20e3\ufe0f]")

# Regional indicators pair into flags counted from the start of their run, and the
# grapheme engine counts the run back for each one: quadratic on a long run (0.5 s
# for 64 KiB). A run is cut at every _RI_PIECE indicators (even: between two flags,
# where a cluster always ends) and each piece segmented alone, which finds the same
# clusters.
_RI_PIECE = 64
_RI = r"\p{Regional_Indicator}"
_LONG_RI_RUN = regex.compile(f"(?<!{_RI}){_RI}{{{_RI_PIECE + 1},}}")

# Code points whose canonical decomposition starts with a combining mark (a non-zero
# canonical combining class): what runs of marks are made of. unicodedata sorts a run
# by insertion, quadratic on marks out of order (1.1 s for 64 KiB); _nfc sorts long
# runs itself first. (Code points newer than unicodedata's tables only make a run
# longer, not wrong.)
_MARK_RUN_MIN = 32
_MARK = r"[\P{ccc=0}\u0f73\u0f75\u0f81]"
_LONG_MARK_RUN = regex.compile(f"(?<!{_MARK}){_MARK}{{{_MARK_RUN_MIN},}}")


def _nfc(text: str) -> str:
    """``unicodedata.normalize("NFC", text)``, in linear time."""
    if text.isascii():
        return text
    pieces, start = [], 0
    for run in _LONG_MARK_RUN.finditer(text):
        pieces.append(unicodedata.normalize("NFD", text[start : run.start()]))
        pieces.append(_ordered_marks(run.group()))
        start = run.end()
    if not pieces:
        return unicodedata.normalize("NFC", text)
    pieces.append(unicodedata.normalize("NFD", text[start:]))
    # Canonically equivalent to text, so the same NFC; what is left to sort is at most
    # the 3 marks a decomposed letter before a run ends with.
    return unicodedata.normalize("NFC", "".join(pieces))


class _Decompositions(dict):
    """Code point -> its canonical decomposition, for ``str.translate``, filled as met.
    Only the code points of runs of marks come here: at most a few thousand."""

    def __missing__(self, code: int) -> str:
        decomposed = self[code] = unicodedata.normalize("NFD", chr(code))
        return decomposed


_DECOMPOSITIONS = _Decompositions()


def _ordered_marks(run: str) -> str:
    """``run`` decomposed, each stretch of combining marks stably sorted by class: a
    canonically equivalent string in canonical order (O(n log n))."""
    combining = unicodedata.combining
    decomposed = run.translate(_DECOMPOSITIONS)
    if 0 not in map(combining, decomposed):
        return _sorted_by_class(decomposed)
    # Code points newer than unicodedata's tables count as starters there.
    return "".join(
        _sorted_by_class("".join(chars)) if marks else "".join(chars)
        for marks, chars in itertools.groupby(decomposed, key=lambda c: combining(c) != 0)
    )


# sorted() holds a one-character string per mark: a long run's do not fit in a
# core's cache, and its cost grew faster than its length in a full test run.
# Sorted a piece at a time, then merged by class, few are alive at once.
_SORT_PIECE = 512


def _sorted_by_class(marks: str) -> str:
    """``marks`` stably sorted by canonical combining class."""
    combining = unicodedata.combining
    by_class: dict[int, list[str]] = collections.defaultdict(list)
    for start in range(0, len(marks), _SORT_PIECE):
        piece = "".join(sorted(marks[start : start + _SORT_PIECE], key=combining))
        for ccc, chars in itertools.groupby(piece, key=combining):
            by_class[ccc].append("".join(chars))
    return "".join("".join(by_class[ccc]) for ccc in sorted(by_class))


def _pieces(text: str) -> Iterator[str]:
    """``text`` cut at cluster boundaries so that no piece holds a run of more than
    _RI_PIECE regional indicators: each piece segments as it does within the text."""
    start = 0
    for run in _LONG_RI_RUN.finditer(text):
        for cut in range(run.start() + _RI_PIECE, run.end(), _RI_PIECE):
            yield text[start:cut]
            start = cut
    yield text[start:] if start else text


def _graphemes(text: str) -> Iterator[str]:
    """The extended grapheme clusters of ``text`` (as ``\\X`` finds them), in linear time."""
    for piece in _pieces(text):
        yield from _GRAPHEME.findall(piece)


def _urls(text: str) -> Iterator[tuple[int, int]]:
    """(start, end) of every match ``_URL.finditer(text)`` makes, in linear time."""
    pos = 0
    while candidate := _URL_START.search(text, pos):
        start = candidate.start()
        if candidate.group(1):
            yield start, candidate.end()
            pos = candidate.end()
            continue
        end = _host_end(text, start)
        if end is None:
            pos = start + 1  # no URL starts inside the labels just read
            continue
        path = _URL_PATH.match(text, end)
        end = path.end() if path else end
        yield start, end
        pos = end


def _host_end(text: str, start: int) -> int | None:
    """Where ``_URL``'s bare host starting at ``start`` ends: after the last of its
    labels followed by a known TLD (the pattern backtracks to the longest); None
    when there is none."""
    labels = _LABELS.match(text, start)
    if labels is None:
        return None
    if _TLD.match(text, labels.end()):
        return labels.end() + 3
    last = collections.deque(_DOT_BEFORE_TLD.finditer(text, start, labels.end()), maxlen=1)
    return last[0].end() + 3 if last else None


def _x_weight(char: str) -> int:
    code = ord(char)
    return 1 if any(lo <= code <= hi for lo, hi in X_LIGHT_RANGES) else 2


# A code point that weighs 2 or may be part of an emoji cluster: a text without
# any weighs its length (most texts; walking the clusters is the slow part).
_X_NOT_PLAIN = regex.compile(
    "[^" + "".join(f"\\u{lo:04x}-\\u{hi:04x}" for lo, hi in X_LIGHT_RANGES) + "]"
    r"|[\p{Extended_Pictographic}\p{Regional_Indicator}]"
)


def _x_plain_length(text: str) -> int:
    """Weighted length of text without URLs."""
    return _x_cluster_length(text) if _X_NOT_PLAIN.search(text) else len(text)


def _x_cluster_length(text: str) -> int:
    """Weighted length, cluster by cluster: an emoji cluster weighs 2 in all."""
    total = 0
    for cluster in _graphemes(text):
        if len(cluster) > 1 and _EMOJI_PART.search(cluster):
            total += 2  # ZWJ family, skin tone, flag, keycap, emoji + VS16
        else:
            total += sum(_x_weight(c) for c in cluster)
    return total


def weighted_length_x(text: str) -> int:
    """Length of a tweet as twitter-text v3 weighs it (NFC; URL 23; emoji and most
    non-Latin characters 2; Latin, punctuation and the like 1)."""
    text = _nfc(text)
    total, start = 0, 0
    for url_start, url_end in _urls(text):
        url_end = url_start + len(text[url_start:url_end].rstrip(_URL_TRAILING))
        total += _x_plain_length(text[start:url_start]) + X_URL_LENGTH
        start = url_end
    return total + _x_plain_length(text[start:])


def grapheme_length(text: str) -> int:
    """Number of user-perceived characters (Unicode extended grapheme clusters)."""
    return sum(len(_GRAPHEME.findall(piece)) for piece in _pieces(text))


# A hashtag as Instagram counts them: # and a word, not glued to a word before it.
_HASHTAG = regex.compile(r"(?<![\w#])#\w+")


def hashtag_count(text: str) -> int:
    """The hashtags in ``text`` (``#tag``; ``a#b`` and ``##`` are none)."""
    return len(_HASHTAG.findall(text)) if "#" in text else 0


COUNTERS = {"weighted": weighted_length_x, "graphemes": grapheme_length, "code points": len}
UNITS = {"weighted": "weighted characters", "graphemes": "graphemes", "code points": "characters"}


def check(platform: str, post_type: str, title: str, items: Sequence[Item]) -> Violations:
    """Returns {field_path: description} for every broken rule; empty when the post is fine.
    Where several rules break at one path, its descriptions are a tuple, one per rule
    (``descriptions`` reads either form).

    Paths: ``title``, ``post_type``, ``items`` (item count), ``items[i]`` (empty item),
    ``items[i].text`` and ``items[i].media``. Raises ValueError for an unknown platform.
    """
    if platform not in RULES:
        raise ValueError(f"unknown platform {platform!r}")
    rules = RULES[platform]
    if rules is None:
        return {}
    violations: Violations = {}

    def add(path: str, description: str) -> None:
        old = violations.get(path)
        violations[path] = description if old is None else (*descriptions(old), description)

    title = title or ""
    if "title" in rules:
        if not title.strip():
            add("title", "required")
        elif len(title) > rules["title"]:
            add("title", f"{len(title)} characters; limit {rules['title']}")

    type_rules = rules["types"].get(post_type)
    if type_rules is None:
        add("post_type", platforms.wrong_type(platform, post_type, rules["types"]))
    else:
        low, high = type_rules["items"]
        if not low <= len(items) <= high:
            add("items", f"{len(items)} items; allowed: {_range(low, high)}")

    for i, item in enumerate(items):
        _check_item(f"items[{i}]", item, rules, type_rules, add)
    return violations


def _check_item(
    path: str, item: Item, rules: dict, type_rules: dict | None, add: Callable[[str, str], None]
) -> None:
    """``add``s each rule that ``item`` (at ``path``) breaks."""
    if not item.text.strip() and not item.media:
        add(path, "empty")
    count, limit = COUNTERS[rules["count"]], rules["text"]
    length = count(item.text)
    if length > limit:
        add(f"{path}.text", f"{length} {UNITS[rules['count']]}; limit {limit}")
    if "hashtags" in rules:
        tags = hashtag_count(item.text)
        if tags > rules["hashtags"]:
            add(f"{path}.text", f"{tags} hashtags; limit {rules['hashtags']}")
    if type_rules is not None and not _media_fits(item.media, type_rules["media"]):
        kinds = Counter(m.kind for m in item.media)
        have = ", ".join(_plural(n, k) for k, n in kinds.items()) or "no media"
        add(f"{path}.media", f"has {have}; allowed: {_allowed(type_rules['media'])}")


def descriptions(value: str | tuple[str, ...]) -> tuple[str, ...]:
    """The descriptions of one path of ``check``'s answer, one per broken rule."""
    return value if isinstance(value, tuple) else (value,)


def _media_fits(media: Sequence[Media], rule: dict) -> bool:
    """Whether the media meet the rule's minimum and fit one of its entries."""
    if len(media) < rule["min"]:
        return False
    if not media:
        return True
    kinds = {m.kind for m in media}
    return any(
        kinds <= set(entry.split("|")) and len(media) <= most
        for entry, most in rule["one_of"].items()
    )


def _allowed(rule: dict) -> str:
    """What a media rule allows, in words: "up to 4 images, or up to 1 video"."""
    return ", or ".join(
        f"{_range(min(rule['min'], most), most)} "
        + "/".join(k + ("s" if most > 1 else "") for k in entry.split("|"))
        for entry, most in rule["one_of"].items()
    )


def _range(low: int, high: int) -> str:
    if low == high:
        return f"exactly {high}"
    return f"up to {high}" if low == 0 else f"{low}–{high}"


def _plural(n: int, kind: str) -> str:
    return f"{n} {kind}{'s' if n != 1 else ''}"

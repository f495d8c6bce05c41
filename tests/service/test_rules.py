"""Platform rules (service/rules.py): limits at the boundary, X weighting, graphemes, media."""

import gc
import random
import sys
import time
import unicodedata
from dataclasses import dataclass

import pytest
import regex

from service import rules
from service.rules import check, grapheme_length, hashtag_count, weighted_length_x

FAMILY = "\U0001f468\u200d\U0001f469\u200d\U0001f467\u200d\U0001f466"  # man, woman, girl, boy
CJK = "\u4f60"  # 你
LONG_URL = "https://example.com/" + "a" * 280  # 300 characters


@dataclass
class Media:
    kind: str


@dataclass
class Item:
    text: str = ""
    media: tuple = ()


def item(text="", *kinds):
    return Item(text, tuple(Media(k) for k in kinds))


def n_of(count, kind):
    return (kind,) * count


# A valid shape for each platform's text tests: (platform, post_type, title, media kinds).
VALID = {
    "x": ("tweet", "", ()),
    "instagram": ("feed", "", ("image",)),
    "linkedin": ("post", "", ()),
    "tiktok": ("video", "", ("video",)),
    "youtube": ("video", "A title", ("video",)),
    "bluesky": ("post", "", ()),
    "mastodon": ("post", "", ()),
}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("hello", 5),
        ("a" * 280, 280),
        (LONG_URL, 23),
        ("see " + LONG_URL + " now", 4 + 23 + 4),
        ("example.com", 23),
        ("https://example.com/a.", 24),  # trailing full stop is not part of the URL
        ("me@example.com", 14),  # an e-mail address is not a URL
        (CJK, 2),
        (CJK * 140, 280),
        ("\u3042\ud55c", 4),  # hiragana, hangul
        ("\U0001f600", 2),  # 😀
        ("\u2764\ufe0f", 2),  # ❤️ with variation selector
        (FAMILY, 2),
        ("\U0001f44d\U0001f3fd", 2),  # thumbs up, skin tone
        ("\U0001f1fa\U0001f1f8", 2),  # flag
        ("1\ufe0f\u20e3", 2),  # keycap
        ("e\u0301", 1),  # NFC makes it one é
        ("\u201cquoted\u201d \u2014", 10),  # curly quotes and em dash weigh 1
        ("\u2026", 2),  # the ellipsis is outside twitter-text's light ranges
        ("\u00e9\u0416\u05d0", 3),  # Latin-1, Cyrillic, Hebrew weigh 1
        ("\u1000", 1),  # Myanmar KA: the light range runs on past U+0FFF
        ("\u1000\u102c\u109f", 3),  # Myanmar letter, vowel sign, last of the block
        ("\u10d0\u10ff", 2),  # Georgian; U+10FF is the last code point weighing 1
        ("\u1100", 2),  # Hangul jamo: the first code point past the range
        ("\u10ff\u1100", 3),
    ],
)
def test_weighted_length_x(text, expected):
    assert weighted_length_x(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("abc", 3),
        (FAMILY, 1),
        (FAMILY * 3, 3),
        ("\U0001f1fa\U0001f1f8", 1),
        ("e\u0301", 1),
        ("", 0),
    ],
)
def test_grapheme_length(text, expected):
    assert grapheme_length(text) == expected


def test_instagram_takes_at_most_30_hashtags():
    thirty = " ".join(f"#tag{n}" for n in range(30))
    assert check("instagram", "feed", "", [item(thirty, "image")]) == {}
    # Not hashtags: a # glued to a word, a doubled #, a # alone
    assert check("instagram", "feed", "", [item(thirty + " a#b ##c # x", "image")]) == {}
    assert hashtag_count(thirty + " a#b ##c # x") == 30
    violations = check("instagram", "feed", "", [item(thirty + " #one_more", "image")])
    assert violations == {"items[0].text": "31 hashtags; limit 30"}
    # Other networks count none
    assert check("tiktok", "video", "", [item(thirty + " #one_more", "video")]) == {}


def test_several_rules_broken_at_one_path_are_each_described():
    caption = " ".join(f"#t{n}" for n in range(31)).ljust(2201, "a")
    violations = check("instagram", "feed", "", [item(caption, "image")])
    assert violations == {"items[0].text": ("2201 characters; limit 2200", "31 hashtags; limit 30")}
    assert rules.descriptions(violations["items[0].text"]) == violations["items[0].text"]
    assert rules.descriptions("one") == ("one",)


@pytest.mark.parametrize(
    ("platform", "at_limit", "over_limit"),
    [
        ("x", "a" * 280, "a" * 281),
        ("x", CJK * 140, CJK * 141),
        ("x", "\u1000" * 280, "\u1000" * 281),  # Myanmar weighs 1
        ("x", "\u10ff" * 280, "\u10ff" * 279 + "\u1100"),
        ("x", "\U0001f600" * 140, "\U0001f600" * 140 + "a"),
        ("x", LONG_URL + " " + "a" * 256, LONG_URL + " " + "a" * 257),
        ("instagram", "a" * 2200, "a" * 2201),
        ("linkedin", "a" * 3000, "a" * 3001),
        ("tiktok", "a" * 2200, "a" * 2201),
        ("youtube", "a" * 5000, "a" * 5001),
        ("bluesky", "a" * 300, "a" * 301),
        ("bluesky", FAMILY * 300, FAMILY * 301),
        ("mastodon", "a" * 500, "a" * 501),
        ("mastodon", CJK * 500, CJK * 501),  # code points, not weights
    ],
)
def test_text_limit(platform, at_limit, over_limit):
    post_type, title, kinds = VALID[platform]
    assert check(platform, post_type, title, [item(at_limit, *kinds)]) == {}
    violations = check(platform, post_type, title, [item(over_limit, *kinds)])
    assert list(violations) == ["items[0].text"]


@pytest.mark.parametrize(
    ("platform", "post_type", "count", "ok"),
    [
        ("x", "tweet", 1, True),
        ("x", "tweet", 2, False),
        ("x", "tweet", 0, False),
        ("x", "thread", 1, True),
        ("x", "thread", 25, True),
        ("x", "thread", 26, False),
        ("x", "thread", 0, False),
        ("bluesky", "post", 2, False),
        ("bluesky", "thread", 25, True),
        ("bluesky", "thread", 26, False),
        ("mastodon", "post", 2, False),
        ("mastodon", "thread", 25, True),
        ("mastodon", "thread", 26, False),
        ("linkedin", "post", 2, False),
    ],
)
def test_item_count(platform, post_type, count, ok):
    violations = check(platform, post_type, "", [item("hi") for _ in range(count)])
    assert list(violations) == ([] if ok else ["items"])


@pytest.mark.parametrize(
    ("platform", "post_type", "kinds", "ok"),
    [
        ("x", "tweet", n_of(4, "image"), True),
        ("x", "tweet", n_of(5, "image"), False),
        ("x", "tweet", ("image", "video"), False),
        ("x", "tweet", ("image", "gif"), False),
        ("x", "tweet", ("video",), True),
        ("x", "tweet", n_of(2, "video"), False),
        ("x", "tweet", ("gif",), True),
        ("x", "tweet", n_of(2, "gif"), False),
        ("x", "tweet", ("document",), False),
        ("instagram", "feed", (), False),
        ("instagram", "feed", ("image",), True),
        ("instagram", "feed", ("video",), True),
        ("instagram", "feed", n_of(2, "image"), False),
        ("instagram", "reel", ("video",), True),
        ("instagram", "reel", ("image",), False),
        ("instagram", "story", (), False),
        ("instagram", "story", ("image",), True),
        ("instagram", "carousel", ("image",), False),
        ("instagram", "carousel", ("image", "video"), True),
        ("instagram", "carousel", n_of(10, "image"), True),
        ("instagram", "carousel", n_of(11, "image"), False),
        ("linkedin", "post", (), True),
        ("linkedin", "post", n_of(9, "image"), True),
        ("linkedin", "post", n_of(10, "image"), False),
        ("linkedin", "post", ("video",), True),
        ("linkedin", "post", ("document",), True),
        ("linkedin", "post", ("image", "document"), False),
        ("linkedin", "document", ("document",), True),
        ("linkedin", "document", (), False),
        ("linkedin", "document", ("image",), False),
        ("tiktok", "video", ("video",), True),
        ("tiktok", "video", (), False),
        ("tiktok", "video", n_of(2, "video"), False),
        ("tiktok", "photo", ("image",), False),
        ("tiktok", "photo", n_of(2, "image"), True),
        ("tiktok", "photo", n_of(35, "image"), True),
        ("tiktok", "photo", n_of(36, "image"), False),
        ("tiktok", "photo", ("image", "video"), False),
        ("youtube", "video", ("video",), True),
        ("youtube", "short", ("video",), True),
        ("youtube", "video", (), False),
        ("youtube", "video", ("image",), False),
        ("bluesky", "post", n_of(4, "image"), True),
        ("bluesky", "post", n_of(5, "image"), False),
        ("bluesky", "post", ("video",), False),
        ("mastodon", "post", ("image", "video", "gif", "image"), True),
        ("mastodon", "post", n_of(5, "image"), False),
    ],
)
def test_media(platform, post_type, kinds, ok):
    title = "A title" if platform == "youtube" else ""
    violations = check(platform, post_type, title, [item("hi", *kinds)])
    assert list(violations) == ([] if ok else ["items[0].media"])


def test_media_description():
    violations = check("x", "tweet", "", [item("", "image", "video")])
    assert violations == {
        "items[0].media": "has 1 image, 1 video; allowed: up to 4 images, or up to 1 video, "
        "or up to 1 gif"
    }


@pytest.mark.parametrize(
    ("title", "expected"),
    [
        ("", {"title": "required"}),
        ("   ", {"title": "required"}),
        ("t" * 100, {}),
        ("t" * 101, {"title": "101 characters; limit 100"}),
    ],
)
def test_youtube_title(title, expected):
    assert check("youtube", "video", title, [item("", "video")]) == expected


def test_title_is_ignored_elsewhere():
    assert check("x", "tweet", "t" * 500, [item("hi")]) == {}


@pytest.mark.parametrize("platform", list(VALID))
def test_empty_item(platform):
    post_type, title, _ = VALID[platform]
    violations = check(platform, post_type, title, [item("  ")])
    assert violations["items[0]"] == "empty"


def test_webhook_has_no_rules():
    assert check("webhook", "thread", "", [item(), item("a" * 100_000, *n_of(50, "image"))]) == {}


def test_several_broken_rules_give_several_violations():
    items = [item("a" * 281), item("hi", *n_of(5, "image"))] + [item("hi")] * 23 + [item()]
    violations = check("x", "thread", "", items)
    assert set(violations) == {"items", "items[0].text", "items[1].media", "items[25]"}
    assert violations["items"] == "26 items; allowed: 1–25"
    assert violations["items[0].text"] == "281 weighted characters; limit 280"

    violations = check("youtube", "video", "", [item("a" * 5001, "image")])
    assert set(violations) == {"title", "items[0].text", "items[0].media"}


def test_unknown_post_type_and_platform():
    assert check("x", "post", "", [item("hi")]) == {
        "post_type": "PLATFORM_X takes POST_TYPE_THREAD or POST_TYPE_TWEET, not POST_TYPE_POST"
    }
    with pytest.raises(ValueError):
        check("myspace", "post", "", [item("hi")])


def test_every_platform_has_a_rule_entry():
    assert set(rules.RULES) == {
        "x",
        "instagram",
        "linkedin",
        "tiktok",
        "youtube",
        "bluesky",
        "mastodon",
        "webhook",
    }


def test_plain_text_shortcut_weighs_as_the_cluster_walk():
    # Texts without a heavy or emoji code point skip the cluster walk; any text
    # must weigh the same either way. Alphabet: light, heavy, emoji and joiners.
    alphabet = "aZ1 .é\u0301\u2014\u2019©®\u20e3\ufe0f\u200d日😀👍🏽🇫🇷\n\u1000\u10ff\u1100"
    generator = random.Random(5)
    for _ in range(3000):
        text = "".join(generator.choice(alphabet) for _ in range(generator.randint(0, 12)))
        assert rules._x_plain_length(text) == rules._x_cluster_length(text), repr(text)


# ------------------------------------------------------- linear time on hostile text

KIB = 1024

#: Texts that made a check quadratic, at about ``size`` bytes of UTF-8.
HOSTILE = {
    "regional-indicators": lambda size: "\U0001f1fa" * (size // 4),
    "combining-marks-out-of-order": lambda size: (
        "a" + "\u0301" * (size // 4) + "\u0316" * (size // 4)
    ),
    "dotted-labels": lambda size: "a." * (size // 2),
}


def _cpu_seconds(function, *args) -> float:
    """The least CPU time of this thread over a few calls of ``function(*args)``.

    With the garbage collector paused: in the full suite the heap is large, and
    a collection that the bigger text's allocations happen to trigger costs in
    proportion to everything else alive (it made 64 KiB cost 9x 16 KiB once).
    """
    best = float("inf")
    gc.collect()
    gc.disable()
    try:
        for _ in range(5):
            started = time.thread_time()
            function(*args)
            best = min(best, time.thread_time() - started)
    finally:
        gc.enable()
    return best


@pytest.mark.parametrize("platform", ["x", "bluesky"])
@pytest.mark.parametrize("kind", list(HOSTILE))
def test_a_hostile_item_costs_linear_time(platform, kind):
    """Four times the text costs about four times the CPU (sixteen when quadratic).

    Robust on a busy machine: thread CPU time leaves out time other processes
    take; the least of five runs leaves out collections and cold caches; the two
    sizes are measured in turns, so a slower stretch of the run weighs on both;
    the bound, 8, sits halfway between linear (4, about 5 where a sort adds its
    log) and quadratic (16).
    """
    post_type, title, kinds = VALID[platform]
    small, large = (item(HOSTILE[kind](n * KIB), *kinds) for n in (16, 64))
    costs = {16: [], 64: []}
    for _ in range(2):
        for size, hostile in ((16, small), (64, large)):
            costs[size].append(_cpu_seconds(check, platform, post_type, title, [hostile]))

    ratio = min(costs[64]) / min(costs[16])

    assert ratio < 8, f"64 KiB cost {ratio:.1f}x 16 KiB ({costs})"


def test_urls_are_found_as_the_url_pattern_finds_them():
    alphabet = [
        "a",
        "Z",
        "h",
        ".",
        "-",
        "/",
        "@",
        " ",
        ":",
        "_",
        "1",
        "\n",
        '"',
        "<",
        "#",
        "?",
        "é",
        "\u212a",
        "\u017f",
        "http://",
        "https://",
        "com",
        "org",
        ".net",
        "gov",
        "x.com",
        "a-",
        "-a",
    ]
    generator = random.Random(11)
    for _ in range(20_000):
        text = "".join(generator.choice(alphabet) for _ in range(generator.randint(0, 14)))
        expected = [match.span() for match in rules._URL.finditer(text)]
        assert list(rules._urls(text)) == expected, repr(text)


def test_cutting_runs_of_regional_indicators_finds_the_same_clusters(monkeypatch):
    # Cuts every 2 indicators, so that short texts exercise them
    monkeypatch.setattr(rules, "_RI_PIECE", 2)
    monkeypatch.setattr(rules, "_LONG_RI_RUN", regex.compile(f"(?<!{rules._RI}){rules._RI}{{3,}}"))
    alphabet = [
        "\U0001f1fa",
        "\U0001f1f8",
        "a",
        "\u0301",
        "\u200d",
        "\U0001f600",
        "\u0600",
        "\u0903",
        "\n",
        "\r",
        "\u1100",
        "\u1161",
        "\u0915",
        "\u094d",
        "\ufe0f",
    ]
    generator = random.Random(12)
    for _ in range(20_000):
        text = "".join(generator.choice(alphabet) for _ in range(generator.randint(0, 16)))
        assert list(rules._graphemes(text)) == rules._GRAPHEME.findall(text), repr(text)


def test_sorting_runs_of_combining_marks_gives_the_same_nfc(monkeypatch):
    # Sorts every run of 2 marks or more, 3 marks a piece, so that short texts
    # exercise it; U+0897 is a mark newer than unicodedata's tables, which count it
    # as a starter
    monkeypatch.setattr(
        rules, "_LONG_MARK_RUN", regex.compile(f"(?<!{rules._MARK}){rules._MARK}{{2,}}")
    )
    monkeypatch.setattr(rules, "_SORT_PIECE", 3)
    alphabet = [
        "\u0301",
        "\u0316",
        "\u0308",
        "\u0344",
        "\u0f73",
        "\u0f71",
        "\u0f72",
        "\u0f80",
        "\u0f81",
        "\u05b0",
        "\u0327",
        "a",
        "e",
        "é",
        "\u01d8",
        "o",
        "\u031b",
        "\u0340",
        "\u1100",
        "\u1161",
        "\u0958",
        "\u093c",
        "\uac00",
        "\u11a8",
        "\u0897",
    ]
    generator = random.Random(13)
    for _ in range(20_000):
        text = "".join(generator.choice(alphabet) for _ in range(generator.randint(0, 12)))
        assert rules._nfc(text) == unicodedata.normalize("NFC", text), repr(text)


def test_every_code_point_that_decomposes_to_a_combining_mark_counts_as_one():
    # A run of marks _nfc does not see is left to unicodedata's quadratic sort
    mark = regex.compile(rules._MARK)
    missed = [
        f"U+{code:04X}"
        for code in range(sys.maxunicode + 1)
        if not 0xD800 <= code <= 0xDFFF
        and unicodedata.combining(unicodedata.normalize("NFD", chr(code))[0])
        and not mark.match(chr(code))
    ]
    assert missed == []

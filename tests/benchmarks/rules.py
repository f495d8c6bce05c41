"""Benchmark 5: what the platform rules cost on hostile items, by size.

Each kind of text that once made a rule check quadratic (a run of regional
indicators, a run of combining marks out of canonical order, dotted labels that
look like the start of a host name), and ordinary prose as the baseline, at 16,
32 and 64 KiB of UTF-8: ``service.rules.check`` on one item as X counts it
(weighted characters: NFC, URLs, clusters) and as Bluesky counts it
(graphemes). In this process, no server: CPU time of one check, the least of
``--repeat`` runs, sizes measured in turns. Linear cost doubles with the size
(×2 per doubling); quadratic cost quadruples (×4).

Target: ×2.5 or less per doubling for every row (linear, with room for the
sort of a run of marks, n log n).

    python -m tests.benchmarks.rules [--quick] [--repeat 7]
"""

from __future__ import annotations

import argparse
import itertools
import time

from tests.benchmarks.common import against_target, footer, header, render

KIB = 1024
SIZES = (16, 32, 64)

#: Texts of about ``size`` bytes of UTF-8.
KINDS = {
    "regional indicators": lambda size: "\U0001f1fa" * (size // 4),
    "combining marks out of order": lambda size: (
        "a" + "\u0301" * (size // 4) + "\u0316" * (size // 4)
    ),
    "dotted labels (a.a.a.…)": lambda size: "a." * (size // 2),
    "prose (baseline)": lambda size: "The quick brown fox jumps over the lazy dog. " * (size // 45),
}
#: platform -> (post type, title, media kinds) of an otherwise valid post.
PLATFORMS = {"x": ("tweet", "", ()), "bluesky": ("post", "", ())}
TARGET = 2.5


class _Media:
    def __init__(self, kind: str):
        self.kind = kind


class _Item:
    def __init__(self, text: str, kinds=()):
        self.text = text
        self.media = tuple(_Media(k) for k in kinds)


def cpu_seconds(function, *args, repeat: int) -> float:
    """The least CPU time of this thread over ``repeat`` calls of ``function(*args)``."""
    best = float("inf")
    for _ in range(repeat):
        started = time.thread_time()
        function(*args)
        best = min(best, time.thread_time() - started)
    return best


def run(args) -> None:
    from service import rules

    t0 = header("Platform rules on hostile items (linear time)")
    rows, worst = [], 0.0
    for kind, make in KINDS.items():
        texts = {size: make(size * KIB) for size in SIZES}
        for platform, (post_type, title, kinds) in PLATFORMS.items():
            costs = {size: float("inf") for size in SIZES}
            for _ in range(args.rounds):  # sizes in turns: a slow stretch weighs on all
                for size in SIZES:
                    item = [_Item(texts[size], kinds)]
                    spent = cpu_seconds(
                        rules.check, platform, post_type, title, item, repeat=args.repeat
                    )
                    costs[size] = min(costs[size], spent)
            growth = [costs[b] / costs[a] for a, b in itertools.pairwise(SIZES)]
            if not kind.endswith("(baseline)"):
                worst = max(worst, *growth)
            rows.append(
                [
                    kind,
                    platform,
                    *(f"{costs[size] * 1000:.2f}" for size in SIZES),
                    *(f"×{g:.2f}" for g in growth),
                ]
            )
    print()
    print(
        render(
            ["text", "counted as", *(f"{s} KiB (ms)" for s in SIZES), "32/16 KiB", "64/32 KiB"],
            rows,
        )
    )
    print()
    print(
        f"- CPU ms of one `rules.check` on one item, least of {args.repeat} runs × "
        f"{args.rounds} rounds; linear cost grows ×2 per doubling, quadratic ×4"
    )
    versus = against_target(f"×{worst:.2f} at worst", f"×{TARGET} or less", worst <= TARGET)
    print(f"- cost per doubling of the text: {versus}")
    footer(t0)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="fewer runs per size")
    p.add_argument("--repeat", type=int, default=None, help="runs per size and round (7)")
    p.add_argument("--rounds", type=int, default=3, help="rounds over the sizes")
    p.add_argument("--keep", action="store_true", help="(no scratch directory to keep)")
    return p


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    if args.repeat is None:
        args.repeat = 3 if args.quick else 7
    run(args)


if __name__ == "__main__":
    main()

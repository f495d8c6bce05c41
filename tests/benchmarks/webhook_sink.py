"""The local webhook consumer (tests.fakes.webhook.FakeWebhook) in a process of its own.

Prints its base URL on the first stdout line, serves until SIGTERM, then prints
one JSON line: how many requests it took and how many items went live.

    python -m tests.benchmarks.webhook_sink SECRET
"""

from __future__ import annotations

import json
import signal
import sys
import threading

from tests.fakes.webhook import FakeWebhook


def main() -> None:
    secret = sys.argv[1]
    sink = FakeWebhook(secret).start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    print(sink.base_url, flush=True)
    stop.wait()
    sink.stop()
    with sink.lock:
        print(json.dumps({"requests": len(sink.requests), "live": len(sink.live)}), flush=True)


if __name__ == "__main__":
    main()

"""``python -m service``: the one place in ``service/`` that names ``workers/``.

The entry point is where the server and its delivery side meet: ``serve`` gets
the in-process worker (and the broker it sends to) from ``workers.inprocess``.
Every other module here stays free of the workers (tests/test_layers.py).
"""

import sys

from service.cli import main
from workers.inprocess import wire

sys.exit(main(wire=wire))

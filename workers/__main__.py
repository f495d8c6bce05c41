"""``python -m workers``: the Dramatiq worker processes (same as ``dramatiq workers.broker:setup``).

With POSTS_METRICS_LISTEN, Dramatiq's Prometheus middleware serves the metrics
of every worker process there (its exposition process reads the files they all
write): the environment naming the files and the address is set here, before
Dramatiq starts any process.
"""

import os
import sys

from dramatiq.cli import main

from service import metrics
from service.config import Config, ConfigError

try:
    listen = Config.from_env().metrics_listen
except ConfigError as error:
    sys.exit(f"error: {error}")
if listen:
    host, _, port = listen.rpartition(":")
    os.environ.update(dramatiq_prom_db=metrics.prepare(), dramatiq_prom_host=host.strip("[]"),
                      dramatiq_prom_port=port)  # fmt: skip
sys.argv = ["dramatiq", "workers.broker:setup", *sys.argv[1:]]
sys.exit(main())

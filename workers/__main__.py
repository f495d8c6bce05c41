"""``python -m workers``: the Dramatiq worker processes (same as ``dramatiq workers.broker:setup``).

It checks first what each worker process would need, so that a missing
POSTS_BROKER_URL, a schema behind or a wrong secret key is one line and exit
code 2, not a worker that waits on an in-memory broker nobody sends to.

With POSTS_METRICS_LISTEN, Dramatiq's Prometheus middleware serves the metrics
of every worker process there (its exposition process reads the files they all
write): the environment naming the files and the address is set here, before
Dramatiq starts any process.
"""

import os
import sys

from dramatiq.cli import main

from service import db, metrics
from service.config import Config, ConfigError
from workers import broker

try:
    config = Config.from_env()
    broker.check(config)
except ConfigError as error:
    print(f"error: {error}", file=sys.stderr)
    sys.exit(2)
except db.SETUP_ERRORS as error:  # the database out of reach or not set up: one line
    problem = db.setup_problem(error)
    if problem is None:
        raise
    print(f"error: {problem}", file=sys.stderr)
    sys.exit(2)
finally:
    db.close()  # the worker processes are forked: none may share this one's connections

if config.metrics_listen:
    host, port = metrics.address(config.metrics_listen)
    os.environ.update(
        dramatiq_prom_db=metrics.prepare(), dramatiq_prom_host=host, dramatiq_prom_port=str(port)
    )
sys.argv = ["dramatiq", "workers.broker:setup", *sys.argv[1:]]
sys.exit(main())

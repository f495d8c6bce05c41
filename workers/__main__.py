"""``python -m workers``: the Dramatiq worker processes (same as ``dramatiq workers.broker:setup``).

It checks first what each worker process would need, so that a missing
POSTS_BROKER_URL, a schema behind or a wrong secret key is one line and exit
code 2, not a worker that waits on an in-memory broker nobody sends to.
"""

import sys

from dramatiq.cli import main

from service import db
from service.config import Config, ConfigError
from workers import broker

try:
    broker.check(Config.from_env())
except ConfigError as error:
    print(f"error: {error}", file=sys.stderr)
    sys.exit(2)
finally:
    db.close()  # the worker processes are forked: none may share this one's connections

sys.argv = ["dramatiq", "workers.broker:setup", *sys.argv[1:]]
sys.exit(main())

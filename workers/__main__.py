"""``python -m workers``: the Dramatiq worker processes (same as ``dramatiq workers.broker:setup``)."""

import sys

from dramatiq.cli import main

sys.argv = ["dramatiq", "workers.broker:setup", *sys.argv[1:]]
sys.exit(main())

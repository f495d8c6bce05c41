"""``python -m workers``: the Dramatiq worker processes (same as ``dramatiq workers``)."""

import sys

from dramatiq.cli import main

sys.argv = ["dramatiq", "workers", *sys.argv[1:]]
sys.exit(main())

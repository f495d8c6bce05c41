"""Delivery workers: ``python -m workers`` (or ``dramatiq workers.broker:setup``) runs them."""

import service  # noqa: F401  (puts generated/ on the import path)

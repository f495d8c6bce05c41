"""Delivery workers: ``dramatiq workers`` (or ``python -m workers``) finds the actors here."""

import service  # noqa: F401  (puts generated/ on the import path)
from workers import actors  # noqa: F401  (declares the actors, after configuring the broker)

"""Network adapters, one module per network (``workers/adapters/<platform>.py``),
each exporting ``Adapter``, a class implementing workers.adapters.base.Adapter."""

from __future__ import annotations

import importlib

from workers.adapters.base import AccountRef, Adapter
from workers.adapters.sandbox import SandboxAdapter


def adapter_class(platform: str) -> type[Adapter] | None:
    """The adapter class of a real network; None when it has none yet."""
    try:
        module = importlib.import_module(f"workers.adapters.{platform}")
    except ModuleNotFoundError:
        return None
    return getattr(module, "Adapter", None)


def adapter_for(account: AccountRef, sandbox: bool) -> Adapter | None:
    """The adapter delivering for ``account``; None when its network has none yet."""
    if sandbox:
        return SandboxAdapter(account)
    adapter = adapter_class(account.platform)
    return adapter(account) if adapter else None

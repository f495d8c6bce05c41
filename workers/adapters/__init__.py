"""Network adapters, one module each, behind workers.adapters.base.Adapter."""

from __future__ import annotations

from workers.adapters.base import AccountRef, Adapter
from workers.adapters.sandbox import SandboxAdapter

#: Real networks with an adapter, by platform name (more join in issue 3).
ADAPTERS: dict[str, type] = {}


def adapter_for(account: AccountRef, sandbox: bool) -> Adapter | None:
    """The adapter delivering for ``account``; None when its network has none yet."""
    if sandbox:
        return SandboxAdapter(account)
    adapter = ADAPTERS.get(account.platform)
    return adapter(account) if adapter else None

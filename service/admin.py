"""Provisioning: workspaces, API keys and accounts (``python -m service admin …``)."""

from __future__ import annotations

from service import auth, crypto, db, ids, platforms
from service.crypto import hash_secret
from service.models import Account, ApiKey, ApiKeyGrant, Workspace


class AdminError(ValueError):
    """A provisioning request that cannot be carried out."""


def create_workspace(name: str) -> str:
    """Makes a workspace; returns its id."""
    if not name.strip():
        raise AdminError("a workspace needs a name")
    with db.connection(), db.write():
        return Workspace.create(id=ids.new(ids.WORKSPACE), name=name, created_at=db.utcnow()).id


def create_api_key(workspace_ids: list[str]) -> str:
    """Makes an API key granting ``workspace_ids``; returns its secret (shown once)."""
    if not workspace_ids:
        raise AdminError("a key needs at least one workspace")
    key_id = ids.new(ids.KEY)
    secret = auth.new_key_secret(key_id)
    with db.connection(), db.write():
        for workspace_id in workspace_ids:
            if not Workspace.get_or_none(Workspace.id == workspace_id):
                raise AdminError(f"no workspace {workspace_id}")
        ApiKey.create(id=key_id, secret_hash=hash_secret(secret), created_at=db.utcnow())
        for workspace_id in dict.fromkeys(workspace_ids):
            ApiKeyGrant.create(api_key=key_id, workspace=workspace_id)
    return secret


def create_account(
    workspace_id: str,
    platform: str = "x",
    handle: str = "demo",
    base_url: str | None = None,
    token: str | None = None,
    sandbox: bool = True,
) -> str:
    """Connects a network identity to a workspace; returns the account id.

    ``token`` (the network credentials) is stored encrypted.
    """
    platform = platform.lower()
    if platform not in platforms.PLATFORMS:
        raise AdminError(f"unknown platform {platform!r}: one of {', '.join(platforms.PLATFORMS)}")
    if not handle.strip():
        raise AdminError("an account needs a handle")
    credentials = crypto.keyring().encrypt(token) if token else ""
    with db.connection(), db.write():
        if not Workspace.get_or_none(Workspace.id == workspace_id):
            raise AdminError(f"no workspace {workspace_id}")
        return Account.create(
            id=ids.new(ids.ACCOUNT),
            workspace=workspace_id,
            platform=platform,
            handle=handle,
            base_url=base_url or "",
            credentials=credentials,
            sandbox=sandbox,
            created_at=db.utcnow(),
        ).id


def ensure_demo() -> tuple[str, str]:
    """The demo workspace and its sandbox X account, made on first use and reused after."""
    with db.connection():
        workspace = Workspace.get_or_none(Workspace.name == "demo")
        account = None
        if workspace:
            account = Account.get_or_none(
                (Account.workspace == workspace.id) & (Account.sandbox == True)
            )
    workspace_id = workspace.id if workspace else create_workspace("demo")
    account_id = account.id if account else create_account(
        workspace_id, "x", "demo", sandbox=True
    )
    return workspace_id, account_id

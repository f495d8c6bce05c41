"""The command line: ``python -m service serve | migrate | demo | admin …``.

Each ``create`` prints the new id (for a key, its secret) alone on stdout.
"""

from __future__ import annotations

import argparse
import logging
import pathlib
import shutil
import sys

from service import admin, crypto, db, migrations, platforms
from service.config import Config, ConfigError
from service.server import Wire


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m service", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the gRPC server (SIGTERM drains)")
    serve.add_argument("--processes", type=int, default=1,
                       help="server processes sharing the port (needs POSTS_BROKER_URL)")
    commands.add_parser("migrate", help="apply the pending schema migrations")
    commands.add_parser(
        "demo", help="provision the demo workspace, account and a fresh key; print grpcurl lines"
    )
    admin_cmd = commands.add_parser("admin", help="provision workspaces, keys and accounts")
    things = admin_cmd.add_subparsers(dest="thing", required=True)
    workspace = things.add_parser("workspace").add_subparsers(dest="action", required=True)
    workspace.add_parser("create").add_argument("name")
    key = things.add_parser("key").add_subparsers(dest="action", required=True)
    key.add_parser("create").add_argument("--workspace", action="append", required=True)
    account = things.add_parser("account").add_subparsers(dest="action", required=True)
    create = account.add_parser("create")
    create.add_argument("--workspace", required=True)
    create.add_argument("--platform", required=True, choices=platforms.PLATFORMS)
    create.add_argument("--handle", required=True)
    create.add_argument("--base-url", default=None)
    create.add_argument("--token", default=None, help="network credentials (stored encrypted)")
    create.add_argument("--sandbox", action="store_true", help="simulate deliveries")
    return parser


def main(argv: list[str] | None = None, *, wire: Wire) -> int:
    """Runs one command; ``serve`` sets up its delivery side with ``wire``."""
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    try:
        config = Config.from_env()
        db.init(config)
        crypto.configure(config)
        if args.command not in ("migrate",) and migrations.pending():
            raise ConfigError("the database schema is behind: run `python -m service migrate`")
        if args.command == "serve":
            from service.server import serve, serve_processes

            if args.processes > 1:
                serve_processes(config, args.processes, wire)
            else:
                serve(config, wire)
            return 0
        if args.command == "migrate":
            applied = migrations.migrate()
            print(f"schema at version {migrations.current_version()}"
                  f" (applied: {', '.join(map(str, applied)) or 'none'})", file=sys.stderr)  # fmt: skip
        elif args.command == "demo":
            print(_demo(config))
        elif args.thing == "workspace":
            print(admin.create_workspace(args.name))
        elif args.thing == "key":
            print(admin.create_api_key(args.workspace))
        else:
            print(admin.create_account(args.workspace, args.platform, args.handle,
                                       base_url=args.base_url, token=args.token,
                                       sandbox=args.sandbox))  # fmt: skip
    except (ConfigError, admin.AdminError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


def _demo(config: Config) -> str:
    """The demo's ids and a fresh key, as grpcurl lines that work when pasted."""
    workspace_id, account_id = admin.ensure_demo()
    secret = admin.create_api_key([workspace_id])
    # An absolute path: the lines are pasted into another shell, maybe elsewhere.
    beside = pathlib.Path(sys.executable).parent / "grpcurl"
    grpcurl = str(beside) if beside.exists() else shutil.which("grpcurl") or "grpcurl"
    host = config.listen
    call = f'{grpcurl} -plaintext -H "authorization: Bearer $KEY"'
    pick = "python3 -c 'import json,sys; print(json.load(sys.stdin)[\"post\"][\"post_id\"])'"
    svc = "posts.v1.PostService"
    return f"""
# The service is starting on {host}. In another shell, paste these lines:
KEY='{secret}'; WKS='{workspace_id}'; ACC='{account_id}'
{grpcurl} -plaintext {host} list

# A draft, published, then read back:
POST=$({call} -d '{{"workspaceId": "'$WKS'", "accountId": "'$ACC'", "postType": "POST_TYPE_TWEET", "text": "Hello from the demo", "status": "STATUS_CHANGE_DRAFT"}}' {host} {svc}/CreatePost | {pick}); echo $POST
{call} -d '{{"workspaceId": "'$WKS'", "postId": "'$POST'", "status": "STATUS_CHANGE_PUBLISH"}}' {host} {svc}/UpdatePost
{call} -d '{{"workspaceId": "'$WKS'", "postId": "'$POST'"}}' {host} {svc}/GetPostStatus

# A post scheduled an hour ahead, rescheduled to two hours ahead, then cancelled:
LATER=$(python3 -c 'import datetime as d; print((d.datetime.now(d.timezone.utc)+d.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ"))')
SCHED=$({call} -d '{{"workspaceId": "'$WKS'", "accountId": "'$ACC'", "postType": "POST_TYPE_TWEET", "text": "Later", "status": "STATUS_CHANGE_SCHEDULED", "scheduledAt": "'$LATER'"}}' {host} {svc}/CreatePost | {pick}); echo $SCHED
EVEN_LATER=$(python3 -c 'import datetime as d; print((d.datetime.now(d.timezone.utc)+d.timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%SZ"))')
{call} -d '{{"workspaceId": "'$WKS'", "postId": "'$SCHED'", "scheduledAt": "'$EVEN_LATER'"}}' {host} {svc}/UpdatePost
{call} -d '{{"workspaceId": "'$WKS'", "postId": "'$SCHED'", "status": "STATUS_CHANGE_CANCELLED"}}' {host} {svc}/UpdatePost
"""

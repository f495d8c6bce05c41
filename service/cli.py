"""The command line: ``python -m service serve | migrate | demo | admin …``.

Each ``create`` prints the new id (for a key, its secret) alone on stdout.
"""

from __future__ import annotations

import argparse
import getpass
import os
import pathlib
import shutil
import signal
import sys

from service import admin, crypto, db, logs, migrations, platforms
from service.config import Config, ConfigError
from service.server import Wire

#: The secrets ``account create`` takes, each as --NAME VALUE, --NAME - (stdin) or
#: --NAME-file PATH: the access token, and what renews it where it expires.
SECRETS = {
    "token": "credentials",
    "refresh-token": "refresh token",
    "client-id": "OAuth client id",
    "client-secret": "OAuth client secret",
}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m service", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the gRPC server (SIGTERM drains)")
    serve.add_argument(
        "--processes",
        type=int,
        default=1,
        help="server processes sharing the port (needs POSTS_BROKER_URL)",
    )
    commands.add_parser("migrate", help="apply the pending schema migrations")
    commands.add_parser(
        "demo", help="provision the demo workspace, account and a fresh key; print grpcurl lines"
    )
    admin_cmd = commands.add_parser("admin", help="provision workspaces, keys and accounts")
    things = admin_cmd.add_subparsers(dest="thing", required=True)
    workspace = things.add_parser("workspace").add_subparsers(dest="action", required=True)
    workspace.add_parser("create").add_argument("name")
    key = things.add_parser("key").add_subparsers(dest="action", required=True)
    key_create = key.add_parser("create", help="print a new key's secret (shown once)")
    key_create.add_argument("--workspace", action="append", required=True)
    key_create.add_argument(
        "--expires",
        metavar="WHEN",
        help="an ISO 8601 time (UTC unless it has an offset) or a duration: 30d, 12h, 90m",
    )
    key.add_parser("list", help="a workspace's keys (never their secrets)").add_argument(
        "--workspace", required=True
    )
    key.add_parser("revoke", help="every server refuses the key within a second").add_argument(
        "key_id"
    )
    account = things.add_parser("account").add_subparsers(dest="action", required=True)
    create = account.add_parser("create")
    create.add_argument("--workspace", required=True)
    create.add_argument("--platform", required=True, choices=platforms.PLATFORMS)
    create.add_argument("--handle", required=True)
    create.add_argument(
        "--base-url",
        default=None,
        help="where the network is reached (its API, instance, PDS, or the "
        "webhook's URL); a real account needs it and a token",
    )
    for name, what in SECRETS.items():
        given = create.add_mutually_exclusive_group()
        given.add_argument(
            f"--{name}-file",
            metavar="PATH",
            help=f"read the network {what} (stored encrypted) from PATH",
        )
        given.add_argument(
            f"--{name}",
            metavar="VALUE",
            default=None,
            help=f"'-': read the {what} from stdin; a VALUE itself shows in the "
            f"process list and shell history, so prefer - or --{name}-file",
        )
    create.add_argument("--sandbox", action="store_true", help="simulate deliveries")
    secrets = things.add_parser("secrets").add_subparsers(dest="action", required=True)
    secrets.add_parser(
        "rotate", help="encrypt every stored secret again with POSTS_SECRET_KEY's first key"
    )
    return parser


def main(argv: list[str] | None = None, *, wire: Wire) -> int:
    """Runs one command; ``serve`` sets up its delivery side with ``wire``."""
    args = _parser().parse_args(argv)
    logs.setup()
    try:
        config = Config.from_env()
        logs.use_format(config.log_format)
        db.init(config)
        crypto.configure(config)
        if args.command != "migrate":
            admin.check_database(config)
        return _run(args, config, wire)
    except (ConfigError, admin.AdminError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # The reader went away (`admin key list | head`): end as a shell tool ends
        # on SIGPIPE, with nothing more written to the closed pipe at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 128 + signal.SIGPIPE
    except db.SETUP_ERRORS as error:
        problem = db.setup_problem(error)
        if problem is None:
            raise
        print(f"error: {problem}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace, config: Config, wire: Wire) -> int:
    """The command itself, on a database already opened and checked."""
    if args.command == "serve":
        from service.server import serve, serve_processes

        if args.processes > 1:
            return serve_processes(config, args.processes, wire)
        serve(config, wire)
    elif args.command == "migrate":
        applied = migrations.migrate()
        print(
            f"schema at version {migrations.current_version()}"
            f" (applied: {', '.join(map(str, applied)) or 'none'})",
            file=sys.stderr,
        )
    elif args.command == "demo":
        print(_demo(config))
    elif args.thing == "workspace":
        print(admin.create_workspace(args.name))
    elif args.thing == "key":
        _key(args)
    elif args.thing == "secrets":
        accounts, subscriptions = admin.rotate_secrets()
        print(
            f"re-encrypted the credentials of {accounts} account(s) and the signing secrets"
            f" of {subscriptions} webhook subscription(s) with the first secret key"
        )
    else:
        given = _secrets(args)
        print(
            admin.create_account(
                args.workspace,
                args.platform,
                args.handle,
                base_url=args.base_url,
                token=given["token"],
                refresh_token=given["refresh-token"],
                client_id=given["client-id"],
                client_secret=given["client-secret"],
                sandbox=args.sandbox,
            )
        )
    return 0


def _key(args: argparse.Namespace) -> None:
    if args.action == "create":
        expires = admin.parse_expiry(args.expires, db.utcnow()) if args.expires else None
        print(admin.create_api_key(args.workspace, expires))
    elif args.action == "list":
        rows = [("ID", "PREFIX", "CREATED", "LAST USED", "EXPIRES", "REVOKED")]
        for key in admin.list_api_keys(args.workspace):
            rows.append(
                (
                    key.id,
                    key.prefix,
                    admin.iso_utc(key.created_at),
                    _when(key.last_used_at, "never"),
                    _when(key.expires_at, "never"),
                    _when(key.revoked_at, "-"),
                )
            )
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        for row in rows:
            print(
                "  ".join(
                    cell.ljust(width) for cell, width in zip(row, widths, strict=True)
                ).rstrip()
            )
    else:
        when, fresh = admin.revoke_api_key(args.key_id)
        print(
            f"{args.key_id} {'revoked' if fresh else 'was already revoked'} at"
            f" {admin.iso_utc(when)}"
        )


def _when(value, otherwise: str) -> str:
    return admin.iso_utc(value) if value else otherwise


def _secrets(args: argparse.Namespace) -> dict[str, str | None]:
    """Each of SECRETS as given: from its file, from stdin (``-``; one of them at
    most) or as a value, without surrounding whitespace (the newline a file or
    echo ends with); None when not given."""
    from_stdin = [f"--{name}" for name in SECRETS if _arg(args, name) == "-"]
    if len(from_stdin) > 1:
        raise admin.AdminError(
            f"{' and '.join(from_stdin)} both read stdin: give all but one of them with --…-file"
        )
    return {name: _secret(args, name) for name in SECRETS}


def _arg(args: argparse.Namespace, name: str) -> str | None:
    return getattr(args, name.replace("-", "_"))


def _secret(args: argparse.Namespace, name: str) -> str | None:
    path = _arg(args, f"{name}-file")
    if path:
        try:
            text = pathlib.Path(path).read_text().strip()
        except OSError as error:
            raise admin.AdminError(f"--{name}-file {path}: {error.strerror}") from None
        if not text:
            raise admin.AdminError(f"--{name}-file {path} is empty")
        return text
    value = _arg(args, name)
    if value == "-":
        # At a terminal, not echoed; piped, read whole.
        value = (getpass.getpass(f"{name}: ") if sys.stdin.isatty() else sys.stdin.read()).strip()
        if not value:
            raise admin.AdminError(f"--{name} -: no {SECRETS[name]} on stdin")
        return value
    return value


def _demo(config: Config) -> str:
    """The demo's ids and a fresh key, as grpcurl lines that work when pasted."""
    workspace_id, account_id = admin.ensure_demo()
    secret = admin.create_api_key([workspace_id])
    # An absolute path: the lines are pasted into another shell, maybe elsewhere.
    beside = pathlib.Path(sys.executable).parent / "grpcurl"
    grpcurl = str(beside) if beside.exists() else shutil.which("grpcurl") or "grpcurl"
    host = config.listen
    call = f'{grpcurl} -plaintext -H "authorization: Bearer $KEY"'
    pick = 'python3 -c \'import json,sys; print(json.load(sys.stdin)["post"]["post_id"])\''
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

"""The ``docwiz`` command: serve, worker, migrate, users, plugins."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import logging
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from docwiz import __version__
from docwiz.config import ConfigError, Settings, load_settings
from docwiz.logs import configure_logging
from docwiz.plugins import PluginError

logger = logging.getLogger("docwiz.cli")


class CommandError(Exception):
    """A command cannot run; printed as one line, exit status 2."""


# -- serve ---------------------------------------------------------------------


def cmd_serve(args: argparse.Namespace) -> int:
    from aiohttp import web

    from docwiz.app import create_app
    from docwiz.logs import AccessLogger

    overrides: dict[str, Any] = {}
    if args.host is not None:
        overrides["host"] = args.host
    if args.port is not None:
        overrides["port"] = args.port
    settings = load_settings(**overrides)
    configure_logging(settings.log_level)
    app = create_app(settings)
    web.run_app(
        app,
        host=settings.host,
        port=settings.port,
        access_log_class=AccessLogger,
        access_log=logging.getLogger("docwiz.access"),
        shutdown_timeout=settings.shutdown_timeout,
        print=lambda message: logger.info("%s", message.strip()),
    )
    return 0


# -- worker --------------------------------------------------------------------


def cmd_worker(args: argparse.Namespace) -> int:
    from docwiz.tasks.worker import run_worker

    settings = load_settings()
    configure_logging(settings.log_level)
    if settings.mode != "scale-out":
        raise CommandError(
            "the embedded mode runs tasks inside `docwiz serve`; "
            "a worker needs DOCWIZ_MODE=scale-out and DOCWIZ_REDIS_URL"
        )
    asyncio.run(run_worker(settings))
    return 0


# -- migrate -------------------------------------------------------------------


async def _migrate(settings: Settings) -> str | None:
    from docwiz.db import migrate
    from docwiz.db.session import Database

    database = Database(settings.resolved_database_url)
    try:
        await migrate.upgrade(database)
        return await migrate.current_revision(database)
    finally:
        await database.dispose()


def cmd_migrate(args: argparse.Namespace) -> int:
    settings = load_settings()
    configure_logging("WARNING")
    revision = asyncio.run(_migrate(settings))
    print(f"database schema at revision {revision}")
    return 0


# -- users ---------------------------------------------------------------------


def _read_password(confirm: bool = True) -> str:
    if not sys.stdin.isatty():
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            raise CommandError("no password on standard input")
        return password
    password = getpass.getpass("Password: ")
    if confirm and getpass.getpass("Repeat password: ") != password:
        raise CommandError("the passwords differ")
    return password


async def _create_user(
    settings: Settings, email: str, password: str, admin: bool
) -> str:
    from docwiz.db import migrate
    from docwiz.db.session import Database
    from docwiz.services.accounts import AccountError, create_user

    database = Database(settings.resolved_database_url)
    try:
        if settings.mode == "embedded":
            await migrate.upgrade(database)
        async with database.session() as session:
            try:
                user = await create_user(session, email, password, is_admin=admin)
            except AccountError as exc:
                raise CommandError(str(exc)) from None
            return f"{user.id} {user.email}{' (admin)' if user.is_admin else ''}"
    finally:
        await database.dispose()


def cmd_users_create(args: argparse.Namespace) -> int:
    settings = load_settings()
    configure_logging("WARNING")
    password = _read_password()
    print(
        "created user",
        asyncio.run(_create_user(settings, args.email, password, args.admin)),
    )
    return 0


# -- plugins -------------------------------------------------------------------


def cmd_plugins(args: argparse.Namespace) -> int:
    from docwiz.facade import FAMILY_SETTINGS, describe_plugins
    from docwiz.plugins import load_plugins

    settings = load_settings()
    configure_logging("WARNING")
    pm = load_plugins(allow=settings.plugins_allow, block=settings.plugins_block)
    active = {family: getattr(settings, key) for family, key in FAMILY_SETTINGS.items()}
    rows = describe_plugins(pm, active)
    if args.json:
        print(json.dumps({"plugins": rows, "active": active}, indent=2))
        return 0
    for row in rows:
        version = row["version"] or "unknown version"
        print(f"{row['name']} {version} ({row['source']})")
        print(f"  hooks: {', '.join(row['hooks']) or 'none'}")
        for provider in row["providers"]:
            mark = "  [active]" if provider["active"] else ""
            print(f"  {provider['family']}: {provider['name']}{mark}")
    print("active providers:")
    for family, name in active.items():
        print(f"  {family}: {name or '(none configured)'}")
    return 0


# -- entry point ---------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="docwiz",
        description="DocWiz service: previews, cost estimates and claim paperwork.",
    )
    parser.add_argument("--version", action="version", version=f"docwiz {__version__}")
    parser.add_argument("--config", help="a docwiz.toml file (sets DOCWIZ_CONFIG)")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="run the HTTP service")
    serve.add_argument("--host", help="address to listen on (DOCWIZ_HOST)")
    serve.add_argument("--port", type=int, help="port to listen on (DOCWIZ_PORT)")
    serve.set_defaults(run=cmd_serve)

    worker = commands.add_parser("worker", help="run background tasks (scale-out mode)")
    worker.set_defaults(run=cmd_worker)

    migrate = commands.add_parser("migrate", help="apply database migrations")
    migrate.set_defaults(run=cmd_migrate)

    users = commands.add_parser("users", help="manage user accounts")
    user_commands = users.add_subparsers(dest="users_command", required=True)
    create = user_commands.add_parser(
        "create", help="create an account; the password is read from a prompt or stdin"
    )
    create.add_argument("email")
    create.add_argument("--admin", action="store_true", help="make it an administrator")
    create.set_defaults(run=cmd_users_create)

    plugins = commands.add_parser("plugins", help="list plugins and active providers")
    plugins.add_argument("--json", action="store_true", help="print JSON")
    plugins.set_defaults(run=cmd_plugins)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.config:
        os.environ["DOCWIZ_CONFIG"] = args.config
    run: Callable[[argparse.Namespace], int] = args.run
    try:
        return run(args)
    except (ConfigError, PluginError, CommandError) as exc:
        print(f"docwiz: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())

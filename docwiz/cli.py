"""The ``docwiz`` command: serve, worker, migrate, users, plugins, keys, audit
and cases."""

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
    from docwiz.app import create_app
    from docwiz.server import serve

    overrides: dict[str, Any] = {}
    if args.host is not None:
        overrides["host"] = args.host
    if args.port is not None:
        overrides["port"] = args.port
    settings = load_settings(**overrides)
    configure_logging(settings.log_level)
    asyncio.run(serve(create_app(settings), settings))
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


# -- keys ----------------------------------------------------------------------


async def _rotate_keys(settings: Settings) -> str:
    from docwiz.config import resolve_secrets
    from docwiz.db import migrate
    from docwiz.db.session import Database
    from docwiz.security.fields import (
        FieldCipher,
        UndecryptableField,
        rotate_encrypted_columns,
    )

    cipher = FieldCipher(resolve_secrets(settings).encryption_keys)
    database = Database(settings.resolved_database_url)
    try:
        if settings.mode == "embedded":
            await migrate.upgrade(database)
        try:
            report = await rotate_encrypted_columns(database, cipher)
        except UndecryptableField:
            raise CommandError(
                "a stored value opens with none of the configured keys; list the "
                "new key first and keep the old ones after it until rotation ends"
            ) from None
        return (
            f"re-encrypted {report.values} values in {report.columns} columns "
            "with the first key"
        )
    finally:
        await database.dispose()


def cmd_keys_rotate(args: argparse.Namespace) -> int:
    settings = load_settings()
    configure_logging("WARNING")
    print(asyncio.run(_rotate_keys(settings)))
    return 0


def cmd_keys_generate(args: argparse.Namespace) -> int:
    from cryptography.fernet import Fernet

    print(Fernet.generate_key().decode())
    return 0


# -- audit ---------------------------------------------------------------------


async def _audit_events(
    settings: Settings, args: argparse.Namespace
) -> list[dict[str, Any]]:
    from docwiz.db import migrate
    from docwiz.db.session import Database
    from docwiz.services.audit import AuditFilter, list_events

    filters = AuditFilter(
        user_id=args.user,
        patient_id=args.patient,
        action=args.action,
        since=args.since,
    )
    database = Database(settings.resolved_database_url)
    try:
        if settings.mode == "embedded":
            await migrate.upgrade(database)
        async with database.session() as session:
            events = await list_events(session, filters, limit=args.limit)
        return [
            {
                "id": event.id,
                "occurred_at": event.occurred_at.isoformat(),
                "user_id": event.user_id,
                "action": event.action,
                "resource_type": event.resource_type,
                "resource_id": event.resource_id,
                "patient_id": event.patient_id,
                "outcome": event.outcome,
                "request_id": event.request_id,
                "client_address": event.client_address,
            }
            for event in events
        ]
    finally:
        await database.dispose()


def _utc_time(text: str) -> Any:
    from datetime import UTC, datetime

    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 time: {text!r}") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _event_count(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 10_000:
        raise argparse.ArgumentTypeError("a number from 1 to 10000")
    return int(text)


def cmd_audit(args: argparse.Namespace) -> int:
    settings = load_settings()
    configure_logging("WARNING")
    events = asyncio.run(_audit_events(settings, args))
    if args.json:
        print(json.dumps(events, indent=2))
        return 0
    for event in events:
        print(
            f"{event['occurred_at']}  {event['user_id'] or '-'}  {event['action']}  "
            f"{event['resource_type']}:{event['resource_id'] or '-'}  "
            f"patient={event['patient_id'] or '-'}  {event['outcome']}  "
            f"request={event['request_id'] or '-'}"
        )
    return 0


# -- cases ---------------------------------------------------------------------


async def _import_cases(settings: Settings, source: str) -> Any:
    from pathlib import Path

    from docwiz.config import resolve_secrets
    from docwiz.db import migrate
    from docwiz.db.session import Database
    from docwiz.facade import Providers
    from docwiz.plugins import load_plugins
    from docwiz.services.cases import CaseImportError, import_cases
    from docwiz.services.catalog import Catalog, CatalogError

    try:
        catalog = Catalog.load()
    except CatalogError as exc:
        raise CommandError(str(exc)) from None
    pm = load_plugins(allow=settings.plugins_allow, block=settings.plugins_block)
    providers = Providers(pm, settings, resolve_secrets(settings).jwt_secret)
    database = Database(settings.resolved_database_url)
    try:
        if settings.mode == "embedded":
            await migrate.upgrade(database)
        return await import_cases(
            database,
            providers.storage,
            catalog,
            Path(source),
            max_bytes=settings.max_upload_bytes,
        )
    except CaseImportError as exc:
        problems = "\n  ".join(exc.problems)
        raise CommandError(f"nothing was imported:\n  {problems}") from None
    finally:
        await database.dispose()
        await providers.close()


def cmd_cases_import(args: argparse.Namespace) -> int:
    settings = load_settings()
    configure_logging("WARNING")
    report = asyncio.run(_import_cases(settings, args.directory))
    for warning in report.warnings:
        print(f"warning: {warning}")
    print(
        f"imported {report.imported} cases (batch {report.batch}) "
        f"in {report.seconds:.1f} s"
    )
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

    cases = commands.add_parser("cases", help="the similar-case library")
    case_commands = cases.add_subparsers(dest="cases_command", required=True)
    case_import = case_commands.add_parser(
        "import",
        help="import anonymized cases: a folder with cases.csv and the photos it "
        "names (see seeds/cases/README.md); all or nothing",
    )
    case_import.add_argument("directory", help="the folder (or its CSV file)")
    case_import.set_defaults(run=cmd_cases_import)

    plugins = commands.add_parser("plugins", help="list plugins and active providers")
    plugins.add_argument("--json", action="store_true", help="print JSON")
    plugins.set_defaults(run=cmd_plugins)

    keys = commands.add_parser("keys", help="field encryption keys")
    key_commands = keys.add_subparsers(dest="keys_command", required=True)
    rotate = key_commands.add_parser(
        "rotate",
        help="re-encrypt every encrypted field with the first configured key",
    )
    rotate.set_defaults(run=cmd_keys_rotate)
    generate = key_commands.add_parser("generate", help="print a new Fernet key")
    generate.set_defaults(run=cmd_keys_generate)

    audit = commands.add_parser("audit", help="read the audit trail, newest first")
    audit.add_argument("--user", help="only events of this user id")
    audit.add_argument("--patient", help="only events about this patient (profile id)")
    audit.add_argument("--action", help="only this action, e.g. profile.read")
    audit.add_argument("--since", type=_utc_time, help="ISO 8601 time (UTC if no zone)")
    audit.add_argument(
        "--limit", type=_event_count, default=50, help="at most N events (1-10000)"
    )
    audit.add_argument("--json", action="store_true", help="print JSON")
    audit.set_defaults(run=cmd_audit)
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

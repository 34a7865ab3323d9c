"""The application factory: one place that assembles the service."""

from __future__ import annotations

import asyncio
import importlib
import logging
import re
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from datetime import timedelta

import pluggy
from aiohttp import web

from docwiz.api.auth import accounts_ctx
from docwiz.api.routing import AUTHENTICATOR, RouteTable
from docwiz.appkeys import (
    BROKER,
    CATALOG,
    DATABASE,
    FIELD_CIPHER,
    IMAGE_SLOTS,
    PLUGIN_MANAGER,
    PROVIDERS,
    SECRETS,
    SETTINGS,
    TOKENS,
    CatalogHolder,
)
from docwiz.appkeys import REQUEST_ID as REQUEST_ID_KEY
from docwiz.auth_context import authenticate
from docwiz.config import ConfigError, Settings, resolve_secrets
from docwiz.db import migrate
from docwiz.db.session import Database
from docwiz.errors import ApiError, error_response
from docwiz.facade import Providers, ProviderUnavailable
from docwiz.logs import REQUEST_ID
from docwiz.plugins import load_plugins
from docwiz.providers import GenerationRefused, GeneratorFailed, GeneratorTimeout
from docwiz.ratelimit import install_rate_limits
from docwiz.security.fields import FieldCipher
from docwiz.security.tokens import TokenService
from docwiz.server import install_in_flight_tracking
from docwiz.services.catalog import Catalog, CatalogError
from docwiz.tasks.broker import make_broker
from docwiz.tasks.jobs import register_tasks

logger = logging.getLogger("docwiz.server")

# Every API area: a module exposing ``routes: RouteTable``.
API_MODULES: tuple[str, ...] = (
    "docwiz.api.system",
    "docwiz.api.files",
    "docwiz.api.images",
    "docwiz.api.procedures",
    "docwiz.api.auth",
    "docwiz.api.profiles",
    "docwiz.api.audit",
    "docwiz.api.visualizations",
)

_REQUEST_ID_PATTERN = re.compile(r"^[A-Za-z0-9._-]{8,64}$")

HandlerT = Callable[[web.Request], Awaitable[web.StreamResponse]]


def route_tables() -> list[RouteTable]:
    return [importlib.import_module(name).routes for name in API_MODULES]


def _request_id(request: web.Request) -> str:
    offered = request.headers.get("X-Request-ID", "")
    if _REQUEST_ID_PATTERN.match(offered):
        return offered
    return secrets.token_hex(12)


def _http_exception_detail(request: web.Request, exc: web.HTTPException) -> str:
    if isinstance(exc, web.HTTPNotFound):
        return "The requested resource was not found"
    if isinstance(exc, web.HTTPMethodNotAllowed):
        allowed = ", ".join(sorted(exc.allowed_methods))
        return f"Method {request.method} is not allowed here (allowed: {allowed})"
    if isinstance(exc, web.HTTPRequestEntityTooLarge):
        return "The request body is too large"
    return exc.reason


@web.middleware
async def errors_middleware(
    request: web.Request, handler: HandlerT
) -> web.StreamResponse:
    """Give the request its id and turn every failure into the one error body."""
    request_id = _request_id(request)
    request[REQUEST_ID_KEY] = request_id
    token = REQUEST_ID.set(request_id)
    try:
        return await handler(request)
    except ApiError as exc:
        return error_response(
            exc.status,
            exc.detail,
            request_id=request_id,
            code=exc.code,
            errors=exc.errors,
            headers=exc.headers,
        )
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        headers = {
            k: v for k, v in exc.headers.items() if k in ("Allow", "Retry-After")
        }
        return error_response(
            exc.status,
            _http_exception_detail(request, exc),
            request_id=request_id,
            headers=headers,
        )
    except ProviderUnavailable as exc:
        return error_response(503, str(exc), request_id=request_id)
    except GenerationRefused as exc:
        return error_response(
            400, str(exc), request_id=request_id, code="generation_refused"
        )
    except GeneratorTimeout as exc:
        return error_response(504, str(exc), request_id=request_id)
    except GeneratorFailed as exc:
        return error_response(502, str(exc), request_id=request_id)
    except (asyncio.CancelledError, ConnectionResetError):
        raise
    except Exception:
        logger.exception(
            "unhandled error in %s %s", request.method, request.rel_url.path
        )
        return error_response(500, "Internal server error", request_id=request_id)
    finally:
        REQUEST_ID.reset(token)


async def _add_request_id(request: web.Request, response: web.StreamResponse) -> None:
    response.headers.setdefault("X-Request-ID", request.get(REQUEST_ID_KEY, "-"))


def install_http_plumbing(app: web.Application) -> None:
    """The error body, request ids and in-flight counting, for the service
    and for test apps."""
    install_in_flight_tracking(app)
    app.middlewares.append(errors_middleware)
    app.on_response_prepare.append(_add_request_id)


async def _database_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    db = Database(settings.resolved_database_url)
    try:
        if settings.mode == "embedded":
            await migrate.upgrade(db)
        else:
            await _require_current_schema(db)
        app[DATABASE] = db
        if settings.admin_email and settings.admin_password:
            await _ensure_admin(app)
        yield
    finally:
        await db.dispose()


async def _require_current_schema(db: Database) -> None:
    current = await migrate.current_revision(db)
    head = migrate.head_revision()
    if current != head:
        raise ConfigError(
            f"the database schema is at {current or 'nothing'}, not {head}: "
            "run `docwiz migrate` first"
        )


async def _ensure_admin(app: web.Application) -> None:
    from docwiz.services.accounts import ensure_admin

    settings = app[SETTINGS]
    assert settings.admin_email and settings.admin_password
    async with app[DATABASE].session() as session:
        await ensure_admin(
            session, settings.admin_email, settings.admin_password.get_secret_value()
        )


async def _providers_ctx(app: web.Application) -> AsyncIterator[None]:
    try:
        yield
    finally:
        await app[PROVIDERS].close()


async def _broker_ctx(app: web.Application) -> AsyncIterator[None]:
    broker = make_broker(app[SETTINGS])
    register_tasks(broker)
    await broker.startup()
    app[BROKER] = broker
    try:
        yield
    finally:
        await broker.shutdown()


def _load_catalog(settings: Settings) -> CatalogHolder:
    path = settings.seeds_dir / "procedures.json"
    try:
        return CatalogHolder(Catalog.load(path), path)
    except CatalogError as exc:
        raise ConfigError(str(exc)) from None


def create_app(
    settings: Settings,
    *,
    plugin_manager: pluggy.PluginManager | None = None,
    extra_plugins: Iterable[tuple[str, object]] = (),
) -> web.Application:
    """Build the service for ``settings``; plugins load before anything opens."""
    pm = plugin_manager or load_plugins(
        allow=settings.plugins_allow,
        block=settings.plugins_block,
        extra=extra_plugins,
    )
    app = web.Application(client_max_size=settings.max_upload_bytes + 64 * 1024)
    install_http_plumbing(app)
    install_rate_limits(app)
    app[SETTINGS] = settings
    app[PLUGIN_MANAGER] = pm
    app[SECRETS] = resolve_secrets(settings)
    app[FIELD_CIPHER] = FieldCipher(app[SECRETS].encryption_keys)
    app[TOKENS] = TokenService(
        app[SECRETS].jwt_secret, timedelta(minutes=settings.token_ttl_minutes)
    )
    app[PROVIDERS] = Providers(pm, settings, app[SECRETS].jwt_secret)
    app[AUTHENTICATOR] = authenticate
    app[CATALOG] = _load_catalog(settings)
    app[IMAGE_SLOTS] = asyncio.Semaphore(settings.image_workers)

    app.cleanup_ctx.append(_database_ctx)
    app.cleanup_ctx.append(accounts_ctx)
    app.cleanup_ctx.append(_providers_ctx)
    app.cleanup_ctx.append(_broker_ctx)

    for table in route_tables():
        table.add_to(app)
    return app

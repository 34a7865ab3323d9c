"""Typed keys for the state the application shares between requests."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pluggy
from aiohttp import web
from taskiq import AsyncBroker

from docwiz.config import Secrets, Settings
from docwiz.db.session import Database
from docwiz.facade import Providers
from docwiz.security.tokens import TokenService
from docwiz.services.catalog import Catalog


@dataclass
class CatalogHolder:
    """The catalog being served; replaced whole when an admin reloads it."""

    current: Catalog
    path: Path | None = None


SETTINGS = web.AppKey("settings", Settings)
SECRETS = web.AppKey("secrets", Secrets)
PLUGIN_MANAGER = web.AppKey("plugin_manager", pluggy.PluginManager)
DATABASE = web.AppKey("database", Database)
PROVIDERS = web.AppKey("providers", Providers)
TOKENS = web.AppKey("tokens", TokenService)
BROKER = web.AppKey("broker", AsyncBroker)
CATALOG = web.AppKey("catalog", CatalogHolder)


# Per-request state set by the middleware and the authenticator.
REQUEST_ID = web.RequestKey("request_id", str)

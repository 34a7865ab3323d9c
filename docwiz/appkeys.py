"""Typed keys for the state the application shares between requests."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

import pluggy
from aiohttp import web
from taskiq import AsyncBroker

from docwiz.config import Secrets, Settings
from docwiz.db.session import Database
from docwiz.facade import Providers
from docwiz.security.fields import FieldCipher
from docwiz.security.revocation import RevocationList
from docwiz.security.tokens import TokenService
from docwiz.services.catalog import Catalog
from docwiz.services.ratelimit import Quota, RateLimiter


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
RATE_LIMITER = web.AppKey("rate_limiter", RateLimiter)
REVOCATIONS = web.AppKey("revocations", RevocationList)
FIELD_CIPHER = web.AppKey("field_cipher", FieldCipher)
IMAGE_SLOTS = web.AppKey("image_slots", asyncio.Semaphore)


# Per-request state set by the middleware and the authenticator.
REQUEST_ID = web.RequestKey("request_id", str)
RATE_QUOTA = web.RequestKey("rate_quota", Quota)

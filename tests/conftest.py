"""Shared fixtures: isolated settings, a running app, users with tokens."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from docwiz.app import create_app
from docwiz.appkeys import DATABASE, TOKENS
from docwiz.config import Settings
from docwiz.services.accounts import create_user

FIXTURES = Path(__file__).parent / "fixtures"
DEFAULT_PASSWORD = "Correct-Horse-42"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "var")


@pytest.fixture
def make_client(
    aiohttp_client: Callable[..., Awaitable[TestClient[Any, Any]]],
) -> Callable[..., Awaitable[TestClient[Any, Any]]]:
    async def make(settings: Settings, **options: Any) -> TestClient[Any, Any]:
        return await aiohttp_client(create_app(settings, **options))

    return make


@pytest.fixture
async def client(
    make_client: Callable[..., Awaitable[TestClient[Any, Any]]], settings: Settings
) -> TestClient[Any, Any]:
    return await make_client(settings)


@dataclass
class Account:
    id: str
    email: str
    password: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@pytest.fixture
def make_account(
    client: TestClient[Any, Any],
) -> Callable[..., Awaitable[Account]]:
    """Create a user straight in the database and hand back a valid token."""
    counter = 0

    async def make(*, admin: bool = False, email: str | None = None) -> Account:
        nonlocal counter
        counter += 1
        app: web.Application = client.app
        address = email or f"patient{counter}@example.com"
        async with app[DATABASE].session() as session:
            user = await create_user(session, address, DEFAULT_PASSWORD, is_admin=admin)
        token, _claims = app[TOKENS].issue(user.id)
        return Account(user.id, user.email, DEFAULT_PASSWORD, token)

    return make


@pytest.fixture
async def account(make_account: Callable[..., Awaitable[Account]]) -> Account:
    return await make_account()


@pytest.fixture
async def admin(make_account: Callable[..., Awaitable[Account]]) -> Account:
    return await make_account(admin=True, email="admin@example.com")

"""Scale-out accounts against a real Redis: revocations and rate-limit counters
shared by every service process."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from cryptography.fernet import Fernet
from redis.asyncio import Redis
from sqlalchemy import func, select

from docwiz.appkeys import DATABASE, RATE_LIMITER, REVOCATIONS, TOKENS
from docwiz.config import Settings
from docwiz.db import migrate
from docwiz.db.models_accounts import RevokedToken
from docwiz.db.session import Database
from docwiz.security.revocation import RedisRevocationList
from docwiz.services.ratelimit import RedisRateLimiter
from docwiz.testing.servers import redis_server

pytestmark = pytest.mark.integration

PASSWORD = "Sturdy-Password-9"
MakeClient = Callable[..., Awaitable[TestClient[Any, Any]]]


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    with redis_server() as url:
        yield url


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url)
    await client.flushdb()
    yield client
    await client.aclose()


@pytest.fixture
async def scale_out(tmp_path: Path, redis_url: str, redis: Redis) -> Settings:
    """Scale-out settings; SQLite stands in for PostgreSQL, Redis is real."""
    settings = Settings(
        mode="scale-out",
        data_dir=tmp_path / "var",
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'shared.db'}",
        redis_url=redis_url,
        jwt_secret="j" * 48,
        encryption_keys=Fernet.generate_key().decode(),
        rate_limit_per_hour=5,
        login_failures_per_email=2,
    )
    database = Database(settings.resolved_database_url)
    await migrate.upgrade(database)
    await database.dispose()
    return settings


async def token_of(client: TestClient[Any, Any], email: str) -> str:
    await client.post("/api/auth/register", json={"email": email, "password": PASSWORD})
    response = await client.post(
        "/api/auth/login", json={"email": email, "password": PASSWORD}
    )
    assert response.status == 200, await response.text()
    token: str = (await response.json())["access_token"]
    return token


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_scale_out_uses_the_redis_implementations(
    make_client: MakeClient, scale_out: Settings
) -> None:
    client = await make_client(scale_out)

    assert isinstance(client.app[REVOCATIONS], RedisRevocationList)
    assert isinstance(client.app[RATE_LIMITER], RedisRateLimiter)


async def test_logout_on_one_process_is_refused_by_another(
    make_client: MakeClient, scale_out: Settings, redis: Redis
) -> None:
    first, second = await make_client(scale_out), await make_client(scale_out)
    token = await token_of(first, "shared@example.com")
    claims = first.app[TOKENS].decode(token)

    logout = await first.post("/api/auth/logout", headers=bearer(token))
    elsewhere = await second.get("/api/auth/me", headers=bearer(token))

    assert logout.status == 200
    assert elsewhere.status == 401
    ttl = await redis.ttl(f"docwiz:revoked:{claims.token_id}")
    remaining = (claims.expires_at - datetime.now(UTC)).total_seconds()
    assert remaining - 5 <= ttl <= remaining + 2, "the entry lives as long as the token"
    async with first.app[DATABASE].session() as session:
        rows = await session.scalar(select(func.count()).select_from(RevokedToken))
    assert rows == 0, "scale-out keeps revocations in Redis, not the table"


async def test_a_token_is_refreshed_once_across_processes(
    make_client: MakeClient, scale_out: Settings
) -> None:
    first, second = await make_client(scale_out), await make_client(scale_out)
    token = await token_of(first, "refresh@example.com")

    renewed = await first.post("/api/auth/refresh", headers=bearer(token))
    replayed = await second.post("/api/auth/refresh", headers=bearer(token))

    assert renewed.status == 200
    assert replayed.status == 401
    fresh = (await renewed.json())["access_token"]
    assert (await second.get("/api/auth/me", headers=bearer(fresh))).status == 200


async def test_the_hourly_limit_is_shared_by_every_process(
    make_client: MakeClient, scale_out: Settings, redis: Redis
) -> None:
    first, second = await make_client(scale_out), await make_client(scale_out)
    user_id = (
        await (
            await first.post(
                "/api/auth/register",
                json={"email": "limited@example.com", "password": PASSWORD},
            )
        ).json()
    )["id"]
    headers = bearer(first.app[TOKENS].issue(user_id)[0])

    statuses = []
    remaining = []
    for n in range(6):
        client = first if n % 2 == 0 else second
        response = await client.get("/api/auth/me", headers=headers)
        statuses.append(response.status)
        remaining.append(int(response.headers["X-RateLimit-Remaining"]))

    assert statuses == [200, 200, 200, 200, 200, 429]
    assert remaining == [4, 3, 2, 1, 0, 0]
    keys = [key async for key in redis.scan_iter("docwiz:ratelimit:user:*")]
    assert len(keys) == 1
    assert 0 < await redis.ttl(keys[0]) <= 3601


async def test_failed_logins_are_counted_across_processes(
    make_client: MakeClient, scale_out: Settings
) -> None:
    first, second = await make_client(scale_out), await make_client(scale_out)
    await token_of(first, "guessed@example.com")
    wrong = {"email": "guessed@example.com", "password": "Wrong-Password-1"}

    assert (await first.post("/api/auth/login", json=wrong)).status == 401
    assert (await second.post("/api/auth/login", json=wrong)).status == 401
    right = await first.post(
        "/api/auth/login",
        json={"email": "guessed@example.com", "password": PASSWORD},
    )

    assert right.status == 429
    assert int(right.headers["Retry-After"]) >= 1


class FakeClock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


async def test_redis_counters_keep_windows_apart(redis: Redis) -> None:
    clock = FakeClock(3600.0 * 10 + 5)
    limiter = RedisRateLimiter(redis, clock)

    counts = [(await limiter.hit("caller", 2, 3600)).count for _ in range(3)]
    peeked = await limiter.peek("caller", 2, 3600)
    clock.now += 3600
    next_window = await limiter.hit("caller", 2, 3600)
    await limiter.reset("caller", 3600)

    assert counts == [1, 2, 3]
    assert peeked.count == 3 and peeked.exceeded
    assert peeked.reset_at == 3600.0 * 11
    assert next_window.count == 1
    assert (await limiter.peek("caller", 2, 3600)).count == 0


async def test_redis_revocations_of_expired_tokens_store_nothing(
    redis: Redis,
) -> None:
    revocations = RedisRevocationList(redis)

    past = await revocations.revoke("old-token", datetime.now(UTC) - timedelta(1))
    future = await revocations.revoke("new-token", datetime.now(UTC) + timedelta(1))
    again = await revocations.revoke("new-token", datetime.now(UTC) + timedelta(1))

    assert past is True and future is True and again is False
    assert not await redis.exists("docwiz:revoked:old-token")
    assert await revocations.is_revoked("new-token")
    assert await revocations.purge_expired() == 0

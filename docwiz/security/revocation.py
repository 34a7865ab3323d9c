"""Revoked access tokens: a database table (embedded) or Redis keys (scale-out).

An entry lives exactly as long as its token would have: Redis expires the
key itself, and the table is purged of rows past their token's expiry.
"""

from __future__ import annotations

import logging
import math
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

from sqlalchemy import delete, select
from sqlalchemy.dialects import postgresql, sqlite

from docwiz.db.base import utcnow
from docwiz.db.models_accounts import RevokedToken
from docwiz.db.session import Database

if TYPE_CHECKING:
    from redis.asyncio import Redis

logger = logging.getLogger("docwiz.auth")

REDIS_PREFIX = "docwiz:revoked:"


class RevocationList(Protocol):
    async def revoke(self, token_id: str, expires_at: datetime) -> bool:
        """Refuse the token from now on; False if it was already revoked."""
        ...

    async def is_revoked(self, token_id: str) -> bool: ...

    async def purge_expired(self) -> int:
        """Drop entries whose tokens have expired anyway; how many went."""
        ...

    async def close(self) -> None: ...


class DatabaseRevocationList:
    """The ``revoked_tokens`` table: needs nothing but the service's database."""

    def __init__(self, database: Database) -> None:
        self._database = database

    async def revoke(self, token_id: str, expires_at: datetime) -> bool:
        values = {
            "token_id": token_id,
            "expires_at": expires_at,
            "revoked_at": utcnow(),
        }
        # INSERT ... ON CONFLICT DO NOTHING, so two requests revoking the same
        # token at once (a double refresh) cannot both believe they won.
        dialect = postgresql if not self._database.is_sqlite else sqlite
        statement = (
            dialect.insert(RevokedToken)
            .values(values)
            .on_conflict_do_nothing(index_elements=["token_id"])
        )
        async with self._database.session() as session:
            result = await session.execute(statement)
        return bool(getattr(result, "rowcount", 0) == 1)

    async def is_revoked(self, token_id: str) -> bool:
        async with self._database.session() as session:
            found = await session.scalar(
                select(RevokedToken.token_id).where(RevokedToken.token_id == token_id)
            )
        return found is not None

    async def purge_expired(self) -> int:
        async with self._database.session() as session:
            result = await session.execute(
                delete(RevokedToken).where(RevokedToken.expires_at <= utcnow())
            )
        purged = int(getattr(result, "rowcount", 0) or 0)
        if purged:
            logger.info("purged %s expired revoked tokens", purged)
        return purged

    async def close(self) -> None:
        return None


class RedisRevocationList:
    """One key per revoked token, ``SET NX EX`` with the token's remaining life."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis

    @classmethod
    def from_url(cls, url: str) -> RedisRevocationList:
        from redis.asyncio import Redis

        return cls(Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2))

    async def revoke(self, token_id: str, expires_at: datetime) -> bool:
        seconds = math.ceil((expires_at - utcnow()).total_seconds())
        if seconds <= 0:
            return True  # expired already: refused by its signature check
        created = await self._redis.set(
            REDIS_PREFIX + token_id, b"1", ex=seconds + 1, nx=True
        )
        return bool(created)

    async def is_revoked(self, token_id: str) -> bool:
        return bool(await self._redis.exists(REDIS_PREFIX + token_id))

    async def purge_expired(self) -> int:
        return 0  # Redis expires the keys itself

    async def close(self) -> None:
        await self._redis.aclose()

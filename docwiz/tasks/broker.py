"""The task broker: in process when embedded, Redis lists when scaled out."""

from __future__ import annotations

from taskiq import AsyncBroker, InMemoryBroker
from taskiq_redis import ListQueueBroker, RedisAsyncResultBackend

from docwiz.config import Settings

QUEUE_NAME = "docwiz:tasks"


def make_broker(settings: Settings) -> AsyncBroker:
    if settings.mode == "embedded" or settings.redis_url is None:
        return InMemoryBroker()
    result_backend: RedisAsyncResultBackend[object] = RedisAsyncResultBackend(
        settings.redis_url, result_ex_time=24 * 3600
    )
    return ListQueueBroker(
        settings.redis_url, queue_name=QUEUE_NAME
    ).with_result_backend(result_backend)


async def ping_broker(settings: Settings) -> None:
    """Raise when the broker's Redis cannot be reached (no-op when embedded)."""
    if settings.mode == "embedded" or settings.redis_url is None:
        return
    from redis.asyncio import Redis

    client = Redis.from_url(settings.redis_url, socket_connect_timeout=2)
    try:
        await client.ping()
    finally:
        await client.aclose()

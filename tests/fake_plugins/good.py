"""A well-formed third-party plugin offering a storage backend in memory."""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Sequence

from docwiz.hookspecs import hookimpl
from docwiz.providers import (
    ObjectNotFound,
    Provider,
    ProviderContext,
    StorageBackend,
    StoredObject,
)


class MemoryStorage:
    def __init__(self, context: ProviderContext) -> None:
        self.context = context
        self.objects: dict[str, tuple[bytes, str]] = {}

    async def put(
        self, key: str, chunks: AsyncIterable[bytes], content_type: str
    ) -> StoredObject:
        data = b"".join([chunk async for chunk in chunks])
        self.objects[key] = (data, content_type)
        return StoredObject(key, len(data), content_type)

    async def open(self, key: str) -> AsyncIterator[bytes]:
        if key not in self.objects:
            raise ObjectNotFound(key)
        yield self.objects[key][0]

    async def delete(self, key: str) -> None:
        self.objects.pop(key, None)

    async def exists(self, key: str) -> bool:
        return key in self.objects

    async def url(self, key: str, expires_in: int) -> str:
        return f"memory://{key}"

    async def check(self) -> None:
        return None

    async def close(self) -> None:
        self.objects.clear()


@hookimpl
def docwiz_storage_backends() -> Sequence[Provider[StorageBackend]]:
    return [Provider("memory", MemoryStorage, "Keeps objects in a dict")]

"""The behaviour every storage backend must show, as tests a backend's own test
module inherits and runs against a real instance."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass

import pytest

from docwiz.providers import ObjectNotFound, StorageBackend, StoredObject

MIB = 1024 * 1024
UPLOAD_LIMIT_BYTES = 10 * 1000 * 1000
"""The largest image upload the service accepts; backends must store it."""


@dataclass(frozen=True)
class FetchedObject:
    """What a client got back from an object's URL."""

    body: bytes
    content_type: str


FetchUrl = Callable[[str], Awaitable[FetchedObject]]


class StreamBroken(Exception):
    """Raised by a test stream midway, like a client that disconnects."""


async def stream_of(chunks: Iterable[bytes]) -> AsyncIterator[bytes]:
    for chunk in chunks:
        # Yield to the loop between chunks as a network stream would.
        await asyncio.sleep(0)
        yield chunk


async def broken_stream(chunks: Iterable[bytes]) -> AsyncIterator[bytes]:
    async for chunk in stream_of(chunks):
        yield chunk
    raise StreamBroken("the client went away mid-upload")


async def read_all(storage: StorageBackend, key: str) -> bytes:
    return b"".join([chunk async for chunk in storage.open(key)])


def photo_bytes(size: int, seed: int) -> bytes:
    """Incompressible bytes standing in for an image of ``size`` bytes."""
    # Seeded so a failure repeats; these bytes guard nothing.
    return random.Random(seed).randbytes(size)  # noqa: S311


def split(data: bytes, sizes: Iterable[int]) -> list[bytes]:
    """Cut ``data`` into chunks of the given sizes, cycling, to the end."""
    pattern = list(sizes)
    chunks: list[bytes] = []
    offset = 0
    while offset < len(data):
        size = pattern[len(chunks) % len(pattern)]
        chunks.append(data[offset : offset + size])
        offset += size
    return chunks


UNSAFE_KEYS = (
    "",
    "../secret.jpg",
    "images/../../etc/passwd",
    "/etc/passwd",
    "images\\img_1.jpg",
    "images//img_1.jpg",
    "images/",
    "images/img 1.jpg",
    "images/\u00edmg_1.jpg",
    "images/img_1.jpg\n",
    ".content-type",
    "images/.img_1.jpg",
    "images/img_1.jpg?x=1",
)


class StorageContract:
    """Inherit as ``class TestMyStorage(StorageContract)`` and provide fixtures.

    ``storage``: a working, empty :class:`StorageBackend` (closed afterwards).
    ``fetch_url``: a coroutine function that downloads a URL returned by
    ``storage.url`` the way a browser would, as a :class:`FetchedObject`.
    """

    async def test_round_trip_of_many_uneven_chunks(
        self, storage: StorageBackend
    ) -> None:
        photo = photo_bytes(3 * MIB + 17, seed=1)
        chunks = split(photo, [1, 1000, 65536, 300_000, 7, MIB, 12345])

        stored = await storage.put("images/img_1.jpg", stream_of(chunks), "image/jpeg")

        assert stored == StoredObject("images/img_1.jpg", len(photo), "image/jpeg")
        assert await read_all(storage, "images/img_1.jpg") == photo

    async def test_an_upload_at_the_size_limit_is_stored_whole(
        self, storage: StorageBackend
    ) -> None:
        photo = photo_bytes(UPLOAD_LIMIT_BYTES, seed=2)

        stored = await storage.put(
            "images/img_big.png", stream_of(split(photo, [64 * 1024])), "image/png"
        )

        assert stored.size_bytes == UPLOAD_LIMIT_BYTES
        assert await read_all(storage, "images/img_big.png") == photo

    async def test_an_empty_object_is_stored(self, storage: StorageBackend) -> None:
        stored = await storage.put("exports/empty.csv", stream_of([]), "text/csv")

        assert stored.size_bytes == 0
        assert await storage.exists("exports/empty.csv")
        assert await read_all(storage, "exports/empty.csv") == b""

    async def test_open_streams_in_more_than_one_chunk(
        self, storage: StorageBackend
    ) -> None:
        photo = photo_bytes(2 * MIB, seed=3)
        await storage.put("images/img_2.jpg", stream_of([photo]), "image/jpeg")

        chunks = [chunk async for chunk in storage.open("images/img_2.jpg")]

        assert len(chunks) > 1
        assert all(isinstance(chunk, bytes) for chunk in chunks)
        assert b"".join(chunks) == photo

    async def test_put_replaces_the_object_and_its_content_type(
        self, storage: StorageBackend, fetch_url: FetchUrl
    ) -> None:
        before = photo_bytes(500_000, seed=4)
        after = photo_bytes(1234, seed=5)
        await storage.put("previews/viz_1.png", stream_of([before]), "image/png")

        stored = await storage.put(
            "previews/viz_1.png", stream_of([after]), "image/webp"
        )
        fetched = await fetch_url(await storage.url("previews/viz_1.png", 300))

        assert stored == StoredObject("previews/viz_1.png", 1234, "image/webp")
        assert await read_all(storage, "previews/viz_1.png") == after
        assert fetched == FetchedObject(after, "image/webp")

    async def test_delete_removes_the_object(self, storage: StorageBackend) -> None:
        await storage.put("images/img_3.jpg", stream_of([b"jpeg"]), "image/jpeg")
        await storage.put("images/img_4.jpg", stream_of([b"other"]), "image/jpeg")

        await storage.delete("images/img_3.jpg")

        assert not await storage.exists("images/img_3.jpg")
        with pytest.raises(ObjectNotFound):
            await read_all(storage, "images/img_3.jpg")
        assert await read_all(storage, "images/img_4.jpg") == b"other"

    async def test_deleting_an_absent_key_is_not_an_error(
        self, storage: StorageBackend
    ) -> None:
        await storage.delete("images/never_stored.jpg")
        await storage.delete("never/stored/anywhere.jpg")

        assert not await storage.exists("images/never_stored.jpg")

    async def test_exists_tells_objects_from_absent_keys(
        self, storage: StorageBackend
    ) -> None:
        assert not await storage.exists("claims/claim_1.pdf")

        await storage.put("claims/claim_1.pdf", stream_of([b"%PDF"]), "application/pdf")

        assert await storage.exists("claims/claim_1.pdf")
        assert not await storage.exists("claims")
        assert not await storage.exists("claims/claim_1")

    async def test_opening_an_absent_key_raises_object_not_found(
        self, storage: StorageBackend
    ) -> None:
        with pytest.raises(ObjectNotFound):
            await read_all(storage, "images/missing.jpg")
        with pytest.raises(ObjectNotFound):
            await read_all(storage, "missing/folder/img.jpg")

    async def test_url_serves_the_object_with_its_content_type(
        self, storage: StorageBackend, fetch_url: FetchUrl
    ) -> None:
        photo = photo_bytes(300_000, seed=6)
        await storage.put("images/img_5.jpg", stream_of([photo]), "image/jpeg")

        fetched = await fetch_url(await storage.url("images/img_5.jpg", 600))

        assert fetched == FetchedObject(photo, "image/jpeg")

    async def test_check_passes_on_a_working_backend(
        self, storage: StorageBackend
    ) -> None:
        await storage.check()

    async def test_a_failed_put_leaves_nothing_behind(
        self, storage: StorageBackend
    ) -> None:
        chunks = [photo_bytes(100_000, seed=7)] * 3

        with pytest.raises(StreamBroken):
            await storage.put("images/img_6.jpg", broken_stream(chunks), "image/jpeg")

        assert not await storage.exists("images/img_6.jpg")
        with pytest.raises(ObjectNotFound):
            await read_all(storage, "images/img_6.jpg")

    async def test_a_large_failed_put_leaves_nothing_behind(
        self, storage: StorageBackend
    ) -> None:
        # Past the point where a backend might switch to a multipart upload.
        chunks = split(photo_bytes(9 * MIB, seed=8), [MIB])

        with pytest.raises(StreamBroken):
            await storage.put("images/img_7.jpg", broken_stream(chunks), "image/jpeg")

        assert not await storage.exists("images/img_7.jpg")

    async def test_a_failed_overwrite_keeps_the_previous_object(
        self, storage: StorageBackend
    ) -> None:
        await storage.put("images/img_8.jpg", stream_of([b"original"]), "image/jpeg")

        with pytest.raises(StreamBroken):
            await storage.put(
                "images/img_8.jpg", broken_stream([b"replacement"]), "image/png"
            )

        assert await read_all(storage, "images/img_8.jpg") == b"original"

    async def test_concurrent_puts_to_one_key_leave_one_whole_object(
        self, storage: StorageBackend
    ) -> None:
        first = photo_bytes(700_000, seed=9)
        second = photo_bytes(900_000, seed=10)

        await asyncio.gather(
            storage.put(
                "images/img_9.jpg", stream_of(split(first, [50_000])), "image/jpeg"
            ),
            storage.put(
                "images/img_9.jpg", stream_of(split(second, [70_000])), "image/jpeg"
            ),
        )

        assert await read_all(storage, "images/img_9.jpg") in (first, second)

    @pytest.mark.parametrize("key", UNSAFE_KEYS)
    async def test_unsafe_keys_are_refused(
        self, storage: StorageBackend, key: str
    ) -> None:
        with pytest.raises(ValueError):
            await storage.put(key, stream_of([b"x"]), "image/jpeg")
        with pytest.raises(ValueError):
            await read_all(storage, key)
        with pytest.raises(ValueError):
            await storage.exists(key)
        with pytest.raises(ValueError):
            await storage.delete(key)
        with pytest.raises(ValueError):
            await storage.url(key, 60)

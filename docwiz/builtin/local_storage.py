"""The built-in storage backend: files under the data folder, served by the
core through signed, expiring URLs."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import mimetypes
import os
import re
import secrets
import time
from collections.abc import AsyncIterable, AsyncIterator, Sequence
from pathlib import Path
from typing import BinaryIO

from docwiz.hookspecs import hookimpl
from docwiz.providers import (
    ObjectNotFound,
    Provider,
    ProviderContext,
    StorageBackend,
    StorageError,
    StoredObject,
)

logger = logging.getLogger("docwiz.storage")

FILES_ROUTE = "/api/files/"
"""Where the core serves stored files; ``url`` builds links under it."""

READ_CHUNK_BYTES = 256 * 1024
WRITE_BUFFER_BYTES = 512 * 1024
"""Small chunks from an upload are gathered up to this size before each write,
so a 10 MB upload costs a few dozen thread hops rather than a thousand."""

MAX_KEY_LENGTH = 1024
MAX_SEGMENT_LENGTH = 200
"""Leaves room under the usual 255-byte file name limit for the sidecar and
temporary file names built from a segment."""

_SEGMENT = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]*")
_EXPIRES = re.compile(r"[0-9]{1,12}")
_SIGNATURE = re.compile(r"[0-9a-fA-F]{64}")
_CONTENT_TYPE = re.compile(r"[!-~]+(?: [!-~]+)*")

DEFAULT_CONTENT_TYPE = "application/octet-stream"


class SignedUrlError(Exception):
    """A signed file URL cannot be honoured."""


class SignatureInvalid(SignedUrlError):
    """The URL was not signed by this service, was altered, or is malformed."""


class SignatureExpired(SignedUrlError):
    """The URL was genuine but its expiry time has passed."""


def validate_key(key: str) -> str:
    """Return ``key`` if it is a safe object key, else raise ValueError.

    A key is one or more ``/``-separated segments of ``[A-Za-z0-9._-]``; no
    segment may be empty or start with a dot, which rules out ``.``, ``..``,
    absolute paths and the hidden names this backend keeps beside objects.
    """
    if not key or len(key) > MAX_KEY_LENGTH:
        raise ValueError(f"a storage key must be 1 to {MAX_KEY_LENGTH} characters")

    for segment in key.split("/"):
        if len(segment) > MAX_SEGMENT_LENGTH or not _SEGMENT.fullmatch(segment):
            raise ValueError(
                f"invalid storage key {key!r}: use '/'-separated parts of "
                "letters, digits, '.', '_' and '-', none empty or starting "
                "with '.'"
            )
    return key


def sign(secret_key: bytes, key: str, expires: int) -> str:
    """The hex HMAC-SHA256 of ``"{key}\\n{expires}"`` under ``secret_key``."""
    message = f"{key}\n{expires}".encode()
    return hmac.new(secret_key, message, hashlib.sha256).hexdigest()


class FileChunks:
    """The bytes of one open stored file, read in a thread chunk by chunk.

    The file is closed when iteration ends or fails; a caller that stops early
    should ``await chunks.aclose()``.
    """

    def __init__(self, handle: BinaryIO, chunk_size: int = READ_CHUNK_BYTES) -> None:
        self._handle: BinaryIO | None = handle
        self._chunk_size = chunk_size

    def __aiter__(self) -> FileChunks:
        return self

    async def __anext__(self) -> bytes:
        if self._handle is None:
            raise StopAsyncIteration

        try:
            chunk = await asyncio.to_thread(self._handle.read, self._chunk_size)
        except BaseException:
            await self.aclose()
            raise

        if not chunk:
            await self.aclose()
            raise StopAsyncIteration
        return chunk

    async def aclose(self) -> None:
        handle, self._handle = self._handle, None
        if handle is not None:
            await asyncio.to_thread(handle.close)


class LocalStorage:
    """Objects as plain files under ``root``, each key a relative path.

    The content type of each object is kept in a hidden sidecar file beside
    it (``images/.img_1.jpg.content-type``); an object without one falls back
    to a guess from its extension.
    """

    def __init__(self, root: Path, secret_key: bytes, base_url: str = "") -> None:
        if not secret_key:
            raise ValueError("local storage needs a non-empty secret key to sign URLs")

        self.root = root
        self.base_url = base_url.rstrip("/")
        self._secret_key = secret_key

    # -- the StorageBackend protocol -----------------------------------------

    async def put(
        self, key: str, chunks: AsyncIterable[bytes], content_type: str
    ) -> StoredObject:
        """Stream ``chunks`` into a temporary file beside the object, then
        rename it into place, so readers never see a partial object."""
        path = self._path(validate_key(key))
        content_type = _checked_content_type(content_type)
        temp_path = path.with_name(f".{path.name}.{secrets.token_hex(8)}.part")

        try:
            handle = await asyncio.to_thread(_create_exclusive, temp_path)
        except OSError as error:
            raise StorageError(f"cannot create a file for {key!r}: {error}") from error

        try:
            size_bytes = await _write_stream(handle, chunks)
            await asyncio.to_thread(_finish_file, handle)
            await asyncio.to_thread(_publish, temp_path, path, content_type)
        except BaseException:
            # Covers a failing or cancelled upload stream too: nothing stays.
            await asyncio.to_thread(_discard, handle, temp_path)
            raise

        logger.debug("stored %s (%s bytes)", key, size_bytes)
        return StoredObject(key=key, size_bytes=size_bytes, content_type=content_type)

    def open(self, key: str) -> AsyncIterator[bytes]:
        """Stream the object; :class:`ObjectNotFound` surfaces on first read."""
        path = self._path(validate_key(key))
        return self._stream(key, path)

    async def delete(self, key: str) -> None:
        path = self._path(validate_key(key))
        await asyncio.to_thread(_remove_object, path)
        logger.debug("deleted %s", key)

    async def exists(self, key: str) -> bool:
        path = self._path(validate_key(key))
        return await asyncio.to_thread(path.is_file)

    async def url(self, key: str, expires_in: int) -> str:
        """A link to the core's file route, valid for ``expires_in`` seconds."""
        validate_key(key)
        if expires_in <= 0:
            raise ValueError("expires_in must be a positive number of seconds")

        expires = int(time.time()) + expires_in
        signature = sign(self._secret_key, key, expires)
        return (
            f"{self.base_url}{FILES_ROUTE}{key}?expires={expires}&signature={signature}"
        )

    async def check(self) -> None:
        """Create the root if needed and prove it is writable."""
        try:
            await asyncio.to_thread(_probe_writable, self.root)
        except OSError as error:
            raise StorageError(
                f"storage folder {self.root} is not writable: {error}"
            ) from error

    async def close(self) -> None:
        """Nothing to release: every file is closed after each operation."""

    # -- serving signed URLs -------------------------------------------------

    def verify(
        self, key: str, expires: str, signature: str, now: float | None = None
    ) -> None:
        """Raise :class:`SignatureInvalid` or :class:`SignatureExpired` unless
        ``expires`` and ``signature`` are what :meth:`url` gave for ``key``."""
        try:
            validate_key(key)
        except ValueError as error:
            raise SignatureInvalid(str(error)) from None
        if not _EXPIRES.fullmatch(expires):
            raise SignatureInvalid("the expires parameter is not a unix time")
        if not _SIGNATURE.fullmatch(signature):
            raise SignatureInvalid("the signature parameter is not 64 hex digits")

        expected = sign(self._secret_key, key, int(expires))
        if not hmac.compare_digest(expected, signature.lower()):
            raise SignatureInvalid("the signature does not match the key and expiry")

        # Checked after the signature, so an altered expiry reads as tampering.
        if int(expires) < (time.time() if now is None else now):
            raise SignatureExpired("the link has expired")

    async def open_signed(
        self, key: str, expires: str, signature: str, now: float | None = None
    ) -> tuple[FileChunks, StoredObject]:
        """Verify a signed URL's parts and open the object it names.

        ``key``, ``expires`` and ``signature`` are the path tail after
        ``/api/files/`` and the two query parameters, as received. Returns the
        object's bytes (a :class:`FileChunks`, to be drained or closed) and its
        size and content type, both taken from the same open file. Raises
        :class:`SignatureInvalid`, :class:`SignatureExpired` or
        :class:`ObjectNotFound`.
        """
        self.verify(key, expires, signature, now)
        return await self._open_with_metadata(key)

    async def stat(self, key: str) -> StoredObject:
        """The object's size and content type; :class:`ObjectNotFound` if absent."""
        chunks, stored = await self._open_with_metadata(validate_key(key))
        await chunks.aclose()
        return stored

    # -- helpers -------------------------------------------------------------

    def _path(self, key: str) -> Path:
        return self.root.joinpath(*key.split("/"))

    async def _open_with_metadata(self, key: str) -> tuple[FileChunks, StoredObject]:
        path = self._path(key)
        try:
            handle, size_bytes, content_type = await asyncio.to_thread(
                _open_object, path
            )
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise ObjectNotFound(key) from None
        except OSError as error:
            raise StorageError(f"cannot read {key!r}: {error}") from error

        stored = StoredObject(key=key, size_bytes=size_bytes, content_type=content_type)
        return FileChunks(handle), stored

    async def _stream(self, key: str, path: Path) -> AsyncIterator[bytes]:
        try:
            handle = await asyncio.to_thread(path.open, "rb")
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise ObjectNotFound(key) from None
        except OSError as error:
            raise StorageError(f"cannot read {key!r}: {error}") from error

        chunks = FileChunks(handle)
        try:
            async for chunk in chunks:
                yield chunk
        finally:
            await chunks.aclose()


# -- blocking file work, always run in a thread ------------------------------


def _checked_content_type(content_type: str) -> str:
    # It is sent back later as a response header, so no line breaks get in.
    content_type = content_type.strip()
    if not _CONTENT_TYPE.fullmatch(content_type) or len(content_type) > 255:
        raise ValueError(f"invalid content type {content_type!r}")
    return content_type


def _sidecar(path: Path) -> Path:
    return path.with_name(f".{path.name}.content-type")


def _create_exclusive(path: Path) -> BinaryIO:
    path.parent.mkdir(parents=True, exist_ok=True)
    return path.open("xb")


async def _write_stream(handle: BinaryIO, chunks: AsyncIterable[bytes]) -> int:
    size_bytes = 0
    pending = bytearray()
    async for chunk in chunks:
        size_bytes += len(chunk)
        pending += chunk
        if len(pending) >= WRITE_BUFFER_BYTES:
            # Hand the filled buffer to the thread and start a fresh one
            # rather than copying it.
            full, pending = pending, bytearray()
            await asyncio.to_thread(handle.write, full)

    if pending:
        await asyncio.to_thread(handle.write, pending)
    return size_bytes


def _finish_file(handle: BinaryIO) -> None:
    # A renamed file must hold its bytes even after a power cut.
    handle.flush()
    os.fsync(handle.fileno())
    handle.close()


def _publish(temp_path: Path, path: Path, content_type: str) -> None:
    sidecar = _sidecar(path)
    temp_sidecar = sidecar.with_name(f"{temp_path.name}.content-type")
    temp_sidecar.write_text(content_type, encoding="ascii")
    try:
        os.replace(temp_sidecar, sidecar)
    except OSError:
        temp_sidecar.unlink(missing_ok=True)
        raise
    os.replace(temp_path, path)


def _discard(handle: BinaryIO, temp_path: Path) -> None:
    # Buffered files take a lock around write and close, so a write still
    # running in another thread (the put was cancelled) finishes first.
    handle.close()
    temp_path.unlink(missing_ok=True)


def _remove_object(path: Path) -> None:
    try:
        path.unlink(missing_ok=True)
    except IsADirectoryError:
        return
    _sidecar(path).unlink(missing_ok=True)


def _open_object(path: Path) -> tuple[BinaryIO, int, str]:
    handle = path.open("rb")
    try:
        size_bytes = os.fstat(handle.fileno()).st_size
        content_type = _read_content_type(path)
    except BaseException:
        handle.close()
        raise
    return handle, size_bytes, content_type


def _read_content_type(path: Path) -> str:
    try:
        return _sidecar(path).read_text(encoding="ascii").strip()
    except (FileNotFoundError, UnicodeDecodeError):
        guessed, _ = mimetypes.guess_type(path.name)
        return guessed or DEFAULT_CONTENT_TYPE


def _probe_writable(root: Path) -> None:
    root.mkdir(parents=True, exist_ok=True)
    probe = root / f".check.{secrets.token_hex(8)}"
    probe.write_bytes(b"ok")
    probe.unlink()


# -- registration ------------------------------------------------------------


def build_local_storage(context: ProviderContext) -> LocalStorage:
    """Options: ``root`` (default ``<data_dir>/files``; a relative path is
    taken from the data folder) and ``base_url`` (default ``""``)."""
    root = Path(str(context.options.get("root") or "files"))
    if not root.is_absolute():
        root = context.data_dir / root
    base_url = str(context.options.get("base_url") or "")
    return LocalStorage(root, context.secret_key, base_url=base_url)


@hookimpl
def docwiz_storage_backends() -> Sequence[Provider[StorageBackend]]:
    return [
        Provider(
            "local",
            build_local_storage,
            "Files under the data folder, served through signed, expiring URLs",
        )
    ]

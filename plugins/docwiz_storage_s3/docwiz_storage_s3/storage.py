"""A DocWiz storage backend that keeps objects in an S3 bucket (Amazon S3 or
any S3-compatible store) through aiobotocore."""

from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import AsyncIterable, AsyncIterator, Mapping
from contextlib import (
    AbstractAsyncContextManager,
    AsyncExitStack,
    asynccontextmanager,
)
from dataclasses import dataclass
from typing import Any

from aiobotocore.client import AioBaseClient
from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.exceptions import BotoCoreError, ClientError

from docwiz.builtin.local_storage import validate_key
from docwiz.providers import (
    ObjectNotFound,
    ProviderContext,
    StorageError,
    StoredObject,
)

logger = logging.getLogger("docwiz.storage")

PART_BYTES = 8 * 1024 * 1024
"""Objects larger than this go up as a multipart upload, one part in memory at
a time; S3 wants every part but the last to be at least 5 MiB."""

READ_CHUNK_BYTES = 256 * 1024
MAX_URL_SECONDS = 7 * 24 * 3600
"""The longest a SigV4 presigned URL may live."""

SSE_ALGORITHMS = ("AES256", "aws:kms", "aws:kms:dsse")
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off", ""})
_ABSENT_OBJECT_CODES = frozenset({"404", "NoSuchKey", "NotFound"})


@dataclass(frozen=True)
class S3Options:
    """The operator's settings for the backend, already checked."""

    bucket: str
    prefix: str = ""
    endpoint_url: str | None = None
    region: str = "us-east-1"
    access_key_id: str | None = None
    secret_access_key: str | None = None
    session_token: str | None = None
    sse: str | None = None
    sse_kms_key_id: str | None = None
    create_bucket: bool = False
    addressing_style: str = "auto"

    @classmethod
    def from_options(cls, options: Mapping[str, Any], name: str = "s3") -> S3Options:
        """Read ``[plugins.<name>]`` settings, where values from environment
        variables arrive as strings; raise ValueError naming a bad option."""

        def text(option: str) -> str | None:
            value = options.get(option)
            if value is None:
                return None
            return str(value).strip() or None

        bucket = text("bucket")
        if bucket is None:
            raise ValueError(
                f"the {name} storage backend needs the 'bucket' option: set "
                f"bucket in [plugins.{name}] or DOCWIZ_PLUGINS__{name.upper()}"
                "__BUCKET"
            )

        access_key_id = text("access_key_id")
        secret_access_key = text("secret_access_key")
        if (access_key_id is None) != (secret_access_key is None):
            raise ValueError(
                f"[plugins.{name}] needs both 'access_key_id' and "
                "'secret_access_key', or neither to use the AWS environment"
            )

        sse = text("sse")
        if sse is not None and sse not in SSE_ALGORITHMS:
            raise ValueError(
                f"[plugins.{name}] option 'sse' must be one of "
                f"{', '.join(SSE_ALGORITHMS)}, not {sse!r}"
            )
        sse_kms_key_id = text("sse_kms_key_id")
        if sse_kms_key_id is not None and not (sse or "").startswith("aws:kms"):
            raise ValueError(
                f"[plugins.{name}] option 'sse_kms_key_id' needs sse = 'aws:kms'"
            )

        endpoint_url = text("endpoint_url")
        # S3-compatible stores on a custom endpoint rarely have per-bucket
        # host names, so path-style addressing is the safer default there.
        addressing_style = text("addressing_style") or (
            "path" if endpoint_url else "auto"
        )
        if addressing_style not in ("auto", "path", "virtual"):
            raise ValueError(
                f"[plugins.{name}] option 'addressing_style' must be auto, path "
                f"or virtual, not {addressing_style!r}"
            )

        prefix = (text("prefix") or "").strip("/")
        return cls(
            bucket=bucket,
            prefix=f"{prefix}/" if prefix else "",
            endpoint_url=endpoint_url,
            region=text("region") or "us-east-1",
            access_key_id=access_key_id,
            secret_access_key=secret_access_key,
            session_token=text("session_token"),
            sse=sse,
            sse_kms_key_id=sse_kms_key_id,
            create_bucket=_flag(options.get("create_bucket"), "create_bucket", name),
            addressing_style=addressing_style,
        )


def _flag(value: Any, option: str, name: str) -> bool:
    if value is None or isinstance(value, bool):
        return bool(value)
    if str(value).strip().lower() in _TRUE:
        return True
    if str(value).strip().lower() in _FALSE:
        return False
    raise ValueError(f"[plugins.{name}] option {option!r} must be true or false")


def _error_code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


class S3Storage:
    """Objects in one bucket under an optional key prefix.

    One aiobotocore client serves every call; it is opened on first use and
    released by :meth:`close`.
    """

    def __init__(self, options: S3Options) -> None:
        self.options = options
        self._session = get_session()
        self._client: AioBaseClient | None = None
        self._exit_stack: AsyncExitStack | None = None
        self._client_lock = asyncio.Lock()

    # -- the StorageBackend protocol -----------------------------------------

    async def put(
        self, key: str, chunks: AsyncIterable[bytes], content_type: str
    ) -> StoredObject:
        """Upload in one request up to :data:`PART_BYTES`, else in parts; a
        failed multipart upload is aborted so no partial object remains."""
        object_key = self._object_key(validate_key(key))
        extra = {"ContentType": _checked_content_type(content_type), **self._sse()}
        client = await self._s3()

        async with self._translated_errors(None):
            size_bytes = await self._upload(client, object_key, chunks, extra)

        logger.debug(
            "stored %s in bucket %s (%s bytes)", key, self.options.bucket, size_bytes
        )
        return StoredObject(
            key=key, size_bytes=size_bytes, content_type=extra["ContentType"]
        )

    def open(self, key: str) -> AsyncIterator[bytes]:
        """Stream the object; :class:`ObjectNotFound` surfaces on first read."""
        object_key = self._object_key(validate_key(key))
        return self._stream(key, object_key)

    async def delete(self, key: str) -> None:
        object_key = self._object_key(validate_key(key))
        client = await self._s3()
        async with self._translated_errors(key):
            await client.delete_object(Bucket=self.options.bucket, Key=object_key)
        logger.debug("deleted %s from bucket %s", key, self.options.bucket)

    async def exists(self, key: str) -> bool:
        try:
            await self.stat(key)
        except ObjectNotFound:
            return False
        return True

    async def url(self, key: str, expires_in: int) -> str:
        """A presigned GET URL that the bucket itself serves."""
        object_key = self._object_key(validate_key(key))
        if not 0 < expires_in <= MAX_URL_SECONDS:
            raise ValueError(
                f"expires_in must be between 1 and {MAX_URL_SECONDS} seconds"
            )

        client = await self._s3()
        url: str = await client.generate_presigned_url(
            "get_object",
            Params={"Bucket": self.options.bucket, "Key": object_key},
            ExpiresIn=expires_in,
        )
        return url

    async def check(self) -> None:
        """Raise :class:`StorageError` unless the bucket answers a HEAD."""
        client = await self._s3()
        async with self._translated_errors(None):
            await client.head_bucket(Bucket=self.options.bucket)

    async def close(self) -> None:
        async with self._client_lock:
            exit_stack, self._exit_stack, self._client = self._exit_stack, None, None
            if exit_stack is not None:
                await exit_stack.aclose()

    # -- beyond the protocol -------------------------------------------------

    async def stat(self, key: str) -> StoredObject:
        """The object's size and content type; :class:`ObjectNotFound` if absent."""
        object_key = self._object_key(validate_key(key))
        client = await self._s3()
        async with self._translated_errors(key):
            head = await client.head_object(Bucket=self.options.bucket, Key=object_key)
        return StoredObject(
            key=key,
            size_bytes=int(head["ContentLength"]),
            content_type=str(head.get("ContentType") or "application/octet-stream"),
        )

    # -- helpers -------------------------------------------------------------

    def _object_key(self, key: str) -> str:
        return f"{self.options.prefix}{key}"

    def _sse(self) -> dict[str, str]:
        if self.options.sse is None:
            return {}
        sse = {"ServerSideEncryption": self.options.sse}
        if self.options.sse_kms_key_id is not None:
            sse["SSEKMSKeyId"] = self.options.sse_kms_key_id
        return sse

    async def _s3(self) -> AioBaseClient:
        if self._client is not None:
            return self._client

        async with self._client_lock:
            if self._client is None:
                exit_stack = AsyncExitStack()
                client = await exit_stack.enter_async_context(self._new_client())
                try:
                    if self.options.create_bucket:
                        await self._ensure_bucket(client)
                except BaseException:
                    await exit_stack.aclose()
                    raise
                self._client, self._exit_stack = client, exit_stack
            return self._client

    def _new_client(self) -> Any:
        options = self.options
        config = AioConfig(
            signature_version="s3v4",
            s3={"addressing_style": options.addressing_style},
            retries={"max_attempts": 3, "mode": "standard"},
            connect_timeout=10,
            read_timeout=60,
            # Many S3-compatible stores reject the newer default checksums.
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        )
        return self._session.create_client(
            "s3",
            region_name=options.region,
            endpoint_url=options.endpoint_url,
            aws_access_key_id=options.access_key_id,
            aws_secret_access_key=options.secret_access_key,
            aws_session_token=options.session_token,
            config=config,
        )

    async def _ensure_bucket(self, client: AioBaseClient) -> None:
        bucket = self.options.bucket
        try:
            await client.head_bucket(Bucket=bucket)
            return
        except ClientError as error:
            if _error_code(error) not in ("404", "NoSuchBucket", "NotFound"):
                raise StorageError(
                    f"cannot reach bucket {bucket!r}: {_error_code(error)}"
                ) from error

        create: dict[str, Any] = {"Bucket": bucket}
        # us-east-1 is the one region that refuses an explicit constraint.
        if self.options.region != "us-east-1":
            create["CreateBucketConfiguration"] = {
                "LocationConstraint": self.options.region
            }
        try:
            await client.create_bucket(**create)
        except ClientError as error:
            if _error_code(error) != "BucketAlreadyOwnedByYou":
                raise StorageError(
                    f"cannot create bucket {bucket!r}: {_error_code(error)}"
                ) from error
        logger.info("created bucket %s", bucket)

    async def _upload(
        self,
        client: AioBaseClient,
        object_key: str,
        chunks: AsyncIterable[bytes],
        extra: Mapping[str, str],
    ) -> int:
        part = io.BytesIO()
        size_bytes = 0
        upload: _MultipartUpload | None = None
        try:
            async for chunk in chunks:
                part.write(chunk)
                size_bytes += len(chunk)
                if part.tell() >= PART_BYTES:
                    if upload is None:
                        upload = await _MultipartUpload.start(
                            client, self.options.bucket, object_key, extra
                        )
                    await upload.send_part(part)
                    part = io.BytesIO()

            if upload is None:
                part.seek(0)
                await client.put_object(
                    Bucket=self.options.bucket, Key=object_key, Body=part, **extra
                )
            else:
                if part.tell():
                    await upload.send_part(part)
                await upload.complete()
        except BaseException:
            if upload is not None:
                await upload.abort()
            raise
        return size_bytes

    async def _stream(self, key: str, object_key: str) -> AsyncIterator[bytes]:
        client = await self._s3()
        async with self._translated_errors(key):
            response = await client.get_object(
                Bucket=self.options.bucket, Key=object_key
            )

        async with response["Body"] as body:
            async for chunk in body.iter_chunks(READ_CHUNK_BYTES):
                yield chunk

    def _translated_errors(self, key: str | None) -> AbstractAsyncContextManager[None]:
        return _translated_errors(self.options.bucket, key)


@asynccontextmanager
async def _translated_errors(bucket: str, key: str | None) -> AsyncIterator[None]:
    """Turn botocore failures into the core's storage errors; with a ``key``,
    an absent object becomes :class:`ObjectNotFound`."""
    try:
        yield
    except ClientError as error:
        code = _error_code(error)
        if key is not None and code in _ABSENT_OBJECT_CODES:
            raise ObjectNotFound(key) from None
        raise StorageError(f"bucket {bucket!r} answered {code}") from error
    except BotoCoreError as error:
        raise StorageError(f"bucket {bucket!r} unreachable: {error}") from error


class _MultipartUpload:
    """One S3 multipart upload in progress, fed one buffered part at a time."""

    def __init__(
        self, client: AioBaseClient, bucket: str, object_key: str, upload_id: str
    ) -> None:
        self.client = client
        self.bucket = bucket
        self.object_key = object_key
        self.upload_id = upload_id
        self.parts: list[dict[str, Any]] = []

    @classmethod
    async def start(
        cls,
        client: AioBaseClient,
        bucket: str,
        object_key: str,
        extra: Mapping[str, str],
    ) -> _MultipartUpload:
        created = await client.create_multipart_upload(
            Bucket=bucket, Key=object_key, **extra
        )
        return cls(client, bucket, object_key, created["UploadId"])

    async def send_part(self, part: io.BytesIO) -> None:
        # The buffer itself is the request body, so the part is not copied.
        part.seek(0)
        number = len(self.parts) + 1
        sent = await self.client.upload_part(
            Bucket=self.bucket,
            Key=self.object_key,
            UploadId=self.upload_id,
            PartNumber=number,
            Body=part,
        )
        self.parts.append({"PartNumber": number, "ETag": sent["ETag"]})

    async def complete(self) -> None:
        await self.client.complete_multipart_upload(
            Bucket=self.bucket,
            Key=self.object_key,
            UploadId=self.upload_id,
            MultipartUpload={"Parts": self.parts},
        )

    async def abort(self) -> None:
        try:
            await self.client.abort_multipart_upload(
                Bucket=self.bucket, Key=self.object_key, UploadId=self.upload_id
            )
        except (ClientError, BotoCoreError) as error:
            # The caller's own error matters more; a lifecycle rule on the
            # bucket reaps uploads that could not be aborted.
            logger.warning(
                "could not abort multipart upload to bucket %s: %s", self.bucket, error
            )


def _checked_content_type(content_type: str) -> str:
    # It becomes a header S3 sends back, so no line breaks or non-ASCII.
    content_type = content_type.strip()
    readable = content_type.isascii() and content_type.isprintable()
    if not content_type or len(content_type) > 255 or not readable:
        raise ValueError(f"invalid content type {content_type!r}")
    return content_type


def build_s3_storage(context: ProviderContext) -> S3Storage:
    """Build the backend from ``[plugins.<name>]`` options; see the README."""
    return S3Storage(S3Options.from_options(context.options, context.name))

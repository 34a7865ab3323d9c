"""Patient photos: upload, read metadata, delete."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from urllib.parse import unquote

from aiohttp import BodyPartReader, web
from aiohttp.http_exceptions import HttpProcessingError
from pydantic import BaseModel
from sqlalchemy import select

from docwiz.api.routing import RouteTable
from docwiz.appkeys import DATABASE, IMAGE_SLOTS, PROVIDERS, SETTINGS
from docwiz.auth_context import current_user
from docwiz.db.base import new_id
from docwiz.db.models_images import StoredImage
from docwiz.db.models_visualizations import Visualization
from docwiz.errors import BadRequest, Forbidden, NotFound
from docwiz.services import audit
from docwiz.services.images import ImageRejected, process_upload, read_limited

logger = logging.getLogger("docwiz.images")

routes = RouteTable("images")

URL_TTL_SECONDS = 3600
READ_CHUNK_BYTES = 64 * 1024


class ImageUploaded(BaseModel):
    id: str
    url: str
    width: int
    height: int
    format: str
    size_bytes: int
    uploaded_at: datetime


class ImageOut(ImageUploaded):
    user_id: str
    original_filename: str | None


class Deleted(BaseModel):
    success: bool
    message: str


async def _part_chunks(part: BodyPartReader) -> AsyncIterator[bytes]:
    while chunk := await part.read_chunk(READ_CHUNK_BYTES):
        yield chunk


async def _read_file_field(
    request: web.Request, max_bytes: int
) -> tuple[bytes, str | None]:
    """The bytes and name of the ``file`` field, refused once over ``max_bytes``."""
    if not request.content_type.startswith("multipart/form-data"):
        raise BadRequest(
            "Send the photo as multipart/form-data in a field named 'file'"
        )
    try:
        found = await _find_file_part(request, max_bytes)
    except (ValueError, HttpProcessingError):
        # aiohttp's multipart reader raises these for a missing boundary or
        # broken part headers: the client's mistake, not ours.
        raise BadRequest("The multipart/form-data body is malformed") from None
    if found is not None:
        return found
    raise BadRequest("The form has no field named 'file'")


async def _find_file_part(
    request: web.Request, max_bytes: int
) -> tuple[bytes, str | None] | None:
    reader = await request.multipart()
    async for part in reader:
        if not isinstance(part, BodyPartReader) or part.name != "file":
            continue
        try:
            data = await read_limited(_part_chunks(part), max_bytes)
        except ImageRejected as exc:
            raise BadRequest(str(exc), code=exc.reason_code) from None
        return data, _clean_filename(part.filename)
    return None


def _clean_filename(filename: str | None) -> str | None:
    if not filename:
        return None
    # Browsers and aiohttp percent-encode quotes and other characters in
    # multipart file names; keep the name the patient saw.
    base = unquote(filename).replace("\\", "/").rsplit("/", 1)[-1]
    printable = "".join(c for c in base if c.isprintable())
    return printable[:255] or None


async def image_url(request: web.Request, image: StoredImage) -> str:
    return await request.app[PROVIDERS].storage.url(image.storage_key, URL_TTL_SECONDS)


async def _single_chunk(data: bytes) -> AsyncIterator[bytes]:
    yield data


@routes.post(
    "/images/upload",
    summary="Upload a patient photo (JPEG, PNG or WebP, at most 10 MB)",
    multipart={"file": "The photo"},
    response=ImageUploaded,
    errors={
        400: "Not an accepted image: wrong format, too large, corrupt, too "
        "small, blank or too blurry (the detail says which)"
    },
)
async def upload_image(request: web.Request) -> ImageUploaded:
    """The format is read from the bytes; EXIF orientation is applied and all
    metadata, GPS included, is removed before the photo is stored."""
    user = current_user(request)
    settings = request.app[SETTINGS]
    data, filename = await _read_file_field(request, settings.max_upload_bytes)
    try:
        # Decoding takes ~10x the file size in memory: bound how many at once.
        async with request.app[IMAGE_SLOTS]:
            processed = await asyncio.to_thread(
                process_upload, data, max_bytes=settings.max_upload_bytes
            )
    except ImageRejected as exc:
        raise BadRequest(str(exc), code=exc.reason_code) from None
    del data

    image_id = new_id("img")
    key = f"images/{user.id}/{image_id}.{processed.extension}"
    storage = request.app[PROVIDERS].storage
    await storage.put(key, _single_chunk(processed.content), processed.mime_type)
    image = StoredImage(
        id=image_id,
        user_id=user.id,
        storage_key=key,
        original_filename=filename,
        format=processed.format,
        mime_type=processed.mime_type,
        width=processed.width,
        height=processed.height,
        size_bytes=processed.size_bytes,
    )
    try:
        async with request.app[DATABASE].session() as session:
            session.add(image)
    except BaseException:
        # No file without a row: the row could not be written, so drop the file.
        await asyncio.shield(storage.delete(key))
        raise
    logger.info("stored image %s (%d bytes)", image.id, image.size_bytes)
    await audit.record(
        request, action="image.create", resource_type="image", resource_id=image.id
    )
    return ImageUploaded.model_validate(await _describe(request, image))


async def _describe(request: web.Request, image: StoredImage) -> dict[str, object]:
    """The image's public fields with a fresh signed link."""
    return {
        "id": image.id,
        "user_id": image.user_id,
        "url": await image_url(request, image),
        "width": image.width,
        "height": image.height,
        "format": image.format,
        "size_bytes": image.size_bytes,
        "original_filename": image.original_filename,
        "uploaded_at": image.uploaded_at,
    }


async def load_owned_image(request: web.Request, image_id: str) -> StoredImage:
    """The caller's image; 404 when there is none, 403 when it is someone else's."""
    user = current_user(request)
    async with request.app[DATABASE].session() as session:
        image = await session.get(StoredImage, image_id)
    if image is None:
        raise NotFound("Image not found")
    if image.user_id != user.id:
        raise Forbidden("Access denied to this image")
    return image


@routes.get(
    "/images/{image_id}",
    summary="Metadata of one of the caller's photos",
    response=ImageOut,
    errors={403: "The image belongs to another user", 404: "Image not found"},
)
async def get_image(request: web.Request) -> ImageOut:
    image_id = request.match_info["image_id"]
    async with audit.audited(
        request, action="image.read", resource_type="image", resource_id=image_id[:64]
    ):
        image = await load_owned_image(request, image_id)
    return ImageOut.model_validate(await _describe(request, image))


@routes.delete(
    "/images/{image_id}",
    summary="Delete one of the caller's photos and its stored file",
    response=Deleted,
    errors={403: "The image belongs to another user", 404: "Image not found"},
)
async def delete_image(request: web.Request) -> Deleted:
    """Also deletes the previews made from the photo. Rows go only if every
    stored file could be removed: a failed file delete rolls the rows back."""
    image_id = request.match_info["image_id"]
    async with audit.audited(
        request, action="image.delete", resource_type="image", resource_id=image_id[:64]
    ):
        image = await load_owned_image(request, image_id)
        previews = await _delete_with_previews(request, image)
    logger.info("deleted image %s and %d previews", image.id, len(previews))
    return Deleted(success=True, message=f"Image {image.id} deleted successfully")


async def _delete_with_previews(
    request: web.Request, image: StoredImage
) -> Sequence[Visualization]:
    storage = request.app[PROVIDERS].storage
    async with request.app[DATABASE].session() as session:
        row = await session.get(StoredImage, image.id)
        if row is None:
            raise NotFound("Image not found")
        previews = (
            await session.scalars(
                select(Visualization).where(Visualization.before_image_id == image.id)
            )
        ).all()
        for preview in previews:
            await session.delete(preview)
        await session.delete(row)
        await session.flush()
        for key in [p.after_storage_key for p in previews] + [image.storage_key]:
            await storage.delete(key)
    return previews

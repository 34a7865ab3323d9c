"""Signed, expiring links to stored files (local storage backend)."""

from __future__ import annotations

from aiohttp import web

from docwiz.api.routing import RouteTable
from docwiz.appkeys import PROVIDERS
from docwiz.builtin.local_storage import LocalStorage, SignatureExpired, SignedUrlError
from docwiz.errors import Forbidden, NotFound
from docwiz.providers import ObjectNotFound

routes = RouteTable("files")


@routes.get(
    "/files/{key:.+}",
    summary="Download a stored file through a signed link",
    auth="none",
    content_types=("image/jpeg", "image/png", "image/webp", "application/pdf"),
    errors={
        403: "The link was altered or has expired",
        404: "No such file, or files are not served by this storage backend",
    },
)
async def download_file(request: web.Request) -> web.StreamResponse:
    """The links come from the ``url`` fields of other responses; the signature
    in the query string stands in for a token, so they work in a browser."""
    storage = request.app[PROVIDERS].storage
    if not isinstance(storage, LocalStorage):
        raise NotFound("Files are served by the storage backend's own links")

    try:
        chunks, stored = await storage.open_signed(
            request.match_info["key"],
            request.query.get("expires", ""),
            request.query.get("signature", ""),
        )
    except SignatureExpired:
        raise Forbidden("This link has expired; fetch the record again") from None
    except SignedUrlError:
        raise Forbidden("This link is not valid") from None
    except ObjectNotFound:
        raise NotFound("The file no longer exists") from None

    response = web.StreamResponse(
        headers={
            "Content-Type": stored.content_type,
            "Cache-Control": "private, max-age=300",
            "X-Content-Type-Options": "nosniff",
        }
    )
    response.content_length = stored.size_bytes
    try:
        await response.prepare(request)
        async for chunk in chunks:
            await response.write(chunk)
    finally:
        await chunks.aclose()
    await response.write_eof()
    return response

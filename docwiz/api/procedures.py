"""The procedure catalog: served from memory, with ETags."""

from __future__ import annotations

import asyncio
import hashlib

from aiohttp import web
from pydantic import BaseModel, Field

from docwiz.api.routing import RouteTable
from docwiz.appkeys import CATALOG
from docwiz.errors import BadRequest, NotFound
from docwiz.services.catalog import (
    CATEGORIES,
    Catalog,
    CategoriesResponse,
    ProcedureDetail,
    ProcedureListResponse,
    ProcedureNotFound,
)

routes = RouteTable("procedures")


class ProcedureQuery(BaseModel):
    category: str | None = Field(
        default=None, description="One of: " + ", ".join(CATEGORIES)
    )
    search: str | None = Field(
        default=None,
        max_length=100,
        description="Words that must all appear in the name, description or "
        'common synonyms ("nose" finds rhinoplasty)',
    )


class Initialized(BaseModel):
    message: str
    count: int


def _cached_json(request: web.Request, model: BaseModel, etag: str) -> web.Response:
    """The body with its ETag, or 304 when the client already holds it."""
    headers = {"ETag": etag, "Cache-Control": "public, max-age=300"}
    if etag in {
        tag.strip() for tag in request.headers.get("If-None-Match", "").split(",")
    }:
        return web.Response(status=304, headers=headers)
    return web.json_response(model.model_dump(mode="json"), headers=headers)


def _variant_etag(catalog: Catalog, *parts: str | None) -> str:
    digest = hashlib.sha256(
        "\x00".join(p or "" for p in (catalog.etag, *parts)).encode()
    )
    return f'"{digest.hexdigest()[:32]}"'


@routes.get(
    "/procedures",
    summary="List procedures, optionally by category or search words",
    auth="none",
    query=ProcedureQuery,
    response=ProcedureListResponse,
)
async def list_procedures(request: web.Request, query: ProcedureQuery) -> web.Response:
    catalog = request.app[CATALOG].current
    category = query.category.strip().lower() if query.category else None
    if category is not None and category not in CATEGORIES:
        raise BadRequest(
            f"Unknown category {query.category!r}; use one of: {', '.join(CATEGORIES)}"
        )
    search = query.search.strip() if query.search else None
    body = catalog.list_response(category, search or None)
    return _cached_json(request, body, _variant_etag(catalog, "list", category, search))


@routes.get(
    "/procedures/categories",
    summary="The procedure categories",
    auth="none",
    response=CategoriesResponse,
)
async def list_categories(request: web.Request) -> web.Response:
    catalog = request.app[CATALOG].current
    return _cached_json(
        request, catalog.categories_response(), _variant_etag(catalog, "cat")
    )


@routes.get(
    "/procedures/{procedure_id}",
    summary="One procedure",
    auth="none",
    response=ProcedureDetail,
    errors={404: "Procedure not found"},
)
async def get_procedure(request: web.Request) -> web.Response:
    catalog = request.app[CATALOG].current
    procedure_id = request.match_info["procedure_id"]
    try:
        procedure = catalog.get(procedure_id)
    except ProcedureNotFound:
        raise NotFound("Procedure not found") from None
    return _cached_json(
        request, procedure.to_detail(), _variant_etag(catalog, "one", procedure_id)
    )


@routes.post(
    "/procedures/initialize",
    summary="Reload the procedure catalog from the seed data (admin)",
    auth="admin",
    response=Initialized,
)
async def initialize_procedures(request: web.Request) -> Initialized:
    """Idempotent: reads and validates the shipped seed file again and serves
    it from memory. A fresh install needs no call; the catalog loads at start."""
    holder = request.app[CATALOG]
    holder.current = await asyncio.to_thread(Catalog.load, holder.path)
    count = len(holder.current)
    return Initialized(
        message=f"Successfully initialized {count} procedures", count=count
    )

"""Procedure previews on a patient's photo, and the similar past cases."""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, field_validator

from docwiz.api.images import URL_TTL_SECONDS, image_url, load_owned_image
from docwiz.api.routing import RouteTable
from docwiz.appkeys import CATALOG, DATABASE, PROVIDERS, SETTINGS
from docwiz.auth_context import current_user
from docwiz.db.base import new_id
from docwiz.db.models_accounts import PatientProfile
from docwiz.db.models_images import StoredImage
from docwiz.db.models_visualizations import SimilarCase, Visualization
from docwiz.db.session import Database
from docwiz.errors import BadRequest, FieldError, Forbidden, NotFound
from docwiz.providers import GenerationRefused
from docwiz.services import audit
from docwiz.services.cases import (
    AgeRange,
    CaseFilters,
    MeasuredRegion,
    RankedCase,
    ensure_demo_cases,
    find_similar_cases,
    resolve_procedure,
    short_procedure_name,
)
from docwiz.services.catalog import ProcedureNotFound
from docwiz.services.visualizations import (
    after_image_key,
    generate_preview,
    read_object,
    save_visualization,
)

logger = logging.getLogger("docwiz.visualizations")

routes = RouteTable("visualizations")


# -- bodies ------------------------------------------------------------------------


class VisualizationRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    image_id: str = Field(min_length=1, max_length=40, description="An uploaded photo")
    procedure_id: str = Field(
        min_length=1, max_length=64, description="A catalog procedure id"
    )
    patient_id: str = Field(
        min_length=1, max_length=40, description="The caller's patient profile"
    )


class GenerateOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    async_processing: bool = Field(
        default=False,
        description="Run as a background task (not available yet: true answers 400)",
    )


class VisualizationMetadata(BaseModel):
    model: str
    processing_time_ms: int


class VisualizationOut(BaseModel):
    id: str
    patient_id: str
    procedure_id: str
    before_image_url: str
    after_image_url: str
    prompt_used: str
    generated_at: datetime
    confidence_score: float
    metadata: VisualizationMetadata


class SimilarCasesQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    procedure_type: str | None = Field(
        default=None,
        min_length=1,
        max_length=100,
        description='Only cases of this procedure: an id or short name ("rhinoplasty")',
    )
    age_range: str | None = Field(
        default=None,
        max_length=7,
        description="Only cases whose age range overlaps this one, like 20-30",
    )
    min_outcome_rating: float | None = Field(
        default=None,
        ge=0.0,
        le=1.0,
        allow_inf_nan=False,
        description="Only cases rated at least this (0 to 1)",
    )
    limit: int = Field(default=10, ge=1, le=50, description="At most this many cases")

    @field_validator("age_range")
    @classmethod
    def _age_range(cls, value: str | None) -> str | None:
        return None if value is None else str(AgeRange.parse(value))


class SimilarCaseOut(BaseModel):
    id: str
    before_image_url: str
    after_image_url: str
    procedure_type: str
    similarity_score: float
    outcome_rating: float
    patient_satisfaction: int
    age_range: str
    anonymized: bool
    matching_criteria: str
    demo: bool = Field(description="A shipped demo case, not a real patient")


class SimilarCasesOut(BaseModel):
    query_visualization_id: str
    similar_cases: list[SimilarCaseOut]
    total_found: int = Field(description="Cases that passed the filters, before limit")
    filters_applied: dict[str, str | float]


# -- loading what the caller owns --------------------------------------------------


async def _load_owned_profile(request: web.Request, patient_id: str) -> PatientProfile:
    async with request.app[DATABASE].session() as session:
        profile = await session.get(PatientProfile, patient_id)
    if profile is None:
        raise NotFound("Patient profile not found")
    if profile.user_id != current_user(request).id:
        raise Forbidden("Not authorized to access this profile")
    return profile


async def _load_before_image(request: web.Request, image_id: str) -> StoredImage:
    try:
        return await load_owned_image(request, image_id)
    except NotFound:
        raise BadRequest("Image not found", code="image_not_found") from None


async def _load_owned_visualization(
    request: web.Request, visualization_id: str
) -> Visualization:
    async with request.app[DATABASE].session() as session:
        visualization = await session.get(Visualization, visualization_id)
    if visualization is None:
        raise NotFound("Visualization not found")
    if visualization.user_id != current_user(request).id:
        raise Forbidden("Access denied to this visualization")
    return visualization


async def _visualization_out(
    request: web.Request, visualization: Visualization
) -> VisualizationOut:
    storage = request.app[PROVIDERS].storage
    async with request.app[DATABASE].session() as session:
        before = await session.get(StoredImage, visualization.before_image_id)
    if before is None:  # the foreign key cascades; only a race can get here
        raise NotFound("Visualization not found")
    return VisualizationOut(
        id=visualization.id,
        patient_id=visualization.patient_id,
        procedure_id=visualization.procedure_id,
        before_image_url=await image_url(request, before),
        after_image_url=await storage.url(
            visualization.after_storage_key, URL_TTL_SECONDS
        ),
        prompt_used=visualization.prompt_used,
        generated_at=visualization.generated_at,
        confidence_score=visualization.confidence_score,
        metadata=VisualizationMetadata(
            model=visualization.model,
            processing_time_ms=visualization.processing_time_ms,
        ),
    )


# -- endpoints ---------------------------------------------------------------------


@routes.post(
    "/visualizations",
    summary="Preview a procedure on one of the patient's photos",
    body=VisualizationRequest,
    query=GenerateOptions,
    response=VisualizationOut,
    errors={
        400: "Image or procedure not found, asynchronous processing asked for, "
        "or the photo cannot be used for this procedure (no face for a facial "
        "procedure, region out of frame)",
        403: "The image or the patient profile belongs to another user",
        404: "Patient profile not found",
        502: "The image generator failed or returned no usable image",
        503: "No image generator is configured",
        504: "The image generator did not answer in time",
    },
)
async def create_visualization(
    request: web.Request, body: VisualizationRequest, query: GenerateOptions
) -> VisualizationOut:
    """Runs the configured image generator (the offline one by default) and
    waits for it. The before photo's region features are kept for similar
    cases; the after image is stored beside the photo."""
    if query.async_processing:
        # TODO(visualizations): run through the task queue once task status
        # and WebSocket progress exist; until then say so instead of faking it.
        raise BadRequest("asynchronous processing is not available yet")
    catalog = request.app[CATALOG].current
    try:
        procedure = catalog.get(body.procedure_id)
    except ProcedureNotFound:
        raise BadRequest("Procedure not found", code="procedure_not_found") from None

    async with audit.audited(
        request,
        action="visualization.create",
        resource_type="visualization",
        patient_id=body.patient_id,
    ) as event:
        profile = await _load_owned_profile(request, body.patient_id)
        image = await _load_before_image(request, body.image_id)
        providers = request.app[PROVIDERS]
        before = await read_object(providers.storage, image.storage_key)
        try:
            preview = await generate_preview(
                providers.image_generator,
                before,
                image.mime_type,
                procedure.to_info(),
            )
        except GenerationRefused as exc:
            raise BadRequest(str(exc), code="generation_refused") from None

        visualization_id = new_id("viz")
        event.resource_id = visualization_id
        result, features = preview.result, preview.features
        visualization = await save_visualization(
            request.app[DATABASE],
            providers.storage,
            Visualization(
                id=visualization_id,
                user_id=profile.user_id,
                patient_id=profile.id,
                before_image_id=image.id,
                procedure_id=procedure.id,
                body_region=procedure.body_region,
                after_storage_key=after_image_key(
                    profile.user_id, visualization_id, preview.extension
                ),
                after_mime_type=preview.mime_type,
                prompt_used=result.prompt_used,
                model=result.model,
                confidence_score=result.confidence_score,
                processing_time_ms=result.processing_time_ms,
                feature_anchor=None if features is None else features.anchor,
                features=None if features is None else dict(features.values),
            ),
            preview,
        )
        return await _visualization_out(request, visualization)


@routes.get(
    "/visualizations/{visualization_id}",
    summary="One of the caller's previews, with fresh image links",
    response=VisualizationOut,
    errors={
        403: "The visualization belongs to another user",
        404: "Visualization not found",
    },
)
async def get_visualization(request: web.Request) -> VisualizationOut:
    async with _audited_read(request, "visualization.read") as visualization:
        return await _visualization_out(request, visualization)


@asynccontextmanager
async def _audited_read(
    request: web.Request, action: str
) -> AsyncIterator[Visualization]:
    """The caller's visualization named in the path, its read recorded as
    ``action`` with the outcome of the whole block (403 and 404 included)."""
    visualization_id = request.match_info["visualization_id"]
    async with audit.audited(
        request,
        action=action,
        resource_type="visualization",
        resource_id=visualization_id[:64],
    ) as event:
        visualization = await _load_owned_visualization(request, visualization_id)
        event.patient_id = visualization.patient_id
        yield visualization


@routes.get(
    "/visualizations/{visualization_id}/similar",
    summary="Past cases similar to a preview, most similar first",
    query=SimilarCasesQuery,
    response=SimilarCasesOut,
    errors={
        400: "Invalid filters: unknown parameter, unknown procedure, bad age "
        "range, rating outside 0-1 or limit outside 1-50",
        403: "The visualization belongs to another user",
        404: "Visualization not found",
    },
)
async def similar_cases(
    request: web.Request, query: SimilarCasesQuery
) -> SimilarCasesOut:
    """Cases of the same body region, scored 0.4 x procedure match (1 same
    procedure, 0.5 same region) + 0.6 x closeness of the treated region's
    geometry on the two before photos. Demo cases say so (`demo`)."""
    filters, applied = _case_filters(request, query)
    async with _audited_read(request, "similar_cases.read") as visualization:
        if request.app[SETTINGS].demo_cases:
            await _ensure_demo_library(request.app)

        features = None
        if visualization.features and visualization.feature_anchor:
            features = MeasuredRegion(
                visualization.feature_anchor, visualization.features
            )
        async with request.app[DATABASE].session() as session:
            ranked, total = await find_similar_cases(
                session,
                catalog=request.app[CATALOG].current,
                procedure_id=visualization.procedure_id,
                body_region=visualization.body_region,
                features=features,
                filters=filters,
                limit=query.limit,
            )
        return SimilarCasesOut(
            query_visualization_id=visualization.id,
            similar_cases=[await _case_out(request, r) for r in ranked],
            total_found=total,
            filters_applied=applied,
        )


def _case_filters(
    request: web.Request, query: SimilarCasesQuery
) -> tuple[CaseFilters, dict[str, str | float]]:
    applied: dict[str, str | float] = {}
    procedure_id = None
    if query.procedure_type is not None:
        try:
            procedure = resolve_procedure(
                request.app[CATALOG].current, query.procedure_type
            )
        except ProcedureNotFound:
            raise BadRequest(
                "Invalid filters",
                errors=[
                    FieldError(
                        field="procedure_type",
                        message=f"no procedure {query.procedure_type!r} in the "
                        "catalog; use an id or short name from GET /api/procedures",
                    )
                ],
            ) from None
        procedure_id = procedure.id
        applied["procedure_type"] = short_procedure_name(procedure.id)
    age_range = None
    if query.age_range is not None:
        age_range = AgeRange.parse(query.age_range)
        applied["age_range"] = str(age_range)
    if query.min_outcome_rating is not None:
        applied["min_outcome_rating"] = query.min_outcome_rating
    filters = CaseFilters(
        procedure_id,
        age_range,
        query.min_outcome_rating,
        include_demo=request.app[SETTINGS].demo_cases,
    )
    return filters, applied


async def _case_out(request: web.Request, ranked: RankedCase) -> SimilarCaseOut:
    storage = request.app[PROVIDERS].storage
    case: SimilarCase = ranked.case
    return SimilarCaseOut(
        id=case.id,
        before_image_url=await storage.url(case.before_storage_key, URL_TTL_SECONDS),
        after_image_url=await storage.url(case.after_storage_key, URL_TTL_SECONDS),
        procedure_type=short_procedure_name(case.procedure_id),
        similarity_score=ranked.similarity_score,
        outcome_rating=case.outcome_rating,
        patient_satisfaction=case.patient_satisfaction,
        age_range=case.age_range,
        anonymized=True,
        matching_criteria=ranked.matching_criteria,
        demo=case.is_demo,
    )


# -- the demo library, loaded on first use -----------------------------------------


@dataclass
class _DemoLibraryState:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    loaded: bool = False


_demo_states: weakref.WeakKeyDictionary[Database, _DemoLibraryState] = (
    weakref.WeakKeyDictionary()
)


async def _ensure_demo_library(app: web.Application) -> None:
    """Import the shipped demo cases the first time the library is queried.

    Loading at first use rather than at start keeps every other start (and
    every test app) free of the copy into storage. A failure is logged and
    the query goes on with the cases that are there; the next query retries.
    """
    database = app[DATABASE]
    state = _demo_states.setdefault(database, _DemoLibraryState())
    if state.loaded:
        return
    async with state.lock:
        if state.loaded:
            return
        try:
            await ensure_demo_cases(
                database,
                app[PROVIDERS].storage,
                app[CATALOG].current,
                app[SETTINGS].seeds_dir / "cases",
            )
        except Exception:
            logger.exception("the demo case library could not be loaded")
            return
        state.loaded = True

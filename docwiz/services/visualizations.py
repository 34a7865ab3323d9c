"""Procedure previews: run the active image generator on a stored photo, keep the
after image and the before photo's region features, with no orphaned files."""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

from docwiz.builtin.offline_generator import describe_region
from docwiz.db.models_visualizations import Visualization
from docwiz.db.session import Database
from docwiz.providers import (
    GenerationRefused,
    GenerationRequest,
    GenerationResult,
    GeneratorFailed,
    ImageGenerator,
    ProcedureInfo,
    StorageBackend,
)
from docwiz.services.cases import (
    BODY_FEATURE_NAMES,
    FACE_FEATURE_NAMES,
    MeasuredRegion,
)
from docwiz.services.images import sniff_format

log = logging.getLogger("docwiz.visualizations")


@dataclass(frozen=True)
class Preview:
    """A generator's answer, checked, with the before photo's region features."""

    result: GenerationResult
    mime_type: str
    extension: str
    features: MeasuredRegion | None


async def read_object(storage: StorageBackend, key: str) -> bytes:
    return b"".join([chunk async for chunk in storage.open(key)])


async def generate_preview(
    generator: ImageGenerator,
    before: bytes,
    mime_type: str,
    procedure: ProcedureInfo,
) -> Preview:
    """Ask the generator for the after image and describe the treated region.

    Raises what the generator raises (refused 400, failed 502, timed out 504)
    and :class:`GeneratorFailed` for an answer that is not a usable image.
    """
    result = await generator.generate(
        GenerationRequest(image=before, mime_type=mime_type, procedure=procedure)
    )
    kind = sniff_format(result.image)
    if kind is None:
        raise GeneratorFailed(
            f"the image generator {generator.model_name!r} returned something "
            "that is not a JPEG, PNG or WebP image"
        )
    if not (
        math.isfinite(result.confidence_score) and 0.0 <= result.confidence_score <= 1
    ):
        raise GeneratorFailed(
            f"the image generator {generator.model_name!r} returned a confidence "
            f"of {result.confidence_score!r}, outside 0 to 1"
        )

    features = features_from_details(result.details, procedure.body_region)
    if features is None:
        features = await measure_region(before, procedure.body_region)
    return Preview(result, kind.mime_type, kind.extension, features)


def features_from_details(
    details: Mapping[str, Any], body_region: str
) -> MeasuredRegion | None:
    """The region features a generator already measured (the offline one does)."""
    values, anchor = details.get("features"), details.get("anchor")
    if details.get("region") != body_region or not isinstance(values, Mapping):
        return None
    known = FACE_FEATURE_NAMES if anchor == "face" else BODY_FEATURE_NAMES
    if anchor not in ("face", "face-estimated-body", "image-centre") or not (
        values and set(values) <= known
    ):
        return None
    if not all(
        isinstance(v, int | float) and math.isfinite(v) for v in values.values()
    ):
        return None
    return MeasuredRegion(str(anchor), {k: float(v) for k, v in values.items()})


async def measure_region(photo: bytes, body_region: str) -> MeasuredRegion | None:
    """Region features of ``photo``, or ``None`` when the region cannot be found
    (a generator such as Gemini may succeed where the face detector does not)."""
    try:
        measured = await asyncio.to_thread(describe_region, photo, body_region)
    except GenerationRefused as exc:
        log.info("no region features for the preview: %s", exc)
        return None
    return MeasuredRegion(measured.anchor, measured.as_dict())


def after_image_key(user_id: str, visualization_id: str, extension: str) -> str:
    return f"visualizations/{user_id}/{visualization_id}_after.{extension}"


async def _one_chunk(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def save_visualization(
    database: Database,
    storage: StorageBackend,
    visualization: Visualization,
    preview: Preview,
) -> Visualization:
    """Store the after image at ``visualization.after_storage_key``, then the row.

    If the row cannot be written the stored image is deleted again.
    """
    key = visualization.after_storage_key
    await storage.put(key, _one_chunk(preview.result.image), preview.mime_type)
    try:
        async with database.session() as session:
            session.add(visualization)
    except BaseException:
        await asyncio.shield(storage.delete(key))
        raise
    log.info(
        "stored visualization %s (%s, %d ms)",
        visualization.id,
        visualization.model,
        visualization.processing_time_ms,
    )
    return visualization

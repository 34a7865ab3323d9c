"""The built-in image generator: a smooth warp of the treated region only, placed by
OpenCV's Haar cascades, on the CPU, with no network and nothing to download.

How a preview is made:

1. Facial regions (``FACIAL_REGIONS``) need a frontal face; without one the
   request is refused. Parts of the region are placed from the eyes with the
   proportions documented in :mod:`docwiz.builtin.face_geometry`.
2. Body regions (``BODY_REGIONS``) are placed from the head height below the
   chin when a face is found ("face-estimated-body"). Without a face the photo
   is taken to be framed on the torso (shoulders at the top, upper thighs at
   the bottom) and the region is placed at fixed fractions of the image
   ("image-centre"); that guess caps the confidence at 0.3. ``skin`` works on
   the face when there is one.
3. Each part is an ellipse with a procedure-specific displacement (narrowing,
   lift, inflation, vertical fullness, a shift towards the midline, or skin
   smoothing). Displacement and blend weight are full inside half the radius
   and fade to exactly zero at the ellipse's edge (smoothstep), so every pixel
   outside the ellipses keeps its original bytes. The after image is a PNG.
4. A "SIMULATION" mark goes in the first corner clear of the treated region.

The same input always gives the same bytes: no randomness, and detections are
sorted before use.
"""

from __future__ import annotations

import asyncio
import io
import logging
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import cv2
import numpy as np
import numpy.typing as npt
from PIL import Image

from docwiz.builtin.face_geometry import (
    ALAR_WIDTH_IN_IPD,
    HEAD_HEIGHT_IN_IPD,
    MENTON_BELOW_PUPILS,
    MOUTH_WIDTH_IN_IPD,
    STOMION_BELOW_PUPILS,
    ColourImage,
    FaceDetection,
    Point,
    detect_face,
    face_chip,
    mouth_width,
    texture_roughness,
    to_frame,
)
from docwiz.hookspecs import hookimpl
from docwiz.providers import (
    FACIAL_REGIONS,
    GenerationRefused,
    GenerationRequest,
    GenerationResult,
    GeneratorFailed,
    ProcedureInfo,
    Provider,
    ProviderContext,
)

log = logging.getLogger("docwiz.generators")

MODEL_NAME = "docwiz-offline-warp/1"
MAX_PIXELS = 50_000_000
MIN_SIDE = 64
MIN_VISIBLE_FRACTION = 0.5
"""Share of a region's ellipses that must lie inside the photo to treat it."""

MAX_INTENSITY = 1.5
_MAX_STRENGTH = 0.3
"""Per-part cap on a displacement strength; beyond it the smoothstep fade folds."""
_CORE = 0.5
"""Inside this fraction of an ellipse's radius the effect is at full strength."""
_MIN_JACOBIAN = 0.3
"""The warp is scaled down until no pixel is squeezed below this stretch."""

Anchor = Literal["face", "face-estimated-body", "image-centre"]
Bounds = tuple[int, int, int, int]
"""A rectangle as (left, top, right, bottom), right and bottom exclusive."""
FloatArray = npt.NDArray[np.float32]


# -- recipes -------------------------------------------------------------------


@dataclass(frozen=True)
class Placement:
    """Where one part of a region lies, in the anchor's units.

    For the face the unit is the interpupillary distance from the point
    between the pupils; for the body it is the head height from the chin;
    for the image-centre fallback it is the image's width and height, with
    ``across`` measured from the vertical centre line. A mirrored part is
    placed on both sides at ``±across``.
    """

    across: float
    down: float
    radius_across: float
    radius_down: float
    mirrored: bool = False


@dataclass(frozen=True)
class Adjustment:
    """How one part moves; strengths are fractions of the part's radii.

    ``narrowing`` pulls towards the part's vertical axis (negative widens),
    ``lift`` moves content up, ``inflation`` enlarges radially (negative
    contracts), ``vertical_fullness`` stretches up and down from the centre
    line, ``medial_shift`` moves a mirrored part towards the midline, and
    ``smoothing`` blends in an edge-preserving blur (skin procedures).
    """

    part: str
    narrowing: float = 0.0
    lift: float = 0.0
    inflation: float = 0.0
    vertical_fullness: float = 0.0
    medial_shift: float = 0.0
    smoothing: float = 0.0

    def strengths(self) -> dict[str, float]:
        return {
            name: value
            for name, value in (
                ("narrowing", self.narrowing),
                ("lift", self.lift),
                ("inflation", self.inflation),
                ("vertical_fullness", self.vertical_fullness),
                ("medial_shift", self.medial_shift),
                ("smoothing", self.smoothing),
            )
            if value
        }


FACE_PARTS: dict[str, Placement] = {
    "dorsum": Placement(0.0, 0.22, 0.22, 0.40),
    "alar_base": Placement(0.0, 0.55, 0.58, 0.22),
    "nasal_tip": Placement(0.0, 0.48, 0.20, 0.17),
    "upper_lid": Placement(0.5, -0.20, 0.42, 0.24, mirrored=True),
    "brow": Placement(0.5, -0.42, 0.48, 0.28, mirrored=True),
    "lips": Placement(0.0, STOMION_BELOW_PUPILS, MOUTH_WIDTH_IN_IPD, 0.42),
    "chin": Placement(0.0, 1.45, 0.50, 0.34),
    "jaw_angle": Placement(0.92, 1.20, 0.36, 0.50, mirrored=True),
    "cheek": Placement(0.72, 0.45, 0.36, 0.34, mirrored=True),
    "ear": Placement(1.20, 0.15, 0.30, 0.60, mirrored=True),
    "lower_face": Placement(0.68, 1.05, 0.50, 0.60, mirrored=True),
    "neck": Placement(0.0, 2.20, 0.85, 0.55),
    "face_skin": Placement(0.0, 0.45, 1.05, 1.35),
}
"""Facial parts in IPD units from the point between the pupils."""

BODY_PARTS: dict[str, Placement] = {
    "breast": Placement(0.42, 1.05, 0.34, 0.32, mirrored=True),
    "abdomen": Placement(0.0, 1.95, 0.60, 0.55),
    "flank": Placement(0.55, 1.75, 0.25, 0.50, mirrored=True),
    "upper_arm": Placement(0.98, 1.25, 0.22, 0.55, mirrored=True),
    "thigh": Placement(0.32, 3.30, 0.32, 0.65, mirrored=True),
    "buttock": Placement(0.30, 2.75, 0.32, 0.35, mirrored=True),
    "back": Placement(0.0, 1.60, 0.70, 0.80),
}
"""Body parts in head heights below the chin (nipples ~1, navel ~2, crotch ~3)."""

CENTRE_PARTS: dict[str, Placement] = {
    "breast": Placement(0.17, 0.34, 0.14, 0.13, mirrored=True),
    "abdomen": Placement(0.0, 0.60, 0.25, 0.20),
    "flank": Placement(0.27, 0.55, 0.10, 0.18, mirrored=True),
    "upper_arm": Placement(0.40, 0.38, 0.08, 0.22, mirrored=True),
    "thigh": Placement(0.16, 0.80, 0.12, 0.16, mirrored=True),
    "buttock": Placement(0.15, 0.60, 0.15, 0.16, mirrored=True),
    "back": Placement(0.0, 0.45, 0.30, 0.30),
    "face_skin": Placement(0.0, 0.50, 0.30, 0.32),
}
"""Body parts as image fractions, for a torso-framed photo without a face."""

RECIPES: dict[str, tuple[Adjustment, ...]] = {
    "nose": (
        Adjustment("dorsum", narrowing=0.10),
        Adjustment("alar_base", narrowing=0.14),
        Adjustment("nasal_tip", inflation=-0.10, lift=0.06),
    ),
    "eyelids": (Adjustment("upper_lid", lift=0.20),),
    "brow": (Adjustment("brow", lift=0.22),),
    "lips": (Adjustment("lips", vertical_fullness=0.14, inflation=0.03),),
    "chin": (Adjustment("chin", lift=-0.18, inflation=0.05),),
    "jawline": (Adjustment("jaw_angle", medial_shift=0.16),),
    "cheeks": (Adjustment("cheek", inflation=0.08, lift=0.06),),
    "ears": (Adjustment("ear", medial_shift=0.22),),
    "face": (Adjustment("lower_face", medial_shift=0.08, lift=0.10),),
    "neck": (Adjustment("neck", narrowing=0.08, lift=0.08),),
    "breast": (Adjustment("breast", inflation=0.10),),
    "abdomen": (Adjustment("abdomen", narrowing=0.08, lift=0.05),),
    "waist": (Adjustment("flank", medial_shift=0.15),),
    "arms": (Adjustment("upper_arm", narrowing=0.12),),
    "thighs": (Adjustment("thigh", narrowing=0.10),),
    "buttocks": (Adjustment("buttock", inflation=0.08, lift=0.06),),
    "back": (Adjustment("back", narrowing=0.06),),
    "skin": (Adjustment("face_skin", smoothing=0.6),),
}
"""The default adjustment of every region a catalog procedure may name."""

VARIANTS: dict[tuple[str, str], tuple[Adjustment, ...]] = {
    ("breast", "reduction"): (Adjustment("breast", inflation=-0.10, lift=0.06),),
    ("breast", "lift"): (Adjustment("breast", lift=0.18),),
    ("breast", "mastopexy"): (Adjustment("breast", lift=0.18),),
    ("lips", "reduction"): (Adjustment("lips", vertical_fullness=-0.10),),
    ("chin", "reduction"): (Adjustment("chin", lift=0.12, inflation=-0.05),),
    ("cheeks", "reduction"): (Adjustment("cheek", inflation=-0.08),),
    ("buttocks", "reduction"): (Adjustment("buttock", inflation=-0.08),),
}
"""Procedures whose name or id carries the keyword move the other way."""


def recipe_for(procedure: ProcedureInfo) -> tuple[str, tuple[Adjustment, ...]]:
    """The variant name and adjustments for a procedure's body region."""
    region = procedure.body_region
    if region not in RECIPES:
        raise GenerationRefused(
            f"the offline generator has no preview for the body region {region!r}"
        )
    words = f"{procedure.id} {procedure.name}".lower()
    for (variant_region, keyword), adjustments in VARIANTS.items():
        if variant_region == region and keyword in words:
            return keyword, adjustments
    return "default", RECIPES[region]


# -- locating the region ---------------------------------------------------------


@dataclass(frozen=True)
class PlacedPart:
    """One ellipse of the region in the photo's pixels."""

    name: str
    adjustment: Adjustment
    centre: Point
    radii: tuple[float, float]
    angle: float
    """Direction of the ellipse's ``across`` axis in radians."""
    side: int
    """-1 on the photo's left of the midline, +1 on its right, 0 on it."""

    def bounds(self, width: int, height: int) -> Bounds:
        ux, uy = math.cos(self.angle), math.sin(self.angle)
        rx, ry = self.radii
        half_w = math.hypot(rx * ux, ry * uy)
        half_h = math.hypot(rx * uy, ry * ux)
        return (
            max(0, math.floor(self.centre[0] - half_w)),
            max(0, math.floor(self.centre[1] - half_h)),
            min(width, math.ceil(self.centre[0] + half_w) + 1),
            min(height, math.ceil(self.centre[1] + half_h) + 1),
        )

    def as_details(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "centre": [round(self.centre[0], 2), round(self.centre[1], 2)],
            "radii": [round(self.radii[0], 2), round(self.radii[1], 2)],
            "angle_degrees": round(math.degrees(self.angle), 2),
            **self.adjustment.strengths(),
        }


@dataclass(frozen=True)
class RegionLayout:
    """The treated region of one photo, and how sure its placement is."""

    body_region: str
    anchor: Anchor
    parts: tuple[PlacedPart, ...]
    visible_fraction: float
    confidence: float
    face: FaceDetection | None
    image_size: tuple[int, int]
    measured_mouth_width: float | None = None

    @property
    def bounds(self) -> Bounds:
        """The smallest rectangle holding every part, clipped to the photo."""
        width, height = self.image_size
        boxes = [part.bounds(width, height) for part in self.parts]
        return (
            min(box[0] for box in boxes),
            min(box[1] for box in boxes),
            max(box[2] for box in boxes),
            max(box[3] for box in boxes),
        )


def locate_region(
    image: ColourImage, body_region: str, adjustments: tuple[Adjustment, ...]
) -> RegionLayout:
    """Place the region's parts on the photo, or refuse when it cannot be done."""
    height, width = image.shape[:2]
    face = detect_face(image)

    if body_region in FACIAL_REGIONS and face is None:
        raise GenerationRefused(
            f"no front-facing face was found in the photo; a {body_region} "
            "preview needs a portrait with the whole face visible"
        )
    if face is not None and (body_region in FACIAL_REGIONS or body_region == "skin"):
        layout = _facial_layout(image, face, body_region, adjustments)
    elif face is not None:
        layout = _body_layout_from_face(face, body_region, adjustments, (width, height))
    else:
        layout = _centre_layout(body_region, adjustments, (width, height))

    if layout.visible_fraction < MIN_VISIBLE_FRACTION:
        raise GenerationRefused(
            f"the photo does not show the {body_region}: only "
            f"{layout.visible_fraction:.0%} of where it should be lies inside the frame"
        )
    return layout


def _facial_layout(
    image: ColourImage,
    face: FaceDetection,
    body_region: str,
    adjustments: tuple[Adjustment, ...],
) -> RegionLayout:
    frame = face.frame
    size = (image.shape[1], image.shape[0])
    measured_mouth = None
    certainty = 1.0
    stomion = STOMION_BELOW_PUPILS
    if body_region == "lips":
        if face.smile_centre is not None:
            stomion = to_frame(frame, face.smile_centre)[1]
        measured_mouth = mouth_width(face_chip(image, frame), stomion)
        # Without the smile cascade or a measured width the lips are pure
        # proportion; that is a weaker placement.
        certainty = (1.0 if face.smile_centre else 0.9) * (
            1.0 if measured_mouth else 0.9
        )

    parts: list[PlacedPart] = []
    for adjustment in adjustments:
        placement = FACE_PARTS[adjustment.part]
        down, radius_across = placement.down, placement.radius_across
        if adjustment.part == "lips":
            down = stomion
            radius_across = max(radius_across, measured_mouth or 0.0)
        for side in _sides(placement):
            parts.append(
                PlacedPart(
                    name=_part_name(adjustment.part, side),
                    adjustment=adjustment,
                    centre=frame.to_image(side * placement.across, down),
                    radii=(
                        radius_across * frame.ipd,
                        placement.radius_down * frame.ipd,
                    ),
                    angle=frame.roll,
                    side=side,
                )
            )
    visible = _visible_fraction(parts, size)
    return RegionLayout(
        body_region=body_region,
        anchor="face",
        parts=tuple(parts),
        visible_fraction=visible,
        confidence=_clamp(face.confidence * certainty * min(1.0, visible / 0.95)),
        face=face,
        image_size=size,
        measured_mouth_width=measured_mouth,
    )


def _body_layout_from_face(
    face: FaceDetection,
    body_region: str,
    adjustments: tuple[Adjustment, ...],
    size: tuple[int, int],
) -> RegionLayout:
    """Body parts from the head height, upright below the chin."""
    chin_x, chin_y = face.frame.to_image(0.0, MENTON_BELOW_PUPILS)
    head = HEAD_HEIGHT_IN_IPD * face.frame.ipd
    parts = [
        PlacedPart(
            name=_part_name(adjustment.part, side),
            adjustment=adjustment,
            centre=(
                chin_x + side * placement.across * head,
                chin_y + placement.down * head,
            ),
            radii=(placement.radius_across * head, placement.radius_down * head),
            angle=0.0,
            side=side,
        )
        for adjustment in adjustments
        for placement in (BODY_PARTS[adjustment.part],)
        for side in _sides(placement)
    ]
    visible = _visible_fraction(parts, size)
    # Body proportions vary far more than facial ones; a face-based placement
    # is a reasonable estimate, not a detection.
    confidence = face.confidence * 0.6 * min(1.0, visible / 0.95)
    return RegionLayout(
        body_region=body_region,
        anchor="face-estimated-body",
        parts=tuple(parts),
        visible_fraction=visible,
        confidence=_clamp(confidence),
        face=face,
        image_size=size,
    )


def _centre_layout(
    body_region: str, adjustments: tuple[Adjustment, ...], size: tuple[int, int]
) -> RegionLayout:
    """Body parts at fixed fractions of a photo assumed framed on the torso."""
    width, height = size
    parts = [
        PlacedPart(
            name=_part_name(adjustment.part, side),
            adjustment=adjustment,
            centre=(width * (0.5 + side * placement.across), height * placement.down),
            radii=(placement.radius_across * width, placement.radius_down * height),
            angle=0.0,
            side=side,
        )
        for adjustment in adjustments
        for placement in (CENTRE_PARTS[adjustment.part],)
        for side in _sides(placement)
    ]
    visible = _visible_fraction(parts, size)
    return RegionLayout(
        body_region=body_region,
        anchor="image-centre",
        parts=tuple(parts),
        visible_fraction=visible,
        confidence=_clamp(0.3 * min(1.0, visible / 0.95)),
        face=None,
        image_size=size,
    )


def _sides(placement: Placement) -> tuple[int, ...]:
    return (-1, 1) if placement.mirrored else (0,)


def _part_name(part: str, side: int) -> str:
    return {-1: f"{part}_left", 0: part, 1: f"{part}_right"}[side]


def _visible_fraction(parts: list[PlacedPart], size: tuple[int, int]) -> float:
    """Share of the parts' ellipse area inside the photo, on a 21x21 sample."""
    steps = np.linspace(-1.0, 1.0, 21)
    grid_x, grid_y = np.meshgrid(steps, steps)
    inside_ellipse = grid_x**2 + grid_y**2 <= 1.0
    total = visible = 0
    for part in parts:
        ux, uy = math.cos(part.angle), math.sin(part.angle)
        rx, ry = part.radii
        xs = part.centre[0] + grid_x * rx * ux - grid_y * ry * uy
        ys = part.centre[1] + grid_x * rx * uy + grid_y * ry * ux
        in_photo = (xs >= 0) & (xs < size[0]) & (ys >= 0) & (ys < size[1])
        total += int(inside_ellipse.sum())
        visible += int((inside_ellipse & in_photo).sum())
    return visible / total if total else 0.0


def _clamp(value: float) -> float:
    return float(min(1.0, max(0.0, value)))


# -- the warp --------------------------------------------------------------------


def _falloff(radius: FloatArray) -> FloatArray:
    """1 inside :data:`_CORE`, smoothstep down to exactly 0 at radius 1."""
    t = np.clip((1.0 - radius) / (1.0 - _CORE), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


@dataclass
class _Field:
    """Displacement and blend weights over the region's bounding rectangle."""

    bounds: Bounds
    dx: FloatArray
    dy: FloatArray
    blend: FloatArray
    smoothing: FloatArray
    grid_x: FloatArray = field(repr=False)
    grid_y: FloatArray = field(repr=False)


def _displacement_field(
    parts: tuple[PlacedPart, ...],
    bounds: Bounds,
    image_size: tuple[int, int],
    intensity: float,
) -> _Field:
    left, top, right, bottom = bounds
    grid_y, grid_x = np.mgrid[top:bottom, left:right].astype(np.float32)
    shape = grid_x.shape
    result = _Field(
        bounds=bounds,
        dx=np.zeros(shape, np.float32),
        dy=np.zeros(shape, np.float32),
        blend=np.zeros(shape, np.float32),
        smoothing=np.zeros(shape, np.float32),
        grid_x=grid_x,
        grid_y=grid_y,
    )
    for part in parts:
        _add_part(result, part, part.bounds(*image_size), intensity)
    return result


def _add_part(
    target: _Field, part: PlacedPart, part_bounds: Bounds, intensity: float
) -> None:
    """Add one ellipse's displacement (a backward map: where each pixel reads)."""
    x0, y0, x1, y1 = part_bounds
    rows = slice(y0 - target.bounds[1], y1 - target.bounds[1])
    cols = slice(x0 - target.bounds[0], x1 - target.bounds[0])
    ux, uy = math.cos(part.angle), math.sin(part.angle)
    rx, ry = part.radii
    offset_x = target.grid_x[rows, cols] - part.centre[0]
    offset_y = target.grid_y[rows, cols] - part.centre[1]
    across = (offset_x * ux + offset_y * uy) / rx
    down = (offset_y * ux - offset_x * uy) / ry
    weight = _falloff(np.sqrt(across * across + down * down))

    def strength(value: float) -> float:
        return max(-_MAX_STRENGTH, min(_MAX_STRENGTH, value * intensity))

    adjust = part.adjustment
    # Reading from farther out narrows; from nearer the centre enlarges; from
    # below lifts; from the lateral side shifts content towards the midline.
    narrowing = strength(adjust.narrowing) - strength(adjust.inflation)
    fullness = strength(adjust.vertical_fullness) + strength(adjust.inflation)
    medial = part.side * strength(adjust.medial_shift)
    shift_across = rx * weight * (narrowing * across + medial)
    shift_down = ry * weight * (strength(adjust.lift) - fullness * down)
    target.dx[rows, cols] += shift_across * ux - shift_down * uy
    target.dy[rows, cols] += shift_across * uy + shift_down * ux
    np.maximum(target.blend[rows, cols], weight, out=target.blend[rows, cols])
    if adjust.smoothing:
        smooth = weight * min(1.0, adjust.smoothing * intensity)
        np.maximum(
            target.smoothing[rows, cols], smooth, out=target.smoothing[rows, cols]
        )


def _fold_guard(warp: _Field) -> float:
    """Scale down overlapping parts' summed displacement so it never folds.

    Returns the scale applied (1.0 when the field was already safe).
    """
    stretch_x = 1.0 + np.diff(warp.dx, axis=1)
    stretch_y = 1.0 + np.diff(warp.dy, axis=0)
    least = float(min(stretch_x.min(initial=1.0), stretch_y.min(initial=1.0)))
    if least >= _MIN_JACOBIAN:
        return 1.0
    scale = (1.0 - _MIN_JACOBIAN) / (1.0 - least)
    warp.dx *= scale
    warp.dy *= scale
    return scale


def apply_region_warp(
    image: ColourImage, layout: RegionLayout, intensity: float
) -> tuple[ColourImage, float]:
    """The after image and the fold-guard scale; pixels outside the parts'
    ellipses are copied from ``image`` unchanged."""
    bounds = layout.bounds
    left, top, right, bottom = bounds
    warp = _displacement_field(layout.parts, bounds, layout.image_size, intensity)
    guard = _fold_guard(warp)

    warped = cv2.remap(
        image,
        warp.grid_x + warp.dx,
        warp.grid_y + warp.dy,
        interpolation=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REFLECT_101,
    ).astype(np.float32)
    if warp.smoothing.any():
        smoothed = cv2.bilateralFilter(warped, 9, 40.0, 7.0)
        warped += warp.smoothing[..., None] * (smoothed - warped)

    original = image[top:bottom, left:right]
    before = original.astype(np.float32)
    blended = before + warp.blend[..., None] * (warped - before)
    after = image.copy()
    treated = np.clip(np.rint(blended), 0, 255).astype(np.uint8)
    # Outside the ellipses the blend weight is exactly 0; copy the original
    # bytes there so rounding can never touch them.
    after[top:bottom, left:right] = np.where(
        warp.blend[..., None] > 0, treated, original
    )
    return after, guard


# -- the simulation mark -----------------------------------------------------------


def _overlap_area(a: Bounds, b: Bounds) -> int:
    return max(0, min(a[2], b[2]) - max(a[0], b[0])) * max(
        0, min(a[3], b[3]) - max(a[1], b[1])
    )


def draw_watermark(image: ColourImage, text: str, avoid: Bounds) -> Bounds:
    """Stamp ``text`` on a dark plate in a corner clear of ``avoid``.

    Corners are tried bottom-right, bottom-left, top-right, top-left; the first
    clear of the treated region wins, else the one overlapping it least.
    """
    height, width = image.shape[:2]
    side = min(width, height)
    text_height = max(10, round(0.028 * side))
    font = cv2.FONT_HERSHEY_SIMPLEX
    scale = text_height / cv2.getTextSize("S", font, 1.0, 1)[0][1]
    thickness = max(1, round(text_height / 12))
    (text_w, text_h), baseline = cv2.getTextSize(text, font, scale, thickness)
    pad, margin = max(2, round(0.4 * text_height)), max(2, round(0.02 * side))
    plate_w = min(width, text_w + 2 * pad)
    plate_h = min(height, text_h + baseline + 2 * pad)

    corners = [
        (width - margin - plate_w, height - margin - plate_h),
        (margin, height - margin - plate_h),
        (width - margin - plate_w, margin),
        (margin, margin),
    ]
    guarded = (
        avoid[0] - margin,
        avoid[1] - margin,
        avoid[2] + margin,
        avoid[3] + margin,
    )
    plates = [
        (max(0, x), max(0, y), max(0, x) + plate_w, max(0, y) + plate_h)
        for x, y in corners
    ]
    plate = min(plates, key=lambda box: _overlap_area(box, guarded))

    x0, y0, x1, y1 = plate
    image[y0:y1, x0:x1] = (image[y0:y1, x0:x1].astype(np.uint16) * 2 // 5).astype(
        np.uint8
    )
    cv2.putText(
        image,
        text,
        (x0 + pad, y1 - pad - baseline),
        font,
        scale,
        (255, 255, 255),
        thickness,
        cv2.LINE_AA,
    )
    return plate


# -- features for similar cases ------------------------------------------------------


@dataclass(frozen=True)
class RegionFeatures:
    """A small numeric description of the treated region's geometry.

    Facial regions (anchor ``face``) share these values, all unitless:

    - ``face_width_to_image_width``: how tightly the photo frames the face
    - ``ipd_to_face_width``: interpupillary distance over the face box width
    - ``roll_degrees``: tilt of the eye line
    - ``eyes_detected_fraction``: eyes the eye cascade found, over two
    - ``eye_width_to_ipd``: detected eye box width over the IPD (0.6 if none)
    - ``mouth_line_below_pupils``: smile-cascade mouth line in IPD units (0.97
      when not found)
    - ``mouth_width_to_ipd``: lip width measured from redness (0.8 if unclear)
    - ``region_width_to_face_width``, ``region_height_to_face_width``
    - ``region_texture_roughness``: Laplacian energy of the region, in [0, 1]

    ``nose`` adds ``nose_width_to_face_width``: the proportional alar width
    (0.55 IPD) over the face box width.
    TODO(generator): measure the alae once a shipped landmark model allows it.

    Body regions (anchors ``face-estimated-body`` and ``image-centre``) have
    ``anchored_on_face``, ``region_centre_x``, ``region_centre_y``,
    ``region_width_to_image_width``, ``region_height_to_image_height``,
    ``visible_fraction`` and ``region_texture_roughness``.

    Values are rounded to four decimals. ``confidence`` is the placement's
    certainty in [0, 1], as in :class:`GenerationResult`.
    """

    body_region: str
    anchor: Anchor
    names: tuple[str, ...]
    values: tuple[float, ...]
    confidence: float

    def as_dict(self) -> dict[str, float]:
        return dict(zip(self.names, self.values, strict=True))


_DEFAULT_EYE_WIDTH_TO_IPD = 0.6


def describe_region(image: bytes, body_region: str) -> RegionFeatures:
    """Describe the region a procedure on ``body_region`` would treat.

    Synchronous and CPU-bound: call it from a worker thread. Raises
    :class:`GenerationRefused` when the photo cannot be read or does not show
    the region (a facial region without a face, for instance).
    """
    if body_region not in RECIPES:
        raise GenerationRefused(f"unknown body region {body_region!r}")
    photo = decode_photo(image)
    layout = locate_region(photo, body_region, RECIPES[body_region])
    return _features(photo, layout)


def _features(photo: ColourImage, layout: RegionLayout) -> RegionFeatures:
    left, top, right, bottom = layout.bounds
    values: dict[str, float] = {}
    face = layout.face
    if layout.anchor == "face" and face is not None:
        frame, face_width = face.frame, float(face.box[2])
        mouth_line = STOMION_BELOW_PUPILS
        if face.smile_centre is not None:
            mouth_line = to_frame(frame, face.smile_centre)[1]
        mouth = layout.measured_mouth_width
        if mouth is None and layout.body_region != "lips":
            mouth = mouth_width(face_chip(photo, frame), mouth_line)
        values = {
            "face_width_to_image_width": face_width / photo.shape[1],
            "ipd_to_face_width": frame.ipd / face_width,
            "roll_degrees": math.degrees(frame.roll),
            "eyes_detected_fraction": len(face.eyes) / 2.0,
            "eye_width_to_ipd": (
                face.eye_width / frame.ipd
                if face.eye_width
                else _DEFAULT_EYE_WIDTH_TO_IPD
            ),
            "mouth_line_below_pupils": mouth_line,
            "mouth_width_to_ipd": mouth or MOUTH_WIDTH_IN_IPD,
            "region_width_to_face_width": (right - left) / face_width,
            "region_height_to_face_width": (bottom - top) / face_width,
        }
        if layout.body_region == "nose":
            values["nose_width_to_face_width"] = (
                ALAR_WIDTH_IN_IPD * frame.ipd / face_width
            )
    else:
        height, width = photo.shape[:2]
        values = {
            "anchored_on_face": 1.0 if layout.anchor != "image-centre" else 0.0,
            "region_centre_x": (left + right) / 2.0 / width,
            "region_centre_y": (top + bottom) / 2.0 / height,
            "region_width_to_image_width": (right - left) / width,
            "region_height_to_image_height": (bottom - top) / height,
            "visible_fraction": layout.visible_fraction,
        }
    values["region_texture_roughness"] = texture_roughness(
        photo[top:bottom, left:right]
    )
    return RegionFeatures(
        body_region=layout.body_region,
        anchor=layout.anchor,
        names=tuple(values),
        values=tuple(round(float(value), 4) for value in values.values()),
        confidence=round(layout.confidence, 4),
    )


# -- the generator ---------------------------------------------------------------------


def decode_photo(image: bytes) -> ColourImage:
    """Decode a JPEG, PNG or WebP into BGR pixels, refusing unusable files."""
    try:
        with Image.open(io.BytesIO(image)) as header:
            width, height = header.size
    except (OSError, ValueError, Image.DecompressionBombError) as error:
        raise GenerationRefused("the photo could not be read as an image") from error
    if width * height > MAX_PIXELS:
        raise GenerationRefused(
            f"the photo has {width * height:,} pixels; the limit is {MAX_PIXELS:,}"
        )
    decoded = cv2.imdecode(np.frombuffer(image, np.uint8), cv2.IMREAD_COLOR)
    if decoded is None:
        raise GenerationRefused("the photo could not be decoded")
    photo = np.asarray(decoded, dtype=np.uint8)
    if min(photo.shape[:2]) < MIN_SIDE:
        raise GenerationRefused(
            f"the photo is too small; both sides need at least {MIN_SIDE} pixels"
        )
    return photo


def _flag(value: Any, option: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in {"1", "true", "yes", "on"}:
        return True
    if text in {"0", "false", "no", "off"}:
        return False
    raise ValueError(f"option {option!r} must be true or false, not {value!r}")


def _intensity(value: Any, option: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if not 0.0 <= number <= MAX_INTENSITY:
        raise ValueError(f"{option} must be a number from 0 to {MAX_INTENSITY}")
    return number


def _mark_text(value: Any) -> str:
    """Hershey fonts draw ASCII only; anything else becomes '?'."""
    text = str(value).strip()[:40]
    return "".join(ch if 32 <= ord(ch) < 127 else "?" for ch in text)


class OfflineGenerator:
    """The default :class:`~docwiz.providers.ImageGenerator`; see the module
    docstring for what it does."""

    model_name = MODEL_NAME

    def __init__(
        self,
        *,
        watermark: bool = True,
        watermark_text: str = "SIMULATION",
        intensity: float = 1.0,
    ) -> None:
        self.watermark = watermark
        self.watermark_text = _mark_text(watermark_text) or "SIMULATION"
        self.intensity = _intensity(intensity, "intensity")

    async def generate(self, request: GenerationRequest) -> GenerationResult:
        try:
            return await asyncio.to_thread(self.generate_sync, request)
        except cv2.error as error:
            # An OpenCV failure is ours, not the photo's: answer 502, not 400.
            raise GeneratorFailed(f"the offline generator failed: {error}") from error

    def generate_sync(self, request: GenerationRequest) -> GenerationResult:
        """The whole preview on the calling thread (``generate`` runs it off the
        event loop)."""
        started = time.perf_counter()
        intensity = self._request_intensity(request.options)
        variant, adjustments = recipe_for(request.procedure)
        photo = decode_photo(request.image)
        layout = locate_region(photo, request.procedure.body_region, adjustments)

        after, guard = apply_region_warp(photo, layout, intensity)
        mark = None
        if self.watermark:
            mark = draw_watermark(after, self.watermark_text, layout.bounds)
        encoded_ok, png = cv2.imencode(".png", after, [cv2.IMWRITE_PNG_COMPRESSION, 3])
        if not encoded_ok:
            raise GeneratorFailed("OpenCV could not encode the after image as PNG")

        elapsed_ms = round((time.perf_counter() - started) * 1000)
        log.debug(
            "offline preview region=%s anchor=%s confidence=%.3f in %d ms",
            layout.body_region,
            layout.anchor,
            layout.confidence,
            elapsed_ms,
        )
        return GenerationResult(
            image=png.tobytes(),
            mime_type="image/png",
            prompt_used=_describe_parameters(
                request.procedure, variant, layout, intensity
            ),
            model=self.model_name,
            confidence_score=round(layout.confidence, 4),
            processing_time_ms=elapsed_ms,
            details=_details(photo, layout, variant, intensity, guard, mark),
        )

    def _request_intensity(self, options: Mapping[str, Any]) -> float:
        if "intensity" not in options:
            return self.intensity
        try:
            requested = _intensity(options["intensity"], "intensity")
        except ValueError as error:
            raise GenerationRefused(str(error)) from error
        return min(MAX_INTENSITY, requested * self.intensity)


def _describe_parameters(
    procedure: ProcedureInfo, variant: str, layout: RegionLayout, intensity: float
) -> str:
    seen: dict[str, str] = {}
    for part in layout.parts:
        for name, value in part.adjustment.strengths().items():
            seen.setdefault(f"{part.adjustment.part}.{name}", f"{value:.2f}")
    steps = ", ".join(f"{key}={value}" for key, value in seen.items())
    return (
        f"offline warp: region={layout.body_region}, procedure={procedure.id}, "
        f"variant={variant}, {steps}, intensity={intensity:.2f}, "
        f"anchor={layout.anchor}, feather=smoothstep {_CORE:.1f}-1.0 of each ellipse"
    )


def _details(
    photo: ColourImage,
    layout: RegionLayout,
    variant: str,
    intensity: float,
    guard: float,
    mark: Bounds | None,
) -> dict[str, Any]:
    return {
        "region": layout.body_region,
        "variant": variant,
        "anchor": layout.anchor,
        "image_size": list(layout.image_size),
        "region_box": list(layout.bounds),
        "parts": [part.as_details() for part in layout.parts],
        "visible_fraction": round(layout.visible_fraction, 4),
        "face": None if layout.face is None else layout.face.as_details(),
        "intensity": round(intensity, 4),
        "fold_guard_scale": round(guard, 4),
        "watermark_box": None if mark is None else list(mark),
        "features": _features(photo, layout).as_dict(),
    }


def build_offline_generator(context: ProviderContext) -> OfflineGenerator:
    """Factory for the ``offline`` provider.

    Options (``[plugins.offline]``): ``watermark`` (true/false, default true),
    ``watermark_text`` (default ``SIMULATION``, ASCII), ``intensity`` (0 to
    1.5, default 1.0; a request's ``intensity`` option multiplies it).
    """
    options = context.options
    return OfflineGenerator(
        watermark=_flag(options.get("watermark", True), "watermark"),
        watermark_text=str(options.get("watermark_text", "SIMULATION")),
        intensity=_intensity(options.get("intensity", 1.0), "intensity"),
    )


@hookimpl
def docwiz_image_generators() -> list[Provider[OfflineGenerator]]:
    return [
        Provider(
            "offline",
            build_offline_generator,
            "CPU-only region warp placed by OpenCV Haar cascades; no network",
        )
    ]

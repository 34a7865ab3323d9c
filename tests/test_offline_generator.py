"""The built-in offline generator on a real portrait: the treated region changes,
the rest of the photo keeps its exact pixels, and unusable photos are refused."""

from __future__ import annotations

import asyncio
import math
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt
import pluggy
import pytest

from docwiz import hookspecs
from docwiz.builtin import offline_generator
from docwiz.builtin.offline_generator import (
    RECIPES,
    OfflineGenerator,
    build_offline_generator,
    describe_region,
)
from docwiz.providers import (
    BODY_REGIONS,
    FACIAL_REGIONS,
    GenerationRefused,
    GenerationRequest,
    GenerationResult,
    ImageGenerator,
    ProcedureInfo,
    ProviderContext,
)

ASTRONAUT = Path(__file__).parent / "fixtures" / "astronaut.png"
Pixels = npt.NDArray[np.uint8]
Bounds = tuple[int, int, int, int]

MARGIN = 2
"""Pixels around the reported region box that may still be touched."""


@pytest.fixture(scope="module")
def astronaut_bytes() -> bytes:
    return ASTRONAUT.read_bytes()


@pytest.fixture(scope="module")
def astronaut_pixels() -> Pixels:
    pixels = cv2.imread(str(ASTRONAUT), cv2.IMREAD_COLOR)
    assert pixels is not None and pixels.shape == (512, 512, 3)
    return np.asarray(pixels, dtype=np.uint8)


def landscape(width: int = 640, height: int = 480) -> Pixels:
    """A textured, faceless scene: graded sky, a wavy ridge, grainy grass."""
    rng = np.random.default_rng(7)
    down = np.linspace(0.0, 1.0, height)[:, None, None]
    across = np.linspace(0.0, 1.0, width)[None, :, None]
    sky = np.array([200.0, 160.0, 90.0]) + np.array([40.0, 50.0, 60.0]) * (1 - down)
    ridge = 0.55 + 0.08 * np.sin(across * 9.0) + 0.04 * np.sin(across * 23.0 + 1.3)
    scene = np.where(down > ridge, np.array([40.0, 110.0, 60.0]), sky)
    scene = scene + rng.normal(0.0, 18.0, scene.shape)
    blurred = cv2.GaussianBlur(scene.astype(np.float32), (0, 0), 1.2)
    return np.clip(blurred, 0, 255).astype(np.uint8)


def png(pixels: Pixels) -> bytes:
    ok, encoded = cv2.imencode(".png", pixels)
    assert ok
    return encoded.tobytes()


def decoded(result: GenerationResult) -> Pixels:
    assert result.mime_type == "image/png"
    pixels = cv2.imdecode(np.frombuffer(result.image, np.uint8), cv2.IMREAD_COLOR)
    assert pixels is not None
    return np.asarray(pixels, dtype=np.uint8)


def procedure(region: str, name: str = "", proc_id: str = "") -> ProcedureInfo:
    return ProcedureInfo(
        id=proc_id or f"proc_{region}",
        name=name or f"{region} procedure",
        category="test",
        body_region=region,
        coverage="cosmetic",
    )


def request(image: bytes, region: str, **options: Any) -> GenerationRequest:
    return GenerationRequest(
        image=image,
        mime_type="image/png",
        procedure=procedure(region),
        options=options,
    )


def outside(shape: tuple[int, ...], *boxes: Bounds | None) -> npt.NDArray[np.bool_]:
    """True where a pixel lies outside every box (each grown by MARGIN)."""
    keep = np.ones(shape[:2], dtype=bool)
    for box in boxes:
        if box is not None:
            left, top, right, bottom = box
            keep[
                max(0, top - MARGIN) : bottom + MARGIN,
                max(0, left - MARGIN) : right + MARGIN,
            ] = False
    return keep


def ellipse_mask(shape: tuple[int, ...], parts: list[dict[str, Any]]) -> Any:
    """True inside any part's ellipse, its radii grown by MARGIN pixels."""
    rows, cols = np.mgrid[0 : shape[0], 0 : shape[1]].astype(np.float64)
    inside = np.zeros(shape[:2], dtype=bool)
    for part in parts:
        angle = math.radians(part["angle_degrees"])
        dx, dy = cols - part["centre"][0], rows - part["centre"][1]
        across = dx * math.cos(angle) + dy * math.sin(angle)
        down = dy * math.cos(angle) - dx * math.sin(angle)
        rx, ry = (radius + MARGIN for radius in part["radii"])
        inside |= (across / rx) ** 2 + (down / ry) ** 2 <= 1.0
    return inside


def ellipse_extent(part: dict[str, Any]) -> Bounds:
    """The rectangle an ellipse spans, worked out from its axes' end points."""
    angle = math.radians(part["angle_degrees"])
    rx, ry = part["radii"]
    half_w = math.sqrt((rx * math.cos(angle)) ** 2 + (ry * math.sin(angle)) ** 2)
    half_h = math.sqrt((rx * math.sin(angle)) ** 2 + (ry * math.cos(angle)) ** 2)
    cx, cy = part["centre"]
    return (
        math.floor(cx - half_w),
        math.floor(cy - half_h),
        math.ceil(cx + half_w),
        math.ceil(cy + half_h),
    )


def region_change(before: Pixels, after: Pixels, box: Bounds) -> tuple[float, int]:
    left, top, right, bottom = box
    diff = np.abs(
        before[top:bottom, left:right].astype(np.int16)
        - after[top:bottom, left:right].astype(np.int16)
    )
    return float(diff.mean()), int(diff.max())


def centre(box: Bounds) -> tuple[float, float]:
    return ((box[0] + box[2]) / 2.0, (box[1] + box[3]) / 2.0)


# -- facial regions on the portrait --------------------------------------------


@pytest.mark.parametrize("region", FACIAL_REGIONS)
async def test_facial_region_changes_only_inside_its_box(
    region: str, astronaut_bytes: bytes, astronaut_pixels: Pixels
) -> None:
    result = await OfflineGenerator().generate(request(astronaut_bytes, region))
    after = decoded(result)
    box: Bounds = tuple(result.details["region_box"])
    mark: Bounds = tuple(result.details["watermark_box"])

    mean_change, largest_change = region_change(astronaut_pixels, after, box)
    assert mean_change > 0.5, f"{region}: the treated region barely changed"
    assert largest_change >= 20

    untouched = outside(after.shape, box, mark)
    assert untouched.mean() > 0.8
    assert np.array_equal(after[untouched], astronaut_pixels[untouched])

    # Tighter than the box: only the parts' ellipses may change, and the box
    # must hold each ellipse whole so no warp is cut off at its edge.
    parts = result.details["parts"]
    beyond = ~ellipse_mask(after.shape, parts) & outside(after.shape, mark)
    assert np.array_equal(after[beyond], astronaut_pixels[beyond])
    for part in parts:
        left, top, right, bottom = ellipse_extent(part)
        assert box[0] <= max(0, left) and box[1] <= max(0, top)
        assert box[2] >= min(512, right) and box[3] >= min(512, bottom)

    assert result.details["anchor"] == "face"
    assert 0.0 <= result.confidence_score <= 1.0
    assert result.confidence_score > 0.8  # a clear, frontal, well-lit face
    assert result.model == offline_generator.MODEL_NAME
    assert result.processing_time_ms >= 0
    assert f"region={region}" in result.prompt_used


async def test_regions_sit_where_the_face_has_them(astronaut_bytes: bytes) -> None:
    generator = OfflineGenerator()
    centres = {}
    for region in ("brow", "eyelids", "nose", "lips", "chin", "neck"):
        result = await generator.generate(request(astronaut_bytes, region))
        centres[region] = centre(tuple(result.details["region_box"]))
        face = result.details["face"]
    x, y, w, h = face["face_box"]

    downs = [centres[r][1] for r in ("brow", "eyelids", "nose", "lips", "chin", "neck")]
    assert downs == sorted(downs), "regions are out of their top-to-bottom order"
    for region in ("brow", "eyelids", "nose", "lips", "chin"):
        across = centres[region][0]
        assert abs(across - (x + w / 2)) < 0.1 * w, f"{region} is off the midline"
    assert y < centres["nose"][1] < y + h
    assert face["eyes_detected"] == 2
    assert face["confirmed_by_second_cascade"] is True


async def test_nose_prompt_names_the_parameters(astronaut_bytes: bytes) -> None:
    result = await OfflineGenerator().generate(request(astronaut_bytes, "nose"))

    assert result.prompt_used.startswith("offline warp: region=nose")
    assert "alar_base.narrowing=0.14" in result.prompt_used
    assert "nasal_tip.inflation=-0.10" in result.prompt_used
    assert "intensity=1.00" in result.prompt_used
    names = [part["name"] for part in result.details["parts"]]
    assert names == ["dorsum", "alar_base", "nasal_tip"]
    assert result.details["features"]["nose_width_to_face_width"] > 0


async def test_same_photo_gives_the_same_bytes(astronaut_bytes: bytes) -> None:
    first = await OfflineGenerator().generate(request(astronaut_bytes, "nose"))
    second = await OfflineGenerator().generate(request(astronaut_bytes, "nose"))

    assert first.image == second.image
    assert first.prompt_used == second.prompt_used
    assert first.details == second.details
    assert first.confidence_score == second.confidence_score


async def test_concurrent_previews_match_sequential_ones(
    astronaut_bytes: bytes,
) -> None:
    # Threads borrow separate cascade sets; sharing one would corrupt hits.
    generator = OfflineGenerator()
    regions = ["nose", "lips", "eyelids", "chin"] * 2
    together = await asyncio.gather(
        *(generator.generate(request(astronaut_bytes, r)) for r in regions)
    )
    for region, result in zip(regions, together, strict=True):
        alone = await generator.generate(request(astronaut_bytes, region))
        assert result.image == alone.image


async def test_a_tilted_face_is_followed(astronaut_pixels: Pixels) -> None:
    # A positive OpenCV angle turns the photo anticlockwise: the eye line
    # then rises to the right, a negative roll in image coordinates.
    turn = cv2.getRotationMatrix2D((224.0, 110.0), 12.0, 1.0)
    tilted = cv2.warpAffine(
        astronaut_pixels, turn, (512, 512), borderMode=cv2.BORDER_REFLECT
    )
    result = await OfflineGenerator().generate(
        request(png(np.asarray(tilted, dtype=np.uint8)), "nose")
    )

    roll = result.details["face"]["roll_degrees"]
    assert -20.0 < roll < -4.0
    assert all(
        math.isclose(part["angle_degrees"], roll, abs_tol=0.01)
        for part in result.details["parts"]
    )


async def test_jpeg_input_keeps_its_decoded_pixels_outside_the_region(
    astronaut_pixels: Pixels,
) -> None:
    ok, jpeg = cv2.imencode(".jpg", astronaut_pixels, [cv2.IMWRITE_JPEG_QUALITY, 90])
    assert ok
    original = cv2.imdecode(jpeg, cv2.IMREAD_COLOR)
    assert original is not None

    result = await OfflineGenerator(watermark=False).generate(
        request(jpeg.tobytes(), "lips")
    )
    after = decoded(result)
    untouched = outside(after.shape, tuple(result.details["region_box"]))
    assert np.array_equal(after[untouched], original[untouched])


# -- refusals ----------------------------------------------------------------------


@pytest.mark.parametrize("region", ["nose", "eyelids", "lips", "chin", "ears"])
async def test_facial_procedure_without_a_face_is_refused(region: str) -> None:
    with pytest.raises(GenerationRefused, match="no front-facing face"):
        await OfflineGenerator().generate(request(png(landscape()), region))


async def test_body_region_outside_the_frame_is_refused(astronaut_bytes: bytes) -> None:
    # A head-and-shoulders portrait does not show the thighs.
    with pytest.raises(GenerationRefused, match="does not show the thighs"):
        await OfflineGenerator().generate(request(astronaut_bytes, "thighs"))


async def test_unreadable_photo_is_refused() -> None:
    with pytest.raises(GenerationRefused, match="could not be read"):
        await OfflineGenerator().generate(request(b"not an image at all", "nose"))


async def test_tiny_photo_is_refused() -> None:
    tiny = png(np.full((40, 40, 3), 128, np.uint8))
    with pytest.raises(GenerationRefused, match="too small"):
        await OfflineGenerator().generate(request(tiny, "abdomen"))


async def test_unknown_region_is_refused(astronaut_bytes: bytes) -> None:
    with pytest.raises(GenerationRefused, match="no preview for the body region"):
        await OfflineGenerator().generate(request(astronaut_bytes, "elbow"))


@pytest.mark.parametrize("value", ["lots", -1, 9])
async def test_bad_requested_intensity_is_refused(
    value: object, astronaut_bytes: bytes
) -> None:
    with pytest.raises(GenerationRefused, match="intensity"):
        await OfflineGenerator().generate(
            request(astronaut_bytes, "nose", intensity=value)
        )


# -- body regions ------------------------------------------------------------------


async def test_body_region_below_a_face_is_estimated_from_it(
    astronaut_bytes: bytes, astronaut_pixels: Pixels
) -> None:
    facial = await OfflineGenerator().generate(request(astronaut_bytes, "nose"))
    result = await OfflineGenerator().generate(request(astronaut_bytes, "breast"))
    after = decoded(result)
    box: Bounds = tuple(result.details["region_box"])
    mark: Bounds = tuple(result.details["watermark_box"])

    assert result.details["anchor"] == "face-estimated-body"
    face_box = result.details["face"]["face_box"]
    assert box[1] > face_box[1] + face_box[3], "the breast region starts above the chin"
    assert region_change(astronaut_pixels, after, box)[0] > 1.0
    untouched = outside(after.shape, box, mark)
    assert np.array_equal(after[untouched], astronaut_pixels[untouched])
    assert 0.0 <= result.confidence_score < facial.confidence_score


async def test_body_region_without_a_face_uses_the_image_centre() -> None:
    scene = landscape(600, 800)
    result = await OfflineGenerator().generate(request(png(scene), "abdomen"))
    after = decoded(result)
    box: Bounds = tuple(result.details["region_box"])
    mark: Bounds = tuple(result.details["watermark_box"])

    assert result.details["anchor"] == "image-centre"
    assert result.details["face"] is None
    assert 0.0 < result.confidence_score <= 0.3
    assert box[0] > 0 and box[2] < 600, "the abdomen should not span the width"
    assert region_change(scene, after, box)[0] > 1.0
    untouched = outside(after.shape, box, mark)
    assert np.array_equal(after[untouched], scene[untouched])


async def test_reduction_moves_the_other_way(astronaut_bytes: bytes) -> None:
    generator = OfflineGenerator()
    augmentation = await generator.generate(
        GenerationRequest(
            image=astronaut_bytes,
            mime_type="image/png",
            procedure=procedure("breast", "Breast augmentation"),
        )
    )
    reduction = await generator.generate(
        GenerationRequest(
            image=astronaut_bytes,
            mime_type="image/png",
            procedure=procedure("breast", "Breast reduction"),
        )
    )

    assert "variant=default" in augmentation.prompt_used
    assert "variant=reduction" in reduction.prompt_used
    assert "breast.inflation=-0.10" in reduction.prompt_used
    assert augmentation.image != reduction.image


# -- intensity and the simulation mark ---------------------------------------------


async def test_zero_intensity_changes_nothing_but_the_mark(
    astronaut_bytes: bytes, astronaut_pixels: Pixels
) -> None:
    result = await OfflineGenerator().generate(
        request(astronaut_bytes, "nose", intensity=0)
    )
    after = decoded(result)
    mark: Bounds = tuple(result.details["watermark_box"])

    untouched = outside(after.shape, mark)
    assert np.array_equal(after[untouched], astronaut_pixels[untouched])
    assert "intensity=0.00" in result.prompt_used


async def test_watermark_is_stamped_clear_of_the_region(
    astronaut_bytes: bytes, astronaut_pixels: Pixels
) -> None:
    result = await OfflineGenerator().generate(request(astronaut_bytes, "nose"))
    after = decoded(result)
    left, top, right, bottom = result.details["watermark_box"]
    region = result.details["region_box"]

    assert region_change(astronaut_pixels, after, (left, top, right, bottom))[0] > 30
    clear_across = right <= region[0] or left >= region[2]
    clear_down = bottom <= region[1] or top >= region[3]
    assert clear_across or clear_down
    # The bottom-right corner is free of a centred face, so it is used.
    assert right > 400 and bottom > 400


async def test_watermark_can_be_switched_off(
    astronaut_bytes: bytes, astronaut_pixels: Pixels
) -> None:
    marked = await OfflineGenerator().generate(request(astronaut_bytes, "nose"))
    plain = await OfflineGenerator(watermark=False).generate(
        request(astronaut_bytes, "nose")
    )
    left, top, right, bottom = marked.details["watermark_box"]

    assert plain.details["watermark_box"] is None
    corner = decoded(plain)[top:bottom, left:right]
    assert np.array_equal(corner, astronaut_pixels[top:bottom, left:right])


async def test_watermark_text_is_an_option(astronaut_bytes: bytes) -> None:
    context = ProviderContext(
        name="offline",
        options={"watermark_text": "PREVIEW ONLY"},
        data_dir=Path("."),
        mode="embedded",
        secret_key=b"k" * 32,
    )
    default = await OfflineGenerator().generate(request(astronaut_bytes, "nose"))
    custom = await build_offline_generator(context).generate(
        request(astronaut_bytes, "nose")
    )

    assert default.details["watermark_box"] != custom.details["watermark_box"]
    assert default.image != custom.image


# -- the plugin surface -------------------------------------------------------------


def test_registers_as_the_offline_image_generator() -> None:
    manager = pluggy.PluginManager(hookspecs.PROJECT)
    manager.add_hookspecs(hookspecs)
    manager.register(offline_generator, "docwiz.builtin.offline_generator")

    providers = [p for batch in manager.hook.docwiz_image_generators() for p in batch]
    assert [p.name for p in providers] == ["offline"]

    context = ProviderContext(
        name="offline",
        options={"watermark": "false", "intensity": "0.5"},
        data_dir=Path("."),
        mode="embedded",
        secret_key=b"k" * 32,
    )
    generator = providers[0].factory(context)
    assert isinstance(generator, ImageGenerator)
    assert isinstance(generator, OfflineGenerator)
    assert generator.watermark is False
    assert generator.intensity == 0.5


@pytest.mark.parametrize(
    "options", [{"watermark": "maybe"}, {"intensity": "strong"}, {"intensity": 3}]
)
def test_bad_operator_options_stop_the_factory(options: dict[str, Any]) -> None:
    context = ProviderContext(
        name="offline",
        options=options,
        data_dir=Path("."),
        mode="embedded",
        secret_key=b"k" * 32,
    )
    with pytest.raises(ValueError):
        build_offline_generator(context)


def test_every_catalog_region_has_a_recipe() -> None:
    assert set(RECIPES) == set(FACIAL_REGIONS) | set(BODY_REGIONS)


# -- features for similar cases --------------------------------------------------------


def test_describe_region_is_deterministic_and_plausible(astronaut_bytes: bytes) -> None:
    first = describe_region(astronaut_bytes, "nose")
    second = describe_region(astronaut_bytes, "nose")
    features = first.as_dict()

    assert first == second
    assert first.anchor == "face"
    assert 0.0 <= first.confidence <= 1.0
    # Adult alar width is about a quarter of the face width (31-35 mm of
    # 125-140 mm); the Haar box is a little narrower than the cheekbones.
    assert 0.18 <= features["nose_width_to_face_width"] <= 0.35
    assert 0.38 <= features["ipd_to_face_width"] <= 0.62
    assert features["eyes_detected_fraction"] == 1.0
    assert abs(features["roll_degrees"]) < 10.0
    assert 0.0 < features["region_texture_roughness"] < 1.0


def test_describe_region_measures_the_mouth(astronaut_bytes: bytes) -> None:
    features = describe_region(astronaut_bytes, "lips").as_dict()

    # She smiles: a wide mouth, on a line a little higher than at rest.
    assert 0.7 <= features["mouth_width_to_ipd"] <= 1.2
    assert 0.75 <= features["mouth_line_below_pupils"] <= 1.1
    assert "nose_width_to_face_width" not in features


def test_describe_region_without_a_face() -> None:
    scene = png(landscape())
    with pytest.raises(GenerationRefused):
        describe_region(scene, "nose")

    body = describe_region(scene, "abdomen")
    assert body.anchor == "image-centre"
    assert body.as_dict()["anchored_on_face"] == 0.0
    assert body.confidence <= 0.3

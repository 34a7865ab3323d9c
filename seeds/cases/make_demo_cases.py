"""Rebuild the demo case library (``cases.csv`` and ``images/``) from the
public-domain astronaut portrait, with the built-in offline generator.

Run from the repository root: ``.venv/bin/python seeds/cases/make_demo_cases.py``.
The output is deterministic; a test checks that the shipped features match
what :func:`describe_region` measures on the shipped before photos.
"""

from __future__ import annotations

import csv
import io
import json
import sys
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageEnhance, ImageOps

from docwiz.builtin.offline_generator import OfflineGenerator, describe_region
from docwiz.providers import GenerationRequest
from docwiz.services.catalog import Catalog
from docwiz.services.images import process_upload

HERE = Path(__file__).resolve().parent
PORTRAIT = HERE.parents[1] / "tests" / "fixtures" / "astronaut.png"
SIDE = 384
JPEG_QUALITY = 85


@dataclass(frozen=True)
class Variant:
    """How a demo "patient" photo is derived from the portrait."""

    label: str
    crop: tuple[int, int, int, int] = (0, 0, 512, 512)
    mirrored: bool = False
    exposure: float = 1.0


@dataclass(frozen=True)
class DemoCase:
    case_id: str
    procedure_id: str
    variant: Variant
    intensity: float
    age_range: str
    outcome_rating: float
    patient_satisfaction: int


CASES = (
    DemoCase(
        "demo-rhino-01",
        "proc_rhinoplasty",
        Variant("full frame"),
        1.0,
        "30-34",
        0.92,
        5,
    ),
    DemoCase(
        "demo-rhino-02",
        "proc_rhinoplasty",
        Variant("mirrored", mirrored=True),
        0.7,
        "25-29",
        0.85,
        4,
    ),
    DemoCase(
        "demo-rhino-03",
        "proc_rhinoplasty",
        Variant("close crop", crop=(96, 16, 416, 336)),
        1.3,
        "35-39",
        0.78,
        4,
    ),
    DemoCase(
        "demo-rhino-04",
        "proc_rhinoplasty",
        Variant("exposure -20%", exposure=0.8),
        0.9,
        "40-44",
        0.66,
        3,
    ),
    DemoCase(
        "demo-septo-01",
        "proc_septoplasty",
        Variant("exposure +15%", exposure=1.15),
        0.6,
        "20-24",
        0.88,
        5,
    ),
    DemoCase(
        "demo-septo-02",
        "proc_septoplasty",
        Variant("close crop, mirrored", crop=(96, 16, 416, 336), mirrored=True),
        0.8,
        "45-49",
        0.71,
        3,
    ),
    DemoCase(
        "demo-bleph-01",
        "proc_blepharoplasty",
        Variant("upper crop", crop=(64, 0, 448, 384)),
        1.0,
        "45-49",
        0.9,
        5,
    ),
    DemoCase(
        "demo-bleph-02",
        "proc_blepharoplasty",
        Variant(
            "upper crop, mirrored, exposure -10%",
            crop=(64, 0, 448, 384),
            mirrored=True,
            exposure=0.9,
        ),
        1.3,
        "55-59",
        0.74,
        4,
    ),
    DemoCase(
        "demo-ptosis-01",
        "proc_ptosis_repair",
        Variant("close crop, exposure +10%", crop=(96, 16, 416, 336), exposure=1.1),
        0.8,
        "60-64",
        0.81,
        4,
    ),
    DemoCase(
        "demo-lips-01",
        "proc_lip_augmentation",
        Variant("centred crop", crop=(32, 24, 480, 472)),
        1.0,
        "25-29",
        0.83,
        4,
    ),
    DemoCase(
        "demo-lips-02",
        "proc_lip_augmentation",
        Variant("mirrored, exposure +15%", mirrored=True, exposure=1.15),
        0.6,
        "30-34",
        0.7,
        3,
    ),
    DemoCase(
        "demo-chin-01",
        "proc_genioplasty",
        Variant("crop to the left", crop=(40, 0, 456, 416)),
        1.0,
        "30-34",
        0.87,
        5,
    ),
    DemoCase(
        "demo-chin-02",
        "proc_genioplasty",
        Variant("tight crop", crop=(120, 30, 400, 310)),
        1.3,
        "20-24",
        0.62,
        3,
    ),
    DemoCase(
        "demo-face-01",
        "proc_facelift",
        Variant("slight crop, exposure -10%", crop=(0, 0, 480, 480), exposure=0.9),
        1.0,
        "50-54",
        0.9,
        5,
    ),
    DemoCase(
        "demo-face-02",
        "proc_facelift",
        Variant("close crop, exposure -15%", crop=(96, 16, 416, 336), exposure=0.85),
        1.2,
        "60-64",
        0.8,
        4,
    ),
    DemoCase(
        "demo-brow-01",
        "proc_brow_lift",
        Variant("crop, mirrored", crop=(80, 8, 432, 360), mirrored=True),
        1.0,
        "45-49",
        0.77,
        4,
    ),
)


def before_photo(portrait: Image.Image, variant: Variant) -> bytes:
    photo = portrait.crop(variant.crop).resize((SIDE, SIDE), Image.Resampling.LANCZOS)
    if variant.mirrored:
        photo = ImageOps.mirror(photo)
    if variant.exposure != 1.0:
        photo = ImageEnhance.Brightness(photo).enhance(variant.exposure)
    return _jpeg(photo)


def _jpeg(photo: Image.Image) -> bytes:
    encoded = io.BytesIO()
    photo.convert("RGB").save(encoded, "JPEG", quality=JPEG_QUALITY, optimize=True)
    return encoded.getvalue()


def main() -> int:
    catalog = Catalog.load()
    generator = OfflineGenerator(watermark_text="DEMO SIMULATION")
    portrait = Image.open(PORTRAIT).convert("RGB")
    images = HERE / "images"
    images.mkdir(exist_ok=True)
    rows = []
    for case in CASES:
        procedure = catalog.procedure_info(case.procedure_id)
        before = before_photo(portrait, case.variant)
        process_upload(before)  # the same checks as a patient's upload
        result = generator.generate_sync(
            GenerationRequest(
                before, "image/jpeg", procedure, {"intensity": case.intensity}
            )
        )
        after = _jpeg(Image.open(io.BytesIO(result.image)))
        process_upload(after)
        features = describe_region(before, procedure.body_region)

        before_name = f"images/{case.case_id}_before.jpg"
        after_name = f"images/{case.case_id}_after.jpg"
        (HERE / before_name).write_bytes(before)
        (HERE / after_name).write_bytes(after)
        rows.append(
            {
                "case_id": case.case_id,
                "procedure_id": case.procedure_id,
                "age_range": case.age_range,
                "outcome_rating": f"{case.outcome_rating:.2f}",
                "patient_satisfaction": case.patient_satisfaction,
                "before_image": before_name,
                "after_image": after_name,
                "notes": (
                    "Demo, not a real patient or outcome: the public-domain NASA "
                    f"astronaut portrait ({case.variant.label}) and a preview by "
                    f"the offline generator at intensity {case.intensity:.1f}; "
                    "age and ratings are invented."
                ),
                "feature_anchor": features.anchor,
                "features": json.dumps(features.as_dict(), separators=(",", ":")),
            }
        )
    with (HERE / "cases.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    total = sum(p.stat().st_size for p in images.iterdir())
    print(f"{len(rows)} demo cases, {total / 1024:.0f} KiB of photos")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Fixtures for the Gemini plugin's tests: the imitation server and a photo."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from docwiz_gemini.settings import GeminiSettings
from docwiz_gemini.testing import GeminiImitation
from PIL import Image, ImageDraw, ImageFilter

from docwiz.providers import ProcedureInfo

IMITATION_API_KEY = "test-gemini-key-0123456789"

SettingsFactory = Callable[..., GeminiSettings]


@pytest.fixture
async def gemini_imitation() -> AsyncIterator[GeminiImitation]:
    imitation = GeminiImitation(api_key=IMITATION_API_KEY)
    await imitation.start()
    yield imitation
    await imitation.close()


@pytest.fixture
def gemini_settings(gemini_imitation: GeminiImitation) -> SettingsFactory:
    """Settings aimed at the imitation, with back-off short enough for tests."""

    def build(**overrides: Any) -> GeminiSettings:
        options: dict[str, Any] = {
            "api_key": IMITATION_API_KEY,
            "base_url": gemini_imitation.base_url,
            "timeout_seconds": 10,
            "backoff_seconds": 0.01,
            **overrides,
        }
        return GeminiSettings.from_options(options, environ={})

    return build


@pytest.fixture
def portrait_jpeg() -> bytes:
    """A 160x200 JPEG with a face-like shape on a gradient background."""
    photo = Image.linear_gradient("L").resize((160, 200)).convert("RGB")
    draw = ImageDraw.Draw(photo)
    draw.ellipse((40, 40, 120, 150), fill=(224, 182, 150))
    draw.ellipse((60, 80, 72, 88), fill=(60, 40, 30))
    draw.ellipse((88, 80, 100, 88), fill=(60, 40, 30))
    draw.polygon([(80, 90), (72, 115), (88, 115)], fill=(205, 160, 130))
    draw.arc((64, 120, 96, 135), 0, 180, fill=(150, 70, 70), width=3)
    encoded = io.BytesIO()
    photo.filter(ImageFilter.SMOOTH).save(encoded, format="JPEG", quality=90)
    return encoded.getvalue()


@pytest.fixture
def rhinoplasty() -> ProcedureInfo:
    return ProcedureInfo(
        id="proc_rhinoplasty",
        name="Rhinoplasty",
        category="facial",
        body_region="nose",
        coverage="cosmetic",
        cpt_codes=("30400",),
        description="Reshapes the nasal bridge and tip.",
    )

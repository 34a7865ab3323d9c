"""Previews through the Gemini plugin: the real google-genai client against the
plugin's imitation of ``generateContent`` on 127.0.0.1."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import FormData
from aiohttp.test_utils import TestClient
from docwiz_gemini.testing import (
    GeminiImitation,
    decode_bytes_field,
    inline_parts,
    refusal,
    slow,
)

from docwiz.config import Settings

pytestmark = pytest.mark.integration

API_KEY = "test-gemini-key-for-previews"
MODEL = "gemini-2.5-flash-image"
TIMEOUT_SECONDS = 3
PORTRAIT = (
    Path(__file__).parent / "fixtures" / "images" / "astronaut.jpg"
).read_bytes()
PROFILE: dict[str, Any] = {
    "name": "Jane Roe",
    "date_of_birth": "1988-04-02",
    "location": {"zip_code": "94102", "city": "San Francisco", "state": "CA"},
    "medical_history": "Asthma since childhood",
}


@pytest.fixture
async def gemini() -> AsyncIterator[GeminiImitation]:
    imitation = GeminiImitation(api_key=API_KEY)
    await imitation.start()
    yield imitation
    await imitation.close()


@pytest.fixture
def settings(tmp_path: Path, gemini: GeminiImitation) -> Settings:
    """The service with Gemini as its image generator (used by ``client``)."""
    return Settings(
        data_dir=tmp_path / "var",
        image_generator="gemini",
        plugins={
            "gemini": {
                "api_key": API_KEY,
                "base_url": gemini.base_url,
                "model": MODEL,
                "timeout_seconds": TIMEOUT_SECONDS,
                "max_retries": 1,
                "backoff_seconds": 0.01,
            }
        },
    )


@pytest.fixture
async def preview_request(client: TestClient[Any, Any], account: Any) -> dict[str, str]:
    form = FormData()
    form.add_field("file", PORTRAIT, filename="me.jpg", content_type="image/jpeg")
    uploaded = await client.post(
        "/api/images/upload", data=form, headers=account.headers
    )
    profile = await client.post("/api/profiles", json=PROFILE, headers=account.headers)
    assert (uploaded.status, profile.status) == (200, 201)
    return {
        "image_id": (await uploaded.json())["id"],
        "patient_id": (await profile.json())["id"],
        "procedure_id": "proc_rhinoplasty",
    }


def stored_previews(settings: Settings) -> list[Path]:
    root = settings.data_dir / "files" / "visualizations"
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


async def test_a_gemini_preview(
    client: TestClient[Any, Any],
    account: Any,
    gemini: GeminiImitation,
    preview_request: dict[str, str],
) -> None:
    response = await client.post(
        "/api/visualizations", json=preview_request, headers=account.headers
    )

    assert response.status == 200, await response.text()
    body = await response.json()
    assert body["metadata"]["model"] == MODEL
    assert body["confidence_score"] == 0.85
    assert "rhinoplasty" in body["prompt_used"].lower()
    after = await client.get(body["after_image_url"])
    assert after.status == 200
    assert after.content_type == "image/png"

    # Only the photo and the procedure prompt went out: nothing about the patient.
    (sent,) = gemini.requests
    assert sent.model == MODEL and sent.api_key_accepted
    body_sent = sent.body
    (photo,) = inline_parts(body_sent)
    assert decode_bytes_field(photo["data"]).startswith(b"\xff\xd8")  # the JPEG
    photo["data"] = ""  # base64 may spell anything; check the rest of the body
    rest = json.dumps(body_sent)
    for private in ("Jane", "Roe", "1988", "Asthma", "94102", "profile_"):
        assert private not in rest

    similar = await client.get(
        f"/api/visualizations/{body['id']}/similar", headers=account.headers
    )
    cases = (await similar.json())["similar_cases"]
    # The before photo was measured even though Gemini reports no geometry.
    assert "similar nose-to-face width ratio" in cases[0]["matching_criteria"]


async def test_a_refusal_is_502(
    client: TestClient[Any, Any],
    account: Any,
    settings: Settings,
    gemini: GeminiImitation,
    preview_request: dict[str, str],
) -> None:
    gemini.queue(refusal("IMAGE_SAFETY"))

    response = await client.post(
        "/api/visualizations", json=preview_request, headers=account.headers
    )

    assert response.status == 502
    body = await response.json()
    assert body["status"] == 502 and body["code"] == "bad_gateway"
    assert "no image" in body["detail"] and body["request_id"]
    assert stored_previews(settings) == []


async def test_a_time_out_is_504(
    client: TestClient[Any, Any],
    account: Any,
    settings: Settings,
    gemini: GeminiImitation,
    preview_request: dict[str, str],
) -> None:
    gemini.queue(slow(TIMEOUT_SECONDS * 4))

    response = await client.post(
        "/api/visualizations", json=preview_request, headers=account.headers
    )

    assert response.status == 504
    body = await response.json()
    assert body["status"] == 504 and body["code"] == "gateway_timeout"
    assert body["detail"] and body["request_id"]
    assert stored_previews(settings) == []

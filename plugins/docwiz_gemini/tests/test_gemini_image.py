"""The Gemini image generator against the imitation server, with the real SDK."""

from __future__ import annotations

import io
import socket

import pytest
from docwiz_gemini.image import GeminiImageGenerator
from docwiz_gemini.testing import (
    GeminiImitation,
    api_error,
    blocked_prompt,
    decode_bytes_field,
    edited_image,
    inline_parts,
    refusal,
    slow,
    text_answer,
)
from PIL import Image, ImageChops

from docwiz.providers import (
    GenerationRequest,
    GeneratorFailed,
    GeneratorTimeout,
    ProcedureInfo,
)

pytestmark = [
    pytest.mark.integration,
    # google-genai 3.x subclasses aiohttp.ClientSession for every client; the
    # warning is about the SDK, not this plugin.
    pytest.mark.filterwarnings(
        "ignore:Inheritance class AiohttpClientSession:DeprecationWarning"
    ),
]


def preview_request(
    photo: bytes, procedure: ProcedureInfo, **options: object
) -> GenerationRequest:
    return GenerationRequest(
        image=photo, mime_type="image/jpeg", procedure=procedure, options=options
    )


async def test_success_returns_the_edited_image(
    gemini_imitation, gemini_settings, portrait_jpeg, rhinoplasty
) -> None:
    generator = GeminiImageGenerator(gemini_settings())

    result = await generator.generate(preview_request(portrait_jpeg, rhinoplasty))

    with Image.open(io.BytesIO(portrait_jpeg)) as before:
        before_rgb = before.convert("RGB")
    with Image.open(io.BytesIO(result.image)) as after:
        assert after.format == "PNG"
        after_rgb = after.convert("RGB")
    assert result.mime_type == "image/png"
    assert after_rgb.size == before_rgb.size
    # The imitation inverted the middle third: the answer is its edit.
    middle = (60, 70, 100, 130)
    assert (
        ImageChops.difference(
            ImageChops.invert(before_rgb.crop(middle)), after_rgb.crop(middle)
        ).getbbox()
        is None
    )
    assert result.model == "gemini-2.5-flash-image"
    assert result.confidence_score == 0.85
    assert result.processing_time_ms >= 0
    assert result.details["attempts"] == 1
    assert result.details["finish_reason"] == "STOP"
    [received] = gemini_imitation.requests
    assert received.api_version == "v1beta"
    assert received.model == "gemini-2.5-flash-image"
    assert received.api_key_accepted


async def test_request_carries_only_the_prompt_and_the_image(
    gemini_imitation, gemini_settings, portrait_jpeg, rhinoplasty
) -> None:
    generator = GeminiImageGenerator(gemini_settings())
    request = preview_request(
        portrait_jpeg,
        rhinoplasty,
        patient_name="Jane Q. Roe",
        date_of_birth="1984-07-02",
        medical_history="deviated septum after a 2019 fracture",
    )

    result = await generator.generate(request)

    [received] = gemini_imitation.requests
    body = received.body
    assert set(body) == {"contents", "generationConfig"}
    [content] = body["contents"]
    assert content["role"] == "user"
    text_part, image_part = content["parts"]
    assert text_part == {"text": result.prompt_used}
    [blob] = inline_parts(body)
    assert set(image_part) == {"inlineData"}
    assert blob["mime_type"] == "image/jpeg"
    assert decode_bytes_field(blob["data"]) == portrait_jpeg
    assert "Rhinoplasty" in result.prompt_used
    assert "nose" in result.prompt_used
    for identifying in ("Jane", "Roe", "1984", "septum", "fracture"):
        assert identifying not in received.raw_body.decode()
    # The key travels in its header only.
    assert gemini_imitation.api_key.encode() not in received.raw_body


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        (refusal("IMAGE_SAFETY"), "no image (finish reason IMAGE_SAFETY)"),
        (refusal("SAFETY"), "no image (finish reason SAFETY)"),
        (
            text_answer("I can't help with editing this photo."),
            "it said: I can't help with editing this photo.",
        ),
        (blocked_prompt("PROHIBITED_CONTENT"), "block reason PROHIBITED_CONTENT"),
    ],
)
async def test_a_refusal_without_image_fails_clearly(
    gemini_imitation, gemini_settings, portrait_jpeg, rhinoplasty, reply, expected
) -> None:
    gemini_imitation.queue(reply)
    generator = GeminiImageGenerator(gemini_settings())

    with pytest.raises(GeneratorFailed) as failure:
        await generator.generate(preview_request(portrait_jpeg, rhinoplasty))

    assert not isinstance(failure.value, GeneratorTimeout)
    assert expected in str(failure.value)
    # A refusal is an answer, not a fault: asking again would not help.
    assert len(gemini_imitation.requests) == 1


async def test_rate_limit_then_success_takes_two_requests(
    gemini_imitation, gemini_settings, portrait_jpeg, rhinoplasty
) -> None:
    gemini_imitation.queue(
        api_error(429, "RESOURCE_EXHAUSTED", "Quota exceeded"), edited_image()
    )
    generator = GeminiImageGenerator(gemini_settings())

    result = await generator.generate(preview_request(portrait_jpeg, rhinoplasty))

    assert len(gemini_imitation.requests) == 2
    assert result.details["attempts"] == 2
    with Image.open(io.BytesIO(result.image)) as after:
        assert after.size == (160, 200)


async def test_persistent_server_error_fails_after_max_retries(
    gemini_imitation, gemini_settings, portrait_jpeg, rhinoplasty
) -> None:
    gemini_imitation.queue(
        *[api_error(500, "INTERNAL", "An internal error has occurred")] * 5
    )
    generator = GeminiImageGenerator(gemini_settings(max_retries=2))

    with pytest.raises(GeneratorFailed) as failure:
        await generator.generate(preview_request(portrait_jpeg, rhinoplasty))

    assert not isinstance(failure.value, GeneratorTimeout)
    assert "500 INTERNAL" in str(failure.value)
    assert "gave up after 3 attempts" in str(failure.value)
    assert len(gemini_imitation.requests) == 3


async def test_service_unavailable_is_retried_like_a_rate_limit(
    gemini_imitation, gemini_settings, portrait_jpeg, rhinoplasty
) -> None:
    gemini_imitation.queue(
        api_error(503, "UNAVAILABLE", "The model is overloaded"),
        api_error(503, "UNAVAILABLE", "The model is overloaded"),
    )
    generator = GeminiImageGenerator(gemini_settings())

    result = await generator.generate(preview_request(portrait_jpeg, rhinoplasty))

    assert result.details["attempts"] == 3
    assert len(gemini_imitation.requests) == 3


async def test_no_retry_when_the_backoff_would_outlast_the_deadline(
    gemini_imitation, gemini_settings, portrait_jpeg, rhinoplasty
) -> None:
    gemini_imitation.queue(api_error(429, "RESOURCE_EXHAUSTED", "Quota exceeded"))
    generator = GeminiImageGenerator(
        gemini_settings(timeout_seconds=2, backoff_seconds=30)
    )

    with pytest.raises(GeneratorFailed) as failure:
        await generator.generate(preview_request(portrait_jpeg, rhinoplasty))

    assert not isinstance(failure.value, GeneratorTimeout)
    assert "429 RESOURCE_EXHAUSTED" in str(failure.value)
    assert "no time left for a retry" in str(failure.value)
    assert len(gemini_imitation.requests) == 1


async def test_a_slow_answer_is_a_timeout(
    gemini_imitation, gemini_settings, portrait_jpeg, rhinoplasty
) -> None:
    gemini_imitation.queue(slow(30))
    generator = GeminiImageGenerator(gemini_settings(timeout_seconds=2))

    with pytest.raises(GeneratorTimeout) as failure:
        await generator.generate(preview_request(portrait_jpeg, rhinoplasty))

    assert "did not answer within 2 s" in str(failure.value)
    assert len(gemini_imitation.requests) == 1
    # The time left reached the SDK in milliseconds (about 1900), which it
    # forwards in whole seconds rounded up; seconds passed as milliseconds
    # would have read "1".
    assert gemini_imitation.requests[0].headers["X-Server-Timeout"] == "2"


async def test_a_wrong_key_fails_without_retries(
    gemini_imitation, gemini_settings, portrait_jpeg, rhinoplasty
) -> None:
    generator = GeminiImageGenerator(gemini_settings(api_key="not-the-key"))

    with pytest.raises(GeneratorFailed) as failure:
        await generator.generate(preview_request(portrait_jpeg, rhinoplasty))

    message = str(failure.value)
    assert "400 INVALID_ARGUMENT" in message
    assert "api_key option" in message
    assert "not-the-key" not in message
    [received] = gemini_imitation.requests
    assert not received.api_key_accepted


async def test_an_unreachable_service_fails_after_retries(
    gemini_settings, portrait_jpeg, rhinoplasty
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    generator = GeminiImageGenerator(
        gemini_settings(base_url=f"http://127.0.0.1:{closed_port}", max_retries=1)
    )

    with pytest.raises(GeneratorFailed) as failure:
        await generator.generate(preview_request(portrait_jpeg, rhinoplasty))

    assert not isinstance(failure.value, GeneratorTimeout)
    assert "could not be reached" in str(failure.value)
    assert "gave up after 2 attempts" in str(failure.value)


async def test_safety_ratings_lower_the_confidence(
    gemini_imitation, gemini_settings, portrait_jpeg, rhinoplasty
) -> None:
    gemini_imitation.queue(edited_image(safety_probability="MEDIUM"))
    generator = GeminiImageGenerator(gemini_settings())

    result = await generator.generate(preview_request(portrait_jpeg, rhinoplasty))

    assert result.confidence_score == 0.7


async def test_the_model_option_picks_the_endpoint(
    gemini_imitation: GeminiImitation, gemini_settings, portrait_jpeg, rhinoplasty
) -> None:
    generator = GeminiImageGenerator(
        gemini_settings(model="gemini-3-pro-image-preview", api_version="v1alpha")
    )

    result = await generator.generate(preview_request(portrait_jpeg, rhinoplasty))

    assert result.model == "gemini-3-pro-image-preview"
    [received] = gemini_imitation.requests
    assert (received.api_version, received.model) == (
        "v1alpha",
        "gemini-3-pro-image-preview",
    )

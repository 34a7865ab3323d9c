"""The Gemini text generator (claim justifications) against the imitation."""

from __future__ import annotations

import pytest
from docwiz_gemini.testing import api_error, refusal, slow, text_answer
from docwiz_gemini.text import GeminiTextGenerator

from docwiz.providers import GeneratorFailed, GeneratorTimeout

pytestmark = [
    pytest.mark.integration,
    # google-genai 3.x subclasses aiohttp.ClientSession for every client; the
    # warning is about the SDK, not this plugin.
    pytest.mark.filterwarnings(
        "ignore:Inheritance class AiohttpClientSession:DeprecationWarning"
    ),
]

JUSTIFICATION_PROMPT = (
    "Procedure: septorhinoplasty (CPT 30420). Diagnosis: J34.2 deviated nasal "
    "septum, J34.89 nasal valve collapse. Findings: bilateral nasal obstruction "
    "despite 3 months of intranasal steroids."
)

JUSTIFICATION = (
    "Septorhinoplasty is medically necessary to correct a deviated nasal "
    "septum with nasal valve collapse. Bilateral obstruction persisted despite "
    "three months of intranasal steroid therapy. Surgical correction is "
    "expected to restore nasal airflow."
)


async def test_text_generation_returns_the_answer(
    gemini_imitation, gemini_settings
) -> None:
    gemini_imitation.queue(text_answer(JUSTIFICATION))
    generator = GeminiTextGenerator(gemini_settings())

    text = await generator.generate_text(JUSTIFICATION_PROMPT, max_words=120)

    assert text == JUSTIFICATION
    [received] = gemini_imitation.requests
    assert received.model == "gemini-2.5-flash"
    body = received.body
    assert set(body) == {"contents", "systemInstruction", "generationConfig"}
    assert body["contents"] == [
        {"role": "user", "parts": [{"text": JUSTIFICATION_PROMPT}]}
    ]
    [instruction] = body["systemInstruction"]["parts"]
    assert "at most 120 words" in instruction["text"]


async def test_text_is_cut_to_max_words(gemini_imitation, gemini_settings) -> None:
    gemini_imitation.queue(text_answer(JUSTIFICATION))
    generator = GeminiTextGenerator(gemini_settings(text_model="gemini-2.5-pro"))

    text = await generator.generate_text(JUSTIFICATION_PROMPT, max_words=25)

    assert len(text.split()) <= 25
    # The cut falls at the end of the second sentence (24 words).
    assert text.endswith("intranasal steroid therapy.")
    assert gemini_imitation.requests[0].model == "gemini-2.5-pro"


async def test_rate_limit_then_text(gemini_imitation, gemini_settings) -> None:
    gemini_imitation.queue(
        api_error(429, "RESOURCE_EXHAUSTED", "Quota exceeded"),
        text_answer(JUSTIFICATION),
    )
    generator = GeminiTextGenerator(gemini_settings())

    text = await generator.generate_text(JUSTIFICATION_PROMPT)

    assert text == JUSTIFICATION
    assert len(gemini_imitation.requests) == 2


async def test_an_empty_or_refused_answer_fails(
    gemini_imitation, gemini_settings
) -> None:
    gemini_imitation.queue(refusal("SAFETY"))
    generator = GeminiTextGenerator(gemini_settings())

    with pytest.raises(GeneratorFailed, match=r"no text \(finish reason SAFETY\)"):
        await generator.generate_text(JUSTIFICATION_PROMPT)


async def test_a_slow_text_answer_is_a_timeout(
    gemini_imitation, gemini_settings
) -> None:
    gemini_imitation.queue(slow(30, text_answer(JUSTIFICATION)))
    generator = GeminiTextGenerator(gemini_settings(timeout_seconds=0.3))

    with pytest.raises(GeneratorTimeout):
        await generator.generate_text(JUSTIFICATION_PROMPT)

    assert len(gemini_imitation.requests) == 1


async def test_a_wrong_key_fails_the_text_request(
    gemini_imitation, gemini_settings
) -> None:
    generator = GeminiTextGenerator(gemini_settings(api_key="not-the-key"))

    with pytest.raises(GeneratorFailed, match="api_key option"):
        await generator.generate_text(JUSTIFICATION_PROMPT)

    assert len(gemini_imitation.requests) == 1

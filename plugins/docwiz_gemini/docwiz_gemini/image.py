"""The Gemini image generator: a procedure preview edited onto the before photo."""

from __future__ import annotations

import time

from google.genai import types

from docwiz.providers import (
    GenerationRequest,
    GenerationResult,
    GeneratorFailed,
    ProviderContext,
)
from docwiz_gemini.prompts import preview_prompt
from docwiz_gemini.settings import GeminiSettings
from docwiz_gemini.upstream import GeminiUpstream, enum_name, first_candidate

MAX_REFUSAL_TEXT = 200

# Confidence heuristic; see GeminiImageGenerator.
CONFIDENCE_COMPLETE = 0.85
CONFIDENCE_INCOMPLETE = 0.6
SAFETY_PENALTY = {
    types.HarmProbability.MEDIUM: 0.15,
    types.HarmProbability.HIGH: 0.3,
}
CONFIDENCE_FLOOR = 0.05


class GeminiImageGenerator:
    """Previews a procedure by asking Gemini to edit the before photo.

    Only the photo and a prompt built from the procedure's name, catalog
    description and body region are sent; ``request.options`` are never
    forwarded, so nothing about the patient leaves the service.

    Gemini reports no confidence for an edit, so ``confidence_score`` is a
    heuristic: 0.85 when the answer finished normally (``STOP``) with an
    image, 0.6 when an image came with any other finish reason, minus 0.15
    for a safety rating of MEDIUM and 0.3 for HIGH or a blocked rating (the
    worst rating counts once), never below 0.05.
    """

    def __init__(self, settings: GeminiSettings) -> None:
        self.settings = settings
        self.model_name = settings.model
        self._upstream = GeminiUpstream(settings)

    async def generate(self, request: GenerationRequest) -> GenerationResult:
        started = time.perf_counter()
        prompt = preview_prompt(request.procedure)
        contents = [
            types.Content(
                role="user",
                parts=[
                    types.Part.from_text(text=prompt),
                    types.Part.from_bytes(
                        data=request.image, mime_type=request.mime_type
                    ),
                ],
            )
        ]
        config = types.GenerateContentConfig(
            response_modalities=["TEXT", "IMAGE"],
            candidate_count=1,
            automatic_function_calling=types.AutomaticFunctionCallingConfig(
                disable=True
            ),
        )

        answer = await self._upstream.generate_content(
            model=self.model_name, contents=contents, config=config
        )

        candidate, after_image, after_mime_type = first_image(answer.response)
        elapsed_ms = round((time.perf_counter() - started) * 1000)
        return GenerationResult(
            image=after_image,
            mime_type=after_mime_type,
            prompt_used=prompt,
            model=self.model_name,
            confidence_score=estimate_confidence(candidate),
            processing_time_ms=elapsed_ms,
            details={
                "provider": "gemini",
                "finish_reason": _finish_reason(candidate),
                "attempts": answer.attempts,
            },
        )


def first_image(
    response: types.GenerateContentResponse,
) -> tuple[types.Candidate, bytes, str]:
    """The first candidate, its first inline image and that image's type.

    Raise ``GeneratorFailed`` when the answer holds no image.
    """
    candidate = first_candidate(response, "preview")
    parts = candidate.content.parts if candidate.content else None
    for part in parts or []:
        blob = part.inline_data
        if blob is None or not blob.data or not blob.mime_type:
            continue
        if blob.mime_type.startswith("image/"):
            return candidate, blob.data, blob.mime_type

    said = " ".join(
        part.text.strip() for part in parts or [] if part.text and not part.thought
    )
    message = f"Gemini returned no image (finish reason {_finish_reason(candidate)})"
    if said:
        message = f"{message}; it said: {said[:MAX_REFUSAL_TEXT]}"
    raise GeneratorFailed(message)


def estimate_confidence(candidate: types.Candidate) -> float:
    """The heuristic described on :class:`GeminiImageGenerator`."""
    finished = candidate.finish_reason == types.FinishReason.STOP
    score = CONFIDENCE_COMPLETE if finished else CONFIDENCE_INCOMPLETE
    penalties = [0.0]
    for rating in candidate.safety_ratings or []:
        if rating.blocked:
            penalties.append(SAFETY_PENALTY[types.HarmProbability.HIGH])
        elif rating.probability in SAFETY_PENALTY:
            penalties.append(SAFETY_PENALTY[rating.probability])
    return round(max(CONFIDENCE_FLOOR, score - max(penalties)), 2)


def _finish_reason(candidate: types.Candidate) -> str:
    return enum_name(candidate.finish_reason) or "unspecified"


def build_image_generator(context: ProviderContext) -> GeminiImageGenerator:
    """The factory behind ``Provider("gemini", ...)`` for image generators."""
    return GeminiImageGenerator(GeminiSettings.from_options(context.options))

"""The Gemini text generator, used for claims' medical justifications."""

from __future__ import annotations

from google.genai import types

from docwiz.providers import GeneratorFailed, ProviderContext
from docwiz_gemini.prompts import justification_instructions, limit_words
from docwiz_gemini.settings import GeminiSettings
from docwiz_gemini.upstream import GeminiUpstream, enum_name, first_candidate


class GeminiTextGenerator:
    """Writes prose from a prompt the core built without patient identity."""

    def __init__(self, settings: GeminiSettings) -> None:
        self.settings = settings
        self.model_name = settings.text_model
        self._upstream = GeminiUpstream(settings)

    async def generate_text(self, prompt: str, *, max_words: int = 250) -> str:
        """Gemini's answer to ``prompt``, cut to at most ``max_words`` words."""
        if max_words < 1:
            raise ValueError("max_words must be at least 1")
        config = types.GenerateContentConfig(
            system_instruction=justification_instructions(max_words),
            candidate_count=1,
            automatic_function_calling=types.AutomaticFunctionCallingConfig(
                disable=True
            ),
        )
        contents = [
            types.Content(role="user", parts=[types.Part.from_text(text=prompt)])
        ]

        answer = await self._upstream.generate_content(
            model=self.model_name, contents=contents, config=config
        )

        text = answer_text(answer.response)
        return limit_words(text, max_words)


def answer_text(response: types.GenerateContentResponse) -> str:
    """The first candidate's visible text; ``GeneratorFailed`` when empty."""
    candidate = first_candidate(response, "text")
    parts = candidate.content.parts if candidate.content else None
    # Thought summaries are the model's working, not the answer.
    text = "".join(
        part.text for part in parts or [] if part.text and not part.thought
    ).strip()
    if not text:
        reason = enum_name(candidate.finish_reason) or "unspecified"
        raise GeneratorFailed(f"Gemini returned no text (finish reason {reason})")
    return text


def build_text_generator(context: ProviderContext) -> GeminiTextGenerator:
    """The factory behind ``Provider("gemini", ...)`` for text generators."""
    return GeminiTextGenerator(GeminiSettings.from_options(context.options))

"""DocWiz plugin: procedure previews and claim justifications from Google Gemini.

Registered through the ``docwiz`` entry-point group as ``gemini``.
"""

from __future__ import annotations

from collections.abc import Sequence

from docwiz.hookspecs import hookimpl
from docwiz.providers import ImageGenerator, Provider, TextGenerator
from docwiz_gemini.image import GeminiImageGenerator, build_image_generator
from docwiz_gemini.settings import GeminiSettings
from docwiz_gemini.text import GeminiTextGenerator, build_text_generator

__all__ = [
    "GeminiImageGenerator",
    "GeminiSettings",
    "GeminiTextGenerator",
    "docwiz_image_generators",
    "docwiz_text_generators",
]


@hookimpl
def docwiz_image_generators() -> Sequence[Provider[ImageGenerator]]:
    return [
        Provider(
            "gemini",
            build_image_generator,
            "Procedure previews edited by Google Gemini (needs an API key)",
        )
    ]


@hookimpl
def docwiz_text_generators() -> Sequence[Provider[TextGenerator]]:
    return [
        Provider(
            "gemini",
            build_text_generator,
            "Claim justifications written by Google Gemini (needs an API key)",
        )
    ]

"""A text generator that needs no network: fills prompts into a fixed template.

It writes a plain, conservative justification from the facts the prompt
carries; practices that want fluent prose configure a model-backed plugin.
"""

from __future__ import annotations

from collections.abc import Sequence

from docwiz.hookspecs import hookimpl
from docwiz.providers import Provider, ProviderContext, TextGenerator


class TemplateTextGenerator:
    """Returns the prompt's facts as sentences, trimmed to ``max_words``."""

    async def generate_text(self, prompt: str, *, max_words: int = 250) -> str:
        sentences = [line.strip() for line in prompt.splitlines() if line.strip()]
        text = " ".join(
            s if s.endswith((".", "!", "?", ":")) else s + "." for s in sentences
        )
        words = text.split()
        return " ".join(words[:max_words])


def _build(context: ProviderContext) -> TemplateTextGenerator:
    return TemplateTextGenerator()


@hookimpl
def docwiz_text_generators() -> Sequence[Provider[TextGenerator]]:
    return [Provider("template", _build, "Offline: fills the facts into sentences")]

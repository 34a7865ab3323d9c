"""The Gemini plugin without a server: registration, options, prompt, limits."""

from __future__ import annotations

from importlib.metadata import entry_points
from pathlib import Path

import docwiz_gemini
import pluggy
import pytest
from docwiz_gemini.image import estimate_confidence
from docwiz_gemini.prompts import limit_words, preview_prompt, region_phrase
from docwiz_gemini.settings import GeminiSettings
from google.genai import types

from docwiz import hookspecs
from docwiz.providers import (
    ImageGenerator,
    ProcedureInfo,
    ProviderContext,
    TextGenerator,
)


def provider_context(**options: object) -> ProviderContext:
    return ProviderContext(
        name="gemini",
        options=options,
        data_dir=Path("/nonexistent"),
        mode="embedded",
        secret_key=b"s" * 32,
    )


def test_the_entry_point_names_the_plugin_module() -> None:
    [entry_point] = [ep for ep in entry_points(group="docwiz") if ep.name == "gemini"]
    assert entry_point.load() is docwiz_gemini


def test_hooks_offer_gemini_image_and_text_generators(monkeypatch) -> None:
    for variable in ("GEMINI_API_KEY", "GOOGLE_API_KEY"):
        monkeypatch.delenv(variable, raising=False)
    manager = pluggy.PluginManager(hookspecs.PROJECT)
    manager.add_hookspecs(hookspecs)
    manager.register(docwiz_gemini)

    [[image_provider]] = manager.hook.docwiz_image_generators()
    [[text_provider]] = manager.hook.docwiz_text_generators()
    context = provider_context(api_key="k", model="gemini-x-image")

    assert (image_provider.name, text_provider.name) == ("gemini", "gemini")
    image_generator = image_provider.factory(context)
    assert isinstance(image_generator, ImageGenerator)
    assert image_generator.model_name == "gemini-x-image"
    assert isinstance(text_provider.factory(context), TextGenerator)
    with pytest.raises(ValueError, match="api_key is required"):
        image_provider.factory(provider_context())


def test_defaults_and_string_options_from_environment_variables() -> None:
    settings = GeminiSettings.from_options(
        {"api_key": "k", "timeout_seconds": "2.5", "max_retries": "0"}, environ={}
    )

    assert settings.model == "gemini-2.5-flash-image"
    assert settings.text_model == "gemini-2.5-flash"
    assert settings.api_version == "v1beta"
    assert settings.base_url is None
    assert (settings.timeout_seconds, settings.max_retries) == (2.5, 0)
    assert settings.backoff_seconds == 1.0


def test_the_key_may_come_from_the_gemini_environment_variables() -> None:
    from_gemini = GeminiSettings.from_options({}, environ={"GEMINI_API_KEY": "g"})
    from_google = GeminiSettings.from_options({}, environ={"GOOGLE_API_KEY": "o"})
    explicit = GeminiSettings.from_options(
        {"api_key": "x"}, environ={"GEMINI_API_KEY": "g"}
    )

    assert (from_gemini.api_key, from_google.api_key) == ("g", "o")
    assert explicit.api_key == "x"


def test_the_key_never_shows_in_the_settings_repr() -> None:
    settings = GeminiSettings.from_options({"api_key": "secret-key"}, environ={})

    assert "secret-key" not in repr(settings)


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({}, "api_key is required"),
        ({"api_key": "  "}, "api_key is required"),
        ({"api_key": "k", "timeout_seconds": "soon"}, "timeout_seconds must be"),
        ({"api_key": "k", "timeout_seconds": 0}, "timeout_seconds must be"),
        ({"api_key": "k", "max_retries": 1.5}, "max_retries must be a whole"),
        ({"api_key": "k", "max_retries": -1}, "max_retries must be at least"),
        ({"api_key": "k", "backoff_seconds": "inf"}, "backoff_seconds must be"),
        ({"api_key": "k", "model": ""}, "model must be a non-empty string"),
        ({"api_key": "k", "apikey": "k"}, "unknown option.*apikey"),
    ],
)
def test_bad_options_are_refused_by_name(options, named) -> None:
    with pytest.raises(ValueError, match=named):
        GeminiSettings.from_options(options, environ={})


def test_the_prompt_names_procedure_and_region_and_keeps_the_rest() -> None:
    blepharoplasty = ProcedureInfo(
        id="proc_blepharoplasty",
        name="Blepharoplasty",
        category="facial",
        body_region="eyelids",
        coverage="reconstructive",
        description="Removes excess eyelid skin.\nImproves the visual field.",
    )

    prompt = preview_prompt(blepharoplasty)

    assert "Blepharoplasty (Removes excess eyelid skin. Improves the" in prompt
    assert "Change only the upper and lower eyelids" in prompt
    for kept in ("identity", "lighting", "background", "conservative"):
        assert kept in prompt
    assert "\n" not in prompt


def test_an_unlisted_region_is_named_plainly() -> None:
    assert region_phrase("lower_leg") == "the lower leg"


@pytest.mark.parametrize(
    ("text", "max_words", "expected"),
    [
        ("One two three.", 5, "One two three."),
        ("One two. Three four five six", 5, "One two. Three four five"),
        ("One two three. Four five six", 5, "One two three."),
        ("First para ends.\n\nSecond para here", 4, "First para ends."),
        ("  a b c  ", 1, "a"),
    ],
)
def test_limit_words(text, max_words, expected) -> None:
    assert limit_words(text, max_words) == expected


@pytest.mark.parametrize(
    ("finish_reason", "ratings", "expected"),
    [
        ("STOP", [], 0.85),
        ("MAX_TOKENS", [], 0.6),
        ("STOP", [{"probability": "LOW"}], 0.85),
        ("STOP", [{"probability": "MEDIUM"}, {"probability": "HIGH"}], 0.55),
        ("STOP", [{"probability": "NEGLIGIBLE", "blocked": True}], 0.55),
    ],
)
def test_confidence_heuristic(finish_reason, ratings, expected) -> None:
    candidate = types.Candidate(finish_reason=finish_reason, safety_ratings=ratings)

    assert estimate_confidence(candidate) == expected

"""The operator's options for the Gemini plugin, read from ``[plugins.gemini]``.

Options arrive as TOML values or as strings from ``DOCWIZ_PLUGINS__GEMINI__*``
environment variables, so numbers are parsed from either.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

DEFAULT_IMAGE_MODEL = "gemini-2.5-flash-image"
DEFAULT_TEXT_MODEL = "gemini-2.5-flash"
# Google documents image output (responseModalities) on v1beta; the SDK's
# own default is v1.
DEFAULT_API_VERSION = "v1beta"
API_KEY_ENV_VARS = ("GEMINI_API_KEY", "GOOGLE_API_KEY")

KNOWN_OPTIONS = frozenset(
    {
        "api_key",
        "model",
        "text_model",
        "base_url",
        "api_version",
        "timeout_seconds",
        "max_retries",
        "backoff_seconds",
    }
)


@dataclass(frozen=True)
class GeminiSettings:
    """Validated options shared by the image and the text generator."""

    api_key: str = field(repr=False)
    model: str = DEFAULT_IMAGE_MODEL
    text_model: str = DEFAULT_TEXT_MODEL
    base_url: str | None = None
    api_version: str = DEFAULT_API_VERSION
    timeout_seconds: float = 60.0
    """The longest one ``generate`` call may take, retries and back-off included."""
    max_retries: int = 3
    """Retries after the first attempt, so at most ``max_retries + 1`` requests."""
    backoff_seconds: float = 1.0
    """The first back-off; each further retry waits twice as long."""

    @classmethod
    def from_options(
        cls, options: Mapping[str, Any], environ: Mapping[str, str] | None = None
    ) -> GeminiSettings:
        """Validate ``options``; raise ``ValueError`` naming the bad option."""
        environ = os.environ if environ is None else environ
        unknown = sorted(set(options) - KNOWN_OPTIONS)
        if unknown:
            raise ValueError(
                f"plugins.gemini: unknown option(s) {', '.join(unknown)}; "
                f"known options are {', '.join(sorted(KNOWN_OPTIONS))}"
            )

        return cls(
            api_key=_api_key(options, environ),
            model=_text_option(options, "model", DEFAULT_IMAGE_MODEL),
            text_model=_text_option(options, "text_model", DEFAULT_TEXT_MODEL),
            base_url=_text_option(options, "base_url", None),
            api_version=_text_option(options, "api_version", DEFAULT_API_VERSION),
            timeout_seconds=_number_option(
                options, "timeout_seconds", 60.0, minimum=0.001
            ),
            max_retries=int(_number_option(options, "max_retries", 3, minimum=0)),
            backoff_seconds=_number_option(
                options, "backoff_seconds", 1.0, minimum=0.0
            ),
        )


def _api_key(options: Mapping[str, Any], environ: Mapping[str, str]) -> str:
    api_key = str(options.get("api_key") or "").strip()
    for variable in API_KEY_ENV_VARS:
        if api_key:
            break
        api_key = environ.get(variable, "").strip()
    if not api_key:
        raise ValueError(
            "plugins.gemini: the option api_key is required (set it in "
            "[plugins.gemini] of docwiz.toml, DOCWIZ_PLUGINS__GEMINI__API_KEY, "
            f"or {' / '.join(API_KEY_ENV_VARS)})"
        )
    return api_key


def _text_option(options: Mapping[str, Any], name: str, default: str | None) -> Any:
    value = options.get(name)
    if value is None:
        return default
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"plugins.gemini: option {name} must be a non-empty string")
    return value.strip()


def _number_option(
    options: Mapping[str, Any], name: str, default: float, *, minimum: float
) -> float:
    value = options.get(name, default)
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(
            f"plugins.gemini: option {name} must be a number, got {value!r}"
        ) from None
    if not math.isfinite(number):
        raise ValueError(f"plugins.gemini: option {name} must be a finite number")
    if name == "max_retries" and not number.is_integer():
        raise ValueError(f"plugins.gemini: option {name} must be a whole number")
    if number < minimum:
        raise ValueError(f"plugins.gemini: option {name} must be at least {minimum}")
    return number

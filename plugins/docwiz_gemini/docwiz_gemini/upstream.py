"""One ``generateContent`` call to Gemini under a deadline, with retries.

The SDK's own retries are switched off so that ``max_retries`` is the only
retry policy and the number of requests stays predictable.
"""

from __future__ import annotations

import asyncio
import logging
import random
from dataclasses import dataclass

import aiohttp
from google import genai
from google.genai import errors, types

from docwiz.providers import GeneratorFailed, GeneratorTimeout
from docwiz_gemini.settings import GeminiSettings

logger = logging.getLogger("docwiz.gemini")

RETRYABLE_STATUS = frozenset({408, 429, 500, 502, 503, 504})
"""Answers worth asking again: time-outs, rate limits and server trouble."""

MAX_UPSTREAM_MESSAGE = 300


@dataclass(frozen=True)
class UpstreamAnswer:
    response: types.GenerateContentResponse
    attempts: int


class GeminiUpstream:
    """Sends requests for one plugin configuration; a fresh client per call.

    A client per call keeps no aiohttp session alive between previews, so
    nothing needs closing at shutdown; its set-up (TLS certificates, about
    0.1 s) runs in a thread and is small next to an image generation.
    """

    def __init__(self, settings: GeminiSettings) -> None:
        self.settings = settings

    async def generate_content(
        self,
        *,
        model: str,
        contents: list[types.Content],
        config: types.GenerateContentConfig,
    ) -> UpstreamAnswer:
        """Ask ``model``; raise ``GeneratorTimeout`` or ``GeneratorFailed``."""
        timeout_seconds = self.settings.timeout_seconds
        deadline = asyncio.get_running_loop().time() + timeout_seconds
        client: genai.Client | None = None
        try:
            async with asyncio.timeout_at(deadline):
                client = await asyncio.to_thread(self._new_client)
                return await self._attempts(client, model, contents, config, deadline)
        except TimeoutError:
            raise GeneratorTimeout(
                f"Gemini ({model}) did not answer within {timeout_seconds:g} s"
            ) from None
        finally:
            if client is not None:
                await client.aio.aclose()
                client.close()

    def _new_client(self) -> genai.Client:
        http_options = types.HttpOptions(
            base_url=self.settings.base_url,
            api_version=self.settings.api_version,
            # One attempt per SDK call: the loop in _attempts owns retries,
            # and this also stops the SDK's silent reconnect-and-retry.
            retry_options=types.HttpRetryOptions(attempts=1),
        )
        return genai.Client(api_key=self.settings.api_key, http_options=http_options)

    async def _attempts(
        self,
        client: genai.Client,
        model: str,
        contents: list[types.Content],
        config: types.GenerateContentConfig,
        deadline: float,
    ) -> UpstreamAnswer:
        loop = asyncio.get_running_loop()
        total_attempts = self.settings.max_retries + 1
        for attempt in range(1, total_attempts + 1):
            try:
                response = await client.aio.models.generate_content(
                    model=model,
                    contents=contents,
                    config=_with_timeout(config, deadline - loop.time()),
                )
                return UpstreamAnswer(response=response, attempts=attempt)
            except errors.APIError as exc:
                failure = describe_api_error(exc)
                if exc.code not in RETRYABLE_STATUS:
                    raise GeneratorFailed(failure) from exc
            except TimeoutError:
                raise
            except aiohttp.ClientConnectionError as exc:
                failure = f"Gemini could not be reached ({type(exc).__name__})"
            except errors.UnknownApiResponseError as exc:
                raise GeneratorFailed(
                    "Gemini answered with something that is not JSON"
                ) from exc

            if attempt == total_attempts:
                break
            delay = self._backoff(attempt)
            if loop.time() + delay >= deadline:
                raise GeneratorFailed(
                    f"{failure}; no time left for a retry within "
                    f"timeout_seconds={self.settings.timeout_seconds:g}"
                )
            logger.warning(
                "%s (model %s, attempt %d of %d); retrying in %.2f s",
                failure,
                model,
                attempt,
                total_attempts,
                delay,
            )
            await asyncio.sleep(delay)

        raise GeneratorFailed(f"{failure}; gave up after {total_attempts} attempts")

    def _backoff(self, attempt: int) -> float:
        # Jitter spreads out workers that were rate-limited together; it is
        # not security-relevant, so the plain PRNG is fine.
        jitter = random.uniform(1.0, 1.25)  # noqa: S311
        return self.settings.backoff_seconds * 2.0 ** (attempt - 1) * jitter


def _with_timeout(
    config: types.GenerateContentConfig, remaining_seconds: float
) -> types.GenerateContentConfig:
    """Give the SDK the time left (in milliseconds, as HttpOptions expects).

    The SDK also forwards it as ``X-Server-Timeout`` so Google can stop
    working on an answer nobody waits for.
    """
    timeout_ms = max(1, int(remaining_seconds * 1000))
    return config.model_copy(
        update={"http_options": types.HttpOptions(timeout=timeout_ms)}
    )


def describe_api_error(exc: errors.APIError) -> str:
    """Say what Gemini answered, without the request (which holds the key)."""
    # Non-JSON error pages arrive whole; keep one short line of them.
    message = " ".join((exc.message or "").split())[:MAX_UPSTREAM_MESSAGE]
    description = f"Gemini answered {exc.code} {exc.status or ''}".rstrip()
    if message:
        description = f"{description}: {message}"
    if exc.code in (401, 403) or "api key" in message.lower():
        description = f"{description} (check the plugins.gemini api_key option)"
    return description


def enum_name(value: object) -> str:
    """How an enum from Gemini's answer (a finish or block reason) reads."""
    if value is None:
        return ""
    return str(getattr(value, "value", value))


def first_candidate(
    response: types.GenerateContentResponse, asked_for: str
) -> types.Candidate:
    """The answer's first candidate; ``GeneratorFailed`` if the prompt was
    blocked and Gemini sent none."""
    if response.candidates:
        return response.candidates[0]
    feedback = response.prompt_feedback
    block_reason = enum_name(feedback.block_reason) if feedback else ""
    raise GeneratorFailed(
        f"Gemini refused the {asked_for} request"
        + (f" (block reason {block_reason})" if block_reason else "")
    )

"""A local imitation of Gemini's ``generateContent`` endpoint, for tests.

The real google-genai client talks to it over HTTP on 127.0.0.1 (point the
plugin's ``base_url`` option at :attr:`GeminiImitation.base_url`); a test
scripts the answers and reads back every request the imitation received.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
from collections import deque
from dataclasses import dataclass, replace
from typing import Any

from aiohttp import web
from PIL import Image, ImageOps

API_KEY_HEADER = "x-goog-api-key"


@dataclass(frozen=True)
class Reply:
    """One scripted answer. ``body=None`` means: edit the received image."""

    status: int = 200
    body: dict[str, Any] | None = None
    delay_seconds: float = 0.0
    safety_probability: str = "NEGLIGIBLE"
    """The safety rating put on an edited image."""


@dataclass(frozen=True)
class ReceivedRequest:
    api_version: str
    model: str
    headers: dict[str, str]
    """Request headers, with the API key's value left out."""
    raw_body: bytes
    api_key_accepted: bool

    @property
    def body(self) -> dict[str, Any]:
        parsed: dict[str, Any] = json.loads(self.raw_body)
        return parsed


# -- scripted answers --------------------------------------------------------


def edited_image(safety_probability: str = "NEGLIGIBLE") -> Reply:
    """Answer with the received photo, visibly edited, as a PNG."""
    return Reply(body=None, safety_probability=safety_probability)


def text_answer(text: str, finish_reason: str = "STOP") -> Reply:
    """A candidate holding text only (a chatty refusal, or a justification)."""
    return Reply(
        body=_answer([{"text": text}], finish_reason=finish_reason),
    )


def refusal(finish_reason: str = "IMAGE_SAFETY") -> Reply:
    """A candidate that stopped for safety and holds no parts at all."""
    return Reply(body=_answer(None, finish_reason=finish_reason))


def blocked_prompt(block_reason: str = "PROHIBITED_CONTENT") -> Reply:
    """The prompt itself was blocked: no candidates, only prompt feedback."""
    return Reply(body={"promptFeedback": {"blockReason": block_reason}})


def api_error(status: int, grpc_status: str, message: str) -> Reply:
    """An error body shaped like Google's (``{"error": {...}}``)."""
    return Reply(
        status=status,
        body={"error": {"code": status, "message": message, "status": grpc_status}},
    )


def slow(delay_seconds: float, then: Reply | None = None) -> Reply:
    """Wait before answering (to exceed a client's time-out)."""
    return replace(then or edited_image(), delay_seconds=delay_seconds)


class GeminiImitation:
    """An aiohttp server answering ``POST /{version}/models/{model}:generateContent``.

    Each request takes the next scripted :class:`Reply`; with the script
    empty it edits the received image. A wrong key gets Google's
    ``API_KEY_INVALID`` answer and consumes no reply.
    """

    def __init__(self, api_key: str) -> None:
        self.api_key = api_key
        self.requests: list[ReceivedRequest] = []
        self._script: deque[Reply] = deque()
        self._runner: web.AppRunner | None = None
        self.base_url = ""

    def queue(self, *replies: Reply) -> None:
        self._script.extend(replies)

    async def start(self) -> str:
        app = web.Application(client_max_size=32 * 1024 * 1024)
        app.router.add_post(
            "/{version}/models/{model}:generateContent", self._generate_content
        )
        # Cancel a handler when its client gives up, so a "slow" reply does
        # not outlive the test that timed out on it.
        self._runner = web.AppRunner(app, handler_cancellation=True)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.base_url = f"http://{host}:{port}"
        return self.base_url

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _generate_content(self, request: web.Request) -> web.Response:
        raw_body = await request.read()
        api_key_accepted = request.headers.get(API_KEY_HEADER) == self.api_key
        self.requests.append(
            ReceivedRequest(
                api_version=request.match_info["version"],
                model=request.match_info["model"],
                headers={
                    name: value
                    for name, value in request.headers.items()
                    if name.lower() != API_KEY_HEADER
                },
                raw_body=raw_body,
                api_key_accepted=api_key_accepted,
            )
        )
        if not api_key_accepted:
            return _json_response(400, _invalid_key_body())

        reply = self._script.popleft() if self._script else edited_image()
        if reply.delay_seconds:
            await asyncio.sleep(reply.delay_seconds)
        if reply.body is not None:
            return _json_response(reply.status, reply.body)
        return await asyncio.to_thread(_edited_image_response, raw_body, reply)


def _json_response(status: int, body: dict[str, Any]) -> web.Response:
    return web.json_response(body, status=status)


def _edited_image_response(raw_body: bytes, reply: Reply) -> web.Response:
    """Invert the middle of the received photo, like a (crude) regional edit."""
    before = _first_inline_image(json.loads(raw_body))
    if before is None:
        return _json_response(
            400,
            {
                "error": {
                    "code": 400,
                    "message": "imitation: the request holds no image to edit",
                    "status": "INVALID_ARGUMENT",
                }
            },
        )

    with Image.open(io.BytesIO(before)) as photo:
        after = photo.convert("RGB")
    width, height = after.size
    box = (width // 3, height // 3, 2 * width // 3, 2 * height // 3)
    after.paste(ImageOps.invert(after.crop(box)), box)
    encoded = io.BytesIO()
    after.save(encoded, format="PNG")

    parts: list[dict[str, Any]] = [
        {"text": "Here is the edited photograph."},
        {
            "inlineData": {
                "mimeType": "image/png",
                "data": base64.b64encode(encoded.getvalue()).decode("ascii"),
            }
        },
    ]
    return _json_response(
        200, _answer(parts, "STOP", safety_probability=reply.safety_probability)
    )


def inline_parts(body: dict[str, Any]) -> list[dict[str, Any]]:
    """Every inline blob in a request body.

    Like Google's JSON parser, this takes ``inlineData`` or ``inline_data``
    (google-genai sends the latter).
    """
    return [
        part.get("inlineData") or part["inline_data"]
        for content in body.get("contents", [])
        for part in content.get("parts", [])
        if "inlineData" in part or "inline_data" in part
    ]


def decode_bytes_field(data: str) -> bytes:
    """Decode a proto3 JSON ``bytes`` field: standard or URL-safe base64."""
    standard = data.replace("-", "+").replace("_", "/")
    return base64.b64decode(standard + "=" * (-len(standard) % 4))


def _first_inline_image(body: dict[str, Any]) -> bytes | None:
    for blob in inline_parts(body):
        return decode_bytes_field(blob["data"])
    return None


def _invalid_key_body() -> dict[str, Any]:
    return {
        "error": {
            "code": 400,
            "message": "API key not valid. Please pass a valid API key.",
            "status": "INVALID_ARGUMENT",
            "details": [
                {
                    "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                    "reason": "API_KEY_INVALID",
                    "domain": "googleapis.com",
                }
            ],
        }
    }


def _answer(
    parts: list[dict[str, Any]] | None,
    finish_reason: str,
    safety_probability: str = "NEGLIGIBLE",
) -> dict[str, Any]:
    candidate: dict[str, Any] = {
        "finishReason": finish_reason,
        "index": 0,
        "safetyRatings": [
            {
                "category": "HARM_CATEGORY_SEXUALLY_EXPLICIT",
                "probability": safety_probability,
            }
        ],
    }
    if parts is not None:
        candidate["content"] = {"role": "model", "parts": parts}
    return {
        "candidates": [candidate],
        "modelVersion": "gemini-imitation",
        "usageMetadata": {"promptTokenCount": 1, "totalTokenCount": 1},
    }

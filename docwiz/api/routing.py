"""Route tables: typed endpoints that validate input and render output.

Each API area declares its endpoints on a :class:`RouteTable`. The same
records feed the aiohttp router and the OpenAPI document, so the document
cannot drift from what the service runs.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel, TypeAdapter, ValidationError

from docwiz.errors import (
    BadRequest,
    ValidationFailed,
    field_errors_from_pydantic,
)

AuthLevel = Literal["none", "user", "admin"]
Handler = Callable[..., Awaitable[Any]]

API_PREFIX = "/api"


@dataclass
class Endpoint:
    """One method on one path, with everything needed to serve and document it."""

    method: str
    path: str
    handler: Handler
    summary: str
    tag: str
    auth: AuthLevel = "user"
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    response: Any = None
    status: int = 200
    errors: Mapping[int, str] = field(default_factory=dict)
    content_types: tuple[str, ...] = ()
    """Media types of a non-JSON response (files, PDFs)."""
    multipart: Mapping[str, str] | None = None
    """Form fields of a multipart body: name -> description."""
    websocket: bool = False

    @property
    def full_path(self) -> str:
        return API_PREFIX + self.path

    @property
    def response_adapter(self) -> TypeAdapter[Any] | None:
        if self.response is None:
            return None
        return TypeAdapter(self.response)


class RouteTable:
    """Collects the endpoints of one API area."""

    def __init__(self, tag: str) -> None:
        self.tag = tag
        self.endpoints: list[Endpoint] = []

    def route(
        self, method: str, path: str, *, summary: str, **options: Any
    ) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            self.endpoints.append(
                Endpoint(
                    method=method.upper(),
                    path=path,
                    handler=handler,
                    summary=summary,
                    tag=options.pop("tag", self.tag),
                    **options,
                )
            )
            return handler

        return register

    def get(self, path: str, **options: Any) -> Callable[[Handler], Handler]:
        return self.route("GET", path, **options)

    def post(self, path: str, **options: Any) -> Callable[[Handler], Handler]:
        return self.route("POST", path, **options)

    def put(self, path: str, **options: Any) -> Callable[[Handler], Handler]:
        return self.route("PUT", path, **options)

    def delete(self, path: str, **options: Any) -> Callable[[Handler], Handler]:
        return self.route("DELETE", path, **options)

    def add_to(self, app: web.Application) -> None:
        for endpoint in self.endpoints:
            app.router.add_route(
                endpoint.method, endpoint.full_path, _serve(endpoint), name=None
            )


# Set by docwiz.app: resolves the caller of an endpoint that needs one.
Authenticator = Callable[[web.Request, AuthLevel], Awaitable[None]]
AUTHENTICATOR: web.AppKey[Authenticator] = web.AppKey("authenticator")


def _serve(
    endpoint: Endpoint,
) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    adapter = endpoint.response_adapter

    async def handle(request: web.Request) -> web.StreamResponse:
        if endpoint.auth != "none":
            await request.app[AUTHENTICATOR](request, endpoint.auth)

        kwargs: dict[str, Any] = {}
        if endpoint.query is not None:
            kwargs["query"] = parse_query(request, endpoint.query)
        if endpoint.body is not None:
            kwargs["body"] = await parse_body(request, endpoint.body)

        result = await endpoint.handler(request, **kwargs)
        if isinstance(result, web.StreamResponse):
            return result
        if adapter is None:
            raise TypeError(f"{endpoint.method} {endpoint.path} returned {result!r}")
        payload = adapter.dump_python(result, mode="json")
        return web.json_response(payload, status=endpoint.status)

    handle.__name__ = endpoint.handler.__name__
    handle.__doc__ = endpoint.handler.__doc__
    return handle


async def parse_body(request: web.Request, model: type[BaseModel]) -> BaseModel:
    """Read a JSON body into ``model``: 400 if it is not JSON, 422 if invalid."""
    if request.content_type not in ("application/json", "") and not (
        request.content_type.endswith("+json")
    ):
        raise ApiErrorUnsupported(request.content_type)
    raw = await request.read()
    if not raw.strip():
        raise BadRequest("The request body is empty; a JSON object is expected")
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BadRequest(f"The request body is not valid JSON: {exc}") from None
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ValidationFailed(
            "The request body is invalid",
            errors=field_errors_from_pydantic(_plain_errors(exc)),
        ) from None


def parse_query(request: web.Request, model: type[BaseModel]) -> BaseModel:
    """Validate the query string into ``model``; a bad value answers 400."""
    values: dict[str, Any] = {}
    for key in request.query:
        items = request.query.getall(key)
        values[key] = items if len(items) > 1 else items[0]
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        raise BadRequest(
            "Invalid query parameters",
            errors=field_errors_from_pydantic(_plain_errors(exc)),
        ) from None


def _plain_errors(exc: ValidationError) -> list[dict[str, Any]]:
    # include_input=False keeps submitted values (passwords, policy numbers)
    # out of error bodies.
    return [dict(err) for err in exc.errors(include_input=False, include_url=False)]


class ApiErrorUnsupported(BadRequest):
    status, code = 415, "unsupported_media_type"

    def __init__(self, content_type: str) -> None:
        super().__init__(
            f"Content-Type {content_type!r} is not supported; send application/json"
        )

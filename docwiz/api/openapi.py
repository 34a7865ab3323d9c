"""The OpenAPI 3.1 document, generated from the route tables the service runs."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from pydantic import TypeAdapter

from docwiz import __version__
from docwiz.api.routing import Endpoint, RouteTable
from docwiz.errors import ErrorBody

REF_TEMPLATE = "#/components/schemas/{model}"
_PATH_PARAM = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)(?::[^}]*)?\}")

_DEFAULT_ERRORS = {
    "user": {401: "Missing, invalid, expired or revoked token"},
    "admin": {401: "Missing, invalid, expired or revoked token", 403: "Not an admin"},
    "none": {},
}


def openapi_path(path: str) -> str:
    """``/files/{key:.+}`` -> ``/files/{key}``: aiohttp patterns to OpenAPI."""
    return _PATH_PARAM.sub(lambda m: "{" + m.group(1) + "}", path)


class _Schemas:
    """Collects JSON schemas of models, shared under ``components/schemas``."""

    def __init__(self) -> None:
        self._adapters: list[tuple[tuple[int, str], Any, TypeAdapter[Any]]] = []
        self._keys: dict[tuple[int, str], int] = {}

    def ref(self, annotation: Any, mode: str) -> tuple[int, str]:
        key = (id(annotation), mode)
        if key not in self._keys:
            self._keys[key] = len(self._adapters)
            self._adapters.append((key, mode, TypeAdapter(annotation)))
        return key

    def resolve(self) -> tuple[dict[tuple[int, str], Any], dict[str, Any]]:
        if not self._adapters:
            return {}, {}
        mapping, definitions = TypeAdapter.json_schemas(
            [(key, mode, adapter) for key, mode, adapter in self._adapters],
            ref_template=REF_TEMPLATE,
        )
        return (
            {key: schema for (key, _mode), schema in mapping.items()},
            definitions.get("$defs", {}),
        )


def _parameters(endpoint: Endpoint) -> list[dict[str, Any]]:
    params: list[dict[str, Any]] = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in _PATH_PARAM.findall(endpoint.path)
    ]
    if endpoint.query is not None:
        schema = endpoint.query.model_json_schema(ref_template=REF_TEMPLATE)
        required = set(schema.get("required", ()))
        for name, prop in schema.get("properties", {}).items():
            param: dict[str, Any] = {
                "name": name,
                "in": "query",
                "required": name in required,
                "schema": {k: v for k, v in prop.items() if k != "description"},
            }
            if "description" in prop:
                param["description"] = prop["description"]
            params.append(param)
    if endpoint.websocket:
        params.append(
            {
                "name": "token",
                "in": "query",
                "required": True,
                "schema": {"type": "string"},
                "description": "The access token; browsers cannot set WS headers",
            }
        )
    return params


def build_openapi(tables: Iterable[RouteTable]) -> dict[str, Any]:
    schemas = _Schemas()
    error_key = schemas.ref(ErrorBody, "serialization")
    pending: list[tuple[Endpoint, tuple[int, str] | None, tuple[int, str] | None]] = []
    for table in tables:
        for endpoint in table.endpoints:
            body_key = (
                schemas.ref(endpoint.body, "validation") if endpoint.body else None
            )
            response_key = (
                schemas.ref(endpoint.response, "serialization")
                if endpoint.response is not None
                else None
            )
            pending.append((endpoint, body_key, response_key))

    resolved, components = schemas.resolve()
    error_content = {"application/json": {"schema": resolved[error_key]}}
    paths: dict[str, dict[str, Any]] = {}
    for endpoint, body_key, response_key in pending:
        operation = _operation(
            endpoint, resolved, body_key, response_key, error_content
        )
        method = "get" if endpoint.websocket else endpoint.method.lower()
        paths.setdefault(openapi_path(endpoint.full_path), {})[method] = operation

    return {
        "openapi": "3.1.0",
        "info": {
            "title": "DocWiz API",
            "version": __version__,
            "description": (
                "Procedure previews, cost estimates, similar cases and insurance "
                "pre-authorization paperwork for plastic and reconstructive surgery."
            ),
        },
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {
                "bearerAuth": {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "JWT",
                }
            },
        },
    }


def _operation(
    endpoint: Endpoint,
    resolved: dict[tuple[int, str], Any],
    body_key: tuple[int, str] | None,
    response_key: tuple[int, str] | None,
    error_content: dict[str, Any],
) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "summary": endpoint.summary,
        "operationId": f"{endpoint.method.lower()}_{endpoint.handler.__name__}",
        "tags": [endpoint.tag],
    }
    doc = (endpoint.handler.__doc__ or "").strip()
    if doc:
        operation["description"] = doc
    parameters = _parameters(endpoint)
    if parameters:
        operation["parameters"] = parameters
    if endpoint.auth != "none" and not endpoint.websocket:
        operation["security"] = [{"bearerAuth": []}]

    if body_key is not None:
        operation["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": resolved[body_key]}},
        }
    elif endpoint.multipart:
        operation["requestBody"] = {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "required": list(endpoint.multipart),
                        "properties": {
                            name: {
                                "type": "string",
                                "format": "binary",
                                "description": text,
                            }
                            for name, text in endpoint.multipart.items()
                        },
                    }
                }
            },
        }

    responses: dict[str, Any] = {}
    if endpoint.websocket:
        responses["101"] = {"description": "Switching to the WebSocket protocol"}
    else:
        success: dict[str, Any] = {"description": endpoint.summary}
        if response_key is not None:
            success["content"] = {
                "application/json": {"schema": resolved[response_key]}
            }
        elif endpoint.content_types:
            success["content"] = {
                media: {"schema": {"type": "string", "format": "binary"}}
                for media in endpoint.content_types
            }
        responses[str(endpoint.status)] = success
    errors = {**_DEFAULT_ERRORS[endpoint.auth], **endpoint.errors}
    if endpoint.body is not None:
        errors.setdefault(400, "The body is not JSON")
        errors.setdefault(415, "The body is not sent as application/json")
        errors.setdefault(422, "The body failed validation")
    if endpoint.query is not None:
        errors.setdefault(400, "Invalid query parameters")
    errors.setdefault(429, "Rate limit exceeded")
    for status, text in sorted(errors.items()):
        responses[str(status)] = {"description": text, "content": error_content}
    operation["responses"] = responses
    return operation

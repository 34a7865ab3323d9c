"""The OpenAPI document: valid 3.1, generated, and covering every route."""

from __future__ import annotations

import re
from typing import Any

from aiohttp.test_utils import TestClient
from openapi_spec_validator import validate

from docwiz.api.openapi import openapi_path


async def openapi(client: TestClient[Any, Any]) -> dict[str, Any]:
    response = await client.get("/api/openapi.json")
    assert response.status == 200
    document: dict[str, Any] = await response.json()
    return document


async def test_document_is_valid_openapi_3_1(client: TestClient[Any, Any]) -> None:
    document = await openapi(client)

    assert document["openapi"].startswith("3.1")
    validate(document)


async def test_every_served_route_is_documented(client: TestClient[Any, Any]) -> None:
    document = await openapi(client)
    served = set()
    for route in client.app.router.routes():
        info = route.resource.get_info() if route.resource else {}
        path = info.get("path") or info.get("formatter")
        if route.method == "HEAD" or not path or not path.startswith("/api"):
            continue
        served.add((route.method.lower(), openapi_path(path)))

    documented = {
        (method, path)
        for path, operations in document["paths"].items()
        for method in operations
    }
    missing = served - documented
    assert not missing, f"routes missing from the OpenAPI document: {sorted(missing)}"
    assert documented - served == set()


async def test_error_responses_share_one_schema(client: TestClient[Any, Any]) -> None:
    document = await openapi(client)

    refs = {
        response["content"]["application/json"]["schema"]["$ref"]
        for operations in document["paths"].values()
        for operation in operations.values()
        for status, response in operation["responses"].items()
        if re.match(r"[45]\d\d", status)
    }
    assert refs == {"#/components/schemas/ErrorBody"}

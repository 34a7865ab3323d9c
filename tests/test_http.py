"""HTTP plumbing: the one error body, request ids, health and readiness."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from pydantic import BaseModel, Field

from docwiz.api.routing import AUTHENTICATOR, RouteTable
from docwiz.app import install_http_plumbing
from docwiz.errors import ErrorBody

ERROR_KEYS = {"detail", "code", "status", "request_id"}


def assert_error_body(body: dict[str, Any], status: int, code: str) -> None:
    ErrorBody.model_validate(body)
    assert ERROR_KEYS <= set(body) <= ERROR_KEYS | {"errors"}
    assert body["status"] == status
    assert body["code"] == code
    assert "Traceback" not in body["detail"]


class Location(BaseModel):
    zip_code: str = Field(pattern=r"^\d{5}$")


class Patient(BaseModel):
    name: str = Field(min_length=1)
    location: Location


class Echo(BaseModel):
    name: str


demo = RouteTable("demo")


@demo.post(
    "/patients", summary="Echo a patient", auth="none", body=Patient, response=Echo
)
async def create_patient(request: web.Request, body: Patient) -> Echo:
    return Echo(name=body.name)


@demo.get("/explode", summary="Fails unexpectedly", auth="none", response=Echo)
async def explode(request: web.Request) -> Echo:
    raise RuntimeError("secret internal state /etc/passwd")


@demo.get("/private", summary="Needs a user", response=Echo)
async def private(request: web.Request) -> Echo:
    return Echo(name="never")


async def _refuse(request: web.Request, level: str) -> None:
    from docwiz.errors import Unauthorized

    raise Unauthorized()


@pytest.fixture
async def demo_client(aiohttp_client: Any) -> TestClient[Any, Any]:
    app = web.Application()
    install_http_plumbing(app)
    app[AUTHENTICATOR] = _refuse  # type: ignore[assignment]
    demo.add_to(app)
    return await aiohttp_client(app)


async def test_unknown_api_route_is_a_json_404(client: TestClient[Any, Any]) -> None:
    response = await client.get("/api/no/such/thing")

    assert response.status == 404
    assert response.content_type == "application/json"
    assert_error_body(await response.json(), 404, "not_found")


async def test_wrong_method_is_a_json_405_with_allow(
    client: TestClient[Any, Any],
) -> None:
    response = await client.delete("/api/health")

    assert response.status == 405
    assert "GET" in response.headers["Allow"]
    assert_error_body(await response.json(), 405, "method_not_allowed")


async def test_malformed_json_is_a_400(demo_client: TestClient[Any, Any]) -> None:
    response = await demo_client.post(
        "/api/patients", data=b'{"name": ', headers={"Content-Type": "application/json"}
    )

    assert response.status == 400
    body = await response.json()
    assert_error_body(body, 400, "bad_request")
    assert "not valid JSON" in body["detail"]


async def test_wrong_content_type_is_a_415(demo_client: TestClient[Any, Any]) -> None:
    response = await demo_client.post(
        "/api/patients", data=b"name=x", headers={"Content-Type": "text/plain"}
    )
    assert response.status == 415
    assert_error_body(await response.json(), 415, "unsupported_media_type")


async def test_validation_error_names_the_fields(
    demo_client: TestClient[Any, Any],
) -> None:
    response = await demo_client.post(
        "/api/patients", json={"name": "", "location": {"zip_code": "9410"}}
    )

    assert response.status == 422
    body = await response.json()
    assert_error_body(body, 422, "validation_error")
    fields = {error["field"] for error in body["errors"]}
    assert fields == {"name", "location.zip_code"}
    assert "9410" not in str(body), "submitted values are not echoed back"


async def test_unexpected_error_is_a_500_without_details(
    demo_client: TestClient[Any, Any], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="docwiz.server"):
        response = await demo_client.get("/api/explode")

    assert response.status == 500
    body = await response.json()
    assert_error_body(body, 500, "internal_error")
    assert "passwd" not in str(body)
    assert body["request_id"] == response.headers["X-Request-ID"]
    assert any("unhandled error" in record.message for record in caplog.records)


async def test_missing_token_is_a_401_with_challenge(
    demo_client: TestClient[Any, Any],
) -> None:
    response = await demo_client.get("/api/private")

    assert response.status == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert_error_body(await response.json(), 401, "unauthorized")


async def test_every_response_has_a_request_id(client: TestClient[Any, Any]) -> None:
    ok = await client.get("/api/health")
    missing = await client.get("/api/missing")

    assert len(ok.headers["X-Request-ID"]) >= 16
    assert ok.headers["X-Request-ID"] != missing.headers["X-Request-ID"]
    assert (await missing.json())["request_id"] == missing.headers["X-Request-ID"]


async def test_a_sane_incoming_request_id_is_kept(client: TestClient[Any, Any]) -> None:
    kept = await client.get("/api/health", headers={"X-Request-ID": "trace-1234abcd"})
    replaced = await client.get(
        "/api/health", headers={"X-Request-ID": "bad id with spaces"}
    )

    assert kept.headers["X-Request-ID"] == "trace-1234abcd"
    assert replaced.headers["X-Request-ID"] != "bad id with spaces"


async def test_health_answers_ok(client: TestClient[Any, Any]) -> None:
    response = await client.get("/api/health")

    assert response.status == 200
    assert await response.json() == {"status": "ok"}


async def test_ready_checks_database_broker_and_storage(
    client: TestClient[Any, Any],
) -> None:
    response = await client.get("/api/ready")

    assert response.status == 200
    assert await response.json() == {
        "status": "ready",
        "checks": {"database": "ok", "broker": "ok", "storage": "ok"},
    }


async def test_ready_is_a_503_when_the_database_is_gone(
    client: TestClient[Any, Any],
) -> None:
    from docwiz.appkeys import DATABASE

    async def broken() -> None:
        raise ConnectionRefusedError("database down")

    client.app[DATABASE].ping = broken  # type: ignore[method-assign]
    response = await client.get("/api/ready")

    assert response.status == 503
    body = await response.json()
    assert_error_body(body, 503, "service_unavailable")
    assert body["errors"] == [
        {"field": "database", "message": "unavailable: ConnectionRefusedError"}
    ]


def test_access_log_leaves_out_query_strings(caplog: pytest.LogCaptureFixture) -> None:
    from aiohttp.test_utils import make_mocked_request

    from docwiz.logs import AccessLogger

    access = AccessLogger(logging.getLogger("docwiz.access"), "")
    mocked = make_mocked_request("GET", "/api/ws/tasks/task_1?token=eyJsecret")
    response = web.Response(status=101, headers={"X-Request-ID": "abc"})
    with caplog.at_level(logging.INFO, logger="docwiz.access"):
        access.log(mocked, response, 0.002)

    assert "eyJsecret" not in caplog.text
    assert "/api/ws/tasks/task_1" in caplog.text
    assert caplog.records[-1].request_id == "abc"  # type: ignore[attr-defined]


def test_debug_logging_keeps_sql_parameters_out() -> None:
    from docwiz.logs import configure_logging

    configure_logging("DEBUG")

    for name in ("aiosqlite", "sqlalchemy.engine", "asyncpg", "aiohttp.access"):
        assert not logging.getLogger(name).isEnabledFor(logging.DEBUG), name
    assert logging.getLogger("docwiz.auth").isEnabledFor(logging.DEBUG)

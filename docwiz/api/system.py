"""Liveness, readiness and the OpenAPI document."""

from __future__ import annotations

import asyncio
import functools
import json
import logging
from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel

from docwiz.api.routing import RouteTable
from docwiz.appkeys import DATABASE, PROVIDERS, SETTINGS
from docwiz.errors import ServiceUnavailable
from docwiz.tasks.broker import ping_broker

logger = logging.getLogger("docwiz.server")

routes = RouteTable("system")

READY_TIMEOUT_SECONDS = 3.0


class HealthOut(BaseModel):
    status: Literal["ok"] = "ok"


class ReadyOut(BaseModel):
    status: Literal["ready"] = "ready"
    checks: dict[str, str]


@routes.get("/health", summary="The service is alive", auth="none", response=HealthOut)
async def health(request: web.Request) -> HealthOut:
    """Answers as long as the process serves requests; checks nothing else."""
    return HealthOut()


async def _check(name: str, probe: Any) -> tuple[str, str]:
    try:
        await asyncio.wait_for(probe, READY_TIMEOUT_SECONDS)
    except Exception as exc:
        logger.warning("readiness check %s failed: %s", name, type(exc).__name__)
        return name, f"unavailable: {type(exc).__name__}"
    return name, "ok"


@routes.get(
    "/ready",
    summary="The database, task broker and storage are reachable",
    auth="none",
    response=ReadyOut,
    errors={503: "A dependency is unreachable; `errors` names which"},
)
async def ready(request: web.Request) -> ReadyOut:
    """Probes every dependency in parallel, each with a short time-out."""
    app = request.app
    results = await asyncio.gather(
        _check("database", app[DATABASE].ping()),
        _check("broker", ping_broker(app[SETTINGS])),
        _check("storage", app[PROVIDERS].storage.check()),
    )
    checks = dict(results)
    failed = [name for name, state in checks.items() if state != "ok"]
    if failed:
        from docwiz.errors import FieldError

        raise ServiceUnavailable(
            "Not ready: " + ", ".join(failed) + " unreachable",
            errors=[FieldError(field=name, message=checks[name]) for name in failed],
        )
    return ReadyOut(checks=checks)


@routes.get(
    "/openapi.json",
    summary="This API's OpenAPI 3.1 document",
    auth="none",
    content_types=("application/json",),
)
async def openapi_document(request: web.Request) -> web.Response:
    """Generated from the same route tables the service runs."""
    return web.Response(text=_openapi_text(), content_type="application/json")


@functools.cache
def _openapi_text() -> str:
    """Built once per process: the route tables do not change while it runs,
    and building walks every model's JSON schema."""
    from docwiz.api.openapi import build_openapi
    from docwiz.app import route_tables

    return json.dumps(build_openapi(route_tables()))

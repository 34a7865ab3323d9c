"""The audit trail: who read or changed which patient's record, when, and how it
ended. Every area records through this module; nothing else writes the table.

From a handler, wrap the work so the outcome is derived from how it ends
(``success``; ``not_found`` on NotFound; ``denied`` on Forbidden or
Unauthorized; ``rejected`` on another 4xx; ``error`` on anything else)::

    async with audit.audited(
        request, action="image.read", resource_type="image", resource_id=image_id
    ) as event:
        image = await load_image(...)          # may raise NotFound / Forbidden
        event.patient_id = image.patient_id    # known once the record is loaded

or record one event directly::

    await audit.record(request, action="claim.export", resource_type="claim",
                       resource_id=claim.id, patient_id=claim.patient_id)

Outside a request (a task, the CLI) build an :class:`AuditEntry` and call
:func:`write`. Actions are ``<resource>.<verb>`` (``profile.read``,
``profile.update``, ``cost.create``, ...). Record identifiers only, never the
data itself: no names, policy numbers, histories or file contents.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Literal

from aiohttp import web
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from docwiz.appkeys import DATABASE, REQUEST_ID
from docwiz.auth_context import USER_KEY
from docwiz.db.base import utcnow
from docwiz.db.models_accounts import AuditEvent
from docwiz.db.session import Database
from docwiz.errors import ApiError, Forbidden, NotFound, Unauthorized
from docwiz.ratelimit import client_address

logger = logging.getLogger("docwiz.audit")

Outcome = Literal["success", "denied", "not_found", "rejected", "error"]
OUTCOMES: tuple[Outcome, ...] = ("success", "denied", "not_found", "rejected", "error")

MAX_PAGE = 200


@dataclass
class AuditEntry:
    """One event, before it is stored."""

    action: str
    resource_type: str
    resource_id: str | None = None
    patient_id: str | None = None
    outcome: Outcome = "success"
    user_id: str | None = None
    request_id: str | None = None
    client_address: str | None = None


async def write(database: Database, entry: AuditEntry) -> None:
    """Store ``entry`` in its own transaction, whatever the caller's fate."""
    async with database.session() as session:
        session.add(AuditEvent(occurred_at=utcnow(), **asdict(entry)))


async def record(
    request: web.Request,
    *,
    action: str,
    resource_type: str,
    resource_id: str | None = None,
    patient_id: str | None = None,
    outcome: Outcome = "success",
    user_id: str | None = None,
) -> None:
    """Record an event of this request; the caller defaults to the token's user."""
    if user_id is None and (user := request.get(USER_KEY)) is not None:
        user_id = user.id
    entry = AuditEntry(
        action=action,
        resource_type=resource_type,
        resource_id=resource_id,
        patient_id=patient_id,
        outcome=outcome,
        user_id=user_id,
        request_id=request.get(REQUEST_ID),
        client_address=client_address(request),
    )
    await write(request.app[DATABASE], entry)


@dataclass
class AuditScope:
    """Filled in by the audited code as it learns which record it touches."""

    resource_id: str | None = None
    patient_id: str | None = None


def outcome_of(exc: BaseException | None) -> Outcome:
    if exc is None:
        return "success"
    if isinstance(exc, NotFound):
        return "not_found"
    if isinstance(exc, Forbidden | Unauthorized):
        return "denied"
    if isinstance(exc, ApiError) and exc.status < 500:
        return "rejected"
    return "error"


@asynccontextmanager
async def audited(
    request: web.Request,
    *,
    action: str,
    resource_type: str,
    resource_id: str | None = None,
    patient_id: str | None = None,
) -> AsyncIterator[AuditScope]:
    """Record one event when the block ends, its outcome taken from how it ended."""
    scope = AuditScope(resource_id=resource_id, patient_id=patient_id)
    failure: Exception | None = None
    try:
        yield scope
    except Exception as exc:
        failure = exc
        raise
    finally:
        await record(
            request,
            action=action,
            resource_type=resource_type,
            resource_id=scope.resource_id,
            patient_id=scope.patient_id,
            outcome=outcome_of(failure),
        )


@dataclass(frozen=True)
class AuditFilter:
    user_id: str | None = None
    patient_id: str | None = None
    action: str | None = None
    resource_type: str | None = None
    outcome: str | None = None
    since: datetime | None = None
    until: datetime | None = None


async def list_events(
    session: AsyncSession,
    filters: AuditFilter,
    *,
    limit: int = 50,
    before_id: int | None = None,
) -> list[AuditEvent]:
    """Newest first; ``before_id`` continues a page from where the last one ended."""
    query = select(AuditEvent).order_by(AuditEvent.id.desc()).limit(limit)
    if before_id is not None:
        query = query.where(AuditEvent.id < before_id)
    if filters.user_id is not None:
        query = query.where(AuditEvent.user_id == filters.user_id)
    if filters.patient_id is not None:
        query = query.where(AuditEvent.patient_id == filters.patient_id)
    if filters.action is not None:
        query = query.where(AuditEvent.action == filters.action)
    if filters.resource_type is not None:
        query = query.where(AuditEvent.resource_type == filters.resource_type)
    if filters.outcome is not None:
        query = query.where(AuditEvent.outcome == filters.outcome)
    if filters.since is not None:
        query = query.where(AuditEvent.occurred_at >= filters.since)
    if filters.until is not None:
        query = query.where(AuditEvent.occurred_at < filters.until)
    return list((await session.scalars(query)).all())

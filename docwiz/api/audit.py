"""The audit trail for administrators: filtered, newest first, page by page."""

from __future__ import annotations

from datetime import UTC, datetime

from aiohttp import web
from pydantic import AwareDatetime, BaseModel, Field, field_validator

from docwiz.api.routing import RouteTable
from docwiz.appkeys import DATABASE
from docwiz.db.models_accounts import AuditEvent
from docwiz.errors import BadRequest
from docwiz.services import audit
from docwiz.services.audit import MAX_PAGE, AuditFilter, Outcome

routes = RouteTable("audit")


class AuditQuery(BaseModel):
    user_id: str | None = Field(default=None, max_length=40)
    patient_id: str | None = Field(default=None, max_length=40)
    action: str | None = Field(default=None, max_length=64, examples=["profile.read"])
    resource_type: str | None = Field(default=None, max_length=40)
    outcome: Outcome | None = None
    since: datetime | None = Field(
        default=None, description="Events at or after this time (ISO 8601; UTC)"
    )
    until: datetime | None = Field(
        default=None, description="Events before this time (ISO 8601; UTC)"
    )
    limit: int = Field(default=50, ge=1, le=MAX_PAGE)
    cursor: str | None = Field(
        default=None,
        pattern=r"^\d{1,19}$",
        description="`next_cursor` of the previous page",
    )

    @field_validator("since", "until")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        # A time without a zone is read as UTC, the zone the trail is kept in.
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


class AuditEventOut(BaseModel):
    id: int
    occurred_at: AwareDatetime
    user_id: str | None
    action: str
    resource_type: str
    resource_id: str | None
    patient_id: str | None
    outcome: str
    request_id: str | None
    client_address: str | None

    @classmethod
    def of(cls, event: AuditEvent) -> AuditEventOut:
        return cls.model_validate(event, from_attributes=True)


class AuditPage(BaseModel):
    events: list[AuditEventOut]
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next (older) page; null at the end"
    )


@routes.get(
    "/audit",
    summary="Read the audit trail (administrators)",
    auth="admin",
    query=AuditQuery,
    response=AuditPage,
)
async def read_audit_trail(request: web.Request, query: AuditQuery) -> AuditPage:
    """Who read or changed which record, when, and the outcome. Newest first;
    follow ``next_cursor`` for older events. Reading the trail is itself
    recorded."""
    if query.since and query.until and query.since >= query.until:
        raise BadRequest("`since` must be before `until`")
    filters = AuditFilter(
        user_id=query.user_id,
        patient_id=query.patient_id,
        action=query.action,
        resource_type=query.resource_type,
        outcome=query.outcome,
        since=query.since,
        until=query.until,
    )
    before_id = int(query.cursor) if query.cursor else None
    async with request.app[DATABASE].session() as session:
        events = await audit.list_events(
            session, filters, limit=query.limit + 1, before_id=before_id
        )
    await audit.record(request, action="audit.read", resource_type="audit")

    page = events[: query.limit]
    more = len(events) > query.limit
    return AuditPage(
        events=[AuditEventOut.of(event) for event in page],
        next_cursor=str(page[-1].id) if more and page else None,
    )

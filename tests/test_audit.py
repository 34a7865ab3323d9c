"""The audit trail: what is recorded, what is not, and how admins read it."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from sqlalchemy import select

from docwiz.appkeys import DATABASE
from docwiz.cli import main
from docwiz.db.models_accounts import AuditEvent
from docwiz.errors import Forbidden, NotFound, ValidationFailed
from docwiz.services import audit
from docwiz.services.audit import AuditEntry

MakeAccount = Callable[..., Awaitable[Any]]

PROFILE: dict[str, Any] = {
    "name": "Audit Subject",
    "date_of_birth": "1980-02-29",
    "location": {"zip_code": "30301", "city": "Atlanta", "state": "GA"},
    "insurance_info": {"provider": "Humana", "policy_number": "HU-99-1234"},
    "medical_history": "Abdominoplasty 2012",
}


async def all_events(client: TestClient[Any, Any]) -> list[AuditEvent]:
    async with client.app[DATABASE].session() as session:
        return list((await session.scalars(select(AuditEvent))).all())


async def create_profile(client: TestClient[Any, Any], account: Any) -> str:
    response = await client.post("/api/profiles", json=PROFILE, headers=account.headers)
    assert response.status == 201
    profile_id: str = (await response.json())["id"]
    return profile_id


# -- what gets recorded --------------------------------------------------------


async def test_a_profile_read_records_who_what_which_when_and_the_request(
    client: TestClient[Any, Any], account: Any
) -> None:
    profile_id = await create_profile(client, account)
    before = datetime.now(UTC)

    response = await client.get(
        f"/api/profiles/{profile_id}",
        headers={**account.headers, "X-Request-ID": "trace-read-0001"},
    )

    assert response.status == 200
    (event,) = [e for e in await all_events(client) if e.action == "profile.read"]
    assert event.user_id == account.id
    assert event.resource_type == "profile"
    assert event.resource_id == profile_id
    assert event.patient_id == profile_id
    assert event.outcome == "success"
    assert event.request_id == "trace-read-0001"
    assert event.client_address == "127.0.0.1"
    assert before - timedelta(seconds=1) <= event.occurred_at <= datetime.now(UTC)


async def test_create_update_and_history_are_recorded(
    client: TestClient[Any, Any], account: Any
) -> None:
    profile_id = await create_profile(client, account)
    await client.put(
        f"/api/profiles/{profile_id}",
        json={"location": {"zip_code": "30302"}},
        headers=account.headers,
    )
    await client.get(f"/api/profiles/{profile_id}/history", headers=account.headers)
    await client.get("/api/profiles/me", headers=account.headers)

    recorded = [
        (e.action, e.patient_id, e.outcome)
        for e in await all_events(client)
        if e.resource_type == "profile"
    ]
    assert recorded == [
        ("profile.create", profile_id, "success"),
        ("profile.update", profile_id, "success"),
        ("profile.history", profile_id, "success"),
        ("profile.read", profile_id, "success"),
    ]


async def test_denied_and_missing_reads_are_recorded(
    client: TestClient[Any, Any], make_account: MakeAccount
) -> None:
    owner, snoop = await make_account(), await make_account()
    profile_id = await create_profile(client, owner)

    denied = await client.get(f"/api/profiles/{profile_id}", headers=snoop.headers)
    missing = await client.get("/api/profiles/profile_ghost", headers=snoop.headers)
    denied_put = await client.put(
        f"/api/profiles/{profile_id}", json={"name": "X"}, headers=snoop.headers
    )
    no_profile = await client.get("/api/profiles/me", headers=snoop.headers)

    assert [denied.status, missing.status, denied_put.status, no_profile.status] == [
        403,
        404,
        403,
        404,
    ]
    snoop_events = [
        (e.action, e.resource_id, e.patient_id, e.outcome)
        for e in await all_events(client)
        if e.user_id == snoop.id
    ]
    assert snoop_events == [
        ("profile.read", profile_id, profile_id, "denied"),
        ("profile.read", "profile_ghost", None, "not_found"),
        ("profile.update", profile_id, profile_id, "denied"),
        ("profile.read", None, None, "not_found"),
    ]


async def test_a_conflicting_update_is_recorded_as_rejected(
    client: TestClient[Any, Any], account: Any
) -> None:
    profile_id = await create_profile(client, account)

    response = await client.put(
        f"/api/profiles/{profile_id}",
        json={"name": "Late", "version": 7},
        headers=account.headers,
    )

    assert response.status == 409
    last = (await all_events(client))[-1]
    assert (last.action, last.outcome) == ("profile.update", "rejected")


async def test_logins_and_logouts_are_recorded(
    client: TestClient[Any, Any], account: Any
) -> None:
    credentials = {"email": account.email, "password": account.password}
    await client.post(
        "/api/auth/login", json={**credentials, "password": "Wrong-Password-1"}
    )
    ok = await client.post("/api/auth/login", json=credentials)
    token = (await ok.json())["access_token"]
    await client.post("/api/auth/logout", headers={"Authorization": f"Bearer {token}"})

    recorded = [
        (e.action, e.user_id, e.resource_id, e.outcome)
        for e in await all_events(client)
    ]
    assert recorded == [
        ("auth.login", None, account.id, "denied"),
        ("auth.login", account.id, account.id, "success"),
        ("auth.logout", account.id, account.id, "success"),
    ]


async def test_the_trail_never_holds_the_data(
    client: TestClient[Any, Any], account: Any
) -> None:
    profile_id = await create_profile(client, account)
    await client.put(
        f"/api/profiles/{profile_id}",
        json={"medical_history": "Changed history"},
        headers=account.headers,
    )
    await client.get(f"/api/profiles/{profile_id}", headers=account.headers)

    stored = json.dumps(
        [
            {c.name: str(getattr(e, c.name)) for c in AuditEvent.__table__.columns}
            for e in await all_events(client)
        ]
    )
    for value in ("Audit Subject", "HU-99-1234", "Abdominoplasty", "Changed", "30301"):
        assert value not in stored


# -- the one mechanism other areas call ----------------------------------------


@pytest.mark.parametrize(
    ("raised", "outcome"),
    [
        (None, "success"),
        (NotFound("gone"), "not_found"),
        (Forbidden("no"), "denied"),
        (ValidationFailed("bad"), "rejected"),
        (RuntimeError("boom"), "error"),
    ],
)
async def test_audited_derives_the_outcome_from_how_the_block_ends(
    client: TestClient[Any, Any], raised: Exception | None, outcome: str
) -> None:
    from aiohttp.test_utils import make_mocked_request

    request = make_mocked_request("GET", "/api/images/img_1", app=client.app)

    try:
        async with audit.audited(
            request, action="image.read", resource_type="image", resource_id="img_1"
        ) as event:
            event.patient_id = "profile_abc"
            if raised is not None:
                raise raised
    except Exception as exc:
        assert exc is raised

    (event_row,) = await all_events(client)
    assert (event_row.action, event_row.outcome) == ("image.read", outcome)
    assert event_row.patient_id == "profile_abc"
    assert event_row.user_id is None


async def test_write_records_events_outside_a_request(
    client: TestClient[Any, Any],
) -> None:
    await audit.write(
        client.app[DATABASE],
        AuditEntry(
            action="export.create",
            resource_type="export",
            resource_id="export_1",
            patient_id="profile_1",
            user_id="user_1",
        ),
    )

    (event,) = await all_events(client)
    assert (event.action, event.outcome, event.request_id) == (
        "export.create",
        "success",
        None,
    )


# -- reading the trail ---------------------------------------------------------


async def read_trail(
    client: TestClient[Any, Any], admin: Any, **query: Any
) -> web.Response:
    response: web.Response = await client.get(
        "/api/audit", params=query, headers=admin.headers
    )
    return response


async def test_admins_filter_the_trail(
    client: TestClient[Any, Any], make_account: MakeAccount, admin: Any
) -> None:
    first, second = await make_account(), await make_account()
    first_profile = await create_profile(client, first)
    await create_profile(client, second)
    await client.get(f"/api/profiles/{first_profile}", headers=second.headers)

    by_patient = await (
        await read_trail(client, admin, patient_id=first_profile)
    ).json()
    by_user = await (await read_trail(client, admin, user_id=second.id)).json()
    denied = await (await read_trail(client, admin, outcome="denied")).json()
    creates = await (await read_trail(client, admin, action="profile.create")).json()

    assert [(e["action"], e["outcome"]) for e in by_patient["events"]] == [
        ("profile.read", "denied"),
        ("profile.create", "success"),
    ]
    assert {e["user_id"] for e in by_user["events"]} == {second.id}
    assert len(denied["events"]) == 1
    assert len(creates["events"]) == 2
    event = by_patient["events"][0]
    assert set(event) == {
        "id",
        "occurred_at",
        "user_id",
        "action",
        "resource_type",
        "resource_id",
        "patient_id",
        "outcome",
        "request_id",
        "client_address",
    }
    assert datetime.fromisoformat(event["occurred_at"]).tzinfo is not None


async def test_the_trail_pages_with_a_cursor(
    client: TestClient[Any, Any], account: Any, admin: Any
) -> None:
    profile_id = await create_profile(client, account)
    for _ in range(4):
        await client.get(f"/api/profiles/{profile_id}", headers=account.headers)

    seen: list[int] = []
    cursor = None
    pages = 0
    while True:
        query = {"patient_id": profile_id, "limit": 2}
        if cursor:
            query["cursor"] = cursor
        page = await (await read_trail(client, admin, **query)).json()
        seen += [event["id"] for event in page["events"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break

    assert pages == 3
    assert len(seen) == 5
    assert seen == sorted(seen, reverse=True), "newest first, no repeats"


async def test_the_trail_filters_by_time(
    client: TestClient[Any, Any], account: Any, admin: Any
) -> None:
    await create_profile(client, account)
    later = (datetime.now(UTC) + timedelta(minutes=5)).isoformat()
    earlier = (datetime.now(UTC) - timedelta(minutes=5)).isoformat()

    future = await (await read_trail(client, admin, since=later)).json()
    window = await (await read_trail(client, admin, since=earlier, until=later)).json()

    assert future["events"] == []
    assert any(e["action"] == "profile.create" for e in window["events"])


@pytest.mark.parametrize(
    "query",
    [
        {"limit": "201"},
        {"limit": "0"},
        {"cursor": "abc"},
        {"outcome": "maybe"},
        {"since": "yesterday"},
        {"since": "2024-02-01T00:00:00Z", "until": "2024-01-01T00:00:00Z"},
    ],
)
async def test_bad_trail_queries_are_a_400(
    client: TestClient[Any, Any], admin: Any, query: dict[str, str]
) -> None:
    response = await read_trail(client, admin, **query)

    assert response.status == 400


async def test_reading_the_trail_is_itself_recorded(
    client: TestClient[Any, Any], admin: Any
) -> None:
    await read_trail(client, admin)

    (event,) = await all_events(client)
    assert (event.action, event.user_id) == ("audit.read", admin.id)


async def test_the_trail_is_for_admins_only(
    client: TestClient[Any, Any], account: Any
) -> None:
    assert (await client.get("/api/audit")).status == 401
    assert (await client.get("/api/audit", headers=account.headers)).status == 403


# -- the command line ----------------------------------------------------------


async def test_the_audit_command_lists_events_of_a_user(
    client: TestClient[Any, Any],
    make_account: MakeAccount,
    capsys: pytest.CaptureFixture[str],
) -> None:
    first, second = await make_account(), await make_account()
    first_profile = await create_profile(client, first)
    await create_profile(client, second)
    for _ in range(3):
        await client.get(f"/api/profiles/{first_profile}", headers=first.headers)

    code = await asyncio.to_thread(main, ["audit", "--user", first.id, "--limit", "2"])
    text = capsys.readouterr().out.splitlines()
    json_code = await asyncio.to_thread(main, ["audit", "--user", first.id, "--json"])
    events = json.loads(capsys.readouterr().out)

    assert code == 0 and json_code == 0
    assert len(text) == 2
    assert all(first.id in line and "profile.read" in line for line in text)
    assert f"patient={first_profile}" in text[0]
    assert [e["action"] for e in events] == ["profile.read"] * 3 + ["profile.create"]
    assert {e["user_id"] for e in events} == {first.id}


def test_the_audit_command_refuses_a_bad_limit(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit):
        main(["audit", "--limit", "0"])
    assert "1 to 10000" in capsys.readouterr().err

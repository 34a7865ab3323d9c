"""Profiles on a real PostgreSQL: the migration, row locks under concurrent
updates, and ciphertext in the stored rows."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import text

from docwiz.appkeys import DATABASE
from docwiz.config import Settings
from docwiz.db import migrate
from docwiz.db.session import Database
from docwiz.testing.servers import postgres_server

pytestmark = pytest.mark.integration

PASSWORD = "Sturdy-Password-9"
POLICY_NUMBER = "PG55500077"
HISTORY = "Mentoplasty 2018"
MakeClient = Callable[..., Awaitable[TestClient[Any, Any]]]


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    with postgres_server() as url:
        yield url


@pytest.fixture
async def pg_client(
    make_client: MakeClient, postgres_url: str, tmp_path: Path
) -> TestClient[Any, Any]:
    # Embedded mode migrates on start, whatever the database.
    return await make_client(
        Settings(data_dir=tmp_path / "var", database_url=postgres_url)
    )


async def patient(client: TestClient[Any, Any], email: str) -> dict[str, str]:
    await client.post("/api/auth/register", json={"email": email, "password": PASSWORD})
    login = await client.post(
        "/api/auth/login", json={"email": email, "password": PASSWORD}
    )
    return {"Authorization": f"Bearer {(await login.json())['access_token']}"}


async def test_the_migration_builds_the_account_tables(postgres_url: str) -> None:
    database = Database(postgres_url)
    try:
        await migrate.upgrade(database)
        async with database.engine.connect() as conn:
            tables = set(
                (
                    await conn.execute(
                        text(
                            "SELECT table_name FROM information_schema.tables "
                            "WHERE table_schema = 'public'"
                        )
                    )
                ).scalars()
            )
            id_type = await conn.scalar(
                text(
                    "SELECT data_type FROM information_schema.columns "
                    "WHERE table_name = 'audit_events' AND column_name = 'id'"
                )
            )
    finally:
        await database.dispose()

    assert {
        "revoked_tokens",
        "patient_profiles",
        "patient_profile_versions",
        "audit_events",
    } <= tables
    assert id_type == "bigint"


async def test_concurrent_updates_are_serialized_by_a_row_lock(
    pg_client: TestClient[Any, Any],
) -> None:
    headers = await patient(pg_client, "pg-concurrent@example.com")
    body = {
        "name": "Postgres Patient",
        "date_of_birth": "1975-05-05",
        "location": {"zip_code": "97201", "city": "Portland", "state": "OR"},
        "insurance_info": {"provider": "Kaiser", "policy_number": POLICY_NUMBER},
        "medical_history": HISTORY,
    }
    created = await pg_client.post("/api/profiles", json=body, headers=headers)
    profile_id = (await created.json())["id"]
    writers = 25

    responses = await asyncio.gather(
        *(
            pg_client.put(
                f"/api/profiles/{profile_id}",
                json={"insurance_info": {"copay": n}},
                headers=headers,
            )
            for n in range(writers)
        )
    )

    assert [r.status for r in responses] == [200] * writers
    final = await (await pg_client.get("/api/profiles/me", headers=headers)).json()
    assert final["version"] == 1 + writers
    history = await (
        await pg_client.get(f"/api/profiles/{profile_id}/history", headers=headers)
    ).json()
    assert [entry["version"] for entry in history] == list(range(1, writers + 2))


async def test_postgres_rows_hold_ciphertext_only(
    pg_client: TestClient[Any, Any],
) -> None:
    headers = await patient(pg_client, "pg-cipher@example.com")
    body = {
        "name": "Cipher Patient",
        "date_of_birth": "1966-06-06",
        "location": {"zip_code": "02108", "city": "Boston", "state": "MA"},
        "insurance_info": {"provider": "Tufts", "policy_number": POLICY_NUMBER},
        "medical_history": HISTORY,
    }
    assert (
        await pg_client.post("/api/profiles", json=body, headers=headers)
    ).status == 201

    async with pg_client.app[DATABASE].session() as session:
        dumped = await session.scalar(
            text(
                "SELECT string_agg(t::text, '|') FROM ("
                " SELECT * FROM patient_profiles) t"
            )
        )
        history = await session.scalar(
            text("SELECT string_agg(changes::text, '|') FROM patient_profile_versions")
        )

    assert "Cipher Patient" in dumped
    assert POLICY_NUMBER not in dumped and HISTORY not in dumped
    assert POLICY_NUMBER not in (history or "")

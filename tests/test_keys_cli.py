"""`docwiz keys`: generate a key, and rotate every encrypted field to the first key."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from cryptography.fernet import Fernet, InvalidToken
from pydantic import SecretStr

from docwiz.cli import main
from docwiz.config import Settings

MakeClient = Callable[..., Awaitable[TestClient[Any, Any]]]
PASSWORD = "Sturdy-Password-9"
POLICY_NUMBER = "RT0042424242"
HISTORY = "Blepharoplasty 2015"


def stored_ciphertexts(data_dir: Path) -> list[str]:
    with sqlite3.connect(data_dir / "docwiz.db") as db:
        rows = db.execute(
            "SELECT policy_number_encrypted, medical_history_encrypted "
            "FROM patient_profiles"
        ).fetchall()
    return [value for row in rows for value in row if value is not None]


async def patient_with_profile(client: TestClient[Any, Any], email: str) -> str:
    await client.post("/api/auth/register", json={"email": email, "password": PASSWORD})
    login = await client.post(
        "/api/auth/login", json={"email": email, "password": PASSWORD}
    )
    headers = {"Authorization": f"Bearer {(await login.json())['access_token']}"}
    body = {
        "name": "Rotation Patient",
        "date_of_birth": "1970-03-03",
        "location": {"zip_code": "60601", "city": "Chicago", "state": "IL"},
        "insurance_info": {"provider": "Cigna", "policy_number": POLICY_NUMBER},
        "medical_history": HISTORY,
    }
    created = await client.post("/api/profiles", json=body, headers=headers)
    assert created.status == 201, await created.text()
    return headers["Authorization"]


def with_keys(settings: Settings, *keys: bytes) -> Settings:
    joined = ",".join(key.decode() for key in keys)
    return settings.model_copy(update={"encryption_keys": SecretStr(joined)})


def test_generate_prints_a_fernet_key(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["keys", "generate"]) == 0

    key = capsys.readouterr().out.strip()
    Fernet(key.encode())


async def test_rotate_moves_every_value_to_the_new_key(
    make_client: MakeClient,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    old, new = Fernet.generate_key(), Fernet.generate_key()
    before = await make_client(with_keys(settings, old))
    for n in range(3):
        await patient_with_profile(before, f"rotate{n}@example.com")
    await before.close()
    assert len(stored_ciphertexts(settings.data_dir)) == 6

    monkeypatch.setenv("DOCWIZ_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("DOCWIZ_ENCRYPTION_KEYS", f"{new.decode()},{old.decode()}")
    code = await asyncio.to_thread(main, ["keys", "rotate"])

    assert code == 0
    assert "re-encrypted 6 values in 2 columns" in capsys.readouterr().out
    for token in stored_ciphertexts(settings.data_dir):
        with pytest.raises(InvalidToken):
            Fernet(old).decrypt(token.encode())
        assert Fernet(new).decrypt(token.encode()).decode() in {POLICY_NUMBER, HISTORY}

    after = await make_client(with_keys(settings, new))
    login = await after.post(
        "/api/auth/login", json={"email": "rotate1@example.com", "password": PASSWORD}
    )
    token = (await login.json())["access_token"]
    profile = await after.get(
        "/api/profiles/me", headers={"Authorization": f"Bearer {token}"}
    )
    body = await profile.json()
    assert body["insurance_info"]["policy_number"] == POLICY_NUMBER
    assert body["medical_history"] == HISTORY


async def test_rotate_without_the_old_key_fails_clearly(
    make_client: MakeClient,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    old = Fernet.generate_key()
    client = await make_client(with_keys(settings, old))
    await patient_with_profile(client, "lost@example.com")
    await client.close()

    monkeypatch.setenv("DOCWIZ_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("DOCWIZ_ENCRYPTION_KEYS", Fernet.generate_key().decode())
    code = await asyncio.to_thread(main, ["keys", "rotate"])

    assert code == 2
    assert "none of the configured keys" in capsys.readouterr().err
    assert Fernet(old).decrypt(stored_ciphertexts(settings.data_dir)[0].encode())

"""Encryption at rest: the raw database never holds a policy number or a history."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from cryptography.fernet import Fernet

from docwiz.config import Settings
from docwiz.security.fields import FieldCipher, UndecryptableField, encrypted_columns

POLICY_NUMBER = "QX7734019925"
MEDICAL_HISTORY = "Rhinoplasty revision 2019; allergic to latex"
NEW_POLICY_NUMBER = "ZW5550001234"
NEW_HISTORY = "Septoplasty 2021, uneventful recovery"


def database_files(settings: Settings) -> list[Path]:
    main = settings.data_dir / "docwiz.db"
    files = [main, main.with_name("docwiz.db-wal"), main.with_name("docwiz.db-shm")]
    return [path for path in files if path.exists()]


async def test_the_raw_sqlite_file_holds_neither_value(
    client: TestClient[Any, Any], account: Any, settings: Settings
) -> None:
    body = {
        "name": "Plaintext Canary",
        "date_of_birth": "1985-06-01",
        "location": {"zip_code": "10001", "city": "New York", "state": "NY"},
        "insurance_info": {"provider": "Aetna", "policy_number": POLICY_NUMBER},
        "medical_history": MEDICAL_HISTORY,
    }
    created = await client.post("/api/profiles", json=body, headers=account.headers)
    assert created.status == 201
    profile_id = (await created.json())["id"]
    updated = await client.put(
        f"/api/profiles/{profile_id}",
        json={
            "insurance_info": {"policy_number": NEW_POLICY_NUMBER},
            "medical_history": NEW_HISTORY,
        },
        headers=account.headers,
    )
    assert updated.status == 200
    read = await (await client.get("/api/profiles/me", headers=account.headers)).json()
    assert read["insurance_info"]["policy_number"] == NEW_POLICY_NUMBER

    raw = b"".join(path.read_bytes() for path in database_files(settings))

    assert b"Plaintext Canary" in raw, "the scan reads the right database"
    for secret in (POLICY_NUMBER, MEDICAL_HISTORY, NEW_POLICY_NUMBER, NEW_HISTORY):
        assert secret.encode() not in raw
        assert secret.encode("utf-16-le") not in raw


def test_encrypted_columns_are_found_by_their_mark() -> None:
    found = {(table.name, column.name) for table, column in encrypted_columns()}

    assert {
        ("patient_profiles", "policy_number_encrypted"),
        ("patient_profiles", "medical_history_encrypted"),
    } <= found


def test_a_field_round_trips_and_each_encryption_differs() -> None:
    cipher = FieldCipher([Fernet.generate_key()])

    first, second = cipher.encrypt(POLICY_NUMBER), cipher.encrypt(POLICY_NUMBER)

    assert first != second
    assert POLICY_NUMBER not in first
    assert cipher.decrypt(first) == cipher.decrypt(second) == POLICY_NUMBER


def test_tampered_ciphertext_is_refused() -> None:
    cipher = FieldCipher([Fernet.generate_key()])
    token = cipher.encrypt(MEDICAL_HISTORY)
    flipped = token[:40] + ("A" if token[40] != "A" else "B") + token[41:]

    with pytest.raises(UndecryptableField):
        cipher.decrypt(flipped)


def test_every_key_decrypts_and_the_first_encrypts() -> None:
    old, new = Fernet.generate_key(), Fernet.generate_key()
    written_before = FieldCipher([old]).encrypt(POLICY_NUMBER)
    both = FieldCipher([new, old])

    written_after = both.encrypt(POLICY_NUMBER)
    rotated = both.rotate(written_before)

    assert both.decrypt(written_before) == POLICY_NUMBER
    assert Fernet(new).decrypt(written_after.encode()).decode() == POLICY_NUMBER
    assert Fernet(new).decrypt(rotated.encode()).decode() == POLICY_NUMBER
    with pytest.raises(UndecryptableField):
        FieldCipher([old]).decrypt(rotated)


def test_a_value_under_an_unknown_key_is_refused() -> None:
    token = FieldCipher([Fernet.generate_key()]).encrypt(POLICY_NUMBER)

    with pytest.raises(UndecryptableField):
        FieldCipher([Fernet.generate_key()]).decrypt(token)

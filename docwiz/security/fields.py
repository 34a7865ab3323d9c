"""Field encryption at rest: Fernet (AES-128-CBC + HMAC-SHA256) with key rotation.

The first configured key encrypts; every key decrypts. A column holding
ciphertext is declared with ``info={"encrypted": True}``, and
:func:`rotate_encrypted_columns` re-encrypts all such columns with the first
key, so an old key can be retired.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from sqlalchemy import Column, Table, select, update

from docwiz.db.base import Base
from docwiz.db.session import Database

logger = logging.getLogger("docwiz.security")

ROTATION_BATCH = 500


class UndecryptableField(Exception):
    """Stored ciphertext no configured key opens (wrong key, or tampered)."""


class FieldCipher:
    """Encrypts and decrypts text fields with the configured Fernet keys."""

    def __init__(self, keys: Sequence[bytes]) -> None:
        if not keys:
            raise ValueError("at least one encryption key is needed")
        self._fernet = MultiFernet([Fernet(key) for key in keys])

    def encrypt(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode()).decode("ascii")

    def decrypt(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode("ascii")).decode()
        except (InvalidToken, UnicodeError):
            raise UndecryptableField(
                "a stored field cannot be decrypted with the configured keys"
            ) from None

    def rotate(self, token: str) -> str:
        """The same plaintext, encrypted again with the first key."""
        try:
            return self._fernet.rotate(token.encode("ascii")).decode("ascii")
        except (InvalidToken, UnicodeError):
            raise UndecryptableField(
                "a stored field cannot be decrypted with the configured keys"
            ) from None

    def encrypt_optional(self, plaintext: str | None) -> str | None:
        return None if plaintext is None else self.encrypt(plaintext)

    def decrypt_optional(self, token: str | None) -> str | None:
        return None if token is None else self.decrypt(token)


def encrypted_columns() -> list[tuple[Table, Column[str]]]:
    """Every column of every table marked ``info={"encrypted": True}``."""
    import docwiz.db.all_models  # noqa: F401  (registers every table)

    found = []
    for table in Base.metadata.sorted_tables:
        for column in table.columns:
            if column.info.get("encrypted"):
                found.append((table, column))
    return found


@dataclass(frozen=True)
class RotationReport:
    columns: int
    values: int


async def rotate_encrypted_columns(
    database: Database, cipher: FieldCipher
) -> RotationReport:
    """Re-encrypt every encrypted value with the first key, in batches.

    Each batch is one transaction; a crash leaves every value readable, since
    all keys still decrypt until the operator removes the old one.
    """
    columns = encrypted_columns()
    total = 0
    for table, column in columns:
        total += await _rotate_column(database, cipher, table, column)
    logger.info("re-encrypted %s values in %s columns", total, len(columns))
    return RotationReport(columns=len(columns), values=total)


def _rotate_batch(cipher: FieldCipher, tokens: list[str]) -> list[str]:
    return [cipher.rotate(token) for token in tokens]


async def _rotate_column(
    database: Database, cipher: FieldCipher, table: Table, column: Column[str]
) -> int:
    (key,) = table.primary_key.columns
    rotated = 0
    last_key: object = None
    while True:
        query = (
            select(key, column)
            .where(column.is_not(None))
            .order_by(key)
            .limit(ROTATION_BATCH)
        )
        if last_key is not None:
            query = query.where(key > last_key)
        async with database.session() as session:
            rows = (await session.execute(query)).all()
            if not rows:
                return rotated
            fresh = await asyncio.to_thread(
                _rotate_batch, cipher, [token for _, token in rows]
            )
            for (row_key, _), new_token in zip(rows, fresh, strict=True):
                await session.execute(
                    update(table).where(key == row_key).values({column.name: new_token})
                )
        rotated += len(rows)
        last_key = rows[-1][0]

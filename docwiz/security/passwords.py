"""Password hashing with argon2id, always off the event loop."""

from __future__ import annotations

import asyncio

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

_hasher = PasswordHasher()  # argon2id with the library's RFC 9106 low-memory profile

# Verified against when the email is unknown, so both failures cost the same.
_DUMMY_HASH = _hasher.hash("docwiz-timing-equaliser")


async def hash_password(password: str) -> str:
    return await asyncio.to_thread(_hasher.hash, password)


def _verify(stored_hash: str | None, password: str) -> bool:
    try:
        return (
            _hasher.verify(stored_hash or _DUMMY_HASH, password)
            and stored_hash is not None
        )
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


async def verify_password(stored_hash: str | None, password: str) -> bool:
    """Check ``password``; with no stored hash, spend the same time and fail."""
    return await asyncio.to_thread(_verify, stored_hash, password)


def needs_rehash(stored_hash: str) -> bool:
    return _hasher.check_needs_rehash(stored_hash)


MIN_LENGTH = 10
MAX_LENGTH = 128
PASSPHRASE_LENGTH = 16


def password_problem(password: str) -> str | None:
    """Why ``password`` is refused, or None if it meets the policy.

    At least 10 characters with three of lower case, upper case, digits and
    symbols, or a passphrase of 16 characters or more.
    """
    if len(password) < MIN_LENGTH:
        return f"must be at least {MIN_LENGTH} characters long"
    if len(password) > MAX_LENGTH:
        return f"must be at most {MAX_LENGTH} characters long"
    if len(password) >= PASSPHRASE_LENGTH:
        return None
    classes = sum(
        (
            any(c.islower() for c in password),
            any(c.isupper() for c in password),
            any(c.isdigit() for c in password),
            any(not c.isalnum() for c in password),
        )
    )
    if classes < 3:
        return (
            "must mix at least three of lower case, upper case, digits and "
            f"symbols, or be a passphrase of {PASSPHRASE_LENGTH}+ characters"
        )
    return None

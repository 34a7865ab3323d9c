"""Password hashing with argon2id, always off the event loop."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

T = TypeVar("T")

_hasher = PasswordHasher()  # argon2id with the library's RFC 9106 low-memory profile

# Verified against when the email is unknown, so both failures cost the same.
_DUMMY_HASH = _hasher.hash("docwiz-timing-equaliser")


def _usable_cpus() -> int:
    """CPUs this process may run on (a container's affinity, not the host's)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


# Hashes queue here rather than in the shared default pool: one argon2 hash
# per CPU at most, so a burst of logins cannot starve the event loop's own
# threads (database, image work) of the cores.
_executor = ThreadPoolExecutor(max_workers=_usable_cpus(), thread_name_prefix="argon2")


async def _off_loop(function: Callable[..., T], *args: Any) -> T:
    return await asyncio.get_running_loop().run_in_executor(_executor, function, *args)


async def hash_password(password: str) -> str:
    return await _off_loop(_hasher.hash, password)


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
    return await _off_loop(_verify, stored_hash, password)


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

"""User accounts without HTTP: creation, lookup and the bootstrap admin."""

from __future__ import annotations

import logging

from email_validator import EmailNotValidError, validate_email
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from docwiz.db.models import User
from docwiz.security.passwords import hash_password, password_problem

logger = logging.getLogger("docwiz.auth")


class AccountError(ValueError):
    """The account cannot be created as asked; the message says why."""


class EmailTaken(AccountError):
    pass


def normalize_email(email: str) -> str:
    """The canonical form of an address; raises AccountError if it is not one."""
    try:
        result = validate_email(email.strip(), check_deliverability=False)
    except EmailNotValidError as exc:
        raise AccountError(f"invalid email address: {exc}") from None
    return result.normalized.lower()


async def find_user_by_email(session: AsyncSession, email: str) -> User | None:
    result = await session.execute(select(User).where(User.email == email))
    return result.scalar_one_or_none()


async def create_user(
    session: AsyncSession, email: str, password: str, *, is_admin: bool = False
) -> User:
    normalized = normalize_email(email)
    problem = password_problem(password)
    if problem is not None:
        raise AccountError(f"password {problem}")
    if await find_user_by_email(session, normalized) is not None:
        raise EmailTaken("Email already registered")
    user = User(
        email=normalized,
        password_hash=await hash_password(password),
        is_admin=is_admin,
        is_active=True,
    )
    session.add(user)
    await session.flush()
    logger.info("created user %s (admin=%s)", user.id, is_admin)
    return user


async def ensure_admin(session: AsyncSession, email: str, password: str) -> User:
    """Make sure an active admin with this email exists (password kept if it does)."""
    normalized = normalize_email(email)
    user = await find_user_by_email(session, normalized)
    if user is None:
        return await create_user(session, normalized, password, is_admin=True)
    if not user.is_admin or not user.is_active:
        user.is_admin = True
        user.is_active = True
        logger.info("promoted user %s to admin", user.id)
    return user

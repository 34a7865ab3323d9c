"""Accounts over HTTP: register, login, refresh, logout and who am I."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Literal

from aiohttp import web
from pydantic import BaseModel, Field, SecretStr, field_validator
from sqlalchemy import update
from sqlalchemy.exc import IntegrityError

from docwiz.api.routing import RouteTable
from docwiz.appkeys import DATABASE, RATE_LIMITER, REVOCATIONS, SETTINGS, TOKENS
from docwiz.auth_context import CLAIMS_KEY, current_user
from docwiz.db.models import User
from docwiz.db.session import Database
from docwiz.errors import BadRequest, Unauthorized
from docwiz.ratelimit import LoginThrottle, client_address
from docwiz.security.passwords import (
    MAX_LENGTH,
    hash_password,
    needs_rehash,
    password_problem,
    verify_password,
)
from docwiz.security.revocation import (
    DatabaseRevocationList,
    RedisRevocationList,
    RevocationList,
)
from docwiz.services import audit
from docwiz.services.accounts import (
    AccountError,
    EmailTaken,
    create_user,
    find_user_by_email,
    normalize_email,
)

logger = logging.getLogger("docwiz.auth")

routes = RouteTable("auth")

PURGE_INTERVAL_SECONDS = 600.0

# Argon2 hashes computed at once (logins and registrations). More than the CPUs
# only adds threads that compete with the event loop and the database threads
# for the same cores; waiting requests queue here at no cost.
WRONG_CREDENTIALS = "Incorrect email or password"


class RegisterIn(BaseModel):
    email: str = Field(max_length=320, examples=["user@example.com"])
    password: SecretStr = Field(max_length=MAX_LENGTH)

    @field_validator("email")
    @classmethod
    def _normalized_email(cls, value: str) -> str:
        return normalize_email(value)

    @field_validator("password")
    @classmethod
    def _strong_password(cls, value: SecretStr) -> SecretStr:
        problem = password_problem(value.get_secret_value())
        if problem is not None:
            raise ValueError(f"password {problem}")
        return value


class LoginIn(BaseModel):
    email: str = Field(max_length=320)
    password: SecretStr = Field(max_length=1024)


class UserOut(BaseModel):
    id: str
    email: str
    is_active: bool
    created_at: datetime

    @classmethod
    def of(cls, user: User) -> UserOut:
        return cls(
            id=user.id,
            email=user.email,
            is_active=user.is_active,
            created_at=user.created_at,
        )


class TokenOut(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105  (a scheme, not a secret)


class MessageOut(BaseModel):
    message: str


@routes.post(
    "/auth/register",
    summary="Register a new user account",
    auth="none",
    body=RegisterIn,
    response=UserOut,
    status=201,
    errors={
        400: "Email already registered",
        422: "Invalid email address, or a password that fails the policy",
    },
)
async def register(request: web.Request, body: RegisterIn) -> UserOut:
    """Passwords need 10+ characters mixing three of lower case, upper case,
    digits and symbols, or a passphrase of 16+ characters."""
    try:
        async with request.app[DATABASE].session() as session:
            user = await create_user(
                session, body.email, body.password.get_secret_value()
            )
    except (EmailTaken, IntegrityError):
        # IntegrityError: the same address registered by a concurrent request.
        raise BadRequest("Email already registered", code="email_taken") from None
    except AccountError as exc:
        raise BadRequest(str(exc)) from None
    await audit.record(
        request,
        action="auth.register",
        resource_type="user",
        resource_id=user.id,
        user_id=user.id,
    )
    return UserOut.of(user)


def _login_email(raw: str) -> str:
    """The normalized address, or a plain lower-cased one if it is not valid."""
    try:
        return normalize_email(raw)
    except AccountError:
        return raw.strip().lower()


async def _check_credentials(
    database: Database, email: str, password: str
) -> tuple[User | None, bool]:
    """The account under ``email`` and whether ``password`` opens it.

    An unknown address is verified against a dummy hash, so it costs the same
    time as a wrong password.
    """
    async with database.session() as session:
        user = await find_user_by_email(session, email)
    matches = await verify_password(user.password_hash if user else None, password)
    if user is None or not matches or not user.is_active:
        return user, False
    if needs_rehash(user.password_hash):
        await _rehash(database, user, password)
    return user, True


async def _rehash(database: Database, user: User, password: str) -> None:
    """Store a hash with today's parameters, now that the password is known."""
    fresh = await hash_password(password)
    async with database.session() as session:
        await session.execute(
            update(User).where(User.id == user.id).values(password_hash=fresh)
        )
    user.password_hash = fresh
    logger.info("rehashed the password of user %s with current parameters", user.id)


@routes.post(
    "/auth/login",
    summary="Log in and receive a JWT access token",
    auth="none",
    body=LoginIn,
    response=TokenOut,
    errors={
        401: WRONG_CREDENTIALS,
        429: "Too many requests, or too many failed logins for this account or address",
    },
)
async def login(request: web.Request, body: LoginIn) -> TokenOut:
    """The same 401 for an unknown email and a wrong password. Failed logins
    are limited per account and per client address; past the limit even the
    right password gets 429 until the window resets."""
    email = _login_email(body.email)
    address = client_address(request)
    throttle = LoginThrottle(request.app[RATE_LIMITER], request.app[SETTINGS])
    await throttle.check(address, email)

    user, matches = await _check_credentials(
        request.app[DATABASE],
        email,
        body.password.get_secret_value(),
    )
    if not matches:
        await throttle.failed(address, email)
        await audit.record(
            request,
            action="auth.login",
            resource_type="user",
            resource_id=user.id if user else None,
            outcome="denied",
        )
        raise Unauthorized(WRONG_CREDENTIALS, code="invalid_credentials")

    assert user is not None
    await throttle.succeeded(email)
    token, _claims = request.app[TOKENS].issue(user.id)
    await audit.record(
        request,
        action="auth.login",
        resource_type="user",
        resource_id=user.id,
        user_id=user.id,
    )
    return TokenOut(access_token=token)


@routes.post(
    "/auth/refresh",
    summary="Exchange the current token for a new one",
    response=TokenOut,
)
async def refresh(request: web.Request) -> TokenOut:
    """The presented token is revoked; a token can be refreshed only once."""
    user = current_user(request)
    claims = request[CLAIMS_KEY]
    if not await request.app[REVOCATIONS].revoke(claims.token_id, claims.expires_at):
        raise Unauthorized("Could not validate credentials: the token was revoked")
    token, _claims = request.app[TOKENS].issue(user.id)
    return TokenOut(access_token=token)


@routes.post(
    "/auth/logout",
    summary="Log out: the token is revoked",
    response=MessageOut,
)
async def logout(request: web.Request) -> MessageOut:
    """The token stops working at once, not only when it expires."""
    claims = request[CLAIMS_KEY]
    await request.app[REVOCATIONS].revoke(claims.token_id, claims.expires_at)
    await audit.record(
        request,
        action="auth.logout",
        resource_type="user",
        resource_id=claims.subject,
    )
    return MessageOut(message="Successfully logged out")


@routes.get("/auth/me", summary="The current user", response=UserOut)
async def me(request: web.Request) -> UserOut:
    return UserOut.of(current_user(request))


# -- what the accounts area opens at start ------------------------------------


def make_revocation_list(app: web.Application) -> RevocationList:
    settings = app[SETTINGS]
    if settings.mode == "scale-out" and settings.redis_url is not None:
        return RedisRevocationList.from_url(settings.redis_url)
    return DatabaseRevocationList(app[DATABASE])


async def _purge_periodically(revocations: RevocationList) -> None:
    while True:
        try:
            await revocations.purge_expired()
        except Exception:
            logger.exception("purging expired revoked tokens failed")
        await asyncio.sleep(PURGE_INTERVAL_SECONDS)


async def accounts_ctx(app: web.Application) -> AsyncIterator[None]:
    """Open the revocation list (after the database) and purge it regularly."""
    revocations = make_revocation_list(app)
    app[REVOCATIONS] = revocations
    purger = asyncio.create_task(_purge_periodically(revocations))
    try:
        yield
    finally:
        purger.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await purger
        await revocations.close()

"""Accounts and tokens: register, login, refresh, logout, me, and token attacks."""

from __future__ import annotations

import base64
import json
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest
from aiohttp.test_utils import TestClient
from argon2 import PasswordHasher
from sqlalchemy import select, update

from docwiz.appkeys import DATABASE, REVOCATIONS, SECRETS, TOKENS
from docwiz.db.models import User
from docwiz.db.models_accounts import RevokedToken
from docwiz.errors import ErrorBody
from docwiz.security.revocation import DatabaseRevocationList
from docwiz.security.tokens import ALGORITHM, AUDIENCE, ISSUER

PASSWORD = "Sturdy-Password-9"

MakeAccount = Callable[..., Awaitable[Any]]


def b64url(data: dict[str, Any]) -> str:
    raw = json.dumps(data, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def valid_claims(user_id: str) -> dict[str, Any]:
    now = int(time.time())
    return {
        "sub": user_id,
        "jti": "handmade-token-id",
        "iat": now,
        "nbf": now,
        "exp": now + 600,
        "iss": ISSUER,
        "aud": AUDIENCE,
    }


async def register(
    client: TestClient[Any, Any], email: str, password: str = PASSWORD
) -> Any:
    return await client.post(
        "/api/auth/register", json={"email": email, "password": password}
    )


async def login(
    client: TestClient[Any, Any], email: str, password: str = PASSWORD
) -> Any:
    return await client.post(
        "/api/auth/login", json={"email": email, "password": password}
    )


async def token_for(client: TestClient[Any, Any], email: str) -> str:
    response = await login(client, email)
    assert response.status == 200, await response.text()
    token: str = (await response.json())["access_token"]
    return token


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def me_status(client: TestClient[Any, Any], token: str) -> int:
    response = await client.get("/api/auth/me", headers=bearer(token))
    if response.status == 401:
        ErrorBody.model_validate(await response.json())
    return response.status


# -- register ------------------------------------------------------------------


async def test_register_creates_an_account(client: TestClient[Any, Any]) -> None:
    response = await register(client, "  Jane.Doe@Example.COM ")

    assert response.status == 201
    body = await response.json()
    assert set(body) == {"id", "email", "is_active", "created_at"}
    assert body["email"] == "jane.doe@example.com"
    assert body["is_active"] is True
    assert body["id"].startswith("user_")
    assert datetime.fromisoformat(body["created_at"]).tzinfo is not None
    assert "password" not in json.dumps(body)


async def test_register_twice_is_a_400(client: TestClient[Any, Any]) -> None:
    assert (await register(client, "twice@example.com")).status == 201

    again = await register(client, "TWICE@example.com")

    assert again.status == 400
    body = await again.json()
    assert body["detail"] == "Email already registered"


@pytest.mark.parametrize(
    ("email", "password", "field", "message"),
    [
        ("not-an-email", PASSWORD, "email", "invalid email address"),
        ("short@example.com", "Ab1!", "password", "at least 10 characters"),
        ("plain@example.com", "alllowercase", "password", "at least three"),
        ("long@example.com", "x" * 200, "password", "at most 128"),
    ],
)
async def test_register_refuses_bad_input_with_a_422_naming_the_field(
    client: TestClient[Any, Any], email: str, password: str, field: str, message: str
) -> None:
    response = await register(client, email, password)

    assert response.status == 422
    body = await response.json()
    assert [error["field"] for error in body["errors"]] == [field]
    assert message in body["errors"][0]["message"]
    assert password not in json.dumps(body)


async def test_a_long_passphrase_is_accepted(client: TestClient[Any, Any]) -> None:
    response = await register(
        client, "phrase@example.com", "correct horse battery staple"
    )
    assert response.status == 201


# -- login ---------------------------------------------------------------------


async def test_login_returns_a_bearer_token_that_works(
    client: TestClient[Any, Any],
) -> None:
    await register(client, "login@example.com")

    response = await login(client, "LOGIN@example.com")

    assert response.status == 200
    body = await response.json()
    assert set(body) == {"access_token", "token_type"}
    assert body["token_type"] == "bearer"
    me = await client.get("/api/auth/me", headers=bearer(body["access_token"]))
    assert me.status == 200
    assert (await me.json())["email"] == "login@example.com"


async def test_login_token_carries_the_pinned_claims(
    client: TestClient[Any, Any],
) -> None:
    await register(client, "claims@example.com")
    token = await token_for(client, "claims@example.com")

    header = jwt.get_unverified_header(token)
    claims = jwt.decode(
        token, client.app[SECRETS].jwt_secret, algorithms=[ALGORITHM], audience=AUDIENCE
    )

    assert header["alg"] == "HS256"
    assert {"sub", "iat", "exp", "jti", "iss", "aud"} <= set(claims)
    assert claims["exp"] - claims["iat"] == 60 * 60
    assert claims["iss"] == ISSUER


async def test_wrong_password_and_unknown_email_get_the_same_401(
    client: TestClient[Any, Any],
) -> None:
    await register(client, "known@example.com")

    wrong = await login(client, "known@example.com", "Wrong-Password-1")
    unknown = await login(client, "nobody@example.com", "Wrong-Password-1")
    malformed = await login(client, "not an address", "Wrong-Password-1")

    bodies = [await r.json() for r in (wrong, unknown, malformed)]
    assert [r.status for r in (wrong, unknown, malformed)] == [401, 401, 401]
    assert {b["detail"] for b in bodies} == {"Incorrect email or password"}
    assert {b["code"] for b in bodies} == {"invalid_credentials"}


async def test_an_inactive_account_cannot_log_in(
    client: TestClient[Any, Any],
) -> None:
    user_id = (await (await register(client, "gone@example.com")).json())["id"]
    async with client.app[DATABASE].session() as session:
        await session.execute(
            update(User).where(User.id == user_id).values(is_active=False)
        )

    assert (await login(client, "gone@example.com")).status == 401


async def test_login_rehashes_a_password_hashed_with_old_parameters(
    client: TestClient[Any, Any],
) -> None:
    user_id = (await (await register(client, "old@example.com")).json())["id"]
    weak = PasswordHasher(time_cost=1, memory_cost=8 * 1024, parallelism=1)
    old_hash = weak.hash(PASSWORD)
    async with client.app[DATABASE].session() as session:
        await session.execute(
            update(User).where(User.id == user_id).values(password_hash=old_hash)
        )

    assert (await login(client, "old@example.com")).status == 200

    async with client.app[DATABASE].session() as session:
        stored = await session.scalar(
            select(User.password_hash).where(User.id == user_id)
        )
    assert stored is not None and stored != old_hash
    assert not PasswordHasher().check_needs_rehash(stored)
    assert (await login(client, "old@example.com")).status == 200


# -- me, refresh, logout -------------------------------------------------------


async def test_me_needs_a_token(client: TestClient[Any, Any]) -> None:
    response = await client.get("/api/auth/me")

    assert response.status == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"


async def test_refresh_issues_a_new_token_and_revokes_the_old_one(
    client: TestClient[Any, Any],
) -> None:
    await register(client, "refresh@example.com")
    old = await token_for(client, "refresh@example.com")

    response = await client.post("/api/auth/refresh", headers=bearer(old))

    assert response.status == 200
    new = (await response.json())["access_token"]
    assert new != old
    assert await me_status(client, new) == 200
    assert await me_status(client, old) == 401
    again = await client.post("/api/auth/refresh", headers=bearer(old))
    assert again.status == 401, "a token is refreshed only once"


async def test_logout_revokes_the_token_for_real(client: TestClient[Any, Any]) -> None:
    await register(client, "logout@example.com")
    token = await token_for(client, "logout@example.com")
    other_session = await token_for(client, "logout@example.com")

    response = await client.post("/api/auth/logout", headers=bearer(token))

    assert response.status == 200
    assert await response.json() == {"message": "Successfully logged out"}
    assert await me_status(client, token) == 401
    twice = await client.post("/api/auth/logout", headers=bearer(token))
    assert twice.status == 401
    assert await me_status(client, other_session) == 200, "only that token ends"


async def test_logout_stores_the_revocation_until_the_token_expires(
    client: TestClient[Any, Any],
) -> None:
    await register(client, "row@example.com")
    token = await token_for(client, "row@example.com")
    claims = client.app[TOKENS].decode(token)

    await client.post("/api/auth/logout", headers=bearer(token))

    async with client.app[DATABASE].session() as session:
        row = await session.get(RevokedToken, claims.token_id)
    assert row is not None
    assert row.expires_at == claims.expires_at


async def test_expired_revocations_are_purged(client: TestClient[Any, Any]) -> None:
    revocations = client.app[REVOCATIONS]
    assert isinstance(revocations, DatabaseRevocationList)
    now = datetime.now(UTC)
    await revocations.revoke("expired-one", now - timedelta(seconds=5))
    await revocations.revoke("live-one", now + timedelta(minutes=30))

    purged = await revocations.purge_expired()

    assert purged == 1
    assert not await revocations.is_revoked("expired-one")
    assert await revocations.is_revoked("live-one")


async def test_revoking_twice_reports_the_second_as_already_done(
    client: TestClient[Any, Any],
) -> None:
    revocations = client.app[REVOCATIONS]
    expires = datetime.now(UTC) + timedelta(minutes=5)

    assert await revocations.revoke("same-token", expires) is True
    assert await revocations.revoke("same-token", expires) is False


# -- token attacks -------------------------------------------------------------


async def test_an_alg_none_token_is_refused(
    client: TestClient[Any, Any], account: Any
) -> None:
    forged = (
        b64url({"alg": "none", "typ": "JWT"})
        + "."
        + b64url(valid_claims(account.id))
        + "."
    )

    assert await me_status(client, forged) == 401


async def test_a_token_signed_with_another_secret_is_refused(
    client: TestClient[Any, Any], account: Any
) -> None:
    forged = jwt.encode(valid_claims(account.id), "x" * 48, algorithm="HS256")

    assert await me_status(client, forged) == 401


async def test_a_token_signed_with_another_algorithm_is_refused(
    client: TestClient[Any, Any], account: Any
) -> None:
    secret = client.app[SECRETS].jwt_secret
    swapped = jwt.encode(valid_claims(account.id), secret, algorithm="HS512")

    assert await me_status(client, swapped) == 401


async def test_a_tampered_payload_is_refused(
    client: TestClient[Any, Any], account: Any, admin: Any
) -> None:
    header, _payload, signature = account.token.split(".")
    claims = jwt.decode(account.token, options={"verify_signature": False})
    claims["sub"] = admin.id
    tampered = f"{header}.{b64url(claims)}.{signature}"

    assert await me_status(client, tampered) == 401


async def test_an_expired_token_is_refused(
    client: TestClient[Any, Any], account: Any
) -> None:
    tokens = client.app[TOKENS]
    long_ago = datetime.now(UTC) - tokens.ttl - timedelta(minutes=1)
    expired, _claims = tokens.issue(account.id, now=long_ago)

    response = await client.get("/api/auth/me", headers=bearer(expired))

    assert response.status == 401
    assert "expired" in (await response.json())["detail"]


@pytest.mark.parametrize("claim", ["aud", "iss"])
async def test_a_token_for_another_audience_or_issuer_is_refused(
    client: TestClient[Any, Any], account: Any, claim: str
) -> None:
    claims = valid_claims(account.id)
    claims[claim] = "someone-else"
    token = jwt.encode(claims, client.app[SECRETS].jwt_secret, algorithm="HS256")

    assert await me_status(client, token) == 401


async def test_a_token_without_a_jti_is_refused(
    client: TestClient[Any, Any], account: Any
) -> None:
    claims = valid_claims(account.id)
    del claims["jti"]
    token = jwt.encode(claims, client.app[SECRETS].jwt_secret, algorithm="HS256")

    assert await me_status(client, token) == 401


async def test_garbage_and_other_schemes_are_refused(
    client: TestClient[Any, Any], account: Any
) -> None:
    garbage = await client.get("/api/auth/me", headers=bearer("not.a.jwt"))
    basic = await client.get(
        "/api/auth/me", headers={"Authorization": "Basic dXNlcjpwYXNz"}
    )

    assert garbage.status == 401
    assert basic.status == 401


# -- roles ---------------------------------------------------------------------


async def test_admin_endpoints_answer_403_to_ordinary_users(
    client: TestClient[Any, Any], account: Any, admin: Any
) -> None:
    as_user = await client.get("/api/audit", headers=account.headers)
    as_admin = await client.get("/api/audit", headers=admin.headers)

    assert as_user.status == 403
    assert (await as_user.json())["code"] == "forbidden"
    assert as_admin.status == 200


# -- secrets stay out of logs --------------------------------------------------


async def test_passwords_and_tokens_never_reach_the_logs(
    client: TestClient[Any, Any], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG):
        await register(client, "quiet@example.com")
        await login(client, "quiet@example.com", "Wrong-Password-7")
        token = await token_for(client, "quiet@example.com")
        await client.post("/api/auth/refresh", headers=bearer(token))

    logged = caplog.text + "".join(str(r.args) for r in caplog.records)
    assert PASSWORD not in logged
    assert "Wrong-Password-7" not in logged
    assert token not in logged

"""Rate limits: the hourly limit and its headers, 429s, proxies, the login throttle."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any
from unittest import mock

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, make_mocked_request
from multidict import CIMultiDict

from docwiz.appkeys import DATABASE, SETTINGS, TOKENS
from docwiz.config import ConfigError, Settings, load_settings
from docwiz.errors import ErrorBody
from docwiz.ratelimit import client_address
from docwiz.services.accounts import create_user
from docwiz.services.ratelimit import MemoryRateLimiter, Quota

PASSWORD = "Sturdy-Password-9"
MakeClient = Callable[..., Awaitable[TestClient[Any, Any]]]


def limited(settings: Settings, **changes: Any) -> Settings:
    return settings.model_copy(update=changes)


def quota_headers(response: Any) -> tuple[int, int, int]:
    return (
        int(response.headers["X-RateLimit-Limit"]),
        int(response.headers["X-RateLimit-Remaining"]),
        int(response.headers["X-RateLimit-Reset"]),
    )


async def register(client: TestClient[Any, Any], email: str) -> None:
    response = await client.post(
        "/api/auth/register", json={"email": email, "password": PASSWORD}
    )
    assert response.status == 201, await response.text()


async def login(client: TestClient[Any, Any], email: str, password: str) -> Any:
    return await client.post(
        "/api/auth/login", json={"email": email, "password": password}
    )


# -- headers -------------------------------------------------------------------


async def test_every_api_response_carries_the_headers(
    client: TestClient[Any, Any], account: Any
) -> None:
    ok = await client.get("/api/auth/me", headers=account.headers)
    missing = await client.get("/api/no/such/route", headers=account.headers)
    unauthenticated = await client.get("/api/auth/me")
    invalid = await client.post("/api/auth/login", json={"email": "x"})

    for response in (ok, missing, unauthenticated, invalid):
        limit, remaining, reset = quota_headers(response)
        assert limit == 100
        assert 0 <= remaining < limit
        assert time.time() < reset <= time.time() + 3600
    assert [r.status for r in (ok, missing, unauthenticated, invalid)] == [
        200,
        404,
        401,
        422,
    ]


async def test_remaining_counts_down_per_request(
    client: TestClient[Any, Any], account: Any
) -> None:
    seen = []
    for _ in range(3):
        response = await client.get("/api/auth/me", headers=account.headers)
        seen.append(quota_headers(response)[1])

    assert seen == [99, 98, 97]


async def test_health_is_exempt(client: TestClient[Any, Any]) -> None:
    response = await client.get("/api/health")

    assert response.status == 200
    assert "X-RateLimit-Limit" not in response.headers


async def test_users_and_anonymous_callers_have_separate_allowances(
    client: TestClient[Any, Any], make_account: Callable[..., Awaitable[Any]]
) -> None:
    first, second = await make_account(), await make_account()
    for _ in range(3):
        await client.get("/api/auth/me", headers=first.headers)

    other_user = await client.get("/api/auth/me", headers=second.headers)
    anonymous = await client.get("/api/procedures")

    assert quota_headers(other_user)[1] == 99
    assert quota_headers(anonymous)[1] == 99


# -- the limit -----------------------------------------------------------------


async def test_past_the_limit_a_429_with_retry_after(
    make_client: MakeClient, settings: Settings
) -> None:
    client = await make_client(limited(settings, rate_limit_per_hour=3))
    async with client.app[DATABASE].session() as session:
        user = await create_user(session, "busy@example.com", PASSWORD)
    headers = {"Authorization": f"Bearer {client.app[TOKENS].issue(user.id)[0]}"}

    statuses = [
        (await client.get("/api/auth/me", headers=headers)).status for _ in range(3)
    ]
    refused = await client.get("/api/auth/me", headers=headers)

    assert statuses == [200, 200, 200]
    assert refused.status == 429
    body = await refused.json()
    ErrorBody.model_validate(body)
    assert body["code"] == "rate_limited"
    assert body["request_id"] == refused.headers["X-Request-ID"]
    retry_after = int(refused.headers["Retry-After"])
    assert 1 <= retry_after <= 3600
    assert quota_headers(refused)[:2] == (3, 0)
    anonymous = await client.get("/api/procedures")
    assert anonymous.status == 200, "another caller still has its allowance"


async def test_an_invalid_token_counts_against_the_address(
    make_client: MakeClient, settings: Settings
) -> None:
    client = await make_client(limited(settings, rate_limit_per_hour=2))
    forged = {"Authorization": "Bearer not.a.token"}

    await client.get("/api/procedures")
    await client.get("/api/auth/me", headers=forged)
    third = await client.get("/api/procedures")

    assert third.status == 429


# -- client addresses and proxies ----------------------------------------------


def request_from(peer: str, forwarded: str | None, trusted: list[str]) -> web.Request:
    app = web.Application()
    app[SETTINGS] = Settings(trusted_proxies=trusted)
    transport = mock.Mock()
    transport.get_extra_info.side_effect = lambda name, default=None: (
        (peer, 51000) if name == "peername" else default
    )
    headers = CIMultiDict({"X-Forwarded-For": forwarded} if forwarded else {})
    return make_mocked_request(
        "GET", "/api/x", headers=headers, app=app, transport=transport
    )


@pytest.mark.parametrize(
    ("peer", "forwarded", "trusted", "expected"),
    [
        ("203.0.113.9", "1.2.3.4", [], "203.0.113.9"),
        ("203.0.113.9", "1.2.3.4", ["10.0.0.1"], "203.0.113.9"),
        ("10.0.0.1", "1.2.3.4", ["10.0.0.1"], "1.2.3.4"),
        ("10.0.0.1", "6.6.6.6, 1.2.3.4", ["10.0.0.1"], "1.2.3.4"),
        ("10.0.0.1", "1.2.3.4, 10.0.0.7", ["10.0.0.0/8"], "1.2.3.4"),
        ("10.0.0.1", "garbage, 10.0.0.7", ["10.0.0.0/8"], "10.0.0.7"),
        ("10.0.0.1", None, ["10.0.0.1"], "10.0.0.1"),
        ("::1", "2001:db8::5", ["::1"], "2001:db8::5"),
    ],
)
def test_forwarded_for_is_believed_only_from_trusted_proxies(
    peer: str, forwarded: str | None, trusted: list[str], expected: str
) -> None:
    assert client_address(request_from(peer, forwarded, trusted)) == expected


async def test_callers_behind_a_trusted_proxy_are_counted_apart(
    make_client: MakeClient, settings: Settings
) -> None:
    client = await make_client(
        limited(settings, rate_limit_per_hour=1, trusted_proxies=["127.0.0.1"])
    )

    first = await client.get("/api/procedures", headers={"X-Forwarded-For": "1.1.1.1"})
    second = await client.get("/api/procedures", headers={"X-Forwarded-For": "2.2.2.2"})
    first_again = await client.get(
        "/api/procedures", headers={"X-Forwarded-For": "1.1.1.1"}
    )

    assert [first.status, second.status, first_again.status] == [200, 200, 429]


async def test_forwarded_for_from_an_untrusted_peer_changes_nothing(
    make_client: MakeClient, settings: Settings
) -> None:
    client = await make_client(limited(settings, rate_limit_per_hour=1))

    await client.get("/api/procedures", headers={"X-Forwarded-For": "1.1.1.1"})
    spoofed = await client.get(
        "/api/procedures", headers={"X-Forwarded-For": "2.2.2.2"}
    )

    assert spoofed.status == 429


def test_a_trusted_proxy_must_be_an_address() -> None:
    with pytest.raises(ConfigError, match="not an IP address"):
        load_settings(trusted_proxies="10.0.0.1, proxy.internal")


# -- the login throttle --------------------------------------------------------


async def test_failed_logins_per_email_are_throttled_even_with_the_right_password(
    make_client: MakeClient, settings: Settings
) -> None:
    client = await make_client(limited(settings, login_failures_per_email=3))
    await register(client, "target@example.com")
    await register(client, "bystander@example.com")

    failures = [
        (await login(client, "target@example.com", f"Guess-{n}-Wrong!")).status
        for n in range(3)
    ]
    right_password = await login(client, "Target@Example.com", PASSWORD)
    bystander = await login(client, "bystander@example.com", PASSWORD)

    assert failures == [401, 401, 401]
    assert right_password.status == 429
    body = await right_password.json()
    ErrorBody.model_validate(body)
    assert body["code"] == "rate_limited"
    assert "failed logins" in body["detail"]
    assert 1 <= int(right_password.headers["Retry-After"]) <= 15 * 60
    assert bystander.status == 200, "another account from the same address"


async def test_failed_logins_per_address_are_throttled_across_emails(
    make_client: MakeClient, settings: Settings
) -> None:
    client = await make_client(limited(settings, login_failures_per_address=3))
    await register(client, "fresh@example.com")

    for n in range(3):
        response = await login(client, f"guess{n}@example.com", "Wrong-Guess-1!")
        assert response.status == 401

    assert (await login(client, "fresh@example.com", PASSWORD)).status == 429


async def test_a_successful_login_clears_the_accounts_failures(
    make_client: MakeClient, settings: Settings
) -> None:
    client = await make_client(limited(settings, login_failures_per_email=3))
    await register(client, "typo@example.com")

    for _ in range(2):
        await login(client, "typo@example.com", "Typo-Password-1")
    assert (await login(client, "typo@example.com", PASSWORD)).status == 200
    for _ in range(2):
        await login(client, "typo@example.com", "Typo-Password-1")

    assert (await login(client, "typo@example.com", PASSWORD)).status == 200


# -- the in-process counters ---------------------------------------------------


class FakeClock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


async def test_a_counter_resets_when_its_window_ends() -> None:
    clock = FakeClock(7200.0 + 3590)
    limiter = MemoryRateLimiter(clock)

    first = await limiter.hit("k", 2, 3600)
    second = await limiter.hit("k", 2, 3600)
    third = await limiter.hit("k", 2, 3600)
    clock.now = 10800.0 + 1
    next_window = await limiter.hit("k", 2, 3600)

    assert [q.count for q in (first, second, third)] == [1, 2, 3]
    assert third.exceeded and third.remaining == 0
    assert third.retry_after == 10
    assert third.reset_at == 10800
    assert next_window.count == 1 and next_window.reset_at == 14400


async def test_peek_does_not_count_and_reset_forgets() -> None:
    limiter = MemoryRateLimiter(FakeClock(100.0))
    await limiter.hit("k", 5, 60)

    assert (await limiter.peek("k", 5, 60)).count == 1
    assert (await limiter.peek("k", 5, 60)).count == 1
    await limiter.reset("k", 60)
    assert (await limiter.peek("k", 5, 60)).count == 0


async def test_old_windows_are_pruned() -> None:
    clock = FakeClock(0.0)
    limiter = MemoryRateLimiter(clock)
    for n in range(limiter.PRUNE_EVERY - 1):
        await limiter.hit(f"caller-{n}", 10, 60)
    clock.now = 120.0

    await limiter.hit("latecomer", 10, 60)

    assert len(limiter) == 1


def test_quota_arithmetic() -> None:
    quota = Quota(limit=10, count=10, reset_at=1000.0, now=999.2)

    assert quota.remaining == 0
    assert quota.exhausted and not quota.exceeded
    assert quota.retry_after == 1

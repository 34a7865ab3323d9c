"""Rate limits over HTTP: the per-caller limit on every ``/api`` route, its
headers, the failed-login throttle, and who the client is behind proxies.

The caller is the user of a validly signed bearer token, else the client
address. ``X-Forwarded-For`` is honoured only when the connection comes from
a trusted proxy (``DOCWIZ_TRUSTED_PROXIES``). ``/api/health`` and
``/api/ready`` are exempt: load balancers poll them, they return no data, and
readiness must report a Redis outage rather than fail on it. The counters
themselves are in :mod:`docwiz.services.ratelimit`.
"""

from __future__ import annotations

import functools
import ipaddress
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import TypeAlias

from aiohttp import web

from docwiz.appkeys import RATE_LIMITER, RATE_QUOTA, SETTINGS, TOKENS
from docwiz.auth_context import bearer_token
from docwiz.config import ConfigError, Settings
from docwiz.errors import TooManyRequests
from docwiz.security.tokens import InvalidToken
from docwiz.services.ratelimit import (
    MemoryRateLimiter,
    RateLimiter,
    RedisRateLimiter,
    subject_key,
)

logger = logging.getLogger("docwiz.ratelimit")

HOUR = 3600
EXEMPT_PATHS = frozenset({"/api/health", "/api/ready"})

Network: TypeAlias = ipaddress.IPv4Network | ipaddress.IPv6Network
Address: TypeAlias = ipaddress.IPv4Address | ipaddress.IPv6Address
HandlerT = Callable[[web.Request], Awaitable[web.StreamResponse]]


@functools.lru_cache(maxsize=8)
def trusted_networks(entries: tuple[str, ...]) -> tuple[Network, ...]:
    """Parse proxy addresses or networks (``10.0.0.0/8``); ConfigError if bad."""
    networks = []
    for entry in entries:
        try:
            networks.append(ipaddress.ip_network(entry.strip(), strict=False))
        except ValueError:
            raise ConfigError(
                f"trusted_proxies: {entry!r} is not an IP address or network"
            ) from None
    return tuple(networks)


def _parse_address(text: str) -> Address | None:
    try:
        return ipaddress.ip_address(text.strip())
    except ValueError:
        return None


def _is_trusted(address: Address | None, networks: Iterable[Network]) -> bool:
    return address is not None and any(address in net for net in networks)


def client_address(request: web.Request) -> str:
    """The address the request came from, looking through trusted proxies only.

    ``X-Forwarded-For`` is read right to left: each trusted proxy appended
    the address it saw, so the first untrusted hop is the client. Anything
    further left was written by the client and is ignored.
    """
    peer = request.remote or "unknown"
    settings = request.app.get(SETTINGS)
    if settings is None or not settings.trusted_proxies:
        return peer
    networks = trusted_networks(tuple(settings.trusted_proxies))
    if not _is_trusted(_parse_address(peer), networks):
        return peer

    hops = [
        hop
        for header in request.headers.getall("X-Forwarded-For", [])
        for hop in header.split(",")
        if hop.strip()
    ]
    client = peer
    for hop in reversed(hops):
        address = _parse_address(hop)
        if address is None:
            break
        client = str(address)
        if not _is_trusted(address, networks):
            break
    return client


def rate_limit_subject(request: web.Request) -> str:
    """``user:<id>`` for a validly signed token, else a digest of the address."""
    token = bearer_token(request)
    if token is not None:
        try:
            claims = request.app[TOKENS].decode(token)
        except InvalidToken:
            pass
        else:
            return f"user:{claims.subject}"
    return subject_key("address", client_address(request))


@web.middleware
async def rate_limit_middleware(
    request: web.Request, handler: HandlerT
) -> web.StreamResponse:
    """Count the request against its caller's hourly allowance; 429 past it."""
    limiter = request.app.get(RATE_LIMITER)
    path = request.path
    if (
        limiter is None
        or not (path == "/api" or path.startswith("/api/"))
        or path in EXEMPT_PATHS
    ):
        return await handler(request)

    limit = request.app[SETTINGS].rate_limit_per_hour
    quota = await limiter.hit(rate_limit_subject(request), limit, HOUR)
    request[RATE_QUOTA] = quota
    if quota.exceeded:
        raise TooManyRequests(
            f"Rate limit exceeded: {limit} requests per hour; "
            f"try again in {quota.retry_after} seconds",
            headers={"Retry-After": str(quota.retry_after)},
        )
    return await handler(request)


async def add_rate_limit_headers(
    request: web.Request, response: web.StreamResponse
) -> None:
    """Sent on every counted response, errors included (a response signal
    sees the error responses the error middleware builds)."""
    quota = request.get(RATE_QUOTA)
    if quota is None:
        return
    response.headers["X-RateLimit-Limit"] = str(quota.limit)
    response.headers["X-RateLimit-Remaining"] = str(quota.remaining)
    response.headers["X-RateLimit-Reset"] = str(int(quota.reset_at))


def install_rate_limits(app: web.Application) -> None:
    """The middleware, its headers, and the counters' lifetime."""
    app.middlewares.append(rate_limit_middleware)
    app.on_response_prepare.append(add_rate_limit_headers)
    app.cleanup_ctx.append(rate_limiter_ctx)


def make_rate_limiter(settings: Settings) -> RateLimiter:
    if settings.mode == "scale-out" and settings.redis_url is not None:
        return RedisRateLimiter.from_url(settings.redis_url)
    return MemoryRateLimiter()


async def rate_limiter_ctx(app: web.Application) -> AsyncIterator[None]:
    limiter = make_rate_limiter(app[SETTINGS])
    app[RATE_LIMITER] = limiter
    try:
        yield
    finally:
        await limiter.close()


class LoginThrottle:
    """Failed logins counted per client address and per email, apart from the
    hourly limit, so a password cannot be guessed at the general rate."""

    def __init__(self, limiter: RateLimiter, settings: Settings) -> None:
        self._limiter = limiter
        self._window = settings.login_failure_window_minutes * 60
        self._per_address = settings.login_failures_per_address
        self._per_email = settings.login_failures_per_email

    def _keys(self, address: str, email: str) -> list[tuple[str, int]]:
        return [
            (subject_key("login-address", address), self._per_address),
            (subject_key("login-email", email), self._per_email),
        ]

    async def check(self, address: str, email: str) -> None:
        """429 when either counter is spent, even before the password is tried."""
        for key, limit in self._keys(address, email):
            quota = await self._limiter.peek(key, limit, self._window)
            if quota.exhausted:
                logger.warning("login throttled (%s)", key.partition(":")[0])
                raise TooManyRequests(
                    f"Too many failed logins; try again in {quota.retry_after} seconds",
                    headers={"Retry-After": str(quota.retry_after)},
                )

    async def failed(self, address: str, email: str) -> None:
        for key, limit in self._keys(address, email):
            await self._limiter.hit(key, limit, self._window)

    async def succeeded(self, email: str) -> None:
        """The owner got in: earlier typos on this account no longer count.

        The address counter stays, or an attacker could clear it with
        successful logins to an account of their own.
        """
        await self._limiter.reset(subject_key("login-email", email), self._window)

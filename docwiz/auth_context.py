"""Who is calling: bearer tokens resolved to users for endpoints that need one."""

from __future__ import annotations

from aiohttp import web

from docwiz.api.routing import AuthLevel
from docwiz.appkeys import DATABASE, REVOCATIONS, TOKENS
from docwiz.db.models import User
from docwiz.errors import Forbidden, Unauthorized
from docwiz.security.tokens import InvalidToken, TokenClaims

USER_KEY = web.RequestKey("user", User)
CLAIMS_KEY = web.RequestKey("token_claims", TokenClaims)


def bearer_token(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


async def user_for_token(request: web.Request, token: str) -> tuple[User, TokenClaims]:
    """The active user a token belongs to; Unauthorized otherwise."""
    try:
        claims = request.app[TOKENS].decode(token)
    except InvalidToken as exc:
        raise Unauthorized(f"Could not validate credentials: {exc}") from None
    if await request.app[REVOCATIONS].is_revoked(claims.token_id):
        raise Unauthorized("Could not validate credentials: the token was revoked")
    async with request.app[DATABASE].session() as session:
        user = await session.get(User, claims.subject)
    if user is None or not user.is_active:
        raise Unauthorized("Could not validate credentials")
    return user, claims


async def authenticate(request: web.Request, level: AuthLevel) -> None:
    """Resolve the caller; 401 without valid credentials, 403 for non-admins."""
    token = bearer_token(request)
    if token is None:
        raise Unauthorized("Not authenticated")
    user, claims = await user_for_token(request, token)
    request[USER_KEY] = user
    request[CLAIMS_KEY] = claims
    if level == "admin" and not user.is_admin:
        raise Forbidden("This endpoint is for administrators")


def current_user(request: web.Request) -> User:
    """The authenticated caller of an endpoint declared with auth."""
    user: User | None = request.get(USER_KEY)
    if user is None:
        raise Unauthorized("Not authenticated")
    return user

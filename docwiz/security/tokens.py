"""Access tokens: HS256 JWTs with the algorithm pinned and every claim checked."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import jwt

ALGORITHM = "HS256"
ISSUER = "docwiz"
AUDIENCE = "docwiz-api"


class InvalidToken(Exception):
    """The token is malformed, forged, expired or otherwise unusable."""


@dataclass(frozen=True)
class TokenClaims:
    subject: str
    token_id: str
    issued_at: datetime
    expires_at: datetime


class TokenService:
    def __init__(self, secret: bytes, ttl: timedelta) -> None:
        self._secret = secret
        self.ttl = ttl

    def issue(
        self, user_id: str, *, now: datetime | None = None
    ) -> tuple[str, TokenClaims]:
        issued_at = (now or datetime.now(UTC)).replace(microsecond=0)
        claims = TokenClaims(
            subject=user_id,
            token_id=secrets.token_urlsafe(16),
            issued_at=issued_at,
            expires_at=issued_at + self.ttl,
        )
        payload = {
            "sub": claims.subject,
            "jti": claims.token_id,
            "iat": int(claims.issued_at.timestamp()),
            "nbf": int(claims.issued_at.timestamp()),
            "exp": int(claims.expires_at.timestamp()),
            "iss": ISSUER,
            "aud": AUDIENCE,
        }
        return jwt.encode(payload, self._secret, algorithm=ALGORITHM), claims

    def decode(self, token: str) -> TokenClaims:
        try:
            payload = jwt.decode(
                token,
                self._secret,
                algorithms=[ALGORITHM],
                audience=AUDIENCE,
                issuer=ISSUER,
                options={"require": ["sub", "jti", "iat", "exp", "iss", "aud"]},
            )
        except jwt.ExpiredSignatureError:
            raise InvalidToken("the token has expired") from None
        except jwt.PyJWTError:
            raise InvalidToken("the token is invalid") from None
        if not isinstance(payload["sub"], str) or not isinstance(payload["jti"], str):
            raise InvalidToken("the token is invalid")
        return TokenClaims(
            subject=payload["sub"],
            token_id=payload["jti"],
            issued_at=datetime.fromtimestamp(payload["iat"], UTC),
            expires_at=datetime.fromtimestamp(payload["exp"], UTC),
        )

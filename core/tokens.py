"""Bearer tokens: HS256 with the shared secret in development, RS256 from an identity provider's
JWKS in production. Any other algorithm, a missing or past exp, or a wrong iss/aud is refused."""

from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

import jwt
import jwt.types

ISSUER = "repairflow"
AUDIENCE = "repairflow"
REQUIRED_CLAIMS = ["exp", "iss", "aud", "sub"]


def mint_token(secret: str, *, subject: str, role: str, ttl: timedelta, **claims: str) -> str:
    now = datetime.now(UTC)
    payload: dict[str, Any] = {
        "sub": subject,
        "role": role,
        "iss": ISSUER,
        "aud": AUDIENCE,
        "iat": now,
        "exp": now + ttl,
        **claims,
    }
    return jwt.encode(payload, secret, algorithm="HS256")


@lru_cache(maxsize=4)
def _jwks_client(url: str) -> jwt.PyJWKClient:
    return jwt.PyJWKClient(url, cache_keys=True, lifespan=300)


def decode_token(token: str, *, secret: str | None, jwks_url: str | None) -> dict[str, Any]:
    """The verified claims; raises jwt.InvalidTokenError for anything not acceptable."""
    options: jwt.types.Options = {"require": REQUIRED_CLAIMS}
    if jwt.get_unverified_header(token).get("alg") == "RS256" and jwks_url:
        key = _jwks_client(jwks_url).get_signing_key_from_jwt(token).key
        return jwt.decode(
            token, key, algorithms=["RS256"], audience=AUDIENCE, issuer=ISSUER, options=options
        )
    if secret is None:
        raise jwt.InvalidTokenError("no HS256 secret is configured")
    return jwt.decode(
        token, secret, algorithms=["HS256"], audience=AUDIENCE, issuer=ISSUER, options=options
    )

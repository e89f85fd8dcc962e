"""Bearer tokens: HS256 with the shared secret in development, RS256 from an identity provider's
JWKS in production. Any other algorithm, a missing or past exp, or a wrong iss/aud is refused."""

from contextlib import suppress
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


class KeysUnavailable(Exception):
    """The identity provider's keys (JWKS) cannot be fetched: no token can be checked now."""


def decode_token(
    token: str,
    *,
    secret: str | None,
    jwks_url: str | None,
    link_secret: str | None = None,
    allow_hs256: bool = False,
) -> dict[str, Any]:
    """The verified claims; raises jwt.InvalidTokenError for anything not acceptable, and
    KeysUnavailable when the identity provider cannot be asked.

    RS256 tokens are checked against the JWKS. HS256 tokens are checked with the auth secret
    (unless a JWKS is configured and HS256 is not allowed beside it) and, for customers only,
    with the link secret that signs the tokens handed out at booking."""
    options: jwt.types.Options = {"require": REQUIRED_CLAIMS}
    algorithm = jwt.get_unverified_header(token).get("alg")
    if algorithm == "RS256" and jwks_url:
        try:
            key = _jwks_client(jwks_url).get_signing_key_from_jwt(token).key
        except jwt.PyJWKClientConnectionError as error:
            raise KeysUnavailable(str(error)) from None
        except jwt.PyJWKClientError as error:  # no key with the token's kid
            raise jwt.InvalidTokenError(str(error)) from None
        return jwt.decode(
            token, key, algorithms=["RS256"], audience=AUDIENCE, issuer=ISSUER, options=options
        )
    if algorithm != "HS256":
        raise jwt.InvalidTokenError(f"algorithm {algorithm} is not accepted")
    staff_secret = secret if jwks_url is None or allow_hs256 else None
    if staff_secret is not None:
        with suppress(jwt.InvalidSignatureError):
            return jwt.decode(
                token,
                staff_secret,
                algorithms=["HS256"],
                audience=AUDIENCE,
                issuer=ISSUER,
                options=options,
            )
    if link_secret is None or link_secret == staff_secret:
        raise jwt.InvalidSignatureError("the token's signature does not verify")
    claims = jwt.decode(
        token, link_secret, algorithms=["HS256"], audience=AUDIENCE, issuer=ISSUER, options=options
    )
    if claims.get("role") != "customer":
        raise jwt.InvalidTokenError("the link secret signs customer tokens only")
    return claims

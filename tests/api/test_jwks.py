"""Production sign-in: RS256 tokens from an identity provider, checked against its JWKS, which
the test serves on loopback with a real RSA key. Bad tokens are 401, an unreachable provider is
503, never 500; booking works without any HS256 auth secret, the customer's link token signed
with its own secret."""

import json
import socket
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from jwt.algorithms import RSAAlgorithm
from pydantic import SecretStr

from api.main import create_app
from core.settings import Settings
from core.tokens import AUDIENCE, ISSUER
from tests.api.client import AUTH_SECRET, serve
from tests.factories import create_booking_json

LINK_SECRET = "customer-link-secret-of-its-own-0123456789abcdefghijklmnopqrstuvwxyz"


def new_key() -> RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def signing_key() -> RSAPrivateKey:
    return new_key()


@pytest.fixture(scope="module")
def jwks_url(signing_key: RSAPrivateKey) -> Iterator[str]:
    """The identity provider's key set, as Keycloak serves it."""
    jwk = json.loads(RSAAlgorithm.to_jwk(signing_key.public_key()))
    body = json.dumps({"keys": [jwk | {"kid": "k1", "use": "sig", "alg": "RS256"}]}).encode()

    class Keys(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Keys)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/realms/repair/certs"
    server.shutdown()
    server.server_close()


def staff_claims(**changes: Any) -> dict[str, Any]:
    now = datetime.now(UTC)
    return {
        "sub": "desk-7",
        "role": "staff",
        "iss": ISSUER,
        "aud": AUDIENCE,
        "iat": now,
        "exp": now + timedelta(minutes=5),
    } | changes


def token(key: RSAPrivateKey, *, kid: str = "k1", **claims: Any) -> str:
    return jwt.encode(staff_claims(**claims), key, algorithm="RS256", headers={"kid": kid})


def bearer(value: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {value}"}


async def app_with(settings: Settings, **changes: Any) -> AsyncIterator[httpx.AsyncClient]:
    async for http in serve(create_app(settings.model_copy(update=changes))):
        yield http


@pytest.fixture
async def jwks_api(
    settings: Settings, worker: None, jwks_url: str
) -> AsyncIterator[httpx.AsyncClient]:
    """The API in production sign-in mode: a JWKS, no HS256 auth secret."""
    async for http in app_with(
        settings,
        auth_secret=None,
        auth_jwks_url=jwks_url,
        customer_link_secret=SecretStr(LINK_SECRET),
    ):
        yield http


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


async def test_a_provider_token_books_and_the_customer_link_reads_the_order(
    jwks_api: httpx.AsyncClient, signing_key: RSAPrivateKey
) -> None:
    booked = await jwks_api.post(
        "/v1/orders", json=create_booking_json(), headers=bearer(token(signing_key))
    )
    assert booked.status_code == 201, booked.text
    created = booked.json()
    customer_link = created["customer_token"]
    assert jwt.get_unverified_header(customer_link)["alg"] == "HS256"
    order = await jwks_api.get(f"/v1/orders/{created['order_id']}", headers=bearer(customer_link))
    assert order.status_code == 200, order.text
    assert order.json()["order_id"] == created["order_id"]


@pytest.mark.parametrize(
    "case", ["unknown-kid", "other-key", "expired", "hs256-auth-secret", "link-secret-as-staff"]
)
async def test_tokens_that_do_not_verify_are_401(
    jwks_api: httpx.AsyncClient, signing_key: RSAPrivateKey, case: str
) -> None:
    now = datetime.now(UTC)
    claims = staff_claims()
    bad = {
        "unknown-kid": lambda: token(signing_key, kid="k9"),
        "other-key": lambda: token(new_key()),
        "expired": lambda: token(signing_key, exp=now - timedelta(minutes=1)),
        "hs256-auth-secret": lambda: jwt.encode(claims, AUTH_SECRET, algorithm="HS256"),
        "link-secret-as-staff": lambda: jwt.encode(claims, LINK_SECRET, algorithm="HS256"),
    }[case]()
    response = await jwks_api.get("/v1/orders", headers=bearer(bad))
    assert response.status_code == 401, response.text
    assert response.headers["content-type"] == "application/problem+json"


async def test_hs256_beside_the_jwks_only_when_allowed(
    settings: Settings, worker: None, jwks_url: str
) -> None:
    staff = jwt.encode(staff_claims(), AUTH_SECRET, algorithm="HS256")
    async for http in app_with(settings, auth_jwks_url=jwks_url, auth_allow_hs256=True):
        assert (await http.get("/v1/orders", headers=bearer(staff))).status_code == 200


async def test_an_unreachable_provider_is_503(
    settings: Settings, signing_key: RSAPrivateKey
) -> None:
    nowhere = f"http://127.0.0.1:{free_port()}/certs-{uuid.uuid4().hex}"
    async for http in app_with(
        settings,
        auth_secret=None,
        auth_jwks_url=nowhere,
        customer_link_secret=SecretStr(LINK_SECRET),
    ):
        response = await http.get("/v1/orders", headers=bearer(token(signing_key)))
        assert response.status_code == 503, response.text
        assert "Retry-After" in response.headers


def test_without_any_secret_for_customer_links_the_api_does_not_start(
    settings: Settings, jwks_url: str
) -> None:
    with pytest.raises(RuntimeError, match="REPAIRFLOW_CUSTOMER_LINK_SECRET"):
        create_app(settings.model_copy(update={"auth_secret": None, "auth_jwks_url": jwks_url}))
